#!/bin/bash
# SPDX-License-Identifier: MIT
#
# check-rxe.sh - what `make check-rxe` runs inside the rxe guest: the rdma
# test, then multifd bench over rdma, the tool file to file over rdma with
# every method, and ib_write_bw with the same message
# size in the same guest, so that their ratio means something.
cd /work || exit 1
status=0

echo "== test-rdma"
./test-rdma 2>&1 | grep -v '^ *$' | tail -n 40
rc=${PIPESTATUS[0]}
echo "test-rdma: exit $rc"
[ "$rc" -eq 0 ] || status=1

echo "== multifd bench over rdma"
./multifd bench --uri "rdma:$MFD_RDMA_ADDR:0" -s 64M -c 2 --no-ceiling 2>&1
rc=$?
echo "multifd bench: exit $rc"
[ "$rc" -eq 0 ] || status=1

echo "== multifd send and recv of a file over rdma, every method"
# the tool maps its input read-only: the sender's registration must not
# ask for write access; files on tmpfs, as hypervisors' memory is
# (the guest's tools are busybox's: no size suffixes, no mountpoint)
mkdir -p /dev/shm
grep -q " /dev/shm " /proc/mounts || mount -t tmpfs tmpfs /dev/shm
{
	head -c $((8 << 20)) /dev/urandom
	head -c $((4 << 20)) /dev/zero
	yes "pages of text compress" | head -c $((4 << 20))
} >/dev/shm/in
for m in none zlib zstd; do
	rm -f /dev/shm/out
	./multifd recv --timeout 20 "rdma:$MFD_RDMA_ADDR:0" /dev/shm/out \
		2>/tmp/recv.log &
	rpid=$!
	uri=
	for _ in $(seq 100); do
		uri=$(sed -n 's/^multifd: listening on //p' /tmp/recv.log)
		[ -n "$uri" ] && break
		sleep 0.1
	done
	./multifd send -q --timeout 20 -c 2 -m "$m" "$uri" /dev/shm/in
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 0 ] && [ $rst = 0 ] && cmp -s /dev/shm/in /dev/shm/out; then
		echo "file over rdma, $m: identical"
	else
		echo "file over rdma, $m: FAILED (send $sst, recv $rst)"
		cat /tmp/recv.log
		status=1
	fi
done
rm -f /dev/shm/in /dev/shm/out

echo "== live precopy over rdma with checksums: pages rewritten mid-round"
for m in none zstd; do
	./multifd bench --uri "rdma:$MFD_RDMA_ADDR:0" --live -s 16M -c 2 -m "$m" \
		--checksum --dirty-rate 2000 --no-ceiling >/tmp/live.log 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "verified: identical" /tmp/live.log; then
		echo "live over rdma, $m --checksum: identical"
	else
		echo "live over rdma, $m --checksum: FAILED ($rc)"
		cat /tmp/live.log
		status=1
	fi
done

echo "== ib_write_bw, 64 KiB messages"
ib_write_bw -F -R -s 65536 -n 1000 >/tmp/srv.log 2>&1 &
sleep 1
ib_write_bw -F -R -s 65536 -n 1000 "$MFD_RDMA_ADDR" 2>&1 |
	awk '/#bytes/ { getline; print "ib_write_bw: " $4 " MB/s average" }'
rc=${PIPESTATUS[0]}
wait
echo "ib_write_bw: exit $rc"
[ "$rc" -eq 0 ] || status=1
exit $status
