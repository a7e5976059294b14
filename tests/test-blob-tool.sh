#!/bin/bash
# test-blob-tool.sh - blobs through the tool: send --blob NAME=FILE and
# recv --blob-dir DIR move files of 0 B, 1 B and 5 MiB beside the image,
# with every method, identical; what is refused, on both ends, with a
# sentence and nothing left in DIR: a receiver without --blob-dir, a name
# that is no file name, a blob over --max-blob-bytes, a session that
# fails after its blobs were delivered, a blob that would replace FILE;
# a blob that cannot take its name leaves every blob and FILE as they
# were.
set -u
MULTIFD=${MULTIFD:-./multifd}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"
. "$(dirname "$0")/lib/listening.sh"

head -c $((4 << 20)) /dev/urandom >"$dir/img"
: >"$dir/empty"
printf x >"$dir/one"
head -c $((5 << 20)) /dev/urandom >"$dir/big"

# start_recv ARGS...: a receiver in the background into $dir/dst; its
# URI in $uri, its pid in $rpid
start_recv() {
	# the last receiver's log would give wait_listening its port
	rm -rf "$dir/out" "$dir/dst" "$dir/recv.err"
	mkdir "$dir/out"
	"$MULTIFD" recv -q --timeout 10 "$@" tcp:127.0.0.1:0 "$dir/dst" \
		2>"$dir/recv.err" &
	rpid=$!
	uri=$(wait_listening "$dir/recv.err")
}

for m in none zlib zstd; do
	start_recv --blob-dir "$dir/out"
	"$MULTIFD" send -q -c 4 -m $m --timeout 10 --blob empty="$dir/empty" \
		--blob one="$dir/one" --blob "device 0.state=$dir/big" "$uri" \
		"$dir/img" 2>"$dir/send.err"
	s=$?
	wait $rpid
	r=$?
	if [ $s = 0 ] && [ $r = 0 ] && cmp -s "$dir/img" "$dir/dst" &&
		cmp -s "$dir/empty" "$dir/out/empty" &&
		cmp -s "$dir/one" "$dir/out/one" &&
		cmp -s "$dir/big" "$dir/out/device 0.state" &&
		[ "$(ls -A "$dir/out" | wc -l)" = 3 ]; then
		ok "$m: three blobs and the image, identical"
	else
		bad "$m: exit $s/$r: $(cat "$dir/send.err" "$dir/recv.err")"
	fi
done

# blobs read from a pipe (stdin), /dev/null and a FIFO: read to their end
start_recv --blob-dir "$dir/out"
rm -f "$dir/fifo"
mkfifo "$dir/fifo"
cat "$dir/one" >"$dir/fifo" &
"$MULTIFD" send -q --timeout 10 --blob piped=/dev/stdin --blob none=/dev/null \
	--blob fifo="$dir/fifo" "$uri" "$dir/img" <"$dir/big" 2>"$dir/send.err"
s=$?
wait $rpid
r=$?
if [ $s = 0 ] && [ $r = 0 ] && cmp -s "$dir/big" "$dir/out/piped" &&
	cmp -s /dev/null "$dir/out/none" && cmp -s "$dir/one" "$dir/out/fifo"; then
	ok "blobs from stdin, /dev/null and a FIFO, identical"
else
	bad "blobs from a pipe: exit $s/$r: $(cat "$dir/send.err" "$dir/recv.err")"
fi
expect_dir_refused=$("$MULTIFD" send --blob d="$dir" tcp:127.0.0.1:1 "$dir/img" 2>&1)
[ $? = 1 ] && grep -q "is a directory: expected a file, a pipe or a device" <<<"$expect_dir_refused" &&
	ok "a directory as a blob: $expect_dir_refused" ||
	bad "a directory as a blob: $expect_dir_refused"

# refused [RECV-ARGS] -- SEND-ARGS... -- WORD: both ends fail, each
# naming WORD, and DIR holds nothing
refused() {
	local rargs=() sargs=() word
	while [ "$1" != -- ]; do rargs+=("$1"); shift; done
	shift
	while [ "$1" != -- ]; do sargs+=("$1"); shift; done
	word=$2
	start_recv "${rargs[@]}"
	"$MULTIFD" send --timeout 10 "${sargs[@]}" "$uri" "$dir/img" \
		2>"$dir/send.err"
	s=$?
	wait $rpid
	r=$?
	if [ $s = 1 ] && [ $r = 1 ] && grep -q "$word" "$dir/send.err" &&
		grep -q "$word" "$dir/recv.err" && [ -z "$(ls -A "$dir/out")" ] &&
		[ ! -e "$dir/dst" ]; then
		ok "refused on both ends: $word"
	else
		bad "expected '$word' from both ends, exit 1 each, nothing kept:" \
			"exit $s/$r: $(cat "$dir/send.err" "$dir/recv.err"); left: $(ls -A "$dir/out")"
	fi
}

