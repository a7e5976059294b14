#!/bin/bash
# test-tool.sh - the multifd command as a user runs it: help and version,
# usage errors that name the bad value, real transfers of a file over tcp
# and unix sockets checked with cmp, JSON that parses, and bench.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/listening.sh"
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

# json_ok TEXT WHAT [COMMAND]: TEXT is one JSON object (whose "command"
# is COMMAND, the command's own name, as bench's is)
json_ok() {
	if python3 -c 'import json, sys
j = json.loads(sys.argv[1])
sys.exit(len(sys.argv) > 2 and j["command"] != sys.argv[2])' "$1" ${3:+"$3"} 2>/dev/null; then
		ok "$2: JSON parses${3:+, command $3}"
	else
		bad "$2: not JSON${3:+ with command $3}: $1"
	fi
}

expect 0 "Usage: multifd COMMAND" "$MULTIFD" --help
expect 0 "multifd 0" "$MULTIFD" --version
for c in send recv bench; do
	expect 0 "Usage: multifd $c" "$MULTIFD" "$c" --help
	expect 0 "libmultifd" "$MULTIFD" "$c" --version
done
expect 2 "unknown command 'frob'" "$MULTIFD" frob
# the top level's options as the commands' are: whole names, the first
# one wins over what follows
expect 0 "multifd 0" "$MULTIFD" -V
expect 2 "multifd: unknown option '--he' (did you mean '--help'? try 'multifd --help')" "$MULTIFD" --he
expect 0 "multifd 0" "$MULTIFD" --version extra
expect 0 "libmultifd" "$MULTIFD" send --version extra
expect 2 "multifd: option '--help' takes no value" "$MULTIFD" --help=1
expect 2 "multifd: unknown option '-x' (try 'multifd --help')" "$MULTIFD" -x
expect 2 "unknown command '-'" "$MULTIFD" -
expect 2 "multifd: send: unknown option '--inplace' (try 'multifd send --help')" "$MULTIFD" send --inplace tcp:127.0.0.1:1 x
expect 2 "multifd: recv: missing the value of option '--timeout'" "$MULTIFD" recv --timeout
expect 2 "multifd: send: bad -c '0': too small: expected 1 to 64 channels" "$MULTIFD" send -c 0 tcp:127.0.0.1:1 /dev/null
expect 2 "multifd: send: bad --channels '65': too large: expected at most 64 channels" "$MULTIFD" send --channels 65 tcp:127.0.0.1:1 x
expect 2 "multifd: send: bad -c ' 4': expected a whole number of channels from 1 to 64" "$MULTIFD" send -c ' 4' tcp:127.0.0.1:1 x
expect 2 "multifd: send: bad --stats-interval '1e-9': too small: expected 0.01 to 86400 seconds" "$MULTIFD" send --stats-interval 1e-9 tcp:127.0.0.1:1 x
expect 2 "multifd: send: bad -m 'lz4': expected none, zlib or zstd" "$MULTIFD" send -m lz4 tcp:127.0.0.1:1 x
expect 2 "level 12 out of range for method zlib: expected 1..9, or 0 for its default (1)" "$MULTIFD" send -m zlib -l 12 tcp:127.0.0.1:1 x
expect 2 "level 5 for method none, which takes no level: expected 0 (the default)" "$MULTIFD" send -m none -l 5 tcp:127.0.0.1:1 x
expect 2 "unknown URI 'http://x'" "$MULTIFD" send http://x x
expect 2 "bad port '99999'" "$MULTIFD" recv tcp:127.0.0.1:99999 x
expect 2 "zero-copy needs method none" "$MULTIFD" send --zero-copy -m zstd tcp:127.0.0.1:1 x
expect 2 "expected URI and either FILE or --region" "$MULTIFD" send tcp:127.0.0.1:1
expect 2 "expected URI and either FILE or --region" "$MULTIFD" send \
	-R a=/dev/null tcp:127.0.0.1:1 x
