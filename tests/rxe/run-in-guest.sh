#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-in-guest.sh - run a command inside a small QEMU (TCG) guest that boots
# the host's Debian kernel and has a soft-RoCE (rdma_rxe) device, because the
# host kernel has no RDMA at all. See /work/shared/rxe-vm.md for why each
# step is the way it is.
#
#   tests/rxe/run-in-guest.sh [--timeout S] [--mem MIB]
#           [--file HOSTPATH[:GUESTPATH]]... -- COMMAND...
#
# The command runs in /work in the guest (files without GUESTPATH land
# there too) with MFD_RDMA_ADDR set to the IPv4 address of the netdev under
# rxe0. Its stdout, stderr and exit status come back over extra serial
# ports; the script exits with that status, 77 when qemu or the kernel is
# missing, 124 when the guest ran past the timeout (qemu is killed).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${MFD_RXE_OUT:-$here/out}
timeout=300
mem=2048
files=()

usage() {
	echo "usage: $0 [--timeout S] [--mem MIB] [--file HOST[:GUEST]]..." \
		"-- COMMAND..." >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || usage

skip() {
	echo "run-in-guest: SKIP: $*" >&2
	exit 77
}

qemu=$(command -v qemu-system-x86_64) ||
	skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
[ -n "$kernel" ] && [ -r "$kernel" ] ||
	skip "no readable /boot/vmlinuz-* (apt-get install linux-image-amd64)"
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || skip "no $moddir/modules.dep"
for t in busybox cpio bash dash ip rdma; do
	command -v $t >/dev/null || skip "$t not found"
done
[ -f /etc/libibverbs.d/rxe.driver ] ||
	skip "no rxe provider (apt-get install ibverbs-providers)"

mkdir -p "$out"
lock=$out/.lock
exec 9>"$lock"
# one guest at a time: the host is shared and TCG is slow enough
flock 9

# Copy a host file into root $1 (at $3, or at its own path), with every
# library ldd finds for it in the guest's library directory, wherever it
# was found (a build tree's .libs included).
put() {
	local root=$1 src=$2 dst=${3:-}
	local lib to

	[ -n "$dst" ] || dst=$(realpath -s "$src")
	mkdir -p "$root/$(dirname "$dst")" "$root/usr/lib64" \
		"$root/usr/lib/x86_64-linux-gnu"
	cp -L "$src" "$root/$dst"
	ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}' |
	while read -r lib; do
		case $lib in
		*/ld-linux*) to=/usr/lib64 ;;
		*) to=/usr/lib/x86_64-linux-gnu ;;
		esac
		to=$to/$(basename "$lib")
		[ -e "$root$to" ] || cp -L "$lib" "$root$to"
	done
}

# The base image: tools, libraries, provider and modules. Cached per
# kernel and per version of this script.
base=$out/base-$kver.cpio.gz
if [ ! -f "$base" ] || [ "$base" -ot "$0" ]; then
	echo "run-in-guest: building $base" >&2
	root=$(mktemp -d "$out/root.XXXXXX")
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} \
		"$root"/{proc,sys,dev,tmp,work,etc/libibverbs.d,modules}
	for d in bin sbin lib lib64; do ln -s usr/$d "$root/$d"; done
	cp "$(command -v busybox)" "$root/usr/bin/busybox"
	for a in $("$root/usr/bin/busybox" --list); do
		[ -e "$root/usr/bin/$a" ] || ln -s busybox "$root/usr/bin/$a"
	done
	for t in dash bash ip tc rdma ibv_devices ibv_devinfo ib_write_bw \
		ib_send_bw rping; do
		p=$(command -v $t) || continue
		rm -f "$root/usr/bin/$t"
		put "$root" "$p" "/usr/bin/$t"
	done
	ln -sf dash "$root/usr/bin/sh"
	# glibc dlopen()s libgcc_s at thread exit; rdma_cm users abort
	# without it
	put "$root" /lib/x86_64-linux-gnu/libgcc_s.so.1
	put "$root" /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
	cp /etc/libibverbs.d/rxe.driver "$root/etc/libibverbs.d/"
	# dependency order, see rxe-vm.md: crc32_generic is asked for by
	# name when a device is created, modules.dep does not list it; the
	# same for gcm(aes) and its parts, which kernel TLS asks for
	for m in crc32_generic udp_tunnel ip6_udp_tunnel ib_core ib_uverbs \
		rdma_rxe configfs ib_cm iw_cm rdma_cm rdma_ucm veth sch_netem \
		gf128mul ghash-generic ctr gcm tls; do
		f=$(grep -E "(^|/)$m\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" |
			cut -d: -f1)
		[ -n "$f" ] || skip "module $m not in $moddir"
		case $f in
		*.xz) xz -dc "$moddir/$f" ;;
		*.zst) zstd -dc "$moddir/$f" ;;
		*) cat "$moddir/$f" ;;
		esac >"$root/modules/$m.ko"
		echo "$m" >>"$root/modules/order"
	done
	cp "$here/guest-init.sh" "$root/init"
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$base.tmp"
	mv "$base.tmp" "$base"
	rm -rf "$root"
	trap - EXIT
fi

# The per-run part: the command and the files, appended uncompressed.
run=$(mktemp -d "$out/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/root/work"
for f in "${files[@]}"; do
	src=${f%%:*}
	dst=${f#*:}
	[ "$dst" != "$f" ] || dst=/work/$(basename "$src")
	[ -e "$src" ] || { echo "run-in-guest: no file $src" >&2; exit 2; }
	put "$run/root" "$src" "$dst"
	chmod +x "$run/root/$dst" 2>/dev/null || true
done
{
	echo "#!/bin/bash"
	printf '%q ' "$@"
	echo
} >"$run/root/cmd"
chmod +x "$run/root/cmd"
# an uncompressed cpio appended to a compressed one starts on 4 bytes
cp "$base" "$run/initrd"
pad=$(( (4 - $(stat -c %s "$run/initrd") % 4) % 4 ))
head -c $pad /dev/zero >>"$run/initrd"
(cd "$run/root" && find . -mindepth 1 | cpio -o -H newc --quiet) \
	>>"$run/initrd"

: >"$run/stdout"; : >"$run/stderr"; : >"$run/status"
rc=0
timeout -k 5 "$timeout" "$qemu" -accel tcg -cpu max -m "$mem" -smp 2 \
	-nodefaults -no-user-config -nic none -display none -no-reboot \
	-kernel "$kernel" -initrd "$run/initrd" \
	-append "console=ttyS0 panic=-1 quiet" \
	-serial "file:$run/console" -serial "file:$run/stdout" \
	-serial "file:$run/stderr" -serial "file:$run/status" || rc=$?
cat "$run/stdout"
cat "$run/stderr" >&2
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	echo "run-in-guest: guest killed after ${timeout}s" >&2
	tail -n 20 "$run/console" >&2
	exit 124
fi
status=$(tr -dc '0-9' <"$run/status")
if [ -z "$status" ]; then
	echo "run-in-guest: the guest gave no exit status (qemu: $rc);" \
		"console:" >&2
	tail -n 30 "$run/console" >&2
	exit 1
fi
exit "$status"
