#!/bin/bash
# test-daemon.sh - multifd daemon (docs/daemon.md), driven by
# tools/multifd-client.py over loopback: two daemons move a 256 MiB memfd
# in several rounds (pages changed between rounds, sent with send-dirty)
# and it arrives identical, while another session is cancelled; a second
# connection cannot see, sync or cancel the first one's session; a client
# killed mid-session leaves nothing behind (the daemon's descriptors,
# threads and mappings back to what they were) and the daemon serves the
# next; a client of another uid is refused; bad commands get error events
# that name the bad value; a live daemon's socket is not taken over, a
# stale one is; SIGTERM cancels the sessions, removes the socket and
# exits 0.
set -u
MULTIFD=${MULTIFD:-./multifd}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
CLIENT=$srcdir/tools/multifd-client.py
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"

if ! command -v python3 >/dev/null 2>&1; then
	echo "python3 not found: skip"
	exit 77
fi
if ! "$MULTIFD" daemon --help >/dev/null 2>&1; then
	echo "this multifd has no daemon (built without json-c): skip"
	exit 77
fi

# start_daemon NAME [ARGS...]: a daemon on $dir/NAME.sock in the
# background, its pid in $dpid, its stderr in $dir/NAME.err. It runs
# without `timeout`, so that a signal reaches it alone; the EXIT trap and
# the harness's timeout bound it.
start_daemon() {
	local name=$1
	shift
	"$MULTIFD" daemon --control "unix:$dir/$name.sock" "$@" \
		2>"$dir/$name.err" &
	dpid=$!
	for _ in $(seq 100); do
		grep -q "listening on" "$dir/$name.err" 2>/dev/null && return 0
		sleep 0.1
	done
	bad "daemon $name did not start: $(cat "$dir/$name.err")"
	return 1
}

# drive SCENARIO ARGS...: the Python side below; its "ok:"/"FAIL:" lines
# count as checks, and a crash or a hang is one more failure
drive() {
	local out st
	out=$(timeout 180 python3 "$dir/drive.py" "$CLIENT" "$@" 2>&1)
	st=$?
	echo "$out"
	pass=$((pass + $(grep -c '^ok:' <<<"$out")))
	fail=$((fail + $(grep -c '^FAIL:' <<<"$out")))
	[ $st = 0 ] || bad "scenario $1 ended with status $st"
}

cat >"$dir/drive.py" <<'PY'
import hashlib, importlib.util, json, mmap, os, signal, socket, subprocess
import sys, time

mc = None
if sys.argv[1] != "-":  # "-": the client module may not be readable
    spec = importlib.util.spec_from_file_location("client", sys.argv[1])
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
scenario, args = sys.argv[2], sys.argv[3:]
PAGE = 4096


def ok(msg):
    print("ok: " + msg, flush=True)


def bad(msg):
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    (ok if cond else bad)(msg)
    return cond


def memfd(name, size, fill=False):
    fd = os.memfd_create(name)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size)
    if fill:
        chunk = min(size, 16 << 20)
        for off in range(0, size, chunk):
            m[off:off + chunk] = os.urandom(chunk)
    return fd, m


def digest(m):
    return hashlib.sha256(m).hexdigest()


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def ntasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def memfd_maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return [l for l in f if "memfd:" in l]


def settle(pid, fds, tasks, seconds=10):
    """Wait until the daemon is back to fds descriptors and tasks
    threads; returns what it has then."""
    end = time.monotonic() + seconds
    while True:
        now = (nfds(pid), ntasks(pid))
        if now == (fds, tasks) or time.monotonic() > end:
            return now
        time.sleep(0.1)


