#!/bin/bash
# test-pypeer.sh - docs/protocol.md proved by an independent sender:
# tests/pypeer.py, written from the document alone, sends a file over
# several rounds (zero pages, pages re-sent with new content, raw packets)
# to `multifd recv`, which must end with exactly the image pypeer meant.
set -u
MULTIFD=${MULTIFD:-./multifd}
srcdir=$(dirname "$0")
PYPEER="$srcdir/pypeer.py"
. "$srcdir/lib/listening.sh"
command -v python3 >/dev/null 2>&1 || { echo "no python3: skip"; exit 77; }
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# 4 KiB pages, in groups of 4 (a packet each with --pages-per-packet 4):
# random (zlib cannot shrink them: RAW), zero (offsets only), text,
# one repeated byte (zstd RLE), and a mixed group.
for g in 1 2 3 4 5 6 7 8; do
	head -c 16384 /dev/urandom
	head -c 16384 /dev/zero
	yes "multifd moves pages over many channels $g" | head -c 16384
	head -c 16384 /dev/zero | tr '\0' 'A'
	head -c 4096 /dev/urandom
	head -c 4096 /dev/zero
	yes "mixed $g" | head -c 4096
	head -c 4096 /dev/zero | tr '\0' 'B'
done >"$dir/src"

# peer NAME URI PYPEER-ARGS...: recv into $dir/dst (with the options in
# recv_opts), send with pypeer, compare with the image pypeer says it meant
recv_opts=()
peer() {
	local name=$1 uri=$2 listen out st rst
	shift 2
	rm -f "$dir/dst" "$dir/final" "$dir/recv.err"
	timeout 120 "$MULTIFD" recv --timeout 20 \
		${recv_opts[@]+"${recv_opts[@]}"} "$uri" "$dir/dst" \
		2>"$dir/recv.err" &
	local rpid=$!
	if ! listen=$(wait_listening "$dir/recv.err"); then
		bad "$name: receiver did not start: $(cat "$dir/recv.err")"
		return
	fi
	out=$(timeout 120 python3 "$PYPEER" --timeout 30 --final "$dir/final" \
		"$@" "$listen" "$dir/src" 2>&1)
	st=$?
	wait $rpid
	rst=$?
	if [ $st = 77 ]; then
		echo "skip: $name: $out"
		return
	fi
	if [ $st = 0 ] && [ $rst = 0 ] && cmp "$dir/final" "$dir/dst"; then
		ok "$name: $out"
	else
		bad "$name (pypeer $st, recv $rst): $out $(cat "$dir/recv.err")"
		return
	fi
	# the packets this test is about were really sent (64 KiB pages of
	# this file all compress, so only 4 KiB ones must show raw packets)
	case "$*" in
	*--page-size*) ;;
	*zlib*)
		grep -q '[1-9][0-9]* compressed, [1-9][0-9]* raw' <<<"$out" ||
			bad "$name: wanted compressed and raw packets: $out" ;;
	esac
	grep -q '[1-9][0-9]* zero pages' <<<"$out" ||
		bad "$name: wanted zero pages: $out"
}

peer "none, 1 channel" tcp:127.0.0.1:0 -m none -c 1
peer "none, 3 channels" tcp:127.0.0.1:0 -m none -c 3
peer "zlib, 1 channel" "unix:$dir/sock" -m zlib -c 1
peer "zlib, 3 channels" tcp:127.0.0.1:0 -m zlib -c 3 -l 6
peer "zstd, 3 channels" "unix:$dir/sock" -m zstd -c 3
# pages named by runs of adjacent pages (protocol.md 6, RUNS)
peer "none, 3 channels, runs" tcp:127.0.0.1:0 -m none -c 3 --runs \
	--pages-per-packet 16
peer "zlib, 2 channels, runs" tcp:127.0.0.1:0 -m zlib -c 2 --runs
peer "none, 2 channels, 1 page per packet, after a stray" \
	tcp:127.0.0.1:0 -m none -c 2 --pages-per-packet 1 --stray
peer "zlib, 4 channels, 64 KiB pages" tcp:127.0.0.1:0 -m zlib -c 4 \
	--page-size 65536 --pages-per-packet 2

# blobs (docs/protocol.md 6.5): what pypeer meant to send is what the
# receiver keeps, name by name
for m in none zstd; do
	rm -rf "$dir/blobs" "$dir/want"
	mkdir "$dir/blobs" "$dir/want"
	recv_opts=(--blob-dir "$dir/blobs")
	peer "$m, 3 channels, blobs" tcp:127.0.0.1:0 -m $m -c 3 \
		--blobs "$dir/want"
	recv_opts=()
	if [ "$(ls "$dir/want" | wc -l)" = 3 ] &&
		diff -r "$dir/want" "$dir/blobs" >/dev/null; then
		ok "$m: the 3 blobs kept as pypeer sent them"
	else
		bad "$m: blobs differ: want $(ls "$dir/want"), got $(ls "$dir/blobs")"
	fi
done

# authentication (docs/protocol.md 4.6): both ends hold the secret
head -c 32 /dev/urandom >"$dir/secret"
# (nobody listens on port 1: this only asks whether the build has it)
if timeout 20 "$MULTIFD" send --timeout 2 --secret-file "$dir/secret" \
	tcp:127.0.0.1:1 "$dir/src" 2>&1 | grep -q "this build has no"; then
	echo "skip: authenticated: multifd built without OpenSSL"
else
	recv_opts=(--secret-file "$dir/secret")
	peer "zlib, 3 channels, authenticated" tcp:127.0.0.1:0 -m zlib -c 3 \
		--secret-file "$dir/secret"
	recv_opts=()
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
