#!/bin/bash
# test-live.sh - live precopy never fails because pages change: a writer
# dirties pages at a high rate while the sender sends them, with every
# method, with and without --checksum, on 1 and 4 channels; each run must
# end with the receiver's memory identical to the sender's and exit 0.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/report.sh"
methods="none"
"$MULTIFD" bench --help | grep -q zlib && methods="$methods zlib"
"$MULTIFD" bench --help | grep -q zstd && methods="$methods zstd"
for m in $methods; do
	for c in 1 4; do
		for sum in "" --checksum; do
			out=$(timeout 300 "$MULTIFD" bench --live -s 16M -m "$m" \
				-c "$c" $sum --dirty-rate 4000 --no-ceiling 2>&1)
			st=$?
			if [ $st = 0 ] && grep -q "verified: identical" <<<"$out"; then
				pass=$((pass + 1))
				echo "ok: live, $m, $c channels ${sum:-no checksum}"
			else
				fail=$((fail + 1))
				echo "FAIL: live, $m, $c channels ${sum:-no checksum} -> $st: $out"
			fi
		done
	done
done
# zero-copy: the kernel reads the pages after sendmsg() returns
for sum in "" --checksum; do
	out=$(timeout 300 "$MULTIFD" bench --live -s 16M -m none -c 4 --zero-copy \
		$sum --dirty-rate 4000 --no-ceiling 2>&1)
	st=$?
	if [ $st = 0 ] && grep -q "verified: identical" <<<"$out"; then
		pass=$((pass + 1))
		echo "ok: live, zero-copy ${sum:-no checksum}"
	else
		fail=$((fail + 1))
		echo "FAIL: live, zero-copy ${sum:-no checksum} -> $st: $out"
	fi
done
report test-live
