#!/bin/bash
# demo.sh - set everything up and move a 1 GiB file from a sender to a
# receiver process over 4 loopback TCP channels, in /dev/shm; check it
# with cmp and print the throughput. SIZE=... CHANNELS=... METHOD=... to change it.
#   MULTIFD=PATH  use that multifd binary: install nothing, build nothing
#                 (what tests/test-demo.sh does against a built tree)
#   NO_DEPS=1     install nothing (build.sh still builds)
# Exits 0 when the file arrived identical and the bench passed, non-zero
# otherwise; removes its directory in /dev/shm on every exit, Ctrl-C too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${MULTIFD:-}" ]; then
	bin=$MULTIFD
else
	[ "${NO_DEPS:-0}" = 1 ] || scripts/deps.sh build
	scripts/build.sh
	bin=./multifd
fi
size=${SIZE:-1G}
channels=${CHANNELS:-4}
method=${METHOD:-none}

# memory images live in memory (/dev/shm, as a hypervisor's memory-backend
# files do); a file on disk would measure the disk, not the transfer
dir=
recv_pid=
cleanup() {
	local st=$?
	# nothing here may fail: under set -e a failing command would end the
	# trap before the rm (a kill of a receiver that already exited does)
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "$recv_pid" ]; then
		kill "$recv_pid" 2>/dev/null
		wait "$recv_pid" 2>/dev/null
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	[ "$st" = 0 ] || echo "demo: failed (exit status $st)" >&2
	exit "$st"
}
trap cleanup EXIT
# a signal ends the script through the EXIT trap, with the shell's status
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
dir=$(mktemp -d -p /dev/shm multifd-demo.XXXXXX 2>/dev/null ||
	mktemp -d -t multifd-demo.XXXXXX)

head -c "$size" /dev/urandom >"$dir/image"
# the log exists before the receiver (a background job) gets to open it
: >"$dir/recv.log"
"$bin" recv --prefault "tcp:127.0.0.1:0" "$dir/received" 2>"$dir/recv.log" &
recv_pid=$!
uri=
for _ in $(seq 100); do
	uri=$(sed -n 's/^multifd: listening on //p' "$dir/recv.log")
	[ -n "$uri" ] && break
	kill -0 "$recv_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$uri" ]; then
	echo "demo: the receiver did not start listening:" >&2
	cat "$dir/recv.log" >&2
	exit 1
fi
if ! "$bin" send --channels "$channels" --method "$method" "$uri" "$dir/image"; then
	echo "demo: the sender failed; the receiver said:" >&2
	cat "$dir/recv.log" >&2
	exit 1
fi
st=0
wait "$recv_pid" || st=$?
recv_pid=
cat "$dir/recv.log"
if [ "$st" != 0 ]; then
	echo "demo: the receiver failed (exit status $st)" >&2
	exit 1
fi
cmp "$dir/image" "$dir/received"
echo "demo: the received file is identical to the sent one"
# free the memory before the bench needs as much again
rm -rf "$dir"
dir=
echo
# The same size memory to memory in one process, against plain sockets:
# file-backed pages cost a page fault each on first touch (on some virtual
# machines far more than the copy), anonymous memory gets huge pages.
"$bin" bench --size "$size" --channels "$channels" --method "$method"
