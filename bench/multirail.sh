#!/bin/bash
# SPDX-License-Identifier: MIT
#
# multirail.sh - one session over two links, and what losing one costs.
# Two network namespaces joined by two veth pairs, each rate-limited on
# the sender's side with tbf (RATE, default 200mbit); `multifd send -c 4`
# of a SIZE file (default 96M) over
#   link A alone, link B alone, both (channels spread over the two
#   endpoints), and both with link B set down DOWN_AT seconds in
#   (--min-channels 1, --timeout TIMEOUT).
# Prints each rate, the two-link rate over the sum of the single ones
# (goal >= 0.9), and, after the fault, the rate from one timeout after
# the link went down to the end over link A's alone (goal >= 0.8), from
# --stats-interval lines. Figures, not assertions; needs root, ip, tc.
#   bench/multirail.sh [RATE] [SIZE]      (make bench-multirail)
set -u
MULTIFD=${MULTIFD:-./multifd}
RATE=${1:-200mbit}
SIZE=${2:-96M}
TIMEOUT=2
DOWN_AT=1.5
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "multirail.sh: needs root" >&2; exit 77; }
nr=mfd-mr-r-$$
ns=mfd-mr-s-$$
dir=$(mktemp -d)
cleanup() {
	local j=$(jobs -p)
	[ -z "$j" ] || kill -9 $j 2>/dev/null
	wait 2>/dev/null
	ip netns del "$nr" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
inr() { ip netns exec "$nr" "$@"; }
ins() { ip netns exec "$ns" "$@"; }
ip netns add "$nr" && ip netns add "$ns" || exit 1
for l in 0 1; do
	inr ip link add mfdr$l type veth peer name mfds$l netns "$ns" || exit 1
	inr ip addr add 10.8$l.0.1/24 dev mfdr$l
	ins ip addr add 10.8$l.0.2/24 dev mfds$l
	inr ip link set mfdr$l up
	ins ip link set mfds$l up
	ins tc qdisc add dev mfds$l root tbf rate "$RATE" burst 256k \
		latency 100ms || { echo "multirail.sh: no tbf" >&2; exit 77; }
done
inr ip link set lo up
head -c "$(numfmt --from=iec "$SIZE")" /dev/urandom >"$dir/src"

# run NAME RURI [FAULT]: one transfer; its rate in MB/s on stdout, the
# sender's --stats-interval lines in $dir/NAME.stats
run() {
	local name=$1 ruri=$2 fault=${3:-} uri rp sp
	rm -f "$dir/dst" "$dir/recv.err"
	ip netns exec "$nr" "$MULTIFD" recv --timeout $TIMEOUT "$ruri" \
		"$dir/dst" >/dev/null 2>"$dir/recv.err" &
	rp=$!
	for _ in $(seq 100); do
		uri=$(sed -n 's/^multifd: listening on //p' "$dir/recv.err")
		[ -n "$uri" ] && break
		sleep 0.1
	done
	ip netns exec "$ns" "$MULTIFD" send -c 4 --timeout $TIMEOUT \
		--min-channels 1 --stats-interval 0.25 --json "$uri" "$dir/src" \
		>"$dir/$name.stats" 2>"$dir/$name.err" &
	sp=$!
	if [ -n "$fault" ]; then
		sleep $DOWN_AT
		ins ip link set mfds1 down
	fi
	wait $sp || echo "multirail.sh: $name: $(cat "$dir/$name.err")" >&2
	wait $rp
	[ -n "$fault" ] && ins ip link set mfds1 up
	cmp -s "$dir/src" "$dir/dst" ||
		echo "multirail.sh: $name: the file differs" >&2
	tail -n 1 "$dir/$name.stats" >"$dir/$name.json"
	awk -v b="$(num "$dir/$name.json" bytes)" \
		-v s="$(num "$dir/$name.json" seconds)" \
		'BEGIN { printf "%.1f\n", b / s / 1e6 }'
}

# after_fault NAME: MB/s from DOWN_AT + TIMEOUT seconds to the end
after_fault() {
	awk -v from="$DOWN_AT" -v t="$TIMEOUT" '
		{ b = $0; sub(/.*"totals":\{"bytes":/, "", b); sub(/,.*/, "", b)
		  s = $0; sub(/.*"totals":\{[^}]*"seconds":/, "", s)
		  sub(/[,}].*/, "", s)
		  if (s + 0 >= from + t && !b0) { b0 = b; s0 = s }
		  b1 = b; s1 = s }
		END { if (s1 > s0) printf "%.1f\n", (b1 - b0) / (s1 - s0) / 1e6
		      else print "-" }' "$dir/$1.stats"
}

[ -n "${KEEP:-}" ] && trap - EXIT && echo "kept: $dir"
a=$(run a tcp:10.80.0.1:0)
b=$(run b tcp:10.81.0.1:0)
both=$(run both tcp:10.80.0.1:0,tcp:10.81.0.1:0)
run fault tcp:10.80.0.1:0,tcp:10.81.0.1:0 fault >/dev/null
after=$(after_fault fault)
echo "multirail.sh: $SIZE, 4 channels, each link $RATE (tbf on the sender's side)"
echo "MB/s: link A $a, link B $b, both $both; link B down at ${DOWN_AT}s" \
	"(--timeout ${TIMEOUT}s), from one timeout later to the end: $after"
awk -v a="$a" -v b="$b" -v both="$both" -v after="$after" 'BEGIN {
	printf "both / (A + B): %.2f (goal >= 0.9)\n", both / (a + b)
	if (after != "-")
		printf "after the fault / A: %.2f (goal >= 0.8)\n", after / a }'