refused -- --blob one="$dir/one" -- "keeps blobs only with --blob-dir"
refused --blob-dir "$dir/out" -- --blob ../escape="$dir/one" -- \
	"no file name in --blob-dir"
refused --blob-dir "$dir/out" -- --blob .hidden="$dir/one" -- \
	"no file name in --blob-dir"
refused --blob-dir "$dir/out" --max-blob-bytes 1M -- \
	--blob big="$dir/big" -- "max_blob_bytes"
[ ! -e "$dir/escape" ] && ok "nothing written outside --blob-dir" ||
	bad "a blob was written outside --blob-dir"

# the blobs are delivered at the end of the last round, but the session
# then fails (the image changed under the sender, so --verify finds the
# copies differ): nothing of them is kept
cp "$dir/img" "$dir/live"
start_recv --blob-dir "$dir/out"
"$MULTIFD" send -q --timeout 10 --max-bandwidth 4M --verify \
	--blob one="$dir/one" "$uri" "$dir/live" 2>"$dir/send.err" &
spid=$!
sleep 0.5
dd if=/dev/zero of="$dir/live" bs=64k count=1 conv=notrunc 2>/dev/null
wait $spid
s=$?
wait $rpid
r=$?
if [ $s = 1 ] && [ $r = 1 ] && grep -q differs "$dir/recv.err" &&
	[ -z "$(ls -A "$dir/out")" ] && [ ! -e "$dir/dst" ]; then
	ok "blobs delivered, then the session failed: nothing kept"
else
	bad "failed after delivery: exit $s/$r, left: $(ls -A "$dir/out"):" \
		"$(cat "$dir/send.err" "$dir/recv.err")"
fi

# a blob named like the FILE received into the same directory (spelt
# another way) is refused: it would replace the image; FILE as it was
echo old >"$dir/out.img"
rm -rf "$dir/out" && mkdir "$dir/out"
"$MULTIFD" recv -q --timeout 10 --blob-dir "$dir/./" tcp:127.0.0.1:0 \
	"$dir/out.img" 2>"$dir/recv.err" &
rpid=$!
uri=$(wait_listening "$dir/recv.err")
"$MULTIFD" send -q --timeout 10 --blob out.img="$dir/one" "$uri" "$dir/img" \
	2>"$dir/send.err"
s=$?
wait $rpid
r=$?
if [ $s = 1 ] && [ $r = 1 ] && grep -q "a file this session receives" \
	"$dir/recv.err" && [ "$(cat "$dir/out.img")" = old ]; then
	ok "a blob that would replace FILE is refused, FILE kept"
else
	bad "blob onto FILE: exit $s/$r, FILE holds $(head -c 20 "$dir/out.img" | od -c | head -1):" \
		"$(cat "$dir/send.err" "$dir/recv.err")"
fi
rm -f "$dir/out.img"

# blobs are all or none with the image: the second blob's name is a
# directory, so the first blob's old file and the old FILE stay
start_recv --blob-dir "$dir/out"
echo old-a >"$dir/out/a"
mkdir "$dir/out/b"
echo old-dst >"$dir/dst"
"$MULTIFD" send -q --timeout 10 --blob a="$dir/one" --blob b="$dir/one" \
	"$uri" "$dir/img" 2>"$dir/send.err"
s=$?
wait $rpid
r=$?
if [ $s = 1 ] && [ $r = 1 ] && [ "$(cat "$dir/out/a")" = old-a ] &&
	[ -d "$dir/out/b" ] && [ "$(cat "$dir/dst")" = old-dst ] &&
	[ "$(ls -A "$dir/out" | tr '\n' ' ')" = "a b " ]; then
	ok "a blob refused its name: every blob and FILE as they were"
else
	bad "blobs all or none: exit $s/$r, a: $(cat "$dir/out/a"), dst: $(head -c 8 "$dir/dst"), left: $(ls -A "$dir/out"):" \
		"$(cat "$dir/send.err" "$dir/recv.err")"
fi
rm -rf "$dir/out" "$dir/dst"
mkdir "$dir/out"

# usage errors name the bad value
"$MULTIFD" send --blob noequals tcp:127.0.0.1:1 "$dir/img" 2>"$dir/err"
[ $? = 2 ] && grep -q "multifd: send: bad --blob 'noequals': expected NAME=FILE" "$dir/err" &&
	ok "--blob without NAME=FILE: usage error" ||
	bad "--blob noequals: $(cat "$dir/err")"
