#!/bin/bash
# test-tool-output.sh - what the multifd command writes, when the fds it
# writes to are not what it expects:
# - closed fds 0-2 are never reused by the image or a socket, so neither
#   the statistics nor the progress display can land in a received file;
# - a closed statistics or progress pipe (| head -1) stops that output with
#   one warning, not the transfer (no SIGPIPE death, exit status 0);
# - results that cannot be written (>/dev/full) are exit status 1;
# - option values that cannot be meant are refused, naming the value.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/listening.sh"
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"


# expect STATUS WORD CMD...: exit status STATUS and WORD in the output,
# within 10 s (an option check must not block)
expect() {
	local want=$1 word=$2 out st
	shift 2
	out=$(timeout 10 "$@" 2>&1)
	st=$?
	if [ "$st" = "$want" ] && grep -q -- "$word" <<<"$out"; then
		ok "$* -> $st"
	else
		bad "$* -> $st (wanted $want and '$word'): $out"
	fi
}

# same WHAT SEND_STATUS RECV_STATUS: both 0 and the image is the source
same() {
	if [ "$2" = 0 ] && [ "$3" = 0 ] && cmp -s "$src" "$dir/dst"; then
		ok "$1"
	else
		bad "$1 (send $2, recv $3; $(cmp "$src" "$dir/dst" 2>&1)): $(cat "$dir/send.err" "$dir/recv.err" 2>/dev/null)"
	fi
}

