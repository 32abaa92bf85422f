#!/bin/busybox sh
# PID 1 of a matrix guest. The host's / is the guest's root, read-only over
# virtiofs, so the host-built tests run at the host's own paths. It is not
# under an overlay as a whole: overlayfs gives no file handles
# (name_to_handle_at), which the descriptor tests use on /etc. What the tests
# write to goes to the guest's memory: tmpfs on /tmp, /var/tmp, /run and
# /dev/shm, and a tmpfs overlay on each directory listed in /writable (the
# checkout, HOME). Every line the host acts on starts with @@matrix; any
# failure here ends the guest with a reason.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /rw /newroot
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
mount -t virtiofs -o ro host /newroot || fatal "mounting the host's / (virtiofs)"
# The host's tree as it is, kept apart from the tmpfs mounted over /tmp below:
# a checkout under /tmp (CI's clone may be there) is the lower layer of its overlay.
mkdir -p /host
mount -o bind /newroot /host || fatal "binding the host's / aside"
R=/newroot
for d in tmp var/tmp run; do
    mount -t tmpfs tmpfs "$R/$d" || fatal "mounting a tmpfs on /$d"
done
chmod 1777 $R/tmp $R/var/tmp
mount -t tmpfs -o mode=755 tmpfs /rw || fatal "mounting the overlays' tmpfs"
n=0
while read -r d; do
    n=$((n + 1))
    mkdir -p /rw/$n/upper /rw/$n/work
    # Missing only where a tmpfs above now hides it (/tmp/...): made there.
    [ -d "$R$d" ] || mkdir -p "$R$d" || fatal "making $d"
    mount -t overlay overlay -o "lowerdir=/host$d,upperdir=/rw/$n/upper,workdir=/rw/$n/work" "$R$d" ||
        fatal "mounting an overlay on $d"
done </writable
mount -t proc proc $R/proc || fatal "mounting proc"
mount -t sysfs sysfs $R/sys || fatal "mounting sysfs"
mount -t devtmpfs devtmpfs $R/dev || fatal "mounting devtmpfs"
mount -t tracefs tracefs $R/sys/kernel/tracing || fatal "mounting tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || fatal "mounting debugfs"
mount -t bpf bpf $R/sys/fs/bpf || fatal "mounting bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fatal "mounting cgroup2"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts || fatal "mounting devpts"
mount -t tmpfs tmpfs $R/dev/shm || fatal "mounting a tmpfs on /dev/shm"
chmod 1777 $R/dev/shm
mkdir -p $R/run/matrix
cp /suite.sh $R/run/matrix/suite.sh
ip link set lo up || fatal "loopback"

echo "@@matrix booted $(uname -r) $(cut -d' ' -f1 /proc/uptime)"
chroot $R /usr/bin/env -i /bin/sh /run/matrix/suite.sh
echo "@@matrix done $?"
poweroff -f
