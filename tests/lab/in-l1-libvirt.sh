#!/bin/bash
# Runs inside a lab L1 (scripts/lab run -- bash tests/lab/in-l1-libvirt.sh):
# Debian 12's libvirt 9.0, unpatched (scripts/fetch-upstream.sh libvirt
# unpacks its packages into build/libvirt-root), manages the torture guest
# under -accel nested-kvm, with QEMU as libvirt-qemu and no capabilities
# (tests/lab/test_libvirt.py, docs/libvirt.rst).  In a lab pair (scripts/lab
# pair), host A runs it with --pair-migrations N, and through host B's
# agent runs it there with --serve, which sets up B's root the same way
# and leaves libvirtd listening on the link.
#
# The lab's root is the host's / over 9p, read-only.  libvirt wants to
# write /etc, /var and /run, so the test gets a root of its own: an
# overlay of that / under a tmpfs upper layer that starts out as the
# unpacked packages.  What the packages' maintainer scripts would do
# (users, groups, state folders) is done here, in that throwaway root.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
pkgs=$top/build/libvirt-root
lv=/run/libvirt-lab
root=$lv/root

die() { echo "not ok - libvirt lab root: $*"; exit 1; }

[ -x "$pkgs/usr/sbin/libvirtd" ] ||
    die "no $pkgs/usr/sbin/libvirtd (run scripts/fetch-upstream.sh libvirt)"
mkdir -p "$lv/upper" "$lv/work" "$root"
cp -a "$pkgs/." "$lv/upper/" || die "cannot copy $pkgs"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$lv/upper,workdir=$lv/work" "$root" ||
    die "cannot mount the overlay (is the overlay module loaded?)"
for d in proc sys dev; do
    mount --rbind "/$d" "$root/$d" || die "cannot bind /$d"
done
mount -t tmpfs -o mode=755 tmpfs "$root/run" || die "cannot mount /run"
# The run folder is a mount of its own, which an overlay does not see.
mkdir -p "$root$LAB_OUT"
mount --bind "$LAB_OUT" "$root$LAB_OUT" || die "cannot bind $LAB_OUT"

# libvirt-daemon-system's postinst: the kvm group, QEMU's user and group
# (uid and gid 64055), then udev's rule for /dev/kvm (root:kvm 0660).
setup=$(cat <<'SETUP'
set -e
groupadd -r libvirt
groupadd -r kvm
groupadd -r -g 64055 libvirt-qemu
useradd -r -u 64055 -g kvm -G libvirt-qemu -d /var/lib/libvirt -M \
    -s /usr/sbin/nologin libvirt-qemu 2>/dev/null
chgrp kvm /dev/kvm
chmod 0660 /dev/kvm
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu \
    /var/log/libvirt/qemu /run/libvirt /run/nested-kvm
chown libvirt-qemu:libvirt-qemu /var/lib/libvirt/qemu
chmod 0750 /var/lib/libvirt/qemu
# libvirt builds each domain's private /dev from a child that setns()es
# into QEMU's mount namespace, which puts it at the namespace's real root
# (L1's initramfs), not in this chroot: QEMU would find an empty /dev.
# A host booted into its root has no such gap (docs/libvirt.rst).
echo 'namespaces = [ ]' >> /etc/libvirt/qemu.conf
SETUP
)
chroot "$root" /bin/bash -c "$setup" || die "the packages' set-up failed"

# In a lab pair, test_libvirt.py --serve (host B) or --pair-migrations
# (host A) reach the other host through these.
chroot "$root" /usr/bin/env -i PATH="$PATH" HOME=/run TMPDIR=/run \
    LANG=C.UTF-8 LAB_OUT="$LAB_OUT" LAB_KERNEL="${LAB_KERNEL:-}" \
    LAB_ADDR="${LAB_ADDR:-}" LAB_PEER="${LAB_PEER:-}" \
    LAB_AGENT_PORT="${LAB_AGENT_PORT:-}" \
    /usr/bin/python3 "$top/tests/lab/test_libvirt.py" "$@"
rc=$?
cp -a "$root/var/log/libvirt/qemu/." "$LAB_OUT/" 2>/dev/null
exit "$rc"