expect 2 "multifd: bench: bad --size '12Q': expected a number of bytes" "$MULTIFD" bench --size 12Q
expect 2 "multifd: send: bad --page-size '3000': expected a power of two from 512 to 65536 bytes" "$MULTIFD" send --page-size 3000 tcp:127.0.0.1:1 x
expect 2 "multifd: bench: bad -s '1000': expected a whole number of pages (a multiple of the page size 4096, at least one)" "$MULTIFD" bench -s 1000
expect 2 "multifd: bench: bad --size '0': expected a whole number of pages" "$MULTIFD" bench --size 0
expect 2 "multifd: send: 'tcp:127.0.0.1:9,tcp:127.0.0.1:9' lists 'tcp:127.0.0.1:9' twice" "$MULTIFD" send tcp:127.0.0.1:9,tcp:127.0.0.1:9 x
# more than the machine has: refused before any memory is filled
expect 2 "needs twice that in memory" "$MULTIFD" bench --size 64T
expect 2 "multifd: bench: bad --content 'pink': expected random, text" "$MULTIFD" bench --content pink
# bench is both ends: a descriptor's peer is elsewhere, refused at once
expect 2 "multifd: bench: --uri 'fd:0': bench pairs its own two ends, so it cannot use descriptors handed in: expected a tcp:, unix: or rdma: URI" "$MULTIFD" bench --timeout 2 --uri fd:0
expect 1 "cannot open '$dir/none'" "$MULTIFD" send tcp:127.0.0.1:1 "$dir/none"

head -c 1000 /dev/urandom >"$dir/odd"
expect 1 "multiple of the page size" "$MULTIFD" send tcp:127.0.0.1:1 "$dir/odd"
# nobody listens on port 1
head -c 8192 /dev/urandom >"$dir/two-pages"
expect 1 "cannot connect" "$MULTIFD" send --timeout 2 tcp:127.0.0.1:1 "$dir/two-pages"
# 0 is the documented default of every method (none's only level):
# accepted, so the send gets as far as its connection
expect 1 "cannot connect" "$MULTIFD" send --timeout 1 -m zstd -l 0 tcp:127.0.0.1:1 "$dir/two-pages"
expect 1 "cannot connect" "$MULTIFD" send --timeout 1 -m none -l 0 tcp:127.0.0.1:1 "$dir/two-pages"
expect 1 "multifd: send: channel 0: 'tcp:\[::1\]:0': a sender needs the receiver's port" "$MULTIFD" send tcp:[::1]:0 "$dir/two-pages"

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
	if ! port_uri=$(wait_listening "$dir/recv.err"); then
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
	json_ok "$out" "send --json" send
	json_ok "$(cat "$dir/recv.json")" "recv --json" recv
	send_json=$out
}

transfer tcp:127.0.0.1:0
transfer tcp:127.0.0.1:0 -c 8 -m zstd
transfer tcp:[::1]:0 -c 3 -m zlib -l 6
transfer "unix:$dir/sock" -c 4
transfer tcp:127.0.0.1:0 -c 2 --zero-copy
transfer tcp:127.0.0.1:0 -c 1 --page-size 65536 --pages-per-packet 16
# 64 KiB pages alone: the default packet size adapts to them
transfer tcp:127.0.0.1:0 -c 2 --page-size 65536
# the receiver's time counts from its sender, not from its wait for one
rm -f "$dir/dst"
timeout 60 "$MULTIFD" recv --json tcp:127.0.0.1:0 "$dir/dst" >"$dir/recv.json" 2>"$dir/recv.err" &
rpid=$!
if port_uri=$(wait_listening "$dir/recv.err"); then
	sleep 3
	timeout 60 "$MULTIFD" send -q "$port_uri" "$dir/src"
	wait $rpid
	secs=$(jq '.stats.totals.seconds' "$dir/recv.json")
	awk -v s="$secs" 'BEGIN { exit !(s > 0 && s < 2.5) }' &&
		ok "the receiver's time leaves out its 3 s wait ($secs s)" ||
		bad "the receiver's time: $secs s after a 3 s wait"
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
fi
# one channel is "1 channel"
expect 0 "tcp loopback, 1 channel, method none" "$MULTIFD" bench -s 4M -c 1
# the receiver counts a round once, not once per channel
transfer tcp:127.0.0.1:0 -c 4
grep -q '"rounds":1,' "$dir/recv.json" && ok "the receiver reports 1 round of 4 channels" ||
	bad "receiver's rounds: $(cat "$dir/recv.json")"
