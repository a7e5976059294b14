#!/bin/bash
# test-tool.sh - the multifd command as a user runs it: help and version,
# usage errors that name the bad value, real transfers of a file over tcp
# and unix sockets checked with cmp, JSON that parses, and bench.
set -u
MULTIFD=${MULTIFD:-./multifd}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect STATUS WORD CMD...: exit status STATUS and WORD in the output
expect() {
	local want=$1 word=$2 out st
	shift 2
	out=$(timeout 60 "$@" 2>&1)
	st=$?
	if [ "$st" = "$want" ] && grep -q -- "$word" <<<"$out"; then
		ok "$* -> $st"
	else
		bad "$* -> $st (wanted $want and '$word'): $out"
	fi
}

json_ok() {
	if python3 -m json.tool >/dev/null 2>&1 <<<"$1"; then
		ok "$2: JSON parses"
	else
		bad "$2: not JSON: $1"
	fi
}

expect 0 "Usage: multifd COMMAND" "$MULTIFD" --help
expect 0 "multifd 0" "$MULTIFD" --version
for c in send recv bench; do
	expect 0 "Usage: multifd $c" "$MULTIFD" "$c" --help
	expect 0 "libmultifd" "$MULTIFD" "$c" --version
done
expect 2 "unknown command 'frob'" "$MULTIFD" frob
expect 2 "bad channel count '0'" "$MULTIFD" send -c 0 tcp:127.0.0.1:1 /dev/null
expect 2 "bad channel count '65'" "$MULTIFD" send --channels 65 tcp:127.0.0.1:1 x
expect 2 "bad method 'lz4'" "$MULTIFD" send -m lz4 tcp:127.0.0.1:1 x
expect 2 "level 12 out of range" "$MULTIFD" send -m zlib -l 12 tcp:127.0.0.1:1 x
expect 2 "unknown URI 'http://x'" "$MULTIFD" send http://x x
expect 2 "bad port '99999'" "$MULTIFD" recv tcp:127.0.0.1:99999 x
expect 2 "zero-copy needs method none" "$MULTIFD" send --zero-copy -m zstd tcp:127.0.0.1:1 x
expect 2 "expected URI and FILE" "$MULTIFD" send tcp:127.0.0.1:1
expect 2 "bad size '12Q'" "$MULTIFD" bench --size 12Q
expect 2 "bad content 'pink'" "$MULTIFD" bench --content pink
expect 1 "cannot open '$dir/none'" "$MULTIFD" send tcp:127.0.0.1:1 "$dir/none"

head -c 1000 /dev/urandom >"$dir/odd"
expect 1 "multiple of the page size" "$MULTIFD" send tcp:127.0.0.1:1 "$dir/odd"
# nobody listens on port 1
head -c 8192 /dev/urandom >"$dir/two-pages"
expect 1 "cannot connect" "$MULTIFD" send --timeout 2 tcp:127.0.0.1:1 "$dir/two-pages"

# a file with random, zero and text pages
{
	head -c $((4 << 20)) /dev/urandom
	head -c $((2 << 20)) /dev/zero
	yes "multifd moves pages over many channels" | head -c $((2 << 20))
} >"$dir/src"

# transfer URI ARGS...: recv into $dir/dst, send $dir/src, compare
transfer() {
	local uri=$1 port_uri out
	shift
	rm -f "$dir/dst" "$dir/recv.err"
	timeout 60 "$MULTIFD" recv --json "$@" "$uri" "$dir/dst" \
		>"$dir/recv.json" 2>"$dir/recv.err" &
	local rpid=$!
	# the receiver says where it listens (port 0 becomes a real port)
	for _ in $(seq 100); do
		port_uri=$(sed -n 's/^multifd: listening on //p' "$dir/recv.err")
		[ -n "$port_uri" ] && break
		sleep 0.1
	done
	if [ -z "$port_uri" ]; then
		bad "receiver on $uri did not start: $(cat "$dir/recv.err")"
		return
	fi
	out=$(timeout 60 "$MULTIFD" send --json "$@" "$port_uri" "$dir/src" 2>&1)
	local sst=$?
	wait $rpid
	local rst=$?
	if [ $sst = 0 ] && [ $rst = 0 ] && cmp -s "$dir/src" "$dir/dst"; then
		ok "transfer $uri $*"
	else
		bad "transfer $uri $* (send $sst, recv $rst): $out $(cat "$dir/recv.err")"
	fi
	json_ok "$out" "send --json"
	json_ok "$(cat "$dir/recv.json")" "recv --json"
}

transfer tcp:127.0.0.1:0
transfer tcp:127.0.0.1:0 -c 8 -m zstd
transfer tcp:[::1]:0 -c 3 -m zlib -l 6
transfer "unix:$dir/sock" -c 4
transfer tcp:127.0.0.1:0 -c 2 --zero-copy
transfer tcp:127.0.0.1:0 -c 1 --page-size 65536 --pages-per-packet 16

out=$(timeout 120 "$MULTIFD" bench --size 32M --channels 3 --rounds 3 --content mixed --json 2>&1)
json_ok "$out" "bench --json"
if grep -q '"ok":true' <<<"$out"; then ok "bench verified"; else bad "bench: $out"; fi
expect 0 "verified: identical" "$MULTIFD" bench -s 16M -c 2 -m zstd --content text -r 2
expect 0 "raw ceiling" "$MULTIFD" bench -s 16M -c 2

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