# wait_socket PATH: a unix: receiver whose stderr is closed says nothing
wait_socket() {
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# The closed-fd checks need the program itself to start with the fds
# closed: an uninstalled build's $MULTIFD is a libtool wrapper script, and
# the shell that runs it keeps the script open on the lowest free fd. Run
# the binary behind it directly.
bare=("$MULTIFD")
"$MULTIFD" --version >/dev/null # a wrapper may build its binary on first use
if [ "$(head -c 2 "$MULTIFD" 2>/dev/null)" = "#!" ]; then
	d=$(dirname "$MULTIFD")
	b=$(basename "$MULTIFD")
	for real in "$d/.libs/$b" "$d/.libs/lt-$b"; do
		if [ -x "$real" ]; then
			bare=(env "LD_LIBRARY_PATH=$d/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$real")
			break
		fi
	done
	if [ ${#bare[@]} = 1 ]; then
		echo "skip: $MULTIFD is a script with no binary in $d/.libs"
		exit 77
	fi
fi

# 2 MiB at 2 MiB/s: about a second, many statistics and progress lines
src=$dir/src
head -c $((2 << 20)) /dev/urandom >"$src"
slow=(--max-bandwidth 2M)

# --- 1. closed fds 0-2 ------------------------------------------------
# the receiver with stdout closed: an existing --region file is opened
# first, before any socket, and would be taken for fd 1: the statistics
# and the summary must not go into it
head -c $((2 << 20)) /dev/zero >"$dir/dst"
rm -f "$dir/recv.err"
timeout 60 "${bare[@]}" recv --stats-interval 0.2 tcp:127.0.0.1:0 \
	--region "in=$dir/dst" >&- 2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send -q "${slow[@]}" -R "in=$src" "$uri" \
		2>"$dir/send.err"
	sst=$?
	wait $rpid
	same "recv --stats-interval with fd 1 closed" $sst $?
else
	bad "recv with fd 1 closed did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# the receiver with stderr closed: the progress display must not go
# into the image (a unix: path, as it cannot say where it listens)
head -c $((2 << 20)) /dev/zero >"$dir/dst"
rm -f "$dir/sock"
timeout 60 "${bare[@]}" recv --progress "unix:$dir/sock" -R "in=$dir/dst" \
	>"$dir/recv.out" 2>&- &
rpid=$!
if wait_socket "$dir/sock"; then
	timeout 60 "$MULTIFD" send -q "${slow[@]}" "unix:$dir/sock" \
		-R "in=$src" 2>"$dir/send.err"
	sst=$?
	wait $rpid
	rst=$?
	: >"$dir/recv.err"
	same "recv --progress with fd 2 closed" $sst $rst
else
	bad "recv with fd 2 closed did not start"
	wait $rpid
fi

# all three closed, the receiver, with three regions: their files would
# take fds 0-2, and the statistics (fd 1) and the progress display (fd 2)
# would land in two of them
for r in a b c; do
	head -c $((2 << 20)) /dev/urandom >"$dir/src-$r"
	rm -f "$dir/dst-$r"
done
rm -f "$dir/sock"
timeout 60 "${bare[@]}" recv --progress --stats-interval 0.2 \
	"unix:$dir/sock" -R "a=$dir/dst-a" -R "b=$dir/dst-b" \
	-R "c=$dir/dst-c" <&- >&- 2>&- &
rpid=$!
if wait_socket "$dir/sock"; then
	timeout 60 "$MULTIFD" send -q "${slow[@]}" "unix:$dir/sock" \
		-R "a=$dir/src-a" -R "b=$dir/src-b" -R "c=$dir/src-c" \
		2>"$dir/send.err"
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 0 ] && [ $rst = 0 ] && cmp -s "$dir/src-a" "$dir/dst-a" &&
		cmp -s "$dir/src-b" "$dir/dst-b" && cmp -s "$dir/src-c" "$dir/dst-c"; then
		ok "recv --progress --stats-interval with fds 0-2 closed, three regions"
	else
		bad "fds 0-2 closed, three regions (send $sst, recv $rst): $(cat "$dir/send.err")"
	fi
else
	bad "recv with fds 0-2 closed did not start"
	wait $rpid
fi

# the sender with all three closed: its output must not reach a socket
rm -f "$dir/dst" "$dir/recv.err" # an old log: a stale port
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" \
	>/dev/null 2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "${bare[@]}" send --progress --stats-interval 0.2 \
		"${slow[@]}" "$uri" "$src" <&- >&- 2>&-
	sst=$?
	wait $rpid
	: >"$dir/send.err"
	same "send --progress --stats-interval with fds 0-2 closed" $sst $?
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# a ceiling that was not measured is null in the JSON, not a rate of 0
out=$("$MULTIFD" bench -s 8M --no-ceiling --json 2>&1)
if python3 -c 'import json, sys
j = json.loads(sys.argv[1])
sys.exit(not (j["ok"] and j["ceiling_gib_per_s"] is None and j["ratio_to_ceiling"] is None))' "$out"; then
	ok "bench --no-ceiling --json: the ceiling is null"
else
	bad "bench --no-ceiling --json: $out"
fi

# a command whose results go to a closed stdout says they were lost and
# exits 1, as README promises, instead of writing them nowhere
for cmd in "--version" "bench -s 8M --no-ceiling" "bench -s 8M --no-ceiling --json"; do
	# shellcheck disable=SC2086
	err=$("$MULTIFD" $cmd 2>&1 >&-)
	st=$?
	if [ $st = 1 ] && [[ $err == *"cannot write"*"stdout"* ]]; then
		ok "multifd $cmd >&- -> 1: $err"
	else
		bad "multifd $cmd >&-: status $st: $err"
	fi
done

# a closed stdout is said to be closed, not a broken pipe, naming stdout,
# for every command that prints there
for cmd in "--version" "--help" "send --help" "recv --help" "bench --help" \
	"send --version" "bench -s 8M --no-ceiling --json"; do
	# shellcheck disable=SC2086
	err=$("${bare[@]}" $cmd 2>&1 >&-)
	st=$?
	if [ $st = 1 ] && [[ $err == *"cannot write "*" to stdout: stdout is closed"* ]] &&
		[[ $err != *"Broken pipe"* ]]; then
		ok "multifd $cmd >&- -> 1: $err"
	else
		bad "multifd $cmd >&-: status $st: $err"
	fi
done
err=$("${bare[@]}" bench -s 8M --no-ceiling --json 2>&1 >&-)
[[ $err == "multifd: bench: cannot write the JSON report to stdout: stdout is closed (the benchmark itself succeeded)" ]] &&
	ok "bench --json >&-: the run itself succeeded" ||
	bad "bench --json >&-: $err"
if "$MULTIFD" daemon --help >/dev/null 2>&1; then
	err=$("${bare[@]}" daemon --help 2>&1 >&-)
	st=$?
	[ $st = 1 ] && [[ $err == "multifd: daemon: cannot write its output to stdout: stdout is closed" ]] &&
		ok "daemon --help >&- -> 1: $err" || bad "daemon --help >&-: $st: $err"
fi
# send --json and recv --json with stdout closed: exit 1, naming stdout,
# and saying that the transfer itself succeeded (the other end exits 0)
rm -f "$dir/dst" "$dir/recv.err"
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" >/dev/null \
	2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "${bare[@]}" send --json "$uri" "$src" >&- 2>"$dir/send.err"
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 1 ] && [ $rst = 0 ] && cmp -s "$src" "$dir/dst" &&
		[ "$(cat "$dir/send.err")" = "multifd: send: cannot write the JSON report to stdout: stdout is closed (the transfer itself succeeded)" ]; then
		ok "send --json >&- -> 1: $(cat "$dir/send.err")"
	else
		bad "send --json >&-: send $sst, recv $rst: $(cat "$dir/send.err")"
	fi
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi
rm -f "$dir/dst" "$dir/recv.err"
timeout 60 "${bare[@]}" recv --json tcp:127.0.0.1:0 "$dir/dst" >&- \
	2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send -q "$uri" "$src" 2>"$dir/send.err"
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 0 ] && [ $rst = 1 ] && cmp -s "$src" "$dir/dst" &&
		grep -q "^multifd: recv: cannot write the JSON report to stdout: stdout is closed (the transfer itself succeeded)$" "$dir/recv.err"; then
		ok "recv --json >&- -> 1, the image complete"
	else
		bad "recv --json >&-: send $sst, recv $rst: $(cat "$dir/recv.err")"
	fi
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# --- 2. closed pipes: the statistics stop, the transfer goes on ---------
# warned FILE WHAT: exactly one warning in FILE, and it names WHAT
warned() {
	local n
	n=$(grep -c "warning: cannot write" "$1")
	if [ "$n" = 1 ] && grep -q "warning: cannot write the $2 to .*: Broken pipe" "$1"; then
		ok "one warning: $(grep "warning: cannot write" "$1")"
	else
		bad "wanted one warning about the $2, got $n: $(cat "$1")"
	fi
}
rm -f "$dir/dst" "$dir/recv.err" # an old log: a stale port
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" \
	>/dev/null 2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send --stats-interval 0.1 "${slow[@]}" "$uri" \
		"$src" 2>"$dir/send.err" | head -1 >"$dir/head.out"
	sst=${PIPESTATUS[0]}
	wait $rpid
	same "send --stats-interval | head -1" $sst $?
	warned "$dir/send.err" statistics
	grep -q '"totals"' "$dir/head.out" && ok "head -1 got a statistics line" ||
		bad "head -1 got: $(cat "$dir/head.out")"
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# --json with statistics lines into | head -c 10: the lines stop with a
# warning, the report that follows them cannot be written: exit 1,
# naming stdout, and the transfer itself succeeded
rm -f "$dir/dst" "$dir/recv.err"
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" \
	>/dev/null 2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send --json --stats-interval 0.1 "${slow[@]}" \
		"$uri" "$src" 2>"$dir/send.err" | head -c 10 >"$dir/head.out"
	sst=${PIPESTATUS[0]}
	wait $rpid
	rst=$?
	if [ "$sst" = 1 ] && [ $rst = 0 ] && cmp -s "$src" "$dir/dst" &&
		[ "$(wc -c <"$dir/head.out")" = 10 ] &&
		grep -q "^multifd: send: cannot write the JSON report to stdout: Broken pipe (the transfer itself succeeded)$" "$dir/send.err"; then
		ok "send --json --stats-interval | head -c 10 -> 1"
	else
		bad "send --json --stats-interval | head -c 10: send $sst, recv $rst: $(cat "$dir/send.err")"
	fi
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# the same on the receiver
rm -f "$dir/dst" "$dir/recv.err" "$dir/recv.st"
(
	timeout 60 "$MULTIFD" recv --stats-interval 0.1 tcp:127.0.0.1:0 \
		"$dir/dst" 2>"$dir/recv.err" | head -1 >/dev/null
	echo "${PIPESTATUS[0]}" >"$dir/recv.st"
) &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send -q "${slow[@]}" "$uri" "$src" \
		2>"$dir/send.err"
	sst=$?
	wait $rpid
	same "recv --stats-interval | head -1" $sst "$(cat "$dir/recv.st")"
	warned "$dir/recv.err" statistics
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# output that is the result itself (bench --sweep's table) into a pipe
# that closes early: exit 1, saying the pipe broke (not a bare EIO)
"$MULTIFD" bench -s 8M --no-ceiling --sweep 2>"$dir/sweep.err" | head -1 \
	>/dev/null