# the sender's figures of that round: every page of the file
if python3 -c 'import json, sys
r = json.loads(sys.argv[1])["stats"]["rounds"]
assert len(r) == 1 and r[0]["pages"] == int(sys.argv[2]) // 4096, r
assert r[0]["bytes"] > 0 and r[0]["seconds"] > 0, r' "$send_json" "$(stat -c %s "$dir/src")"; then
	ok "send --json gives the round's pages, bytes and time"
else
	bad "send --json rounds: $send_json"
fi
# each of the sender's channels ended that round too
if python3 -c 'import json, sys
c = json.loads(sys.argv[1])["stats"]["per_channel"]
assert len(c) == 4 and all(x["rounds"] == 1 for x in c), c' "$send_json"; then
	ok "send --json: every channel counts the round"
else
	bad "send --json per-channel rounds: $send_json"
fi

# several regions: existing files are replaced, missing ones created
head -c $((2 << 20)) /dev/urandom >"$dir/vga"
head -c $((2 << 20)) /dev/zero >"$dir/vga.dst"
start_recv() {
	rm -f "$dir/recv.err"
	timeout 60 "$MULTIFD" recv "$@" 2>"$dir/recv.err" >/dev/null &
	rpid=$!
	port_uri=$(wait_listening "$dir/recv.err")
}
rm -f "$dir/ram.dst"
start_recv -R "ram=$dir/ram.dst" -R "vga=$dir/vga.dst" tcp:127.0.0.1:0
if timeout 60 "$MULTIFD" send -q -R "ram=$dir/src" -R "vga=$dir/vga" "$port_uri" &&
	wait $rpid && cmp -s "$dir/src" "$dir/ram.dst" &&
	cmp -s "$dir/vga" "$dir/vga.dst"; then
	ok "two regions, one created, one existing"
else
	bad "two regions: $(cat "$dir/recv.err")"
fi
# a /dev/shm object, as a hypervisor's memory backend would be
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	shm=/dev/shm/multifd-test-$$
	head -c $((4 << 20)) /dev/urandom >"$shm"
	rm -f "$shm.dst"
	start_recv -R "pc.ram=$shm.dst" tcp:127.0.0.1:0
	if timeout 60 "$MULTIFD" send -q -R "pc.ram=$shm" "$port_uri" &&
		wait $rpid && cmp -s "$shm" "$shm.dst"; then
		ok "a /dev/shm region, both ends"
	else
		bad "/dev/shm region: $(cat "$dir/recv.err")"
	fi
	rm -f "$shm" "$shm.dst"
fi
# in place, an existing file must have the region's size; without
# --inplace it is replaced by a file of the sender's size
head -c $((1 << 20)) /dev/zero >"$dir/vga.small"
start_recv --inplace -R "ram=$dir/ram.dst" -R "vga=$dir/vga.small" tcp:127.0.0.1:0
expect 1 "'$dir/vga.small' has 1048576 bytes, the sender's region 'vga' 2097152: --inplace needs the same size" \
	"$MULTIFD" send -R "ram=$dir/src" -R "vga=$dir/vga" "$port_uri"
