#!/bin/bash
# SPDX-License-Identifier: MIT
#
# check-rxe.sh - what `make check-rxe` runs inside the rxe guest: the rdma
# test, then multifd bench over rdma and ib_write_bw with the same message
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
