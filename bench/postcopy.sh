#!/bin/bash
# SPDX-License-Identifier: MIT
#
# postcopy.sh - what postcopy gives: `multifd bench --postcopy` over TCP
# and over unix: (runs interleaved), and the medians of each: page-request
# latency p50 / p99 / max, and the stream after the switch as a ratio to
# the last precopy round on the same channels. With -r 2 (the default
# here) that round is a rewrite of the same share of pages as the
# postcopy dirty set, scattered alike, so the two move the same kind of
# work. The switch (the map sent, the pages dropped, the regions put
# under userfaultfd) is a pause of its own, reported apart: the stream's
# rate counts from the receiver's switch on.
#
#   bench/postcopy.sh [-s SIZE] [-c CHANNELS] [-n RUNS] [-w REWRITE%]
#                     [-p random|sequential]
#
# Ratios, never timed assertions: the machine's speed drifts.
set -u
MULTIFD=${MULTIFD:-./multifd}
size=1G
channels=2
runs=5
rewrite=50
pattern=random
while getopts "s:c:n:w:p:" o; do
	case $o in
	s) size=$OPTARG ;;
	c) channels=$OPTARG ;;
	n) runs=$OPTARG ;;
	w) rewrite=$OPTARG ;;
	p) pattern=$OPTARG ;;
	*) echo "usage: $0 [-s SIZE] [-c CHANNELS] [-n RUNS] [-w REWRITE%] [-p random|sequential]" >&2
	   exit 2 ;;
	esac
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# num FILE FIELD: the first number of "FIELD": in the --json object
. "$(dirname "$0")/lib.sh"
for i in $(seq "$runs"); do
	for t in tcp unix; do
		case $t in
		tcp) uri=tcp:127.0.0.1:0 ;;
		unix) uri=unix:$dir/sock ;;
		esac
		out=$dir/out.json
		if ! "$MULTIFD" bench --postcopy --postcopy-pattern "$pattern" \
			-s "$size" -c "$channels" -r 2 --rewrite "$rewrite" \
			--no-ceiling --uri "$uri" --json >"$out" 2>"$dir/err" ||
			! grep -q '"ok":true' "$out"; then
			echo "postcopy.sh: $t run $i failed: $(cat "$dir/err")" >&2
			exit 1
		fi
		for f in p50 p99 max stream_ratio switch_seconds; do
			num "$out" $f >>"$dir/$t.$f"
		done
	done
done
echo "postcopy.sh: $runs runs each, $size, $channels channels, $rewrite % rewritten, $pattern touches"
for t in tcp unix; do
	printf '%-5s request latency us: p50 %s, p99 %s, max %s; switch %s s; stream / precopy round %s\n' \
		"$t" "$(median <"$dir/$t.p50")" "$(median <"$dir/$t.p99")" \
		"$(median <"$dir/$t.max")" "$(median <"$dir/$t.switch_seconds")" \
		"$(median <"$dir/$t.stream_ratio")"
done
echo "goals: p50 <= 200 us, p99 <= 2000 us, stream >= 0.8 of precopy's"