wait $rpid
# also one that is no multiple of the page size: its size is the news
echo old >"$dir/vga.tiny"
start_recv --inplace -R "ram=$dir/ram.dst" -R "vga=$dir/vga.tiny" tcp:127.0.0.1:0
expect 1 "'$dir/vga.tiny' has 4 bytes, the sender's region 'vga' 2097152: --inplace needs the same size" \
	"$MULTIFD" send -R "ram=$dir/src" -R "vga=$dir/vga" "$port_uri"
wait $rpid
start_recv -R "ram=$dir/ram.dst" -R "vga=$dir/vga.small" tcp:127.0.0.1:0
if timeout 60 "$MULTIFD" send -q -R "ram=$dir/src" -R "vga=$dir/vga" "$port_uri" &&
	wait $rpid && cmp -s "$dir/vga" "$dir/vga.small"; then
	ok "an existing file of another size is replaced"
else
	bad "replacing a file of another size: $(cat "$dir/recv.err")"
fi
start_recv -R "ram=$dir/ram.dst" tcp:127.0.0.1:0
expect 1 "receiver refused: cannot create region 'vga' of 2097152 bytes: the sender's region 'vga' has no --region NAME=PATH on the receiver" \
	"$MULTIFD" send -R "ram=$dir/src" -R "vga=$dir/vga" "$port_uri"
wait $rpid
grep -q "region 'vga' has no --region NAME=PATH on the receiver" "$dir/recv.err" &&
	ok "receiver says which region it lacks" ||
	bad "receiver: $(cat "$dir/recv.err")"

# a zero page into a new file, zero detection off on the receiver
head -c 65536 /dev/zero >"$dir/zeros"
start_recv --no-zero-detect tcp:127.0.0.1:0 "$dir/zeros.dst"
timeout 60 "$MULTIFD" send -q "$port_uri" "$dir/zeros" && wait $rpid &&
	cmp -s "$dir/zeros" "$dir/zeros.dst" &&
	ok "zero pages with --no-zero-detect on the receiver" ||
	bad "zero pages, receiver --no-zero-detect: $(cat "$dir/recv.err")"
expect 2 "multifd: send: bad -R 'novalue': expected NAME=PATH" "$MULTIFD" send -R novalue tcp:127.0.0.1:1

# authentication, checksums and the end-of-session digest
head -c 32 /dev/urandom >"$dir/key"
head -c 32 /dev/urandom >"$dir/other-key"
start_recv --secret-file "$dir/key" tcp:127.0.0.1:0 "$dir/dst"
expect 1 "does not know the secret" \
	"$MULTIFD" send --secret-file "$dir/other-key" "$port_uri" "$dir/src"
expect 0 "the receiver's 1 region is identical" \
	"$MULTIFD" send --secret-file "$dir/key" --checksum --verify -c 3 \
	"$port_uri" "$dir/src"
wait $rpid && grep -q "refused a connection: authentication" "$dir/recv.err" &&
	cmp -s "$dir/src" "$dir/dst" && ok "secret: stray refused, session done" ||
	bad "secret: $(cat "$dir/recv.err")"
head -c 5 /dev/urandom >"$dir/short-key"
expect 2 "expected 16 to" "$MULTIFD" send --secret-file "$dir/short-key" tcp:127.0.0.1:1 x

# rate limit: 40 MiB at 4 MiB/s takes 10 s; the rate the sender reports
# (wire bytes over its session time) must be within 5 % of the limit
head -c $((40 << 20)) /dev/urandom >"$dir/forty"
start_recv tcp:127.0.0.1:0 "$dir/forty.dst"
timeout 60 "$MULTIFD" send --json --max-bandwidth 4M --stats-interval 2 \
	"$port_uri" "$dir/forty" >"$dir/stats.jsonl"
