#!/bin/bash
# test-files.sh - the tool against files that change under it: a full
# tmpfs, a receiver's or sender's file truncated mid-transfer, a FILE
# whose name is taken by the end of the transfer, a refused
# session that must not touch an existing FILE, receiving onto the file
# being sent, a sparse file whose holes must not be read, inputs that are
# not regular files, and signals to the receiver. Never a signal death,
# never a lost or half-written file that looks complete.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/listening.sh"
dir=$(mktemp -d)
mnt=
cleanup() {
	kill $(jobs -p) 2>/dev/null
	wait 2>/dev/null
	[ -n "$mnt" ] && umount "$mnt" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
. "$(dirname "$0")/lib/report.sh"
# check WHAT CONDITION...: ok when the command succeeds
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
has() { grep -q -- "$2" "$1"; }

# start_recv LOG ARGS...: a receiver in the background; sets rpid, uri
start_recv() {
	local log=$1
	shift
	: >"$log"
	timeout 60 "$MULTIFD" recv "$@" 2>"$log" &
	rpid=$!
	uri=$(wait_listening "$log") || { bad "receiver did not start: $(cat "$log")"; uri=tcp:127.0.0.1:1; }
}

# send_while DELAY ACTION SEND-ARGS...: a sender in the background (its
# log in s.log); ACTION after DELAY seconds, mid-transfer; then both ends
# waited for, their exit statuses in sst and rst
send_while() {
	local delay=$1 action=$2 spid
	shift 2
	timeout 60 "$MULTIFD" send "$@" 2>"$dir/s.log" &
	spid=$!
	sleep "$delay"
	eval "$action"
	wait $spid
	sst=$?
	wait $rpid
	rst=$?
}

head -c 16M /dev/urandom >"$dir/in"
[ "$(id -u)" = 0 ] && mnt=$dir/small && mkdir -p "$mnt" &&
	mount -t tmpfs -o size=8m tmpfs "$mnt" || mnt=

# 1. a tmpfs too small for the image: exit 1 with a reason, on both ends
if [ -n "$mnt" ]; then
	# unix: too, whose sockets have no error queue to spin on
	for m in none zlib zstd unix; do
		if [ $m = unix ]; then
			rm -f "$dir/sock"
			start_recv "$dir/r.log" "unix:$dir/sock" "$mnt/out"
			m=none
		else
			start_recv "$dir/r.log" tcp:127.0.0.1:0 "$mnt/out"
		fi
		timeout 60 "$MULTIFD" send -q -m "$m" --timeout 5 "$uri" "$dir/in" \
			2>"$dir/s.log"
		sst=$?
		wait $rpid
		rst=$?
		check "full tmpfs, $m: both exit 1 (send $sst, recv $rst)" \
			[ $sst = 1 -a $rst = 1 ]
		check "full tmpfs, $m: the receiver says no space" \
			has "$dir/r.log" "no space left on $mnt"
		check "full tmpfs, $m: the sender is told why" \
			has "$dir/s.log" "the receiver failed: .*file system is full"
		check "full tmpfs, $m: no file left that looks complete" \
			[ ! -e "$mnt/out" -a -z "$(ls -A "$mnt")" ]
		rm -f "$mnt"/.* "$mnt"/* 2>/dev/null
	done
	# two files, the second on the small tmpfs: the sentence names the
	# one whose file system filled, not the first (written whole)
	head -c 4M /dev/urandom >"$dir/first"
	start_recv "$dir/r.log" tcp:127.0.0.1:0 -R a="$dir/a.out" \
		-R b="$mnt/out"
	timeout 60 "$MULTIFD" send -q --timeout 5 -R a="$dir/first" \
		-R b="$dir/in" "$uri" 2>"$dir/s.log"
	wait $rpid
	check "full tmpfs under the second of two files: it is named" \
		eval 'has "$dir/r.log" "no space left on $mnt: .$mnt/out. needs" &&
			! has "$dir/r.log" "a.out. needs"'
	rm -f "$mnt"/.* "$mnt"/* "$dir/a.out" 2>/dev/null
	# a mostly-zero image fits, but not with --prefault, which would
	# make all of it resident: refused at once, nothing left
	truncate -s 16M "$dir/sparse16"
	head -c 1M /dev/urandom | dd of="$dir/sparse16" conv=notrunc status=none
	for pre in "" --prefault; do
		# shellcheck disable=SC2086 # $pre: an option or none
		start_recv "$dir/r.log" $pre tcp:127.0.0.1:0 "$mnt/out"
		timeout 60 "$MULTIFD" send -q --timeout 5 "$uri" "$dir/sparse16" \
			2>"$dir/s.log"
		sst=$?
		wait $rpid
		rst=$?
		if [ -z "$pre" ]; then
			check "sparse image onto a small tmpfs: received (send $sst, recv $rst)" \
				cmp -s "$dir/sparse16" "$mnt/out"
		else
			check "sparse image onto a small tmpfs, --prefault: refused (send $sst, recv $rst)" \
				eval '[ $sst = 1 -a $rst = 1 ] && has "$dir/r.log" "prefault makes every page resident: receive without it"'
			check "sparse image onto a small tmpfs, --prefault: nothing left" \
				[ -z "$(ls -A "$mnt")" ]
		fi
		rm -f "$mnt"/.* "$mnt"/* 2>/dev/null
	done
else
	echo "skip: the full-tmpfs cases need root"
fi

# 2. the receiver's file truncated by another process mid-transfer
for m in none zstd; do
	cp "$dir/in" "$dir/dst"
	start_recv "$dir/r.log" --inplace tcp:127.0.0.1:0 "$dir/dst"
	send_while 0.7 'truncate -s 4M "$dir/dst"' -q -m "$m" -c 2 \
		--max-bandwidth 8M "$uri" "$dir/in"
	check "receiver's file truncated, $m: both exit 1 (send $sst, recv $rst)" \
		[ $sst = 1 -a $rst = 1 ]
	check "receiver's file truncated, $m: the receiver says so" \
		has "$dir/r.log" "was truncated by another process to 4194304 bytes"
	check "receiver's file truncated, $m: in-place content is said to be mixed" \
		has "$dir/r.log" "hold a mix"
done

# 3. the sender's file truncated mid-send; half of each page compresses,
# so that zstd reads the pages itself (a raw packet is read by the kernel);
# none without zero-page detection sends them with sendfile(), unmapped
python3 -c '
import os, sys
with open(sys.argv[1], "wb") as f:
    for _ in range(4096):
        f.write(os.urandom(2048) + b"a" * 2048)' "$dir/half"
# (one channel too: the packet sendfile() could not finish goes padded,
# so that the reason behind it reaches the receiver)
for m in none zstd "none --no-zero-detect" "none --no-zero-detect -c 1"; do
	cp "$dir/half" "$dir/src"
	start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/out"
	# shellcheck disable=SC2086 # $m: the method and options
	send_while 0.7 'truncate -s 4M "$dir/src"' -q -c 2 -m $m \
		--max-bandwidth 8M "$uri" "$dir/src"
	check "sender's file truncated, $m: the sender exits 1 ($sst)" [ $sst = 1 ]
	check "sender's file truncated, $m: it says the file shrank" \
		has "$dir/s.log" "shrank from 16777216 to 4194304 bytes"
	check "sender's file truncated, $m: the receiver is told why" \
		has "$dir/r.log" "the sender failed: .*shrank\|the sender failed: .*cannot be read"
	rm -f "$dir/out"
done

# and one that grows mid-send: its first 16 MiB arrive, both exit 0, and
# the sender warns that the rest did not go
cp "$dir/half" "$dir/src"
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/out"
send_while 0.7 'head -c 4M /dev/urandom >>"$dir/src"' -q -c 2 \
	--max-bandwidth 8M "$uri" "$dir/src"
check "sender's file grown: both exit 0 (send $sst, recv $rst)" \
	[ $sst = 0 -a $rst = 0 ]
check "sender's file grown: its first 16 MiB arrived" \
	cmp -s "$dir/half" "$dir/out"
check "sender's file grown: the sender warns" \
	has "$dir/s.log" "warning: '$dir/src' grew from 16777216 to 20971520 bytes while it was being sent: the receiver has its first 16777216 bytes"
rm -f "$dir/out"

# several files: one that cannot take its name (its old file immutable)
# makes the others give theirs back: all or nothing
echo old-a >"$dir/ma"
echo old-b >"$dir/mb"
if chattr +i "$dir/mb" 2>/dev/null; then
	chattr -i "$dir/mb"
	cp "$dir/in" "$dir/in2"
	start_recv "$dir/r.log" tcp:127.0.0.1:0 -R a="$dir/ma" -R b="$dir/mb"
	send_while 0.5 'chattr +i "$dir/mb"' -q -c 2 --max-bandwidth 16M \
		-R a="$dir/in" -R b="$dir/in2" "$uri"
	chattr -i "$dir/mb"
	check "one of two files cannot take its name: both exit 1 (send $sst, recv $rst)" \
		[ $sst = 1 -a $rst = 1 ]
	check "one of two files cannot take its name: both files as they were" \
		eval '[ "$(cat "$dir/ma")" = old-a ] && [ "$(cat "$dir/mb")" = old-b ]'
	check "one of two files cannot take its name: the receiver names it" \
		has "$dir/r.log" "cannot receive into '$dir/mb': it is immutable (chattr +i)"
	check "one of two files cannot take its name: no temporary file left" \
		[ -z "$(ls -A "$dir" | grep '^\.m[ab]')" ]
	# known before listening: an immutable FILE, an append-only directory
	chattr +i "$dir/mb"
	timeout 10 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/mb" 2>"$dir/r2.log"
	rst=$?
	chattr -i "$dir/mb"
	check "an immutable FILE: refused before listening ($rst)" eval '[ $rst = 1 ] &&
		has "$dir/r2.log" "cannot receive into '\''$dir/mb'\'': it is immutable (chattr +i), so the new file could not take its name at the end"'
	chattr +a "$dir/mb"
	timeout 10 "$MULTIFD" recv --inplace tcp:127.0.0.1:0 "$dir/mb" 2>"$dir/r2.log"
	rst=$?
	chattr -a "$dir/mb"
	check "an append-only FILE in place: refused before listening ($rst)" eval '[ $rst = 1 ] &&
		has "$dir/r2.log" "cannot write '\''$dir/mb'\'' in place: it is append-only (chattr +a)"'
	mkdir "$dir/ad"
	chattr +a "$dir/ad"
	timeout 10 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/ad/new" 2>"$dir/r2.log"
	rst=$?
	chattr -a "$dir/ad"
	rmdir "$dir/ad"
	check "a FILE in an append-only directory: refused before listening ($rst)" eval '[ $rst = 1 ] &&
		has "$dir/r2.log" "its directory is append-only (chattr +a)"'
	rm -f "$dir/in2"
else
	echo "skip: all-or-nothing commit needs chattr +i here"
fi
rm -f "$dir/ma" "$dir/mb"

# 4. FILE cannot take its name at the end (a directory took its place):
# the sender is told before it reports success, both exit 1, and the
# received pages are not left behind under another name
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/late"
send_while 0.5 'mkdir "$dir/late" && : >"$dir/late/x"' -q -c 2 \
	--max-bandwidth 16M "$uri" "$dir/in"
check "FILE's name taken at the end: both exit 1 (send $sst, recv $rst)" \
	[ $sst = 1 -a $rst = 1 ]
check "FILE's name taken at the end: the sender says the commit failed" \
	has "$dir/s.log" "cannot commit: '$dir/late' is a directory"
check "FILE's name taken at the end: the receiver says so" \
	has "$dir/r.log" "'$dir/late' is a directory"
check "FILE's name taken at the end: no temporary file left" \
	[ -z "$(ls -A "$dir" | grep '^\.late')" ]
rm -rf "$dir/late"
# two regions, the second one's name taken: the first FILE stays as it was
echo old >"$dir/ra"
cp "$dir/in" "$dir/in2"
start_recv "$dir/r.log" tcp:127.0.0.1:0 -R a="$dir/ra" -R b="$dir/rb"
send_while 0.5 'mkdir "$dir/rb"' -q -c 2 --max-bandwidth 16M \
	-R a="$dir/in" -R b="$dir/in2" "$uri"
check "second FILE's name taken: both exit 1 (send $sst, recv $rst)" \
	[ $sst = 1 -a $rst = 1 ]
check "second FILE's name taken: the first FILE is as it was" \
	[ "$(cat "$dir/ra")" = old ]
rm -rf "$dir/ra" "$dir/rb" "$dir/in2"
# in place: FILE removed mid-transfer, its pages would be lost
cp "$dir/in" "$dir/keep2"
start_recv "$dir/r.log" --inplace tcp:127.0.0.1:0 "$dir/keep2"
send_while 0.5 'rm "$dir/keep2"' -q -c 2 --max-bandwidth 16M "$uri" \
	"$dir/in"
check "in-place FILE removed: both exit 1 (send $sst, recv $rst)" \
	[ $sst = 1 -a $rst = 1 ]
check "in-place FILE removed: the sender is told" \
	has "$dir/s.log" "was removed or replaced during the transfer"
check "in-place FILE removed: every page arrived, no mix is claimed" \
	has "$dir/r.log" "every page arrived in the files received in place, but the session failed"

# 5. a refused session leaves an existing FILE as it was
head -c 1M /dev/urandom >"$dir/keep"
cp "$dir/keep" "$dir/keep.orig"
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/keep"
head -c 64K /dev/urandom >"$dir/a"
head -c 64K /dev/urandom >"$dir/b"
timeout 60 "$MULTIFD" send -q -R a="$dir/a" -R b="$dir/b" "$uri" 2>"$dir/s.log"
sst=$?
wait $rpid
check "refused session: the sender exits 1 ($sst)" [ $sst = 1 ]
check "refused session: the sender says why" has "$dir/s.log" "second region"
check "refused session: FILE untouched" cmp -s "$dir/keep" "$dir/keep.orig"
check "refused session: the reason printed once" \
	[ "$(grep -c "second region" "$dir/r.log")" = 1 ]
check "refused session: nothing else left in the directory" \
	[ -z "$(ls -A "$dir" | grep multifd)" ]

# a --region the sender does not send: refused at the handshake, on both
# ends, and no file of it or of the others is created
rm -f "$dir/ra" "$dir/rb"
start_recv "$dir/r.log" -R a="$dir/ra" -R b="$dir/rb" tcp:127.0.0.1:0
timeout 60 "$MULTIFD" send -q -R a="$dir/a" "$uri" 2>"$dir/s.log"
sst=$?
wait $rpid
rst=$?
check "a region not sent: both exit 1 (send $sst, recv $rst)" [ $sst = 1 -a $rst = 1 ]
check "a region not sent: the sender is told which" \
	has "$dir/s.log" "region 'b' was not sent by the sender"
check "a region not sent: no file created" [ ! -e "$dir/ra" -a ! -e "$dir/rb" ]

# a killed sender: FILE as it was, and no complete-looking new file
# (multifd runs without `timeout` here, so that the signal reaches it)
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/keep"
"$MULTIFD" send -q --max-bandwidth 4M "$uri" "$dir/in" 2>/dev/null &
spid=$!
sleep 0.7
kill -9 $spid
wait $rpid
rst=$?
check "killed sender: the receiver exits 1 ($rst)" [ $rst = 1 ]
check "killed sender: FILE untouched" cmp -s "$dir/keep" "$dir/keep.orig"

# held SYSCALL MICROSECONDS ARGS...: multifd ARGS with each SYSCALL held
# that long by strace, which it becomes (run it with &: $! is strace,
# multifd its child). LeakSanitizer does not run under ptrace: off
held() {
	local at=$1 us=$2
	shift 2
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		exec strace -f -qq -o /dev/null -e trace="$at" \
		-e inject="$at":delay_enter="$us" "$MULTIFD" "$@"
}

# signal_sender_in_writeout SIG: a 1 MiB transfer into $dir/keep whose
# receiver's msync strace holds 3 s; SIG to the sender meanwhile, once
# every page is in; the receiver's status in rst, its log in r.log
signal_sender_in_writeout() {
	: >"$dir/r.log"
	held msync 3000000 recv tcp:127.0.0.1:0 "$dir/keep" 2>"$dir/r.log" &
	rpid=$!
	uri=$(wait_listening "$dir/r.log")
	"$MULTIFD" send -q "$uri" "$dir/small-in" 2>/dev/null &
	spid=$!
	sleep 1.5
	kill -"$1" $spid
	wait $rpid
	rst=$?
}

# a sender killed or stopped while the receiver writes its file out: the
# receiver sees it before the rename, so FILE keeps its old content and
# both fail (strace must be able to trace here: a container may forbid
# ptrace)
if command -v strace >/dev/null && strace -f -qq -o /dev/null true 2>/dev/null; then
	head -c 1M /dev/urandom >"$dir/small-in"
	signal_sender_in_writeout KILL
	check "sender killed during the write-out: the receiver exits 1 ($rst)" \
		[ $rst = 1 ]
	check "sender killed during the write-out: FILE untouched" \
		cmp -s "$dir/keep" "$dir/keep.orig"
	check "sender killed during the write-out: the receiver says so" \
		has "$dir/r.log" "the sender left while the files were written out"
	check "sender killed during the write-out: no temporary file left" \
		[ -z "$(ls -A "$dir" | grep multifd)" ]
	# SIGTERM to the sender: it says why before it leaves
	signal_sender_in_writeout TERM
	check "sender stopped during the write-out: FILE untouched ($rst)" \
		eval '[ $rst = 1 ] && cmp -s "$dir/keep" "$dir/keep.orig"'
	check "sender stopped during the write-out: the receiver says why" \
		has "$dir/r.log" "the sender failed: it was stopped by a signal (SIGTERM)"
	# a signal to the receiver then: stopped before the renames; a
	# signal during the renames (held 2 s) is too late: FILE is new
	for at in msync renameat2; do
		: >"$dir/r.log"
		held $at 2000000 recv tcp:127.0.0.1:0 "$dir/keep" 2>"$dir/r.log" &
		rpid=$!
		uri=$(wait_listening "$dir/r.log")
		timeout 60 "$MULTIFD" send -q "$uri" "$dir/small-in" 2>"$dir/s.log" &
		spid=$!
		sleep 1
		kill -TERM $(pgrep -P $rpid)
		wait $rpid
		rst=$?
		wait $spid
		sst=$?
		if [ $at = msync ]; then
			check "SIGTERM during the write-out: both fail ($sst $rst)" \
				eval '[ $sst = 1 ] && [ $rst = 143 ]'
			check "SIGTERM during the write-out: FILE untouched" \
				cmp -s "$dir/keep" "$dir/keep.orig"
			check "SIGTERM during the write-out: said on both ends" \
				eval 'has "$dir/r.log" "stopped by a signal (SIGTERM)" &&
				has "$dir/s.log" "stopped by a signal (SIGTERM) before the files took their names"'
		else
			check "SIGTERM during the renames: too late, both succeed ($sst $rst)" \
				eval '[ $sst = 0 ] && [ $rst = 0 ]'
			check "SIGTERM during the renames: FILE replaced" \
				cmp -s "$dir/keep" "$dir/small-in"
			check "SIGTERM during the renames: said" has "$dir/r.log" \
				"SIGTERM came after the files took their names"
			cp "$dir/keep.orig" "$dir/keep"
		fi
	done
else
	echo "skip: sender killed during the write-out (no strace, or it cannot trace here)"
fi

# SIGINT and SIGTERM to the receiver mid-transfer: FILE as it was
for sig in INT TERM; do
	: >"$dir/r.log"
	"$MULTIFD" recv tcp:127.0.0.1:0 "$dir/keep" 2>"$dir/r.log" &
	rpid=$!
	uri=$(wait_listening "$dir/r.log")
	timeout 60 "$MULTIFD" send -q --max-bandwidth 4M "$uri" "$dir/in" 2>/dev/null &
	spid=$!
	sleep 0.7
	kill -$sig $rpid
	wait $rpid
	rst=$?
	wait $spid
	check "SIG$sig to the receiver: it says so and exits >128 ($rst)" \
		eval '[ $rst -gt 128 ] && has "$dir/r.log" "recv: stopped by a signal (SIG$sig)"' 
	check "SIG$sig to the receiver: FILE untouched" \
		cmp -s "$dir/keep" "$dir/keep.orig"
	check "SIG$sig to the receiver: no temporary file left" \
		[ -z "$(ls -A "$dir" | grep multifd)" ]
done

# a successful session replaces FILE, keeping its mode
chmod 600 "$dir/keep"
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/keep"
timeout 60 "$MULTIFD" send -q "$uri" "$dir/in"
wait $rpid
check "success: FILE replaced" cmp -s "$dir/keep" "$dir/in"
check "success: its mode kept" [ "$(stat -c %a "$dir/keep")" = 600 ]

# in place into a directory that takes no new files, as a user who may
# write the file but not the directory (root may write anywhere)
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	chmod 711 "$dir" && "${nobody[@]}" "$MULTIFD" --version >/dev/null 2>&1; then
	mkdir -p "$dir/ro"
	head -c "$(stat -c %s "$dir/in")" /dev/zero >"$dir/ro/f"
	chmod 666 "$dir/ro/f"
	chmod 555 "$dir/ro"
	: >"$dir/ro.log"
	timeout 60 "${nobody[@]}" "$MULTIFD" recv -q --inplace --timeout 10 \
		tcp:127.0.0.1:0 "$dir/ro/f" 2>"$dir/ro.log" &
	rpid=$!
	uri=$(wait_listening "$dir/ro.log") || uri=tcp:127.0.0.1:1
	timeout 60 "$MULTIFD" send -q "$uri" "$dir/in" 2>"$dir/s.log"
	sst=$?
	wait $rpid
	rst=$?
	check "in place, the directory not writable: received (send $sst, recv $rst: $(cat "$dir/ro.log"))" \
		cmp -s "$dir/in" "$dir/ro/f"
	# and a file the user may not write: said before listening
	chmod 444 "$dir/ro/f"
	out=$(timeout 10 "${nobody[@]}" "$MULTIFD" recv --inplace --timeout 5 \
		tcp:127.0.0.1:0 "$dir/ro/f" 2>&1)
	st=$?
	check "in place, the file not writable: refused before listening ($st: $out)" \
		eval '[ $st = 1 ] && grep -q "cannot write .* in place: Permission denied" <<<"$out" && ! grep -q listening <<<"$out"'
	chmod 755 "$dir/ro"
	rm -rf "$dir/ro"
else
	echo "skip: in place into a read-only directory needs root and setpriv"
fi

# 6. receiving onto the file being sent is refused, both ways round
cp "$dir/in" "$dir/same"
touch -d @1000000000 "$dir/same"
same_id=$(stat -c '%i %Y %s' "$dir/same")
start_recv "$dir/r.log" --inplace tcp:127.0.0.1:0 "$dir/same"
timeout 60 "$MULTIFD" send -q "$uri" "$dir/same" 2>"$dir/s.log"
sst=$?
wait $rpid
check "same file, in place: refused ($sst)" eval '[ $sst = 1 ] &&
	has "$dir/s.log" "is being sent by another multifd process"'
check "same file, in place: the file untouched" \
	[ "$(stat -c '%i %Y %s' "$dir/same")" = "$same_id" ]
# and a receiver that would replace a file being sent
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/out1"
timeout 60 "$MULTIFD" send -q --max-bandwidth 4M "$uri" "$dir/same" 2>/dev/null &
spid=$!
r1=$rpid
sleep 0.3
# (refused before it listens)
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/same" 2>"$dir/r2.log"
rst=$?
check "replacing a file being sent: refused ($rst)" eval '[ $rst = 1 ] &&
	has "$dir/r2.log" "is being sent by another multifd process"'
wait $spid $r1
check "replacing a file being sent: the file is as it was" \
	cmp -s "$dir/same" "$dir/in"
check "replacing a file being sent: the first transfer completes" \
	cmp -s "$dir/out1" "$dir/in"
# and a second receiver in place onto a file one is receiving into
head -c "$(stat -c %s "$dir/in")" /dev/zero >"$dir/twice"
start_recv "$dir/r.log" --inplace tcp:127.0.0.1:0 "$dir/twice"
timeout 60 "$MULTIFD" send -q --max-bandwidth 4M "$uri" "$dir/in" 2>/dev/null &
spid=$!
r1=$rpid
sleep 0.5
timeout 60 "$MULTIFD" send -q -c 1 tcp:127.0.0.1:1 "$dir/twice" 2>"$dir/s2.log"
# (refused before it listens)
timeout 60 "$MULTIFD" recv --inplace --timeout 2 tcp:127.0.0.1:0 "$dir/twice" \
	2>"$dir/r2.log"
rst=$?
check "two receivers in place: the second refused ($rst)" eval '[ $rst = 1 ] &&
	has "$dir/r2.log" "is being received into by another multifd process: two receivers would mix their pages"'
check "sending a file being received into: refused" \
	has "$dir/s2.log" "is being received into by another multifd process: expected a file nobody writes"
wait $spid $r1
check "two receivers in place: the first transfer completes" \
	cmp -s "$dir/twice" "$dir/in"
# and two receivers of one new FILE: the second is refused before it
# listens (the later rename would win), however the path is spelt; the
# claim goes with its process, even SIGKILLed
rm -f "$dir/new1"
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/new1"
r1=$rpid
# (a third and fourth are told the pid too)
for i in 1 2 3; do
	timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/new1" 2>/dev/null
done
timeout 60 "$MULTIFD" recv tcp:127.0.0.1:0 "$dir/../$(basename "$dir")/new1" \
	2>"$dir/r2.log"
rst=$?
check "two receivers of one new FILE: the second refused ($rst)" eval '[ $rst = 1 ] &&
	has "$dir/r2.log" "is being received by another multifd process (pid $(pgrep -P $r1)): two receivers would replace each other"'
timeout 60 "$MULTIFD" send -q "$uri" "$dir/in" 2>"$dir/s.log"
sst=$?
wait $r1
check "two receivers of one new FILE: the first transfer completes ($sst)" \
	cmp -s "$dir/new1" "$dir/in"
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/new1"
pkill -KILL -P $rpid # the receiver under timeout
wait $rpid 2>/dev/null
start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/new1"
r1=$rpid
timeout 60 "$MULTIFD" send -q "$uri" "$dir/in" 2>"$dir/s.log"
sst=$?
wait $r1
rst=$?
check "a receiver after one SIGKILLed: the name is free again ($sst $rst)" \
	eval '[ $sst = 0 ] && [ $rst = 0 ]'

# 7. a sparse file: the holes are never read (tmpfs would allocate them)
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	sp=$(mktemp -p /dev/shm multifd-test-sparse.XXXXXX)
	truncate -s 8G "$sp"
	dd if="$dir/in" of="$sp" bs=1M count=4 seek=4096 conv=notrunc status=none
	start_recv "$dir/r.log" tcp:127.0.0.1:0 "$dir/sparse-out"
	timeout 120 "$MULTIFD" send -q -c 2 "$uri" "$sp" 2>"$dir/s.log"
	sst=$?
	wait $rpid
	kib=$(du -k "$sp" | cut -f1)
	check "sparse: sent ($sst)" [ $sst = 0 ]
	check "sparse: the sender allocated no hole (${kib} KiB resident)" \
		[ "$kib" -le 8192 ]
	check "sparse: received identical" cmp -s "$sp" "$dir/sparse-out"
	rm -f "$sp" "$dir/sparse-out"
fi

# 13. inputs that are not regular files
mkdir "$dir/adir"
mkfifo "$dir/fifo"
out=$(timeout 10 "$MULTIFD" send tcp:127.0.0.1:1 "$dir/adir" 2>&1)
check "a directory as input: named as such ($?)" grep -q "is a directory" <<<"$out"
out=$(timeout 10 "$MULTIFD" send tcp:127.0.0.1:1 "$dir/fifo" 2>&1)
st=$?
check "a FIFO as input: refused at once, not a hang ($st)" \
	eval '[ $st = 1 ] && grep -q "is a FIFO" <<<"$out"' 

# destinations that cannot be written: said before listening, not once a
# sender has come
for d in "$dir/none/file" "$dir/adir" "$dir/fifo" /dev/null; do
	out=$(timeout 10 "$MULTIFD" recv tcp:127.0.0.1:0 "$d" 2>&1)
	st=$?
	check "destination $d: refused at once ($st)" \
		eval '[ $st = 1 ] && ! grep -q listening <<<"$out"'
done

report test-files
