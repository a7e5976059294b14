#!/bin/bash
# SPDX-License-Identifier: MIT
#
# check-rxe.sh - what `make check-rxe` runs inside the rxe guest: the rdma
# test, then multifd bench over rdma next to ib_write_bw with the same
# QPs and message size in the same guest, so that their ratio means
# something, and the tool file to file over rdma with every method.
cd /work || exit 1
status=0

echo "== test-rdma"
./test-rdma 2>&1 | grep -v '^ *$' | tail -n 40
rc=${PIPESTATUS[0]}
echo "test-rdma: exit $rc"
[ "$rc" -eq 0 ] || status=1

echo "== multifd bench over rdma, 2 channels, against ib_write_bw"
# listening LOG: the URI a receiver logs it listens on (up to 10 s)
listening() {
	local u
	for _ in $(seq 100); do
		u=$(sed -n 's/^multifd: listening on //p' "$1")
		[ -n "$u" ] && break
		sleep 0.1
	done
	echo "$u"
}
. ./lib.sh # num FILE FIELD, median (bench/lib.sh)
# json_num FIELD: the number of FIELD in /tmp/bench.json
json_num() {
	num /tmp/bench.json "$1"
}
# A slice every 64 MiB and a 1 s timeout: registering 256 MiB of fresh
# memory takes longer here, and the region exchange keeps the waiting
# end alive. Random pages: every packet is one coalesced WRITE of
# 128 pages (512 KiB), the size ib_write_bw gets below.
MFD_RDMA_SLICE=$((64 << 20)) ./multifd bench --uri "rdma:$MFD_RDMA_ADDR:0" \
	-s 256M -c 2 --timeout 1 --no-ceiling --json >/tmp/bench.json 2>&1
rc=$?
echo "multifd bench: exit $rc"
[ "$rc" -eq 0 ] || { cat /tmp/bench.json; status=1; }
for f in register_s_per_gib send_register_s_per_gib \
	recv_register_s_per_gib send_cpu_s_per_gib recv_cpu_s_per_gib \
	inline_share; do
	echo "multifd bench: $f $(json_num $f)"
done
# the first round alone: setup (registration included) is not the link's
ours=$(sed -n 's/.*"round_log":\[{\([^}]*\)}.*/\1/p' /tmp/bench.json |
	tr , '\n' | awk -F: '$1 == "\"pages\"" { p = $2 }
		$1 == "\"seconds\"" { t = $2 }
		END { if (t > 0) printf "%.2f", p * 4096 / t / 1048576 }')
echo "multifd bench: ${ours:-?} MiB/s in the round (method none, 2 channels)"

# ib_write_bw SIZE QPS ITERS: its average MiB/s (perftest's MB are MiB)
ib_bw() {
	ib_write_bw -F -R -q "$2" -s "$1" -n "$3" >/tmp/srv.log 2>&1 &
	sleep 1
	ib_write_bw -F -R -q "$2" -s "$1" -n "$3" "$MFD_RDMA_ADDR" 2>&1 |
		awk '/#bytes/ { getline; print $4 }'
	wait
}
ib512=$(ib_bw 524288 2 100)
echo "ib_write_bw -q 2 -s 524288: ${ib512:-?} MiB/s"
ib64=$(ib_bw 65536 1 1000)
echo "ib_write_bw -s 65536: ${ib64:-?} MiB/s"
[ -n "$ib512" ] && [ -n "$ib64" ] || status=1
# printed, not asserted: the guest's speed is the host's noise. (A ratio
# above 1 here likely comes from ib_write_bw polling its CQ at both ends
# on the two vCPUs the soft-RoCE driver works on; multifd sleeps on
# completion events.)
echo "$ours $ib512 $ib64" | awk '$2 > 0 && $3 > 0 {
	printf "ratio multifd / ib_write_bw: %.2f (same QPs, 512 KiB), " \
		"%.2f (against 64 KiB, 1 QP)\n", $1 / $2, $1 / $3 }'

echo "== headers inline at the default packet size: 128 adjacent pages are one run"
# (48 bytes of header + 8 of runs: within max_inline_data); before runs,
# 128 offsets made 1072 bytes and no header went inline
./multifd bench --uri "rdma:$MFD_RDMA_ADDR:0" -s 16M -c 2 \
	--no-ceiling --json >/tmp/bench.json 2>&1
