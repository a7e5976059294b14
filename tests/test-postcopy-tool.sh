#!/bin/bash
# test-postcopy-tool.sh - multifd bench --postcopy: a precopy round, the
# switch, a guest on the receiver touching pages while the rest streams;
# the memory must match, and --json must carry the requests and the
# request latency percentiles.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/report.sh"
if [ "$(id -u)" != 0 ] &&
	[ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ]; then
	echo "SKIP: userfaultfd needs root or vm.unprivileged_userfaultfd = 1"
	exit 77
fi

# a slow stream (16 MiB/s for 32 MiB) leaves the guest time to fault
out=$(timeout 120 "$MULTIFD" bench --postcopy -s 64M --rewrite 60 \
	--max-bandwidth 16M --no-ceiling --json 2>&1)
st=$?
if [ $st = 0 ] && python3 -c '
import json, sys
j = json.loads(sys.argv[1])
p = j["postcopy"]
lat = p["postcopy_latency_us"]
assert j["ok"] is True, "not identical"
assert p["requests"] > 0, "no request"
assert p["demand_pages"] > 0 and p["stream_pages"] > 0, "no pages counted"
assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
for k in ("precopy_bytes_per_s", "stream_bytes_per_s", "total_seconds"):
	assert p[k] > 0, k
' "$out"; then
	ok "bench --postcopy --json: requests and latency percentiles"
else
	bad "bench --postcopy --json -> $st: $out"
fi

for args in "--postcopy-pattern sequential" "--uri unix:/tmp/mfd-pc-tool-$$.sock" \
	"-m zstd -c 3"; do
	if [[ $args == *zstd* ]] && ! "$MULTIFD" bench --help | grep -q zstd; then
		continue
	fi
	# a guest that met no missing page (the stream won every race: a
	# loaded machine) says nothing about requests: try again, twice
	for try in 1 2 3; do
		out=$(timeout 120 "$MULTIFD" bench --postcopy -s 32M \
			--rewrite 50 --no-ceiling $args 2>&1)
		st=$?
		[ $st = 0 ] && grep -q "request latency: no requests" \
			<<<"$out" || break
	done
	if [ $st = 0 ] && grep -q "verified: identical" <<<"$out" &&
		grep -q "request latency: p50" <<<"$out"; then
		ok "bench --postcopy $args"
	else
		bad "bench --postcopy $args -> $st: $out"
	fi
done

out=$("$MULTIFD" bench --postcopy --live -s 4M 2>&1)
st=$?
if [ $st = 2 ] && grep -q "neither --live nor --sweep" <<<"$out"; then
	ok "bench --postcopy --live is refused"
else
	bad "bench --postcopy --live -> $st: $out"
fi
out=$("$MULTIFD" bench --postcopy-pattern sequential -s 8M 2>&1)
st=$?
if [ $st = 2 ] && grep -q "postcopy-pattern means something only with --postcopy" <<<"$out"; then
	ok "--postcopy-pattern without --postcopy is refused"
else
	bad "bench --postcopy-pattern without --postcopy -> $st: $out"
fi
out=$("$MULTIFD" bench --postcopy --postcopy-pattern zigzag 2>&1)
st=$?
if [ $st = 2 ] && grep -q "multifd: bench: bad --postcopy-pattern 'zigzag': expected random or sequential" <<<"$out"; then
	ok "a bad --postcopy-pattern is refused"
else
	bad "bench --postcopy-pattern zigzag -> $st: $out"
fi
# not over TLS yet: refused at once, on the sender as on a receiver
key=$(mktemp)
printf 'a secret of the test, 32 bytes.\n' >"$key"
chmod 600 "$key"
out=$("$MULTIFD" bench --postcopy -s 4M --tls --secret-file "$key" 2>&1)
st=$?
rm -f "$key"
if [ $st = 2 ] && grep -q "postcopy does not run over TLS yet" <<<"$out"; then
	ok "bench --postcopy over TLS is refused: $out"
else
	bad "bench --postcopy --tls -> $st: $out"
fi
# pages smaller than the system's: refused at once, with a sentence
out=$("$MULTIFD" bench --postcopy -s 1M --page-size 2048 2>&1)
st=$?
if [ $st = 2 ] && grep -q "postcopy needs pages of at least the system's [0-9]* bytes; page_size is 2048" <<<"$out"; then
	ok "bench --postcopy with 2 KiB pages is refused: $out"
else
	bad "bench --postcopy --page-size 2048 -> $st: $out"
fi
report test-postcopy-tool