def pair(src, dst, size, send_opts=None, name="ram", recv_opts=None):
    """A recv session on dst and a send session on src for a memfd of
    size bytes: (sender sid, receiver sid, source map, dest map, fds)"""
    sfd, sm = memfd("src", size, fill=True)
    dfd, dm = memfd("dst", size)
    rcmd = {"cmd": "recv", "uri": "tcp:127.0.0.1:0",
            "regions": [{"name": name}]}
    rcmd.update(recv_opts or {})
    rid, st = dst.start(rcmd, [dfd])
    cmd = {"cmd": "send", "uri": st["uri"], "regions": [{"name": name}]}
    cmd.update(send_opts or {})
    sid, _ = src.start(cmd, [sfd])
    os.close(sfd)
    os.close(dfd)
    return sid, rid, sm, dm


def transfer(srcpath, dstpath):
    src, dst = mc.Client(srcpath), mc.Client(dstpath)
    check(src.hello["protocol"] == 1, "hello event: %s" % src.hello)
    # a slow session beside the main one, cancelled half-way
    csid, crid, _, _ = pair(src, dst, 64 << 20,
                            {"max_bandwidth": 2 << 20, "channels": 2,
                             "progress_ms": 200}, name="slow")
    size = 256 << 20
    pages = size // PAGE
    sid, rid, sm, dm = pair(src, dst, size, {"channels": 4})
    src.call({"cmd": "sync", "session": sid})
    r0 = src.session_event(sid, ("round",))
    check(r0["round"] == 0 and r0["pages"] == pages and r0["bytes"] > size,
          "round 0: every page of 256 MiB (%d pages, %d bytes, %.0f MB/s)"
          % (r0["pages"], r0["bytes"], r0["bytes_per_s"] / 1e6))

    # another connection cannot see, sync or cancel this one's sessions
    other = mc.Client(srcpath)
    check(other.call({"cmd": "list"})["sessions"] == [],
          "a second connection lists no session")
    for cmd in ("cancel", "sync", "finish"):
        try:
            other.call({"cmd": cmd, "session": sid})
            bad("a second connection could %s session %d" % (cmd, sid))
        except mc.DaemonError as e:
            check("no session %d on this connection" % sid in str(e),
                  "a second connection's %s is refused: %s" % (cmd, e))
    other.close()
    listed = src.call({"cmd": "list"})["sessions"]
    check(sorted(s["session"] for s in listed) == sorted([sid, csid]),
          "the owner lists its two sessions: %s" % listed)

    prog = src.wait_event(lambda e: e.get("session") == csid and
                          e["event"] == "progress" and e["bytes"] > 0, 10)
    check(0 < prog["bytes"] < 64 << 20 and prog["total_bytes"] == 64 << 20,
          "the slow session reports progress: %d of %d bytes"
          % (prog["bytes"], prog["total_bytes"]))
    src.call({"cmd": "cancel", "session": csid})
    ev = src.session_event(csid, mc.ENDS, 15)
    check(ev["event"] == "cancelled", "the slow session is cancelled: %s"
          % ev)
    ev = dst.session_event(crid, mc.ENDS, 40)
    check(ev["event"] == "error",
          "its receiver fails with a sentence: %s" % ev.get("message"))

    # rounds of dirty pages: bitmaps in a memfd, u64 words
    short, _ = memfd("short", 8)
    try:
        src.call({"cmd": "send-dirty", "session": sid, "regions": ["ram"]},
                 [short])
        bad("a bitmap of 8 bytes for %d pages was taken" % pages)
    except mc.DaemonError as e:
        check("has 8 bytes; expected at least %d" % ((pages + 63) // 64 * 8)
              in str(e), "a bitmap too short is refused: %s" % e)
    os.close(short)
    bfd, bm = memfd("bitmap", (pages + 63) // 64 * 8)
    for k, step in enumerate((97, 13, 4099), start=1):
        n = 0
        for p in range(k, pages, step):
            sm[p * PAGE:p * PAGE + 16] = os.urandom(16)
            bm[p // 8] |= 1 << (p % 8)
            n += 1
        ans = src.call({"cmd": "send-dirty", "session": sid,
                        "regions": ["ram"]}, [bfd])
        check(ans["queued"] == n, "round %d: %d dirty pages queued" %
              (k, ans["queued"]))
        check(not any(bm[:]), "round %d: the bitmap's bits were cleared" % k)
        if k < 3:
            src.call({"cmd": "sync", "session": sid})
            r = src.session_event(sid, ("round",))
            check(r["round"] == k and r["dirty_pages"] == n,
                  "round %d: its figures: %d dirty pages, %.3f s"
                  % (k, r["dirty_pages"], r["seconds"]))
    os.close(bfd)
    src.call({"cmd": "finish", "session": sid}, timeout=120)
    r = src.session_event(sid, ("round",))
    check(r["round"] == 3 and r.get("final"), "the last round's figures")
    fin = src.session_event(sid, ("finished",))
    check(fin["rounds"] == 4 and fin["total_bytes"] == size,
          "the sender finished: %d bytes in %.2f s, %d rounds"
          % (fin["bytes"], fin["seconds"], fin["rounds"]))
    ev = dst.session_event(rid, mc.ENDS, 60)
    check(ev["event"] == "finished", "the receiver finished: %s" % ev)
    check(digest(sm) == digest(dm),
          "256 MiB identical after 4 rounds (sha256)")
    check(src.call({"cmd": "list"})["sessions"] == [],
          "ended sessions are gone from the list")

    # TLS with a key derived from the secret, both ends
    tls = {"tls": True, "secret": "ab" * 32}
    sid, rid, sm, dm = pair(src, dst, 16 << 20, tls, recv_opts=tls)
    src.call({"cmd": "finish", "session": sid})
    ev = dst.session_event(rid, mc.ENDS, 60)
    check(ev["event"] == "finished" and digest(sm) == digest(dm),
          "16 MiB over TLS (tls with a secret): identical")
    # a plaintext sender to a TLS receiver fails on both ends, saying so
    try:
        pair(src, dst, 4 << 20, recv_opts=tls)
        bad("a plaintext sender to a TLS receiver was taken")
    except mc.DaemonError as e:
        check("does not use TLS" in str(e),
              "a plaintext sender to a TLS receiver is refused: %s" % e)


def killed(srcpath, dstpath, srcpid, dstpid):
    srcpid, dstpid = int(srcpid), int(dstpid)
    base = {p: (nfds(p), ntasks(p)) for p in (srcpid, dstpid)}
    child = subprocess.Popen([sys.executable, __file__, sys.argv[1],
                              "victim", srcpath, dstpath],
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    check(line == "ready", "the victim client has three sessions running")
    busy = {p: (nfds(p), ntasks(p)) for p in (srcpid, dstpid)}
    check(all(busy[p][0] > base[p][0] for p in busy),
          "meanwhile the daemons hold its descriptors: %s, before %s"
          % (busy, base))
    child.kill()
    child.wait()
    for p, name in ((srcpid, "source"), (dstpid, "destination")):
        now = settle(p, *base[p])
        check(now == base[p], "%s daemon back to %d descriptors and %d "
              "threads after the kill (%d, %d)" % (name, *base[p], *now))
        check(memfd_maps(p) == [], "%s daemon maps no memfd any more"
              % name)
    # and it serves the next client
    src, dst = mc.Client(srcpath), mc.Client(dstpath)
    sid, rid, sm, dm = pair(src, dst, 4 << 20)
    src.call({"cmd": "finish", "session": sid})
    ev = dst.session_event(rid, mc.ENDS)
    check(ev["event"] == "finished" and digest(sm) == digest(dm),
          "after the kill the daemons move 4 MiB for a new client")


def victim(srcpath, dstpath):
    src, dst = mc.Client(srcpath), mc.Client(dstpath)
    pair(src, dst, 32 << 20, {"max_bandwidth": 2 << 20})
    fd, _ = memfd("idle", 1 << 20)
    src.start({"cmd": "recv", "uri": "tcp:127.0.0.1:0",
               "regions": [{"name": "idle"}]}, [fd])
    os.close(fd)
    print("ready", flush=True)
    time.sleep(600)


def errors(path, pid):
    pid = int(pid)
    c = mc.Client(path)
    before = nfds(pid)
    ro = os.memfd_create("ro")
    os.ftruncate(ro, 1 << 20)
    rofd = os.open("/proc/self/fd/%d" % ro, os.O_RDONLY)
    odd = os.memfd_create("odd")
    os.ftruncate(odd, 1000)
    mem = os.memfd_create("mem")
    os.ftruncate(mem, 1 << 20)
    rp, wp = os.pipe()
    reg = [{"name": "a"}]
    tcp = "tcp:127.0.0.1:1"
    fifo = "/tmp/multifd-test-fifo-%d" % os.getpid()
    os.mkfifo(fifo)
    cases = [
        (b"not json", [], "bad JSON at byte"),
        (b'{"cmd": "list"', [], "ends inside a value"),
        (b'{"cmd": "list"} {}', [], "text after the object"),
        (b"[1, 2]", [], "the message is a JSON array; expected an object"),
        (b'{"cmd": "list", "tag": "\xff\xfe"}', [], "bad JSON at byte"),
        (b' \n ', [], "an empty message (3 bytes of blanks)"),
        (b'{"cmd": "list", "tag": NaN}', [], "'NaN' is no JSON value"),
        (b'{"cmd": "list", "tag": [1e400]}', [], "is no JSON number"),
        (b'{"cmd": "list", "tag": 123456789012345678901234567890}', [],
         "'tag' holds an integer of 2^53 or more"),
        (b'{"cmd": "list", "tag": 01}', [], "bad JSON at byte"),
        (b'{"cmd": "list", "tag": 1,}', [], "bad JSON at byte"),
        (b'{"cmd": "list", "tag": 1.}', [], "'1.' is no JSON number"),
        (b'{"cmd": "list", "tag": [1.E5]}', [], "'1.E5' is no JSON number"),
        (b'{"cmd": "list", "tag": -01}', [], "'-01' is no JSON number"),
        (b'{"cmd": "list", "tag": "a\x01b"}', [],
         "a control character (0x01) inside a string"),
        (b'{"cmd": "list", "tag": "' + b"x" * 5000 + b'"}', [],
         "'tag' is 5002 bytes as JSON; expected at most 4096"),
        ({"tag": 7}, [], "missing field 'cmd'"),
        ({"cmd": 5}, [], "field 'cmd' is 5; expected 'send'"),
        ({"cmd": "frobnicate"}, [], "unknown command 'frobnicate'"),
        ({"cmd": "postcopy"}, [], "postcopy is not supported yet"),
        ({"cmd": "send", "regions": reg}, [mem], "missing field 'uri'"),
        ({"cmd": "send", "uri": tcp}, [mem], "missing field 'regions'"),
        ({"cmd": "send", "uri": tcp, "regions": reg + [{"name": "b"}]},
         [mem], "carries 1 file descriptor for 2 regions"),
        ({"cmd": "send", "uri": tcp, "regions": reg}, [],
         "carries 0 file descriptors for 1 region"),
        ({"cmd": "send", "uri": tcp, "regions": reg}, [odd],
         "has 1000 bytes; expected a non-zero multiple of 4096"),
        ({"cmd": "send", "uri": tcp, "regions": reg}, [rp],
         "descriptor 0 is a FIFO; expected a memfd"),
        ({"cmd": "recv", "uri": tcp, "regions": reg}, [rofd],
         "expected read-write (O_RDWR)"),
        ({"cmd": "recv", "uri": tcp, "regions": reg + [{"name": "b"}]},
         [mem, mem], "descriptor 1 is the file of region 'a' (descriptor "
         "0) too"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "channels": "4"},
         [mem], "field 'channels' is a string; expected an integer from 1 "
         "to 64"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "channels": 100},
         [mem], "field 'channels' is 100; expected an integer from 1 to 64"),
        (b'{"cmd": "send", "uri": "%s", "regions": [{"name": "ram"}], '
         b'"channels": 99999999999999999999999}' % tcp.encode(), [mem],
         "field 'channels' is a number beyond 64 bits; expected an integer "
         "from 1 to 64"),
        (b'{"cmd": "cancel", "session": 18446744073709551616}', [],
         "field 'session' is a number beyond 64 bits"),
        ({"cmd": "send", "uri": tcp, "regions": []}, [mem],
         "field 'regions' is an empty array"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "chanels": 4}, [mem],
         "unknown field 'chanels' for 'send'"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "method": "lz4"},
         [mem], "field 'method' is \"lz4\""),
        ({"cmd": "send", "uri": tcp, "regions": [{"name": ""}]}, [mem],
         "region 0: name of 0 bytes"),
        ({"cmd": "send", "uri": tcp, "regions": [{"name": "ra\x00m"}]},
         [mem], "field 'name' holds a NUL byte (\\u0000) at byte 2"),
        ({"cmd": "send", "uri": tcp + "\x00x", "regions": reg}, [mem],
         "field 'uri'"),
        ({"cmd": "list\x00x"}, [], "field 'cmd'"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "tls": True}, [mem],
         "needs the secret"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "tls_cert": "/nonexistent"},
         [mem], "needs all of tls_cert, tls_key and tls_ca"),
        # a FIFO would block the connection's reader in OpenSSL's open()
        ({"cmd": "send", "uri": tcp, "regions": reg, "tls_cert": fifo,
          "tls_key": fifo, "tls_ca": fifo}, [mem],
         "tls_cert (--tls-cert) '%s' is a FIFO: expected a regular PEM file"
         % fifo),
        # what the daemon takes, without the fd: the library's own
        # sentence offers
        ({"cmd": "send", "uri": "bogus:1", "regions": reg}, [mem],
         "field 'uri' is \"bogus:1\"; expected tcp:HOST:PORT, unix:PATH or "
         "rdma:HOST:PORT"),
        ({"cmd": "send", "uri": tcp + ",fd:3", "regions": reg}, [mem],
         "fd: would name the daemon's own descriptors"),
        ({"cmd": "send", "uri": "fd:%d" % c.fileno(), "regions": reg},
         [mem], "fd: would name the daemon's own descriptors"),
        ({"cmd": "recv", "uri": "fd:0", "regions": reg}, [mem],
         "field 'uri' is \"fd:0\"; expected tcp:HOST:PORT"),
        ({"cmd": "send", "uri": tcp, "regions": reg, "secret": "abc"},
         [mem], "field 'secret' has 3 hex digits"),
        ({"cmd": "sync", "session": 99}, [], "no session 99"),
        ({"cmd": "sync"}, [], "missing field 'session'"),
        ({"cmd": "cancel", "session": 1}, [mem], "expects none"),
        ({"cmd": "list", "x": 1}, [], "unknown field 'x' for 'list'"),
        (b'\xef\xbb\xbf{"cmd": "list"}', [], "begins with a byte-order mark"),
        (b'{"cmd": "list", "tag": "\\ud800"}', [], "half of a UTF-16 surrogate pair"),
        (b'{"cmd": "list", "tag": "a\\udc00"}', [], "half of a UTF-16 surrogate pair"),
        (b'{"cmd": "list", "tag": "\\ud83d\\u0041"}', [], "half of a UTF-16 surrogate pair"),
        (b'{"cmd": "list", "pad": "' + b"x" * 70000 + b'"}', [],
         "over 65536 bytes"),
    ]
    for i, (msg, fds, want) in enumerate(cases):
        if isinstance(msg, dict):
            msg = dict(msg)
            msg.setdefault("tag", "t%d" % i)
            raw = json.dumps(msg).encode()
        else:
            raw = msg
        c.send_raw(raw, fds)
        ev = c.read_event(10)
        good = ev["event"] == "error" and want in ev.get("message", "")
        if good and isinstance(msg, dict) and "tag" in msg:
            good = ev.get("tag") == msg["tag"]
        check(good, "%s -> %s" % (raw[:70].decode(errors="replace"),
                                  ev.get("message", ev)))
    for fd in (ro, rofd, odd, mem, rp, wp):
        os.close(fd)
    os.unlink(fifo)
    c.send_raw(b'{"cmd": "list", "tag": null}', [])
    ev = c.read_event(10)
    check(ev.get("event") == "ok" and "tag" in ev and ev["tag"] is None,
          "a tag of null comes back as null: %s" % ev)
    # a surrogate pair is one character, which comes back as it was
    c.send_raw(b'{"cmd": "list", "tag": "x\\ud83d\\ude00y"}', [])
    ev = c.read_event(10)
    check(ev.get("event") == "ok" and ev.get("tag") == "x\U0001F600y",
          "a tag with a surrogate pair comes back as it was: %s" % ev)
    check(c.call({"cmd": "list"})["sessions"] == [],
          "the daemon still answers, with no session started")
    check(nfds(pid) == before,
          "no descriptor of a refused command is kept (%d, before %d)"
          % (nfds(pid), before))