st=${PIPESTATUS[0]}
if [ "$st" = 1 ] && grep -q "cannot write its output to stdout: Broken pipe" \
	"$dir/sweep.err"; then
	ok "bench --sweep | head -1: exit 1, Broken pipe"
else
	bad "bench --sweep | head -1: exit $st: $(cat "$dir/sweep.err")"
fi

# the progress display into a pipe that closes: the transfer goes on
rm -f "$dir/dst" "$dir/recv.err" # an old log: a stale port
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" \
	>/dev/null 2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	timeout 60 "$MULTIFD" send --progress "${slow[@]}" "$uri" "$src" \
		2>&1 >/dev/null | head -c 1 >/dev/null
	sst=${PIPESTATUS[0]}
	wait $rpid
	: >"$dir/send.err"
	same "send --progress 2>&1 | head -c 1" $sst $?
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

# --- 3. results that cannot be written: exit status 1 -------------------
if [ -w /dev/full ]; then
	for args in --version "send --help" "bench --help"; do
		# shellcheck disable=SC2086 # the words are the arguments
		out=$(timeout 10 "$MULTIFD" $args 2>&1 >/dev/full)
		st=$?
		[ $st = 1 ] && grep -q "cannot write its output to stdout: No space left on device" <<<"$out" &&
			ok "$args >/dev/full -> 1: $out" ||
			bad "$args >/dev/full -> $st: $out"
	done
	# for_send WHAT SEND_ARGS...: the sender's output goes to /dev/full
	for_send() {
		local what=$1 st rst
		shift
		rm -f "$dir/dst" "$dir/recv.err" # an old log: a stale port
		timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" \
			>/dev/null 2>"$dir/recv.err" &
		rpid=$!
		if ! uri=$(wait_listening "$dir/recv.err"); then
			bad "receiver did not start: $(cat "$dir/recv.err")"
			wait $rpid
			return
		fi
		timeout 60 "$MULTIFD" send "$@" "$uri" "$src" >/dev/full \
			2>"$dir/send.err"
		st=$?
		wait $rpid
		rst=$?
		if [ $st = 1 ] && [ $rst = 0 ] && cmp -s "$src" "$dir/dst" &&
			grep -q "cannot write $what to stdout: No space left on device" \
				"$dir/send.err"; then
			ok "send $* >/dev/full -> 1: $(cat "$dir/send.err")"
		else
			bad "send $* >/dev/full -> $st (recv $rst): $(cat "$dir/send.err" "$dir/recv.err")"
		fi
	}
	for_send "the JSON report" --json
	for_send "its output"
	# the receiver's --json results
	rm -f "$dir/dst" "$dir/recv.err" # an old log: a stale port
	timeout 60 "$MULTIFD" recv --json tcp:127.0.0.1:0 "$dir/dst" \
		>/dev/full 2>"$dir/recv.err" &
	rpid=$!
	if uri=$(wait_listening "$dir/recv.err"); then
		timeout 60 "$MULTIFD" send -q "$uri" "$src" 2>"$dir/send.err"
		sst=$?
		wait $rpid
		rst=$?
		if [ $sst = 0 ] && [ $rst = 1 ] &&
			grep -q "cannot write the JSON report to stdout" "$dir/recv.err"; then
			ok "recv --json >/dev/full -> 1"
		else
			bad "recv --json >/dev/full: send $sst, recv $rst: $(cat "$dir/recv.err")"
		fi
	else
		bad "receiver did not start: $(cat "$dir/recv.err")"
		wait $rpid
	fi