"$MULTIFD" send --blob a="$dir/one" --blob a="$dir/big" tcp:127.0.0.1:1 \
	"$dir/img" 2>"$dir/err"
[ $? = 2 ] && grep -q "blob 'a' given twice" "$dir/err" &&
	ok "--blob NAME twice: usage error" || bad "--blob twice: $(cat "$dir/err")"
"$MULTIFD" send --blob a="$dir/missing" tcp:127.0.0.1:1 "$dir/img" 2>"$dir/err"
[ $? = 1 ] && grep -q "blob file '$dir/missing'" "$dir/err" &&
	ok "a missing blob file is named" || bad "missing blob file: $(cat "$dir/err")"
"$MULTIFD" recv --blob-dir "$dir/img" tcp:127.0.0.1:0 "$dir/dst" 2>"$dir/err"
[ $? = 1 ] && grep -q "not a directory" "$dir/err" &&
	ok "--blob-dir that is a file: refused before listening" ||
	bad "--blob-dir a file: $(cat "$dir/err")"
"$MULTIFD" recv --max-blob-bytes 2T tcp:127.0.0.1:0 "$dir/dst" 2>"$dir/err"
[ $? = 2 ] && grep -q "multifd: recv: bad --max-blob-bytes '2T': too large: expected at most 1T bytes" "$dir/err" &&
	ok "--max-blob-bytes over 1T: usage error" || bad "--max-blob-bytes 2T: $(cat "$dir/err")"

# 80 --region options (more than blobs may come): the receiver lists
# them all as files no blob may replace, and stops cleanly on SIGTERM
rargs=()
for i in $(seq 80); do rargs+=(-R "r$i=$dir/r$i"); done
rm -f "$dir/recv.err"
"$MULTIFD" recv --timeout 10 --blob-dir "$dir/out" "${rargs[@]}" \
	tcp:127.0.0.1:0 2>"$dir/recv.err" &
rpid=$!
if wait_listening "$dir/recv.err" >/dev/null; then
	kill -TERM $rpid
	wait $rpid
	r=$?
	[ $r = 143 ] && ! grep -q "free()\|corrupt\|Aborted" "$dir/recv.err" &&
		ok "80 --region and --blob-dir: a clean stop" ||
		bad "80 --region: exit $r: $(cat "$dir/recv.err")"
else
	bad "80 --region: did not listen: $(cat "$dir/recv.err")"
fi

# options are whole words: recv --blob is no short --blob-dir
"$MULTIFD" recv --blob a="$dir/one" tcp:127.0.0.1:0 "$dir/dst" 2>"$dir/err"
[ $? = 2 ] && grep -q "unknown option '--blob' (did you mean '--blob-dir'?" "$dir/err" &&
	ok "recv --blob: not taken for --blob-dir" || bad "recv --blob: $(cat "$dir/err")"
"$MULTIFD" send --blob-d "$dir" tcp:127.0.0.1:1 "$dir/img" 2>"$dir/err"
[ $? = 2 ] && grep -q "unknown option '--blob-d'" "$dir/err" &&
	ok "send --blob-d: unknown" || bad "send --blob-d: $(cat "$dir/err")"
# an ambiguous prefix lists what it could mean, in every command
"$MULTIFD" send --tls-c x tcp:127.0.0.1:1 "$dir/img" 2>"$dir/err"
[ $? = 2 ] && grep -q "unknown option '--tls-c' (did you mean '--tls-cert' or '--tls-ca'? try 'multifd send --help')" "$dir/err" &&
	ok "send --tls-c: both meanings named" || bad "send --tls-c: $(cat "$dir/err")"
"$MULTIFD" send --json=1 tcp:127.0.0.1:1 "$dir/img" 2>"$dir/err"
[ $? = 2 ] && grep -q "send: option '--json' takes no value" "$dir/err" &&
	ok "send --json=1: takes no value" || bad "send --json=1: $(cat "$dir/err")"
if "$MULTIFD" daemon --help >/dev/null 2>&1; then
	"$MULTIFD" daemon --a 2>"$dir/err"
	[ $? = 2 ] && grep -q "daemon: unknown option '--a' (did you mean '--allow-uid' or '--any-user'?" "$dir/err" &&
		ok "daemon --a: both meanings named" || bad "daemon --a: $(cat "$dir/err")"
	"$MULTIFD" daemon -C 2>"$dir/err"
	[ $? = 2 ] && grep -q "daemon: missing the value of option '-C'" "$dir/err" &&
		ok "daemon -C: its missing value said" || bad "daemon -C: $(cat "$dir/err")"
fi

report test-blob-tool.sh
