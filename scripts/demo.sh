#!/bin/bash
# demo.sh - set everything up and move a 1 GiB file from a sender to a
# receiver process over 4 loopback TCP channels, in /dev/shm; check it
# with cmp and print the throughput. SIZE=... CHANNELS=... METHOD=... to change it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/build.sh
size=${SIZE:-1G}
channels=${CHANNELS:-4}
method=${METHOD:-none}
# memory images live in memory (/dev/shm, as a hypervisor's memory-backend
# files do); a file on disk would measure the disk, not the transfer
dir=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT

head -c "$size" /dev/urandom >"$dir/image"
./multifd recv --prefault "tcp:127.0.0.1:0" "$dir/received" 2>"$dir/recv.log" &
for _ in $(seq 100); do
	uri=$(sed -n 's/^multifd: listening on //p' "$dir/recv.log")
	[ -n "$uri" ] && break
	sleep 0.1
done
./multifd send --channels "$channels" --method "$method" "$uri" "$dir/image"
wait %1
cat "$dir/recv.log"
cmp "$dir/image" "$dir/received"
echo "demo: the received file is identical to the sent one"
echo
# The same size memory to memory in one process, against plain sockets:
# file-backed pages cost a page fault each on first touch (on some virtual
# machines far more than the copy), anonymous memory gets huge pages.
./multifd bench --size "$size" --channels "$channels" --method "$method"
