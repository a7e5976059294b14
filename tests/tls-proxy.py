#!/usr/bin/env python3
"""tls-proxy.py - a TCP proxy for test-tls.sh, between a sender and a
receiver on loopback. Prints "listening on PORT", then forwards every
connection to TARGET_PORT, both ways.

  --record FILE  append every byte that passes, both directions, to FILE
  --flip N       flip one bit of the N-th byte (from 0) the first
                 connection's sender sends, counted over that connection
Exits when --lifetime seconds have passed (default 60)."""
import argparse
import os
import select
import socket
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("target_port", type=int)
ap.add_argument("--record")
ap.add_argument("--flip", type=int, default=-1)
ap.add_argument("--lifetime", type=float, default=60)
a = ap.parse_args()

lock = threading.Lock()
rec = open(a.record, "ab") if a.record else None
first = [True]


def pump(src, dst, flip_at, ends):
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if 0 <= flip_at < seen + len(data) and flip_at >= seen:
                b = bytearray(data)
                b[flip_at - seen] ^= 0x01
                data = bytes(b)
            seen += len(data)
            if rec:
                with lock:
                    rec.write(data)
                    rec.flush()
            dst.sendall(data)
    except OSError:
        pass
    # this direction is over; the other one still carries what its end
    # says last (a TLS alert before a reset): both close once both ended
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    with lock:
        ends[0] -= 1
        last = ends[0] == 0
    if last:
        for s in (dst, src):
            s.close()


def serve(c):
    u = socket.create_connection(("127.0.0.1", a.target_port))
    ends = [2]
    with lock:
        flip = a.flip if first[0] else -1
        first[0] = False
    threading.Thread(target=pump, args=(c, u, flip, ends), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, -1, ends), daemon=True).start()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print("listening on %d" % ls.getsockname()[1], flush=True)
end = time.time() + a.lifetime
while time.time() < end:
    r, _, _ = select.select([ls], [], [], 0.2)
    if r:
        c, _ = ls.accept()
        serve(c)
sys.exit(0)
