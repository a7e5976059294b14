#!/bin/sh
# SPDX-License-Identifier: MIT
#
# guest-init.sh - /init of the run-in-guest.sh guest: load the RDMA modules,
# put rxe0 on a veth pair, run /cmd in /work with its stdout, stderr and
# exit status on ttyS1, ttyS2 and ttyS3, then power off.
export PATH=/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for t in ttyS1 ttyS2 ttyS3; do
	stty -F /dev/$t raw -echo 2>/dev/null
done

die() {
	echo "guest: $*" >/dev/ttyS2
	echo 1 >/dev/ttyS3
	poweroff -f
}

while read -r m; do
	insmod /modules/$m.ko || die "insmod $m failed"
done </modules/order

# rxe refuses lo; a veth pair inside the guest is enough
ip link set lo up
ip link add rxev0 type veth peer name rxev1 || die "no veth pair"
ip addr add 10.77.0.1/24 dev rxev0
ip addr add 10.77.0.2/24 dev rxev1
ip link set rxev0 up
ip link set rxev1 up
rdma link add rxe0 type rxe netdev rxev0 || die "rdma link add failed"
i=0
while [ ! -e /dev/infiniband/uverbs0 ] || [ ! -e /dev/infiniband/rdma_cm ]
do
	i=$((i + 1))
	[ $i -lt 100 ] || die "no /dev/infiniband/uverbs0 after 10 s"
	sleep 0.1
done

export MFD_RDMA_ADDR=10.77.0.1 HOME=/tmp
ulimit -l unlimited
cd /work
/cmd >/dev/ttyS1 2>/dev/ttyS2
echo $? >/dev/ttyS3
sync
poweroff -f