rc=$?
share=$(json_num inline_share)
echo "multifd bench: exit $rc, inline_packets $(json_num inline_packets)" \
	"inline_share $share"
[ "$rc" -eq 0 ] || { cat /tmp/bench.json; status=1; }
awk -v s="${share:-0}" 'BEGIN { exit !(s >= 0.9) }' ||
	{ echo "headers inline: FAILED (share ${share:-?}, expected >= 0.9)"; status=1; }

echo "== compressed payloads: one WRITE into the landing slot, against SENDs"
# mixed pages: zstd shrinks most packets, whose payload then lands as one
# WRITE; MULTIFD_RDMA_LANDING=0 (read by the receiving end) streams them
# through the SEND ring instead. Interleaved, medians printed.
land_rates=
stream_rates=
for mode in land stream land stream land stream; do
	if [ "$mode" = land ]; then knob=1; else knob=0; fi
	MULTIFD_RDMA_LANDING=$knob ./multifd bench \
		--uri "rdma:$MFD_RDMA_ADDR:0" -s 64M -c 2 -m zstd \
		--content mixed --no-ceiling --json >/tmp/bench.json 2>&1
	rc=$?
	landed=$(json_num landed_packets)
	rate=$(json_num gib_per_s)
	echo "multifd bench zstd, $mode: exit $rc, $rate GiB/s," \
		"landed_packets ${landed:-?}"
	[ "$rc" -eq 0 ] || { cat /tmp/bench.json; status=1; }
	if [ "$mode" = land ]; then
		land_rates="$land_rates $rate"
		[ "${landed:-0}" -gt 0 ] ||
			{ echo "landing: FAILED (no payload landed)"; status=1; }
	else
		stream_rates="$stream_rates $rate"
		[ "${landed:-1}" = 0 ] ||
			{ echo "landing off: FAILED (payloads landed)"; status=1; }
	fi
done
# shellcheck disable=SC2086 # the lists split into their numbers
echo "$(printf '%s\n' $land_rates | median)" \
	"$(printf '%s\n' $stream_rates | median)" | awk '$2 > 0 {
	printf "zstd over rdma: landing %.3f GiB/s, SEND stream %.3f GiB/s, " \
		"ratio %.2f (medians of 3)\n", $1, $2, $1 / $2 }'

echo "== multifd send and recv of a file and blobs over rdma, every method"
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
# blobs travel on the byte stream, never by WRITE: one of several pieces
head -c $((3 << 20)) /dev/urandom >/tmp/blob
for m in none zlib zstd; do
	rm -rf /dev/shm/out /tmp/blobs
	mkdir /tmp/blobs
	./multifd recv --timeout 20 --blob-dir /tmp/blobs \
		"rdma:$MFD_RDMA_ADDR:0" /dev/shm/out \
		2>/tmp/recv.log &
	rpid=$!
	uri=$(listening /tmp/recv.log)
	./multifd send -q --timeout 20 -c 2 -m "$m" --blob state=/tmp/blob \
		"$uri" /dev/shm/in
	sst=$?
	wait $rpid
	rst=$?
	if [ $sst = 0 ] && [ $rst = 0 ] && cmp -s /dev/shm/in /dev/shm/out &&
		cmp -s /tmp/blob /tmp/blobs/state; then
		echo "file and blob over rdma, $m: identical"
	else
		echo "file over rdma, $m: FAILED (send $sst, recv $rst)"
		cat /tmp/recv.log
		status=1
	fi
done
rm -rf /dev/shm/in /dev/shm/out /tmp/blob /tmp/blobs

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

echo "== one session over an rdma: and a tcp: endpoint (channels of both kinds)"
# each channel goes its own way: WRITEs on the rdma ones, the stream on
# the tcp ones; rounds that rewrite pages, compressed and not
for m in none zstd; do
	./multifd bench --uri "rdma:$MFD_RDMA_ADDR:0,tcp:$MFD_RDMA_ADDR:0" \
		-s 16M -c 4 -r 3 -m "$m" --no-ceiling --json >/tmp/mixed.json 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q '"ok":true' /tmp/mixed.json; then
		echo "rdma: and tcp: endpoints, $m: identical"
	else
		echo "rdma: and tcp: endpoints, $m: FAILED ($rc)"
		cat /tmp/mixed.json
		status=1
	fi