else
	echo "skip: no writable /dev/full"
fi

# --- 4. option values that cannot be meant --------------------------------
for v in nan inf -inf NAN; do
	expect 2 "multifd: send: bad --stats-interval '$v': expected a number of seconds from 0.01 to 86400" \
		"$MULTIFD" send --stats-interval "$v" tcp:127.0.0.1:1 "$src"
done
# every option error names the subcommand, the option as given, the
# value and what was expected; sizes, rates and counts share one parser:
# too large says so and names the largest value, blanks around a number
# are refused, as is a rate under one page per second
# bad_value CMD OPT VALUE WANT [ARGS...]: "multifd: CMD: bad OPT 'VALUE': WANT"
bad_value() {
	local cmd=$1 opt=$2 value=$3 want=$4
	shift 4
	case $cmd in
	send) set -- "$@" tcp:127.0.0.1:1 "$src" ;;
	recv) set -- "$@" tcp:127.0.0.1:0 "$dir/never" ;;
	daemon) set -- "$@" --control "unix:$dir/never.sock" ;;
	esac
	expect 2 "^multifd: $cmd: bad $opt '$value': $want" \
		"$MULTIFD" "$cmd" "$opt" "$value" "$@"
}
big="too large: expected at most"
for cmd in send recv bench; do
	bad_value $cmd --max-bandwidth abc "expected a number of bytes per second with an optional K, M, G or T suffix"
	bad_value $cmd --max-bandwidth 99999999T "$big 16777215T bytes per second"
	bad_value $cmd --max-bandwidth 16777216T "$big 16777215T bytes per second"
	bad_value $cmd --max-bandwidth 18446744073709551616 "$big 16777215T bytes per second"
	bad_value $cmd --max-bandwidth " 5M" "expected a number of bytes per second"
	bad_value $cmd --max-bandwidth "5M " "expected a number of bytes per second"
	bad_value $cmd --max-bandwidth 1 "too small: expected 0 (no limit) or at least 4K bytes per second (one page per second at a page size of 4096)"
	bad_value $cmd --max-bandwidth 4095 "too small: expected 0 (no limit) or at least 4K"
	bad_value $cmd --max-bandwidth 511 "too small: expected 0 (no limit) or at least 512 bytes per second" --page-size 512
	bad_value $cmd -c abc "expected a whole number of channels from 1 to 64"
	bad_value $cmd -c 99999999999999999999 "$big 64 channels"
	bad_value $cmd --channels " 4" "expected a whole number of channels from 1 to 64"
	bad_value $cmd --timeout 86401 "$big 86400 seconds"
	bad_value $cmd --timeout 99999999999999999999 "$big 86400 seconds"
	bad_value $cmd --timeout " 5" "expected a whole number of seconds from 0 to 86400"
	bad_value $cmd --timeout "5 " "expected a whole number of seconds from 0 to 86400"
	bad_value $cmd --page-size 131072 "$big 64K bytes"
	bad_value $cmd --pages-per-packet +4 "expected a whole number of pages from 1 to 1024"
	bad_value $cmd -l " 3" "expected a compression level" -m zlib
	bad_value $cmd --stats-interval " 1" "expected a number of seconds from 0.01 to 86400"
	bad_value $cmd --stats-interval 1e400 "$big 86400 seconds"
	bad_value $cmd -m lz4 "expected none, zlib or zstd"
