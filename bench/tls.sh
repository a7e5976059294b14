#!/bin/bash
# SPDX-License-Identifier: MIT
#
# tls.sh - what TLS costs: `multifd bench` without and with TLS (a
# pre-shared key, so no certificates are needed) on the same channels,
# interleaved, and the medians of the pairs: throughput of each and their
# ratio, CPU seconds per GiB of both ends together and what TLS adds.
# It says whether the kernel (kTLS) or OpenSSL in userspace encrypted;
# MULTIFD_NO_KTLS=1 in the environment forces userspace, to compare.
#
#   bench/tls.sh [-s SIZE] [-c CHANNELS] [-r PAIRS] [-u URI]
#
# Ratios, never timed assertions: the machine's speed drifts. Runs with
# busybox tools too (the rxe guest of `make check-rxe` runs it).
set -u
MULTIFD=${MULTIFD:-./multifd}
size=1G
channels=2
pairs=3
uri=tcp:127.0.0.1:0
while getopts "s:c:r:u:" o; do
	case $o in
	s) size=$OPTARG ;;
	c) channels=$OPTARG ;;
	r) pairs=$OPTARG ;;
	u) uri=$OPTARG ;;
	*) echo "usage: $0 [-s SIZE] [-c CHANNELS] [-r PAIRS] [-u URI]" >&2
	   exit 2 ;;
	esac
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf 'the secret of bench/tls.sh, 32 b\n' >"$dir/secret"
chmod 600 "$dir/secret"

# num FILE FIELD: the first number of "FIELD": in the --json object
. "$(dirname "$0")/lib.sh"
# run NAME ARGS...: one bench; appends "gib_per_s cpu_s_per_gib" to NAME
run() {
	local name=$1 j=$dir/run.json
	shift
	if ! "$MULTIFD" bench --uri "$uri" -s "$size" -c "$channels" \
		--pretouch --no-ceiling --json "$@" >"$j" 2>"$dir/err" ||
		! grep -q '"ok":true' "$j"; then
		echo "tls.sh: $name run failed: $(cat "$dir/err" "$j")" >&2
		exit 1
	fi
	echo "$(num "$j" gib_per_s) $(num "$j" send_cpu_s_per_gib) \
$(num "$j" recv_cpu_s_per_gib)" |
		awk '{ printf "%s %.4f\n", $1, $2 + $3 }' >>"$dir/$name"
	cp "$j" "$dir/$name.json"
}
for i in $(seq "$pairs"); do
	run plain
	run tls --tls --secret-file "$dir/secret"
done
# column COLUMN NAME: the median of that column of the runs of NAME
column() {
	awk -v c="$1" '{ print $c }' "$dir/$2" | median
}
kts=$(num "$dir/tls.json" ktls_send_channels)
ktr=$(num "$dir/tls.json" ktls_recv_channels)
if [ "$kts" = "$channels" ] && [ "$ktr" = "$channels" ]; then
	how="kernel TLS (kTLS) both ways"
elif [ "$kts" = 0 ] && [ "$ktr" = 0 ]; then
	how="OpenSSL in userspace"
else
	how="kTLS sending on $kts, receiving on $ktr of $channels channels"
fi
echo "tls.sh: $pairs pairs, $size, $channels channels, $uri; TLS: $how"
echo "$(column 1 plain) $(column 1 tls) $(column 2 plain) $(column 2 tls)" |
	awk '{ printf "throughput GiB/s: plaintext %.3f, TLS %.3f, " \
		"ratio TLS / plaintext %.2f (goal >= 0.5)\n", $1, $2,
		($1 > 0 ? $2 / $1 : 0)
	       printf "CPU s/GiB, both ends: plaintext %.2f, TLS %.2f, " \
		"TLS adds %.2f (goal <= 0.9)\n", $3, $4, $4 - $3 }'