done

echo "== TLS over tcp: kernel TLS (the guest's kernel has the tls module)"
# every channel in kTLS both ways, with and without --zero-copy (which
# kTLS serves without copying: no send may fall back), a file with the
# tool, and what TLS costs here, kTLS and OpenSSL in userspace
printf 'the secret of check-rxe.sh, 32 b\n' >/tmp/secret
chmod 600 /tmp/secret
for zc in "" --zero-copy; do
	./multifd bench -s 32M -c 2 -r 2 --tls --secret-file /tmp/secret $zc \
		--no-ceiling --json >/tmp/bench.json 2>&1
	rc=$?
	got="tls_channels $(json_num tls_channels) ktls_send_channels"
	got="$got $(json_num ktls_send_channels) ktls_recv_channels"
	got="$got $(json_num ktls_recv_channels) zerocopy_fallbacks"
	got="$got $(json_num zerocopy_fallbacks)"
	if [ $rc = 0 ] && grep -q '"ok":true' /tmp/bench.json &&
		[ "$got" = "tls_channels 2 ktls_send_channels 2 ktls_recv_channels 2 zerocopy_fallbacks 0" ]; then
		echo "kTLS bench ${zc:-(copying sends)}: identical, $got"
	else
		echo "kTLS bench ${zc:-(copying sends)}: FAILED ($rc): $got"
		cat /tmp/bench.json
		status=1
	fi
done
head -c $((16 << 20)) /dev/urandom >/dev/shm/in
./multifd recv --timeout 20 --tls --secret-file /tmp/secret \
	tcp:127.0.0.1:0 /dev/shm/out >/tmp/recv.out 2>/tmp/recv.log &
rpid=$!
uri=$(listening /tmp/recv.log)
./multifd send --timeout 20 -c 2 --tls --secret-file /tmp/secret \
	"$uri" /dev/shm/in >/tmp/send.out 2>&1
sst=$?
wait $rpid
rst=$?
if [ $sst = 0 ] && [ $rst = 0 ] && cmp -s /dev/shm/in /dev/shm/out &&
	grep -q "TLS 1.3 on 2 channels, by the kernel (kernel TLS) both ways" \
		/tmp/send.out /tmp/recv.out; then
	echo "file over kTLS with the tool: identical; $(tail -n 1 /tmp/send.out)"
else
	echo "file over kTLS with the tool: FAILED (send $sst, recv $rst)"
	cat /tmp/send.out /tmp/recv.out /tmp/recv.log
	status=1
fi
rm -f /dev/shm/out
# a receiver that times out while the sender is stopped: the sender
# reads its reason through kernel TLS (and then its close_notify)
./multifd recv --timeout 2 --tls --secret-file /tmp/secret \
	tcp:127.0.0.1:0 /dev/shm/out >/dev/null 2>/tmp/recv.log &
rpid=$!
uri=$(listening /tmp/recv.log)
./multifd send -q --timeout 20 -c 2 --max-bandwidth 4M --tls \
	--secret-file /tmp/secret "$uri" /dev/shm/in 2>/tmp/send.out &
spid=$!
sleep 1
kill -STOP $spid
sleep 3
kill -CONT $spid
wait $spid
sst=$?
wait $rpid
if [ $sst = 1 ] && grep -q "the receiver failed: .*no data for 2000 ms" /tmp/send.out; then
	echo "kTLS, receiver timed out: the sender says $(cat /tmp/send.out)"
else
	echo "kTLS, receiver timed out: FAILED (send $sst): $(cat /tmp/send.out /tmp/recv.log)"
	status=1
fi
rm -f /dev/shm/in /dev/shm/out
echo "-- what TLS costs in the guest (printed, not asserted)"
MULTIFD=./multifd bash ./bench-tls.sh -s 128M -r 1 || status=1
MULTIFD_NO_KTLS=1 MULTIFD=./multifd bash ./bench-tls.sh -s 128M -r 1 ||
	status=1

exit $status