def other_uid(path, expect):
    # run as another user: stdlib only, no client module (it may not be
    # readable for that user)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(path)
    ev = json.loads(s.recv(65536))
    if expect == "refused":
        check(ev["event"] == "error" and "uid %d is not allowed" %
              os.getuid() in ev["message"] and s.recv(65536) == b"",
              "uid %d refused: %s" % (os.getuid(), ev.get("message")))
    else:
        check(ev["event"] == "hello", "uid %d served with --allow-uid: %s"
              % (os.getuid(), ev))


def stopping(path):
    c = mc.Client(path)
    fd, _ = memfd("m", 1 << 20)
    sid, _ = c.start({"cmd": "recv", "uri": "tcp:127.0.0.1:0",
                      "regions": [{"name": "m"}]}, [fd])
    print("ready", flush=True)
    ev = c.session_event(sid, mc.ENDS, 20)
    check(ev["event"] == "cancelled" and "stopping" in ev["message"],
          "SIGTERM cancels the session: %s" % ev)
    try:
        while True:
            c.read_event(10)
    except EOFError:
        ok("then the daemon closes the connection")


def stale(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()  # the file stays, nobody listens


globals()[scenario](*args)
PY

# ---- the transfer, the cancel, the isolation ----
start_daemon src || report test-daemon.sh
src_pid=$dpid
start_daemon dst || report test-daemon.sh
dst_pid=$dpid
drive transfer "$dir/src.sock" "$dir/dst.sock"

# ---- a client killed mid-session ----
drive killed "$dir/src.sock" "$dir/dst.sock" $src_pid $dst_pid

# ---- bad commands ----
drive errors "$dir/src.sock" $src_pid
if kill -0 $src_pid 2>/dev/null; then
	ok "the daemon survived every bad command"
else
	bad "the daemon died of a bad command: $(tail -5 "$dir/src.err")"
fi

# ---- who may connect ----
mode=$(stat -c %a "$dir/src.sock")
[ "$mode" = 600 ] && ok "the socket file is mode 600 by default" ||
	bad "the socket file is mode $mode by default"
py3=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then
	echo "skip: the other-uid checks need root (to run a client as nobody)"
elif ! command -v runuser >/dev/null 2>&1 || [ ! -x $py3 ] ||
	! id nobody >/dev/null 2>&1 ||
	! timeout 10 runuser -u nobody -- $py3 -c '' >/dev/null 2>&1; then
	echo "skip: the other-uid checks need runuser, $py3 and user nobody"
	echo "  (and real root: fakeroot cannot change uids)"
else
	chmod 755 "$dir"
	cp "$dir/drive.py" "$dir/drive-nobody.py"
	chmod 644 "$dir/drive-nobody.py"
	nobody=$(id -u nobody)
	for allow in 4242 "$nobody"; do
		start_daemon "u$allow" --allow-uid $allow || continue
		expect=refused
		[ "$allow" = "$nobody" ] && expect=served
		out=$(timeout 30 runuser -u nobody -- $py3 "$dir/drive-nobody.py" \
			- other_uid "$dir/u$allow.sock" $expect 2>&1)
		echo "$out"
		pass=$((pass + $(grep -c '^ok:' <<<"$out")))
		fail=$((fail + $(grep -c '^FAIL:' <<<"$out")))
		grep -q '^ok:' <<<"$out" || bad "as nobody: $out"
		kill $dpid
		wait $dpid 2>/dev/null
	done
fi

# ---- the socket path: live, stale, not a socket ----
out=$(timeout 10 "$MULTIFD" daemon --control "unix:$dir/src.sock" 2>&1)
st=$?
if [ $st = 1 ] && grep -q "in use by a live daemon" <<<"$out" &&
	[ -S "$dir/src.sock" ]; then
	ok "a second daemon on a live socket is refused: $out"
else
	bad "a second daemon on a live socket: status $st: $out"
fi
python3 "$dir/drive.py" "$CLIENT" stale "$dir/stale.sock"
if start_daemon stale; then
	grep -q "replacing the stale socket" "$dir/stale.err" &&
		ok "a stale socket file is replaced" ||
		bad "stale socket: $(cat "$dir/stale.err")"
	kill $dpid
	wait $dpid
	st=$?
	[ $st = 0 ] && [ ! -e "$dir/stale.sock" ] &&
		ok "SIGTERM with no client: exit 0, the socket file removed" ||
		bad "SIGTERM with no client: status $st, $(ls "$dir")"
fi
touch "$dir/plain"
out=$(timeout 10 "$MULTIFD" daemon --control "unix:$dir/plain" 2>&1)
[ $? = 1 ] && grep -q "exists and is not a socket" <<<"$out" &&
	[ -f "$dir/plain" ] && ok "a file that is not a socket is left alone" ||
	bad "a plain file at the path: $out"

# ---- SIGTERM with a session running ----
timeout 60 python3 "$dir/drive.py" "$CLIENT" stopping "$dir/src.sock" \
	>"$dir/stop.out" 2>&1 &
cpid=$!
for _ in $(seq 100); do
	grep -q ready "$dir/stop.out" && break
	sleep 0.1
done
grep -q ready "$dir/stop.out" ||
	bad "the client of the SIGTERM check started no session"
kill -TERM $src_pid
SECONDS=0
wait $src_pid
st=$?
wait $cpid
cst=$?
cat "$dir/stop.out"
pass=$((pass + $(grep -c '^ok:' "$dir/stop.out")))
fail=$((fail + $(grep -c '^FAIL:' "$dir/stop.out")))
# a client that crashed or timed out printed no FAIL: line of its own
[ $cst = 0 ] && [ "$(grep -c '^ok:' "$dir/stop.out")" = 2 ] ||
	bad "the client of the SIGTERM check: status $cst, $(grep -c '^ok:' "$dir/stop.out") of 2 checks passed"
if [ $st = 0 ] && [ ! -e "$dir/src.sock" ] && [ $SECONDS -lt 10 ]; then
	ok "SIGTERM with a session: exit 0 in ${SECONDS}s, socket removed"
else
	bad "SIGTERM with a session: status $st after ${SECONDS}s: $(tail -3 "$dir/src.err")"
fi
kill -INT $dst_pid
wait $dst_pid
st=$?
[ $st = 0 ] && [ ! -e "$dir/dst.sock" ] && ok "SIGINT: exit 0" ||
	bad "SIGINT: status $st"
report test-daemon.sh
