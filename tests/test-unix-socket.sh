#!/bin/bash
# test-unix-socket.sh - a unix: receiver owns its socket file: a second
# receiver on the same path is refused at once and the first still gets
# the transfer; a path that is not a socket is left alone; a socket file
# nobody answers on is taken over; a receiver removes the file when it
# ends (SIGINT and SIGTERM included), but only while it is still its own.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/listening.sh"
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"


sock=$dir/sock
head -c $((1 << 20)) /dev/urandom >"$dir/src"

# start_recv NAME URI FILE [ARGS...]: a receiver in the background, its
# pid in $rpid, its stderr in $dir/NAME.err; fails when it does not say
# that it listens. It runs without `timeout`, so that a signal reaches
# it alone and once; its own --timeout bounds it.
start_recv() {
	local name=$1 uri=$2 file=$3
	shift 3
	rm -f "$dir/$name.err" # an old log would give wait_listening its URI
	"$MULTIFD" recv "$@" "$uri" "$file" >/dev/null 2>"$dir/$name.err" &
	rpid=$!
	if ! wait_listening "$dir/$name.err" >/dev/null; then
		bad "$name did not start: $(cat "$dir/$name.err")"
		return 1
	fi
}

# send_ok WHAT URI: one transfer of $dir/src to URI succeeds
send_ok() {
	if timeout 60 "$MULTIFD" send -q "$2" "$dir/src" 2>"$dir/send.err"; then
		ok "$1: the sender succeeds"
	else
		bad "$1: the sender failed: $(cat "$dir/send.err")"
	fi
}

# (a) a second receiver while a first listens: refused at once, and the
# first keeps its socket and receives
if start_recv first "unix:$sock" "$dir/dst" --timeout 20; then
	r1=$rpid
	t0=$(date +%s%N)
	out=$(timeout 10 "$MULTIFD" recv --timeout 20 "unix:$sock" \
		"$dir/dst2" 2>&1)
	st=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$st" = 1 ] && [ "$ms" -lt 3000 ] &&
		grep -q "another receiver is listening on unix:$sock" <<<"$out"; then
		ok "a second receiver is refused in $ms ms"
	else
		bad "a second receiver: exit $st after $ms ms: $out"
	fi
	if [ -S "$sock" ]; then
		ok "the first receiver's socket file is still there"
	else
		bad "the second receiver removed the first one's socket file"
	fi
	send_ok "the first receiver after the refusal" "unix:$sock"
	wait "$r1"
	st=$?
	if [ "$st" = 0 ] && cmp -s "$dir/src" "$dir/dst"; then
		ok "the first receiver got the transfer"
	else
		bad "the first receiver: exit $st: $(cat "$dir/first.err")"
	fi
	if [ ! -e "$sock" ]; then
		ok "the socket file is gone after a normal exit"
	else
		bad "the socket file is left after a normal exit"
	fi
fi

# a live socket of another kind (a daemon's SOCK_SEQPACKET one): named
# as such, and left alone
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); s.listen(1); print("up", flush=True); time.sleep(20)' \
	"$dir/seq" >"$dir/seq.up" &
seq=$!
for _ in $(seq 50); do [ -s "$dir/seq.up" ] && break; sleep 0.1; done
out=$(timeout 10 "$MULTIFD" recv --timeout 5 "unix:$dir/seq" "$dir/dst4" 2>&1)
st=$?
if [ "$st" = 1 ] && [ -S "$dir/seq" ] &&
	grep -q "a live socket of another kind" <<<"$out"; then
	ok "a live socket of another kind is named and kept"
else
	bad "a SOCK_SEQPACKET socket at the path: exit $st: $out"
fi
kill $seq
wait $seq 2>/dev/null

# (b) a regular file at the path: named, and untouched
printf 'not a socket, and precious\n' >"$dir/file"
cp "$dir/file" "$dir/file.orig"
out=$(timeout 10 "$MULTIFD" recv --timeout 5 "unix:$dir/file" "$dir/dst3" 2>&1)
st=$?
if [ "$st" = 1 ] &&
	grep -qF "'$dir/file' exists and is not a socket" <<<"$out"; then
	ok "a regular file at the path is named as such"