done
bad_value recv --max-page-size 128K "$big 64K bytes"
bad_value recv --max-page-size " 4K" "expected a number of bytes"
bad_value recv --max-blob-bytes 99999999T "$big 1T bytes"
bad_value recv --max-channels 65 "$big 64 channels"
bad_value recv --methods "none," "expected methods from none, zlib and zstd"
bad_value bench --size 99999999T "$big 16777215T bytes"
bad_value bench -s " 8M" "expected a number of bytes"
bad_value bench -s 0 "expected a whole number of pages (a multiple of the page size 4096, at least one)"
bad_value bench --rounds 1000001 "$big 1000000 rounds"
bad_value bench --dirty-rate " 5" "expected a number of MiB per second" --live
bad_value bench --dirty-rate nan "expected a number of MiB per second" --live
bad_value bench --dirty-rate 2e6 "$big 1e+06 MiB per second" --live
bad_value bench --downtime 0 "too small: expected 1 to 3600000 milliseconds" --live
bad_value bench --content pink "expected random, text, zero or mixed"
bad_value send --region novalue "expected NAME=PATH"
bad_value send --blob novalue "expected NAME=FILE"
if "$MULTIFD" daemon --help >/dev/null 2>&1; then
	bad_value daemon --allow-uid " 5" "expected a whole number from 0 to 4294967294"
	bad_value daemon --allow-uid 4294967295 "$big 4294967294"
fi
expect 2 "^multifd: send: --tls needs --secret-file" \
	"$MULTIFD" send --tls tcp:127.0.0.1:1 "$src"
# the least rate works: 2 pages at 1 page per second
head -c 8192 /dev/urandom >"$dir/two"
rm -f "$dir/dst" "$dir/recv.err"
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/dst" >/dev/null \
	2>"$dir/recv.err" &
rpid=$!
if uri=$(wait_listening "$dir/recv.err"); then
	SECONDS=0
	timeout 60 "$MULTIFD" send -q --max-bandwidth 4K "$uri" "$dir/two" \
		2>"$dir/send.err"
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 0 ] && [ $rst = 0 ] && [ $SECONDS -le 15 ] &&
		cmp -s "$dir/two" "$dir/dst"; then
		ok "--max-bandwidth 4K: two pages in ${SECONDS}s"
	else
		bad "--max-bandwidth 4K: send $sst, recv $rst, ${SECONDS}s: $(cat "$dir/send.err" "$dir/recv.err")"
	fi
