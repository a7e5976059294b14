#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""multifd-client.py - a small client of `multifd daemon` (docs/daemon.md),
Python 3.9+ standard library only. As a program:

    multifd-client.py unix:PATH 'JSON COMMAND' [FILE...]

connects, sends the command with each FILE opened (read-write for "recv"
and "send-dirty", read-only otherwise) and attached as a descriptor, and
prints every event, one JSON object a line, until the command's answer;
with --wait it goes on until its session's last event (finished, error,
cancelled). Exit status 0 when the command (and with --wait the session)
succeeded, 1 otherwise.

As a module (importlib: the file name has dashes): Client(path) connects
and reads the hello event; call() sends a command and returns its answer,
keeping the other events for wait_event().
"""
import argparse
import array
import json
import os
import socket
import sys
import time

MAX_MESSAGE = 65536
MAX_FDS = 253
ENDS = ("finished", "error", "cancelled")


class DaemonError(Exception):
    """An error event: the command's answer, or a session's failure."""

    def __init__(self, event):
        super().__init__(event.get("message", str(event)))
        self.event = event


class Client:
    def __init__(self, path, timeout=60.0):
        if path.startswith("unix:"):
            path = path[5:]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.timeout = timeout
        self.pending = []  # events read while waiting for something else
        self.next_tag = 1
        self.hello = self.read_event()
        if self.hello.get("event") != "hello":
            raise DaemonError(self.hello)

    def close(self):
        self.sock.close()

    def fileno(self):
        return self.sock.fileno()

    def send_raw(self, data, fds=()):
        """One message as it is (bytes), with descriptors attached."""
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def send(self, cmd, fds=()):
        """Send a command (a dict); adds a tag when it has none. Returns
        the tag."""
        if "tag" not in cmd:
            cmd = dict(cmd, tag=self.next_tag)
            self.next_tag += 1
        self.send_raw(json.dumps(cmd).encode(), fds)
        return cmd["tag"]

    def read_event(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise EOFError("the daemon closed the connection")
        return json.loads(data)

    def call(self, cmd, fds=(), timeout=None):
        """Send a command and return its answer ("ok"); raise DaemonError
        for an "error" answer. Other events are kept for wait_event()."""
        tag = self.send(cmd, fds)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to %r" % (cmd,))
            ev = self.read_event(left)
            if ev.get("tag") == tag and ev["event"] in ("ok", "error"):
                if ev["event"] == "error":
                    raise DaemonError(ev)
                return ev
            self.pending.append(ev)

    def wait_event(self, match, timeout=None):
        """The first event (kept or new) for which match(ev) is true."""
        for i, ev in enumerate(self.pending):
            if match(ev):
                return self.pending.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such event")
            ev = self.read_event(left)
            if match(ev):
                return ev
            self.pending.append(ev)

    def session_event(self, session, kinds, timeout=None):
        """The session's next event of one of these kinds (a tuple)."""
        return self.wait_event(
            lambda e: e.get("session") == session and e["event"] in kinds
            and "tag" not in e, timeout)

    def start(self, cmd, fds, timeout=None):
        """send or recv: returns (session id, its "started" event); raises
        DaemonError when it fails to start."""
        sid = self.call(cmd, fds, timeout)["session"]
        ev = self.session_event(sid, ("started",) + ENDS, timeout)
        if ev["event"] != "started":
            raise DaemonError(ev)
        return sid, ev


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("control", help="unix:PATH of the daemon")
    ap.add_argument("command", help="one JSON command")
    ap.add_argument("files", nargs="*", help="files to attach, in order")
    ap.add_argument("--wait", action="store_true",
                    help="go on until the session's last event")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args()
    try:
        cmd = json.loads(a.command)
    except ValueError as e:
        raise ValueError("the command is not JSON: %s" % e) from None
    if not isinstance(cmd, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean",
                int: "a number", float: "a number"}.get(type(cmd), "null")
        raise ValueError("the command is %s; expected a JSON object "
                         "{\"cmd\": ...}" % kind)
    rw = cmd.get("cmd") in ("recv", "send-dirty")
    fds = []
    for f in a.files:
        try:
            fds.append(os.open(f, os.O_RDWR if rw else os.O_RDONLY))
        except OSError as e:
            raise OSError("cannot open '%s': %s" % (f, e.strerror)) from None
    try:
        c = Client(a.control, a.timeout)
    except OSError as e:
        raise OSError("cannot reach the daemon at %s: %s"
                      % (a.control, e.strerror or e)) from None
    print(json.dumps(c.hello), flush=True)
    try:
        ans = c.call(cmd, fds)
    except DaemonError as e:
        print(json.dumps(e.event), flush=True)
        return 1
    finally:
        for fd in fds:
            os.close(fd)
    for ev in c.pending:
        print(json.dumps(ev), flush=True)
    c.pending = []
    print(json.dumps(ans), flush=True)
    if not a.wait or "session" not in ans:
        return 0
    while True:
        ev = c.read_event(a.timeout)
        print(json.dumps(ev), flush=True)
        if ev.get("session") == ans["session"] and ev["event"] in ENDS \
                and "tag" not in ev:
            return 0 if ev["event"] == "finished" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, EOFError, ValueError) as e:
        print("multifd-client: %s" % e, file=sys.stderr)
        sys.exit(1)