else
	bad "a regular file at the path: exit $st: $out"
fi
if [ -f "$dir/file" ] && cmp -s "$dir/file" "$dir/file.orig"; then
	ok "the regular file is untouched"
else
	bad "the regular file was changed or removed"
fi

# (c) a socket file that nobody listens on (a receiver killed with -9)
# is stale: the next receiver takes the path
rm -f "$sock"
if start_recv killed "unix:$sock" "$dir/dst" --timeout 20; then
	kill -9 "$rpid"
	wait "$rpid" 2>/dev/null
	if [ -S "$sock" ] && start_recv stale "unix:$sock" "$dir/dst" \
		--timeout 20; then
		r1=$rpid
		send_ok "a receiver on a stale socket file" "unix:$sock"
		if wait "$r1" && cmp -s "$dir/src" "$dir/dst"; then
			ok "a stale socket file is taken over"
		else
			bad "a stale socket file: $(cat "$dir/stale.err")"
		fi
	elif [ ! -S "$sock" ]; then
		bad "kill -9 left no socket file to test with"
	fi
fi

# (d) a receiver whose path was taken over by another (its file removed
# by hand, a new receiver bound there) leaves the other's file alone
# when it ends
rm -f "$sock"
if start_recv old "unix:$sock" "$dir/dst4" --timeout 3; then
	r1=$rpid
	rm -f "$sock"
	if start_recv new "unix:$sock" "$dir/dst" --timeout 20; then
		r2=$rpid
		wait "$r1" # times out waiting for a sender
		if [ -S "$sock" ]; then
			ok "a receiver that ends leaves another's socket file"
		else
			bad "a receiver that ended removed another's socket file"
		fi
		send_ok "the receiver that took the path over" "unix:$sock"
		if wait "$r2" && cmp -s "$dir/src" "$dir/dst"; then
			ok "the receiver that took the path over got the transfer"
		else
			bad "the new receiver: $(cat "$dir/new.err")"
		fi
	fi
fi

# (e) SIGINT and SIGTERM: the receiver ends and its socket file goes
for sig in INT TERM; do
	rm -f "$sock"
	if start_recv "sig$sig" "unix:$sock" "$dir/dst" --timeout 20; then
		kill -"$sig" "$rpid"
		wait "$rpid"
		st=$?
		if [ ! -e "$sock" ]; then
			ok "SIG$sig: the socket file is gone (exit $st)"
		else
			bad "SIG$sig: the socket file is left (exit $st)"
		fi
	fi
done

# a destination written by someone else during an --inplace transfer
# with --verify: the receiver says that its region differs, not the
# broken pipe of a sender that, told on one channel, closed the others
head -c $((8 << 20)) /dev/urandom >"$dir/v.src"
head -c $((8 << 20)) /dev/zero >"$dir/v.dst"
rm -f "$sock"
if start_recv verify "unix:$sock" "$dir/v.dst" --inplace --timeout 10; then
	timeout 60 "$MULTIFD" send -q --verify -c 4 --max-bandwidth 8M \
		"unix:$sock" "$dir/v.src" 2>"$dir/send.err" &
	spid=$!
	sleep 0.5
	dd if=/dev/urandom of="$dir/v.dst" bs=4096 seek=10 count=1 \
		conv=notrunc status=none
	wait $spid
	s=$?
	wait $rpid
	r=$?
	if [ $s = 1 ] && [ $r = 1 ] &&
		grep -q "recv: region 'v.src' differs from the sender's" "$dir/verify.err" &&
		! grep -q "Broken pipe" "$dir/verify.err"; then
		ok "--verify over unix: the receiver names the region that differs"
	else
		bad "--verify over unix: exit $s/$r: $(cat "$dir/verify.err" "$dir/send.err")"
	fi
fi

report test-unix-socket
