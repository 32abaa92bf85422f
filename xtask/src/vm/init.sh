#!/bin/busybox sh
# PID 1 of a matrix guest. The host's / arrives read-only over virtiofs; a
# tmpfs overlay on top makes it writable without touching the host, so the
# host-built tests run at the host's own paths. Every line the host acts on
# starts with @@matrix; any failure here ends the guest with a reason.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /lower /rw /newroot
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

fatal() {
    echo "@@matrix fatal $*"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Debian builds these as modules on some kernels; busybox insmod reads only
# uncompressed ones, and the host put them here in dependency order.
for m in $(ls /modules); do
    insmod "/modules/$m" || fatal "insmod $m"
done
mount -t virtiofs -o ro host /lower || fatal "mounting the host's / (virtiofs)"
mount -t tmpfs -o mode=755 tmpfs /rw || fatal "mounting the overlay's tmpfs"
mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fatal "mounting the overlay"

R=/newroot
mount -t proc proc $R/proc || fatal "mounting proc"
mount -t sysfs sysfs $R/sys || fatal "mounting sysfs"
mount -t devtmpfs devtmpfs $R/dev || fatal "mounting devtmpfs"
mount -t tracefs tracefs $R/sys/kernel/tracing || fatal "mounting tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || fatal "mounting debugfs"
mount -t bpf bpf $R/sys/fs/bpf || fatal "mounting bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fatal "mounting cgroup2"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts || fatal "mounting devpts"
for d in dev/shm tmp run; do
    mount -t tmpfs tmpfs "$R/$d" || fatal "mounting a tmpfs on /$d"
done
chmod 1777 $R/tmp $R/dev/shm
mkdir -p $R/run/matrix
cp /suite.sh $R/run/matrix/suite.sh
ip link set lo up || fatal "loopback"

echo "@@matrix booted $(uname -r) $(cut -d' ' -f1 /proc/uptime)"
chroot $R /usr/bin/env -i /bin/sh /run/matrix/suite.sh
echo "@@matrix done $?"
poweroff -f
