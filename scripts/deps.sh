#!/bin/bash
# deps.sh [build|test] - install the Debian packages multifd needs, only
# those missing. "build": what building and the demo need. "test": also
# what the test suite needs (the soft-RoCE guest, sanitizers, fuzzing,
# packaging: dpkg-buildpackage, lintian, rpmbuild, abidiff).
set -euo pipefail
what=${1:-build}

build_pkgs=(gcc make autoconf automake libtool pkg-config
	zlib1g-dev libzstd-dev libibverbs-dev librdmacm-dev libssl-dev
	libxxhash-dev libjson-c-dev)
test_pkgs=(libcunit1-dev python3 jq groff-base mandoc gnuplot-nox clang procps strace
	iproute2 qemu-system-x86 linux-image-amd64 busybox-static cpio
	rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest
	dpkg-dev debhelper fakeroot lintian rpm abigail-tools)

pkgs=("${build_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: run as root (or install these packages yourself)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
