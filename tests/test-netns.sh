#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test-netns.sh - the multifd command over a network that misbehaves: the
# receiver and the sender each in a network namespace of their own, joined
# by a veth pair, so that a link can lose packets, delay them, or go dark
# without touching the host's network. Checks that
#   (a) 1 % loss and 10 ms delay (netem) still deliver the file intact,
#   (b) a sender killed mid-transfer fails the receiver within --timeout,
#       naming the channel, and (c) the same the other way round,
#   (d) a link that goes dark (netem loss 100 %, or a stopped peer where
#       there is no netem) ends in a timeout error, never a hang,
#   (e) with two links and the channels spread over both endpoints, one
#       link set down mid-transfer: --min-channels retires its channels
#       and the file arrives identical over the other; (f) both set down:
#       both ends fail within the timeout, naming each channel.
# Exits 77 (skip) when namespaces or veth cannot be made; the netem parts
# alone are skipped, with a message, when the kernel has no sch_netem
# (make check-netem runs this script in a guest whose kernel has it).
set -u
MULTIFD=${MULTIFD:-./multifd}
TIMEOUT=3 # the tool's --timeout in seconds
# a few seconds of slack over TIMEOUT for scheduling on a slow machine
LIMIT=$((TIMEOUT * 3 + 5))
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v nsenter >/dev/null || skip "no nsenter (util-linux)"
nr=mfd-r-$$
ns=mfd-s-$$
dir=$(mktemp -d)
cleanup() {
	local j=$(jobs -p)
	[ -z "$j" ] || { kill -CONT $j; kill -9 $j; } 2>/dev/null
	wait 2>/dev/null
	ip netns del "$nr" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
out=$( (ip netns add "$nr" && ip netns add "$ns") 2>&1) ||
	skip "cannot create network namespaces: $out"
inr() { ip netns exec "$nr" "$@"; }
ins() { ip netns exec "$ns" "$@"; }
# The tool is started as a simple command under nsenter, which execs it in
# place, so that $! is the tool's own PID for the cases that signal it (a
# shell function in the background would be a subshell).
# the names live inside the namespaces, so runs side by side do not clash
inr ip link add mfdv0 type veth peer name mfdv1 netns "$ns" 2>/dev/null ||
	skip "cannot create a veth pair"
inr ip addr add 10.78.0.1/24 dev mfdv0
ins ip addr add 10.78.0.2/24 dev mfdv1
inr ip link set lo up
ins ip link set lo up
inr ip link set mfdv0 up
ins ip link set mfdv1 up

netem=yes
if ! command -v tc >/dev/null; then
	netem="no tc (iproute2)"
elif ! out=$(inr tc qdisc add dev mfdv0 root netem delay 1ms 2>&1); then
	netem="no netem in this kernel ($out)"
else
	inr tc qdisc del dev mfdv0 root
fi

# 32 MiB of random, zero and text pages
{
	head -c $((16 << 20)) /dev/urandom
	head -c $((8 << 20)) /dev/zero
	yes "multifd over a lossy link" | head -c $((8 << 20))
} >"$dir/src"

# Kill PID after 60 s: a hang fails its case instead of the whole run (no
# timeout(1) around the tool, for the same reason as nsenter).
watchdog() {
	(sleep 60; kill -9 "$1") >/dev/null 2>&1 &
}

# start_recv ARGS...: multifd recv in its namespace, on RURI, into
# $dir/dst; sets rpid and uri (where the receiver listens)
RURI=tcp:10.78.0.1:0
start_recv() {
	rm -f "$dir/dst" "$dir/recv.err"
	nsenter --net=/var/run/netns/"$nr" -- "$MULTIFD" recv --timeout $TIMEOUT "$@" \
		"$RURI" "$dir/dst" 2>"$dir/recv.err" &
	rpid=$!
	watchdog $rpid
	uri=
	for _ in $(seq 100); do
		uri=$(sed -n 's/^multifd: listening on //p' "$dir/recv.err")
		[ -n "$uri" ] && return 0
		sleep 0.1
	done
	bad "the receiver did not start: $(cat "$dir/recv.err")"
	return 1
}

# start_send ARGS...: multifd send of $dir/src from its namespace; spid
start_send() {
	rm -f "$dir/send.err"
	nsenter --net=/var/run/netns/"$ns" -- "$MULTIFD" send \
		--timeout $TIMEOUT "$@" "$uri" "$dir/src" >"$dir/send.out" \
		2>"$dir/send.err" &
	spid=$!
	watchdog $spid
}

# reap PID NAME: wait for it; its exit status in st, seconds in took
reap() {
	local t0=$SECONDS
	wait "$1"
	st=$?
	took=$((SECONDS - t0))
}

# failed_in_time NAME ERRFILE WORD: status non-zero, within LIMIT
# seconds, and WORD in what it printed
failed_in_time() {
	local name=$1 file=$2 word=$3
	if [ "$st" != 0 ] && [ "$st" != 137 ] && [ "$took" -le $LIMIT ] &&
		grep -q -- "$word" "$file"; then
		ok "$name (exit $st after ${took}s: $(grep -m1 -- "$word" "$file"))"
	else
		bad "$name: exit $st after ${took}s, wanted non-zero within" \
			"${LIMIT}s naming '$word': $(tail -n 3 "$file")"
	fi
}

# (a) a lossy, slow link still delivers every page
if [ "$netem" = yes ]; then
	inr tc qdisc add dev mfdv0 root netem loss 1% delay 10ms
	ins tc qdisc add dev mfdv1 root netem loss 1% delay 10ms
	if start_recv; then
		start_send -c 4 -m zstd
		reap $spid
		sst=$st
		reap $rpid
		if [ $sst = 0 ] && [ $st = 0 ] && cmp -s "$dir/src" "$dir/dst"
		then
			ok "1% loss, 10 ms delay: the file arrived intact"
		else
			bad "1% loss, 10 ms delay: send $sst, recv $st:" \
				"$(tail -n 3 "$dir/send.err" "$dir/recv.err")"
		fi
	fi
	inr tc qdisc del dev mfdv0 root
	ins tc qdisc del dev mfdv1 root
else
	echo "skip: 1% loss with 10 ms delay: $netem"
fi

# The other cases need a transfer that lasts: 32 MiB at 4 MiB/s.
SLOW="-c 4 --max-bandwidth 4M"

# (b) the sender dies: the receiver fails, naming a channel
if start_recv; then
	start_send $SLOW
	sleep 1
	kill -9 $spid
	reap $rpid
	failed_in_time "sender killed: the receiver fails" "$dir/recv.err" \
		"channel [0-9]"
	wait $spid 2>/dev/null
fi

# (c) the receiver dies: the sender fails, naming a channel
if start_recv; then
	start_send $SLOW
	sleep 1
	kill -9 $rpid
	reap $spid
	failed_in_time "receiver killed: the sender fails" "$dir/send.err" \
		"channel [0-9]"
	wait $rpid 2>/dev/null
fi

# (d) the link goes dark mid-transfer: both ends time out
if [ "$netem" = yes ]; then
	if start_recv; then
		start_send $SLOW
		sleep 1
		ins tc qdisc add dev mfdv1 root netem loss 100%
		inr tc qdisc add dev mfdv0 root netem loss 100%
		reap $rpid
		failed_in_time "link dark: the receiver times out" \
			"$dir/recv.err" "channel [0-9]"
		reap $spid
		failed_in_time "link dark: the sender times out" \
			"$dir/send.err" "channel [0-9]"
		inr tc qdisc del dev mfdv0 root
		ins tc qdisc del dev mfdv1 root
	fi
else
	echo "skip: link dark with netem loss 100%: $netem"
fi

# (d') where there is no netem: a sender that stops (SIGSTOP) is silent
# on every channel, which the receiver must tell from a slow one
if start_recv; then
	start_send $SLOW
	sleep 1
	kill -STOP $spid
	reap $rpid
	failed_in_time "sender stopped: the receiver times out" \
		"$dir/recv.err" "no data for"
	kill -9 $spid 2>/dev/null
	kill -CONT $spid 2>/dev/null
	wait $spid 2>/dev/null
fi

# (e) two links between the namespaces, the channels spread over both
# endpoints; one link goes down mid-transfer: with --min-channels its
# channels are retired (each end finds them silent within the timeout)
# and the file arrives whole over the other
if inr ip link add mfdw0 type veth peer name mfdw1 netns "$ns" 2>/dev/null
then
	inr ip addr add 10.79.0.1/24 dev mfdw0
	ins ip addr add 10.79.0.2/24 dev mfdw1
	inr ip link set mfdw0 up
	ins ip link set mfdw1 up
	RURI=tcp:10.78.0.1:0,tcp:10.79.0.1:0
	if start_recv; then
		t0=$SECONDS
		start_send $SLOW --min-channels 1 --json
		sleep 1
		ins ip link set mfdw1 down
		reap $spid
		sst=$st
		reap $rpid
		total=$((SECONDS - t0))
		if [ $sst = 0 ] && [ $st = 0 ] && cmp -s "$dir/src" "$dir/dst" &&
			grep -q '"totals":{[^}]*"channels_lost":2,' "$dir/send.out" &&
			grep -q '"per_endpoint":\[{"uri":"tcp:10.78.0.1:[0-9]*","channels":2,' "$dir/send.out" &&
			[ $total -le $((8 + 2 * TIMEOUT + 6)) ]; then
			ok "one of two links down: identical in ${total}s" \
				"(8 s at the rate without a fault, timeout" \
				"${TIMEOUT}s), $(grep -o '"resent_bytes":[0-9]*' "$dir/send.out" | head -1)"
		else
			bad "one of two links down: send $sst, recv $st after" \
				"${total}s: $(tail -n 3 "$dir/send.err" "$dir/recv.err"; head -c 400 "$dir/send.out")"
		fi
		ins ip link set mfdw1 up
	fi
	# (f) both links down: with failover too, a clean failure within
	# the timeout on both ends, naming each channel's fate
	if start_recv; then
		start_send $SLOW --min-channels 1
		sleep 1
		ins ip link set mfdv1 down
		ins ip link set mfdw1 down
		reap $spid
		failed_in_time "both links down: the sender fails" \
			"$dir/send.err" "every channel was lost\|channels left"
		reap $rpid
		failed_in_time "both links down: the receiver fails" \
			"$dir/recv.err" "every channel was lost"
		ins ip link set mfdv1 up
		ins ip link set mfdw1 up
	fi
	RURI=tcp:10.78.0.1:0
else
	echo "skip: a second veth pair could not be made"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
