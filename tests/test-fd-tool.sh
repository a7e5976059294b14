#!/bin/bash
# test-fd-tool.sh - the tool over fd: channels: a parent (python3) opens
# socketpairs, hands one end of each to `multifd recv fd:...` and the
# other, listed backwards, to `multifd send fd:...`; the file arrives
# identical. A descriptor that is not a connected stream socket (on
# either end), and a -c that does not match the list, are refused at
# once with a sentence that says so.
set -u
MULTIFD=${MULTIFD:-./multifd}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"

head -c $((4 << 20)) /dev/urandom >"$dir/src"

head -c 32 /dev/urandom >"$dir/secret"
chmod 600 "$dir/secret"

# pair N ARGS...: prints "RECV-STATUS SEND-STATUS" after both ended; ARGS
# go to both ends, except -c N which goes to the sender only
pair() {
	python3 - "$MULTIFD" "$dir" "$@" <<'PY'
import socket, subprocess, sys
multifd, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = sys.argv[4:]
both = [a for a in extra if a != "-c" and not a.isdigit()]
pairs = [socket.socketpair() for _ in range(n)]
a = [p[0].fileno() for p in pairs]
b = [p[1].fileno() for p in pairs]
uri = lambda fds: "fd:" + ",".join(str(f) for f in fds)
with open(d + "/recv.err", "w") as re, open(d + "/send.err", "w") as se:
    r = subprocess.Popen([multifd, "recv", "--timeout", "10"] + both + [uri(a),
                          d + "/dst"], pass_fds=a, stderr=re,
                         stdout=subprocess.DEVNULL)
    s = subprocess.Popen([multifd, "send", "--timeout", "10"] + extra +
                         [uri(b[::-1]), d + "/src"], pass_fds=b, stderr=se,
                         stdout=subprocess.DEVNULL)
    for p in pairs:  # only the children hold them now
        p[0].close()
        p[1].close()
    print(r.wait(timeout=60), s.wait(timeout=60))
PY
}

for n in 1 4; do
	rm -f "$dir/dst"
	st=$(pair $n)
	if [ "$st" = "0 0" ] && cmp -s "$dir/src" "$dir/dst"; then
		ok "$n socketpair(s), listed backwards by the sender"
	else
		bad "$n socketpair(s): exit statuses $st: $(cat "$dir/recv.err" "$dir/send.err")"
	fi
done

# with a secret the sender proves channel 0 before it opens channel 1: the
# receiver must take the channels as they come, not in its list's order
for n in 2 4; do
	rm -f "$dir/dst"
	SECONDS=0
	st=$(pair $n --secret-file "$dir/secret")
	if [ "$st" = "0 0" ] && cmp -s "$dir/src" "$dir/dst" && [ $SECONDS -lt 4 ]; then
		ok "$n socketpairs with a secret, listed backwards, in ${SECONDS}s"
	else
		bad "$n socketpairs with a secret: statuses $st after ${SECONDS}s: $(cat "$dir/recv.err" "$dir/send.err")"
	fi
done

rm -f "$dir/dst"
st=$(pair 2 -c 3)
if [ "${st#* }" = 2 ] && grep -q "2 descriptors for 3 channels" "$dir/send.err"; then
	ok "-c 3 with two descriptors: usage error"
else
	bad "-c 3 with two descriptors: $st: $(cat "$dir/send.err")"
fi
[ -e "$dir/dst" ] && bad "a refused session left a file behind" ||
	ok "nothing received, nothing written"

out=$("$MULTIFD" send fd:0 "$dir/src" </dev/null 2>&1)
st=$?
if [ $st = 1 ] && [[ $out == *"descriptor 0 is a character device: expected a connected stream socket, one per channel"* ]]; then
	ok "fd:0 on /dev/null refused: $out"
else
	bad "fd:0 on /dev/null: status $st: $out"
fi

# bad KIND ROLE: multifd ROLE handed a descriptor that can carry no
# channel; prints "STATUS SECONDS STDERR". It must be refused at once,
# not after its --timeout (forever with --timeout 0), nor say it listens.
bad_fd() {
	python3 - "$MULTIFD" "$dir" "$1" "$2" <<'PY'
import os, socket, subprocess, sys, time
multifd, d, kind, role = sys.argv[1:5]
if kind == "listening":
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    fd = s.fileno()
elif kind == "datagram":
    s = socket.socket(type=socket.SOCK_DGRAM)
    fd = s.fileno()
elif kind == "file":
    fd = os.open(d + "/src", os.O_RDONLY)
else:  # closed: a number nothing holds (a low one the tool may reuse)
    fd = 250
    try:
        os.close(fd)
    except OSError:
        pass
if kind != "closed":
    os.set_inheritable(fd, True)
t0 = time.monotonic()
p = subprocess.run([multifd, role, "--timeout", "0", "fd:%d" % fd,
                    d + ("/dst" if role == "recv" else "/src")],
                   pass_fds=[] if kind == "closed" else [fd],
                   capture_output=True, text=True, timeout=20)
print(p.returncode, "%.0f" % (time.monotonic() - t0),
      p.stderr.strip().replace("\n", " | "))
PY
}
for role in recv send; do
	for kind in listening:"is a listening socket" \
		    datagram:"is a datagram socket" file:"is a regular file" \
		    closed:"is not open"; do
		want=${kind#*:}
		out=$(bad_fd "${kind%%:*}" $role 2>&1)
		# refused as it starts: seconds (a sanitizer's start), not
		# --timeout 0's forever; a closed one as the session is made
		# (its duplicate cannot be taken), a usage error
		st=1
		[ "${kind%%:*}" = closed ] && st=2
		if [[ $out =~ ^$st\ [0-4]\  ]] &&
			[[ $out == *"$want: expected a connected stream socket, one per channel"* ]] &&
			[[ $out != *"listening on"* ]]; then
			ok "$role: a ${kind%%:*} descriptor refused at once: $out"
		else
			bad "$role: a ${kind%%:*} descriptor: $out"
		fi
	done
done
report test-fd-tool.sh
