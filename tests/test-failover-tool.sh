#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test-failover-tool.sh - `multifd send --min-channels` over tcp loopback,
# with connections killed under it by the kernel (`ss -K`, a reset as a
# broken link or a firewall gives): one channel of four killed mid-transfer
# is retired, the file arrives identical and the JSON report counts it;
# every channel killed fails both ends within the timeout, naming each
# channel's fate; without --min-channels one killed channel fails both;
# bench --live (pages changing) with one killed ends identical.
# Exits 77 (skip) where the kernel cannot kill sockets (no INET_DIAG).
set -u
MULTIFD=${MULTIFD:-./multifd}
dir=$(mktemp -d)
cleanup() {
	local j=$(jobs -p)
	[ -z "$j" ] || kill -9 $j 2>/dev/null
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
. "$(dirname "$0")/lib/report.sh"
. "$(dirname "$0")/lib/listening.sh"

command -v ss >/dev/null || { echo "SKIP: no ss (iproute2)"; exit 77; }
head -c $((48 << 20)) /dev/urandom >"$dir/src"

# kill_conns PORT N: kill N of the sender's connections to PORT (all: 0)
kill_conns() {
	local ports p n=0
	ports=$(ss -Htn state established "( dport = :$1 )" |
		awk '{ split($3, a, ":"); print a[length(a)] }')
	for p in $ports; do
		ss -K -tn "( dport = :$1 and sport = :$p )" >/dev/null 2>&1
		n=$((n + 1))
		[ "$2" != 0 ] && [ $n -ge "$2" ] && break
	done
	echo $n
}

# run KILL ARGS...: a 48 MiB file at 24 MiB/s on 4 channels; 0.8 s in, kill
# KILL connections (0: all); sets rs, ss_ (exit statuses), secs, killed
run() {
	local want=$1 uri port rp sp
	shift
	rm -f "$dir/dst" "$dir/recv.err" "$dir/send.err" "$dir/send.json"
	"$MULTIFD" recv --timeout 3 tcp:127.0.0.1:0 "$dir/dst" \
		2>"$dir/recv.err" &
	rp=$!
	uri=$(wait_listening "$dir/recv.err") || { bad "no listener"; return; }
	port=${uri##*:}
	SECONDS=0
	"$MULTIFD" send -c 4 --timeout 3 --max-bandwidth 24M --json "$@" \
		"$uri" "$dir/src" >"$dir/send.json" 2>"$dir/send.err" &
	sp=$!
	sleep 0.8
	killed=$(kill_conns "$port" "$want")
	wait $sp
	ss_=$?
	wait $rp
	rs=$?
	secs=$SECONDS
}

if ! ss -K -tn "( dport = :1 )" >/dev/null 2>&1; then
	echo "SKIP: this kernel cannot kill sockets (ss -K)"
	exit 77
fi

run 1 --min-channels 1
if [ "$ss_" = 0 ] && [ "$rs" = 0 ] && [ "$killed" = 1 ] &&
	cmp -s "$dir/src" "$dir/dst" &&
	grep -q '"totals":{[^}]*"channels_lost":1,"resent_pages":[1-9]' \
		"$dir/send.json"; then
	ok "one of 4 channels killed: identical, $(grep -o '"resent_bytes":[0-9]*' "$dir/send.json" | head -1) in ${secs} s"
else
	bad "one killed: send $ss_ recv $rs killed $killed: $(cat "$dir/send.err" "$dir/recv.err"; head -c 600 "$dir/send.json")"
fi

run 0 --min-channels 1
if [ "$ss_" != 0 ] && [ "$rs" != 0 ] && [ "$secs" -le 12 ] &&
	grep -q "every channel was lost: channel 0: " \
		"$dir/send.err" && grep -q "channel 3: " "$dir/recv.err" &&
	[ ! -e "$dir/dst" ]; then
	ok "every channel killed: both fail in ${secs} s: $(tail -1 "$dir/send.err")"
else
	bad "all killed: send $ss_ recv $rs after ${secs} s: $(cat "$dir/send.err" "$dir/recv.err")"
fi

run 1
if [ "$ss_" != 0 ] && [ "$rs" != 0 ] && [ ! -e "$dir/dst" ] &&
	[ "$killed" = 1 ] && grep -q "send: channel [0-3]: " "$dir/send.err"; then
	ok "without --min-channels one killed channel fails both: $(tail -1 "$dir/send.err")"
else
	bad "without failover: send $ss_ recv $rs: $(cat "$dir/send.err" "$dir/recv.err")"
fi

# bench --live: precopy rounds while a writer dirties pages, one of its
# four connections killed mid-way; the receiver's memory must end equal
# to the sender's (bench compares them and fails otherwise)
"$MULTIFD" bench --live -s 48M -c 4 --min-channels 1 --max-bandwidth 32M \
	--timeout 3 --json >"$dir/bench.json" 2>"$dir/bench.err" &
bp=$!
lport=
for _ in $(seq 50); do
	lport=$(ss -Htlnp | grep "pid=$bp," | awk '{ n = split($4, a, ":"); print a[n] }' | head -1)
	[ -n "$lport" ] && break
	sleep 0.1
done
sleep 1
killed=$([ -n "$lport" ] && kill_conns "$lport" 1)
wait $bp
st=$?
if [ $st = 0 ] && [ "$killed" = 1 ] &&
	grep -q '"channels_lost":1' "$dir/bench.json"; then
	ok "bench --live with a connection killed: identical, $(grep -o '"resent_pages":[0-9]*' "$dir/bench.json" | head -1)"
else
	bad "bench --live: exit $st, killed '$killed': $(cat "$dir/bench.err"; head -c 400 "$dir/bench.json")"
fi

out=$("$MULTIFD" send -c 2 --min-channels 3 tcp:127.0.0.1:1 "$dir/src" 2>&1)
st=$?
if [ $st != 0 ] && echo "$out" | grep -q "min_channels (--min-channels) 3 is more than the 2 channels"; then
	ok "--min-channels above -c: $out"
else
	bad "--min-channels above -c: exit $st: $out"
fi
report test-failover-tool.sh