wait $rpid
rate=$(tail -n 1 "$dir/stats.jsonl" | python3 -c '
import json, sys
t = json.load(sys.stdin)["stats"]["totals"]
print("%.3f" % (t["bytes"] / t["seconds"] / (1 << 20)))')
if python3 -c "import sys; sys.exit(0 if 3.8 <= float('$rate') <= 4.2 else 1)"; then
	ok "rate limit 4 MiB/s: $rate MiB/s"
else
	bad "rate limit 4 MiB/s: $rate MiB/s"
fi
sed -i '$d' "$dir/stats.jsonl" # the final summary; the rest are interval lines
lines=0
while read -r line; do
	json_ok "$line" "--stats-interval line" >/dev/null && lines=$((lines + 1))
done <"$dir/stats.jsonl"
[ "$lines" -ge 4 ] && ok "--stats-interval: $lines JSON lines" ||
	bad "--stats-interval: $lines lines: $(cat "$dir/stats.jsonl")"
# without --json too, stdout carries JSON lines only: the summary goes
# to stderr
start_recv tcp:127.0.0.1:0 "$dir/forty.dst"
timeout 60 "$MULTIFD" send --max-bandwidth 40M --stats-interval 0.1 \
	"$port_uri" "$dir/forty" >"$dir/stats.jsonl" 2>"$dir/stats.err"
wait $rpid
lines=0 other=0
while read -r line; do
	if json_ok "$line" x >/dev/null; then lines=$((lines + 1)); else other=$((other + 1)); fi
done <"$dir/stats.jsonl"
[ "$lines" -ge 2 ] && [ "$other" = 0 ] && grep -q "^sent 40.0 MiB" "$dir/stats.err" &&
	ok "--stats-interval without --json: $lines JSON lines, the summary on stderr" ||
	bad "--stats-interval without --json: $lines JSON, $other other: $(cat "$dir/stats.jsonl" "$dir/stats.err")"
expect 2 "bench: --sweep writes CSV (for bench/plot) over channels, methods and contents: it takes none of --json, --live, -c, -m, -r and --content" \
	"$MULTIFD" bench --sweep --json
expect 2 "bench: --sweep writes CSV" "$MULTIFD" bench --sweep -c 4
expect 2 "bench: --sweep writes CSV" "$MULTIFD" bench --sweep --live
expect 2 "bench: --stats-interval is for send and recv" "$MULTIFD" bench --stats-interval 1

# signal_end WHO DELAY SIG RECV-OPTIONS SEND-OPTIONS: $dir/eight from a
# sender to a receiver into $dir/eight.dst, SIG sent to WHO (recv or
# send) DELAY seconds in (a STOP is followed by a CONT once the other
# ended); sets sst and rst, the exit statuses; 1 when the receiver did
# not start
head -c $((8 << 20)) /dev/urandom >"$dir/eight"
signal_end() {
	local who=$1
	shift
	rm -f "$dir/eight.dst" "$dir/recv.err"
	"$MULTIFD" recv $3 tcp:127.0.0.1:0 "$dir/eight.dst" >/dev/null \
		2>"$dir/recv.err" &
	rpid=$!
	if ! port_uri=$(wait_listening "$dir/recv.err"); then
		bad "receiver did not start: $(cat "$dir/recv.err")"
		kill $rpid
		wait $rpid
		return 1
	fi
	timeout 60 "$MULTIFD" send -q $4 "$port_uri" "$dir/eight" \
		2>"$dir/send.err" &
	spid=$!
	sleep "$1"
	local hit=$rpid other=$spid
	[ "$who" = send ] && hit=$spid other=$rpid
	kill -"$2" $hit
	wait $other
	local ost=$?
	[ "$2" = STOP ] && kill -CONT $hit
	wait $hit
	local hst=$?
	if [ "$who" = recv ]; then rst=$hst sst=$ost; else sst=$hst rst=$ost; fi
}

# a receiver stopped (SIGSTOP) for longer than the sender's timeout,
# once every byte is in its sockets (8 MiB at 16 MiB/s, stopped at 0.3 s):
# the sender gives up waiting for the end to be confirmed; the receiver,
# continued, must not then commit and exit 0 as if the sender had heard
# of it
if signal_end recv 0.3 STOP "--timeout 2" "-c 2 --timeout 2 --max-bandwidth 16M"; then
	if [ $sst = 1 ] && [ $rst = 1 ] && [ ! -e "$dir/eight.dst" ] &&
		grep -q "the sender failed\|it gave up" "$dir/recv.err"; then
		ok "recv stopped past the sender's timeout: neither succeeds: $(tail -1 "$dir/recv.err")"
	else
		bad "recv stopped past the sender's timeout: send $sst, recv $rst: $(cat "$dir/send.err" "$dir/recv.err"; ls "$dir/eight.dst" 2>&1)"
	fi
fi

# a receiver stopped by SIGTERM mid-transfer (8 MiB at 2 MiB/s, after
# 1 s): the sender says which signal stopped it, not a bare "cancelled";
# the receiver exits 128 + 15 and leaves no file, the sender exits 1
if signal_end recv 1 TERM "" "--max-bandwidth 2M"; then
	if [ $sst = 1 ] && [ $rst = 143 ] && [ ! -e "$dir/eight.dst" ] &&
		grep -q "multifd: send: channel [0-9]*: the receiver failed: it was stopped by a signal (SIGTERM)$" "$dir/send.err" &&
		grep -q "multifd: recv: stopped by a signal (SIGTERM)$" "$dir/recv.err"; then
		ok "recv stopped by SIGTERM: the sender says $(cat "$dir/send.err")"
	else
		bad "recv stopped by SIGTERM: send $sst, recv $rst: $(cat "$dir/send.err" "$dir/recv.err"; ls "$dir/eight.dst" 2>&1)"
	fi
fi

# a sparse image: the summary gives its size, and its data apart
truncate -s 16M "$dir/sparse"
head -c 4096 /dev/urandom | dd of="$dir/sparse" conv=notrunc status=none
start_recv tcp:127.0.0.1:0 "$dir/sparse.dst"
out=$(timeout 60 "$MULTIFD" send "$port_uri" "$dir/sparse" 2>&1)
wait $rpid
if grep -q "^sent 16.0 MiB (4096 pages, 4095 zero; 4.0 KiB of data) in .* on the wire$" <<<"$out" &&
	cmp -s "$dir/sparse" "$dir/sparse.dst"; then
	ok "sparse image summary: $out"
else
	bad "sparse image summary: $out"
fi

# two endpoints, the second of which accepts but is not the receiver:
# the receiver waits for that channel, so channel 0 has no answer; the
# sender's error says where to look
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
print(s.getsockname()[1], flush=True); c = s.accept(); time.sleep(30)' \
	>"$dir/decoy.port" &
decoy=$!
"$MULTIFD" recv --timeout 5 tcp:127.0.0.1:0 "$dir/eight.dst" >/dev/null \
	2>"$dir/recv.err" &
rpid=$!
if port_uri=$(wait_listening "$dir/recv.err") &&
	for _ in $(seq 50); do [ -s "$dir/decoy.port" ] && break; sleep 0.1; done &&
	[ -s "$dir/decoy.port" ]; then
	expect 1 "is every endpoint of the list that receiver?" "$MULTIFD" send \
		-c 2 --timeout 2 "$port_uri,tcp:127.0.0.1:$(cat "$dir/decoy.port")" \
		"$dir/eight"
else
	bad "decoy or receiver did not start: $(cat "$dir/recv.err")"
fi
kill $decoy $rpid 2>/dev/null
wait $decoy $rpid 2>/dev/null

# a sender stopped by SIGTERM mid-transfer, its 4 channels each with a
# packet to send: the receiver says which signal stopped the sender, not
# "peer closed" (every channel finishes its packet before the ABORT)
if signal_end send 1 TERM "" "-c 4 --max-bandwidth 2M"; then
	if [ $sst = 143 ] && [ $rst = 1 ] && [ ! -e "$dir/eight.dst" ] &&
		grep -q "multifd: recv: channel [0-9]*: the sender failed: it was stopped by a signal (SIGTERM)$" "$dir/recv.err"; then
		ok "send stopped by SIGTERM: the receiver says $(tail -1 "$dir/recv.err")"
	else
		bad "send stopped by SIGTERM: send $sst, recv $rst: $(cat "$dir/send.err" "$dir/recv.err"; ls "$dir/eight.dst" 2>&1)"
	fi
fi

# a second endpoint that drops SYNs (a full backlog): SIGTERM stops the
# sender while it connects there, at once (not after its 30 s timeout),
# and the receiver, which has its channel 0, says so at once too
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
fill = []
for i in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    fill.append(c)
print(s.getsockname()[1], flush=True); time.sleep(60)' >"$dir/hole.port" &
hole=$!
for i in $(seq 50); do [ -s "$dir/hole.port" ] && break; sleep 0.1; done
rm -f "$dir/recv.err"
"$MULTIFD" recv --timeout 30 tcp:127.0.0.1:0 "$dir/hole.dst" 2>"$dir/recv.err" &
rpid=$!
if port_uri=$(wait_listening "$dir/recv.err"); then
	t0=$(date +%s)
	"$MULTIFD" send --timeout 30 -c 4 "$port_uri,tcp:127.0.0.1:$(cat "$dir/hole.port")" \
		"$dir/eight" 2>"$dir/send.err" &
	spid=$!
	sleep 1
	kill -TERM $spid
	wait $spid
	sst=$?
	wait $rpid
	rst=$?
	t1=$(date +%s)
	if [ $sst = 143 ] && [ $rst = 1 ] && [ $((t1 - t0)) -lt 10 ] &&
		grep -q "the sender failed: it was stopped by a signal (SIGTERM)" "$dir/recv.err"; then
		ok "SIGTERM while connecting: both ends stop at once ($((t1 - t0)) s)"
	else
		bad "SIGTERM while connecting: send $sst, recv $rst in $((t1 - t0)) s: $(cat "$dir/send.err" "$dir/recv.err")"
	fi
else
	bad "recv did not start: $(cat "$dir/recv.err")"
	kill $rpid
fi
kill $hole 2>/dev/null
wait $hole 2>/dev/null

# live migration: a writer dirtying a quarter of the link rate converges
rate=$(timeout 120 "$MULTIFD" bench -s 64M -c 2 --no-ceiling --json |
	python3 -c 'import json,sys; print(int(json.load(sys.stdin)["gib_per_s"] * 1024 / 4))')
out=$(timeout 120 "$MULTIFD" bench -s 64M -c 2 --live --dirty-rate "$rate" \
	--no-ceiling --json)
json_ok "$out" "bench --live --json"
if grep -q '"ok":true' <<<"$out" && grep -q '"converged":true' <<<"$out"; then
	ok "live bench at $rate MiB/s dirty: converged, identical"
else
	bad "live bench at $rate MiB/s: $out"
fi
expect 0 "verified: identical" "$MULTIFD" bench -s 32M --live --dirty-rate 50 \
	--dirty-pattern hot --max-rounds 3

out=$(timeout 120 "$MULTIFD" bench --size 32M --channels 3 --rounds 3 --content mixed --json 2>&1)
json_ok "$out" "bench --json"
if grep -q '"ok":true' <<<"$out"; then ok "bench verified"; else bad "bench: $out"; fi
# --rounds 3 makes three rounds, not a fourth empty one at the end
if python3 -c 'import json, sys
r = json.loads(sys.argv[1])["round_log"]
assert len(r) == 3 and r[0]["pages"] == 8192 and r[2]["pages"] > 0, r' "$out"; then
	ok "bench --rounds 3: three rounds in round_log"
else
	bad "bench --rounds 3 round_log: $out"
fi
expect 0 "verified: identical" "$MULTIFD" bench -s 16M -c 2 -m zstd --content text -r 2
expect 0 "raw ceiling" "$MULTIFD" bench -s 16M -c 2

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