else
	bad "receiver did not start: $(cat "$dir/recv.err")"
	wait $rpid
fi

expect 2 "region 'a' given twice ('a=$dir/x' and 'a=$dir/y')" \
	"$MULTIFD" recv -R "a=$dir/x" -R "a=$dir/y" tcp:127.0.0.1:0
expect 2 "file '$dir/x' given for two regions" \
	"$MULTIFD" recv -R "a=$dir/x" -R "b=$dir/x" tcp:127.0.0.1:0
expect 2 "file '$dir/./x' given for two regions" \
	"$MULTIFD" recv -R "a=$dir/x" -R "b=$dir/./x" tcp:127.0.0.1:0
expect 2 "given for two regions ('a=$src' and 'b=$dir/../${dir##*/}/src')" \
	"$MULTIFD" send -R "a=$src" -R "b=$dir/../${dir##*/}/src" tcp:127.0.0.1:1
ln -s "$src" "$dir/link"
expect 2 "file '$dir/link' given for two regions" \
	"$MULTIFD" send -R "a=$src" -R "b=$dir/link" tcp:127.0.0.1:1

# secret files: only a regular file, read without blocking, kept private
mkdir "$dir/keydir"
expect 2 "multifd: send: bad --secret-file '$dir/keydir': the secret file is a directory: expected a regular file" \
	"$MULTIFD" send --secret-file "$dir/keydir" tcp:127.0.0.1:1 "$src"
if mkfifo "$dir/fifo"; then
	expect 2 "multifd: send: bad --secret-file '$dir/fifo': the secret file is a FIFO: expected a regular file" \
		"$MULTIFD" send --secret-file "$dir/fifo" tcp:127.0.0.1:1 "$src"
fi
expect 2 "multifd: send: bad --secret-file '/dev/null': the secret file is a character device: expected a regular file" \
	"$MULTIFD" send --secret-file /dev/null tcp:127.0.0.1:1 "$src"
head -c 32 /dev/urandom >"$dir/key"
for mode in 0644 0640 0604; do
	chmod "$mode" "$dir/key"
	out=$(timeout 10 "$MULTIFD" send --secret-file "$dir/key" \
		--secret-file "$dir/key" tcp:127.0.0.1:1 "$dir/none" 2>&1)
	n=$(grep -c "secret file '$dir/key' is readable by others (mode $mode): chmod 600 it" <<<"$out")
	[ "$n" = 1 ] && ok "secret file mode $mode: one warning" ||
		bad "secret file mode $mode: $n warnings: $out"
done
chmod 0600 "$dir/key"
out=$(timeout 10 "$MULTIFD" send --secret-file "$dir/key" tcp:127.0.0.1:1 \
	"$dir/none" 2>&1)
grep -q "readable by others" <<<"$out" && bad "mode 0600 warned: $out" ||
	ok "secret file mode 0600: no warning"

# the receiver's progress knows the size once the sender announced it,
# counts zero pages, and ends at it (no "round 2" for a one-pass transfer)
truncate -s 4M "$dir/half-zero"
dd if="$src" of="$dir/half-zero" conv=notrunc status=none
rm -f "$dir/pg.err" "$dir/pg.dst"
timeout 60 "$MULTIFD" recv --progress tcp:127.0.0.1:0 "$dir/pg.dst" \
	2>"$dir/pg.err" &
rpid=$!
if uri=$(wait_listening "$dir/pg.err"); then
	timeout 60 "$MULTIFD" send -q "${slow[@]}" "$uri" "$dir/half-zero"
	wait $rpid
	# stderr is a file: a line a second, no \r and no escapes in it
	last=$(grep " / " "$dir/pg.err" | tail -1)
	if grep -q "^4.0 MiB / 4.0 MiB  [0-9.]* [KMG]iB/s$" <<<"$last" &&
		! grep -q $'[\r\033]' "$dir/pg.err"; then
		ok "recv --progress into a file ends at the announced size: $last"
	else
		bad "recv --progress: the last line is '$last'"
	fi
else
	bad "recv --progress did not start: $(cat "$dir/pg.err")"
	wait $rpid
fi

report test-tool-output
