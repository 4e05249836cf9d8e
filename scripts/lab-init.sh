#!/bin/busybox sh
# shellcheck shell=dash
# /init of the lab's L1 initramfs (built by scripts/lab; runs under busybox
# ash inside the TCG-emulated L1 VM, not on the host).
#
# It loads KVM and 9p, mounts the host's / read-only at /mnt, mounts the
# run's writable scratch folder at the same absolute path it has on the
# host, runs the command the host wrote to <scratch>/cmd.sh in a chroot,
# records its exit status in <scratch>/status and powers off.  Every step
# prints a "lab: " line on the console: the host follows those lines to
# show progress and to tell where a failed boot stopped.
#
# SPDX-License-Identifier: GPL-2.0-or-later

/bin/busybox mkdir -p /proc /sys /dev /mnt /scratch /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# The initramfs has no /dev/console node (busybox cpio runs unprivileged on
# the host), so the kernel could not give us a console: get one from
# devtmpfs first and only then start talking.
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Migrations between QEMU processes inside L1 go over loopback TCP.
ip link set lo up

say() { echo "lab: $*"; }

# Nothing can be reported to the host without the scratch mount, so any
# failure before it exists only shows on the console, which the host reads.
die() {
    say "FAIL: $*"
    [ -d /scratch/. ] && echo "$*" > /scratch/lab-error 2>/dev/null
    sync
    poweroff -f
}

say "init started (uptime $(cut -d' ' -f1 /proc/uptime) s)"

# load.list holds "file.ko [params...]" in dependency order (scripts/lab
# computed it from each module's .modinfo depends=).  A KVM module that
# fails is reported but not fatal, so the command can still diagnose it.
# "scripts/lab run --kvm-amd" replaces kvm_amd's parameters through the
# kernel command line (nkvm.kvm_amd=nested=0,nrips=1), so that one
# initramfs serves every setting.
kvm_amd_override=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^nkvm\.kvm_amd=//p')
while read -r ko params; do
    [ -n "$ko" ] || continue
    if [ "$ko" = kvm_amd.ko ] && [ -n "$kvm_amd_override" ]; then
        params=$(echo "$kvm_amd_override" | tr ',' ' ')
    fi
    # $params is a list of key=value words: split on purpose.
    # shellcheck disable=SC2086
    if ! out=$(insmod "/lib/modules/$ko" $params 2>&1); then
        case $ko in
            kvm*|ccp*|irqbypass*) say "WARNING: insmod $ko $params: $out" ;;
            *) die "insmod $ko $params: $out" ;;
        esac
    fi
done < /lib/modules/load.list

params=""
for p in nested nrips npt; do
    v=$(cat "/sys/module/kvm_amd/parameters/$p" 2>/dev/null || echo "?")
    params="$params $p=$v"
done
if [ -c /dev/kvm ]; then kvm=present; else kvm=absent; fi
# "scripts/lab run --kvm patched": kvm and kvm_amd are the ones built from
# the patch series (kvm.set names them); their taint shows it, O
# (out-of-tree) and E (unsigned).
if [ -f /lib/modules/kvm.set ]; then
    kvm="$kvm, kvm $(cut -d' ' -f1 /lib/modules/kvm.set)"
    kvm="$kvm (taint $(cat /sys/module/kvm/taint 2>/dev/null))"
fi
say "modules loaded: kvm_amd$params, /dev/kvm $kvm"

opts=trans=virtio,version=9p2000.L,msize=512000
# The scratch folder is written by both sides, so no client cache there.
mount -t 9p -o "$opts" lab /scratch || die "cannot mount the scratch folder"
echo "kvm_amd$params /dev/kvm=$kvm" > /scratch/kvm_amd.params
# lab.env is written by scripts/lab; it sets LAB_DIR, the scratch folder's
# absolute path on the host.
# shellcheck disable=SC1091
. /scratch/lab.env || die "no /scratch/lab.env"
# A host of "scripts/lab pair": the link to the other L1 is the only NIC.
if [ -n "${LAB_ADDR:-}" ]; then
    ip link set eth0 up || die "no link (eth0) to bring up"
    ip addr add "$LAB_ADDR/24" dev eth0 ||
        die "cannot give the link (eth0) address $LAB_ADDR"
    say "link up: eth0 $LAB_ADDR"
fi

mount -t 9p -o "ro,$opts,cache=loose" host /mnt ||
    die "cannot mount the host's / over 9p"
for d in proc sys dev; do
    mount -o bind "/$d" "/mnt/$d" || die "cannot bind /$d into /mnt"
done
mount -t tmpfs -o mode=1777 tmpfs /mnt/run || die "cannot mount /mnt/run"
# KVM's tracepoints: nested-kvm's in-flight observer reads their formats
# here (docs/hidden-window.rst), and the torture counts windows with them.
mount -t tracefs tracefs /mnt/sys/kernel/tracing ||
    say "tracefs unavailable: the in-flight observer will be refused"
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
# LAB_DIR comes from lab.env, sourced above.
# shellcheck disable=SC2153
[ -d "/mnt$LAB_DIR" ] || die "$LAB_DIR is not visible over 9p"
mount -o bind /scratch "/mnt$LAB_DIR" || die "cannot bind the scratch folder"
say "host filesystem mounted"

# cmd.sh sets the environment, changes to the host's working folder and
# runs the command; its output goes to out.log (which the host streams)
# and to the console.
say "command started (uptime $(cut -d' ' -f1 /proc/uptime) s)"
( env -i chroot /mnt /bin/bash "$LAB_DIR/cmd.sh" </dev/null 2>&1
  echo $? > /scratch/status.tmp ) | tee /scratch/out.log
rc=$(cat /scratch/status.tmp 2>/dev/null || echo 125)
mv /scratch/status.tmp /scratch/status
say "command finished: status $rc (uptime $(cut -d' ' -f1 /proc/uptime) s)"
sync
umount "/mnt$LAB_DIR" /scratch 2>/dev/null
poweroff -f
