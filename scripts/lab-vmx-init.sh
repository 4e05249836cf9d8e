#!/bin/busybox sh
# shellcheck shell=dash
# /init of the VMX lab's L1 initramfs (built by scripts/lab-vmx; runs under
# busybox ash inside the Bochs-emulated Intel L1, not on the host).
#
# Bochs has no 9p and no -kernel: everything the command needs is in the
# initramfs (the run's payload archive puts the host's files at their
# host paths), and the only way back is the serial port, which Bochs
# writes to a file.  So every step prints a "lab: " line there, and the
# command's output goes there between "lab: command started" and "lab:
# command finished: status N", the lines the host cuts out.
#
# SPDX-License-Identifier: GPL-2.0-or-later

/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# No /dev/console node in the archive (busybox cpio runs unprivileged on
# the host): take the console from devtmpfs before saying anything.
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
ip link set lo up

say() { echo "lab: $*"; }

# drain: wait until the serial port has sent what was written to it.  A
# write to the console returns once the bytes are in the tty's buffer,
# and poweroff -f would drop what is still there (the end of the output
# and its end marker).  The UART's tx counter stops moving when the buffer
# is empty; give up after 60 s.
tx() { sed -n 's/^0:.* tx:\([0-9]*\).*/\1/p' /proc/tty/driver/serial; }
drain() {
    local last now n=0
    last=$(tx)
    while [ "$n" -lt 300 ]; do
        sleep 0.2
        now=$(tx)
        [ "$now" = "$last" ] && return
        last=$now
        n=$((n + 1))
    done
}
up() { cut -d' ' -f1 /proc/uptime; }

# The host cannot see anything but the console: a failure is said there,
# and the machine stops, which ends Bochs.
die() {
    say "FAIL: $*"
    drain
    poweroff -f
}

say "init started (uptime $(up) s)"

# load.list: "file.ko [params...]" in dependency order, from the modules'
# .modinfo.  "scripts/lab run --vmx --kvm-intel 'nested=1 ept=0'" replaces
# kvm_intel's parameters through the kernel command line
# (nkvm.kvm_intel=nested=1,ept=0), so one initramfs serves every setting.
kvm_intel_override=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^nkvm\.kvm_intel=//p')
while read -r ko params; do
    [ -n "$ko" ] || continue
    if [ "$ko" = kvm_intel.ko ] && [ -n "$kvm_intel_override" ]; then
        params=$(echo "$kvm_intel_override" | tr ',' ' ')
    fi
    # $params is a list of key=value words: split on purpose.
    # shellcheck disable=SC2086
    if ! out=$(insmod "/lib/modules/$ko" $params 2>&1); then
        # A KVM module that fails is reported, not fatal: the command can
        # still show why (dmesg).
        case $ko in
            kvm*|irqbypass*) say "WARNING: insmod $ko $params: $out" ;;
            *) die "insmod $ko $params: $out" ;;
        esac
    fi
done < /lib/modules/load.list

params=""
for p in nested ept unrestricted_guest enable_shadow_vmcs vpid eptad pml \
         vnmi enable_apicv preemption_timer; do
    v=$(cat "/sys/module/kvm_intel/parameters/$p" 2>/dev/null || echo "?")
    params="$params $p=$v"
done
if [ -c /dev/kvm ]; then kvm=present; else kvm=absent; fi
say "modules loaded: kvm_intel$params, /dev/kvm $kvm (uptime $(up) s)"

mount -t tmpfs -o mode=1777 tmpfs /run
echo "kvm_intel$params /dev/kvm=$kvm" > /run/kvm_intel.params
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
# KVM's tracepoints, for nested-kvm's in-flight observer
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# From here on only the command talks on the console: kernel messages
# (an L2's boot, KVM's warnings) would land in the middle of its output.
# dmesg keeps them for the command.
dmesg -n 1

[ -f /lab/cmd.sh ] || die "no /lab/cmd.sh in the payload"
shell=/bin/sh
[ -x /usr/bin/bash ] && shell=/usr/bin/bash
# The host tells the end of the command's output by a nonce it chose, so
# that output which happens to look like the marker cannot end it early.
nonce=$(cat /lab/nonce)
say "command started (uptime $(up) s)"
env -i "$shell" /lab/cmd.sh </dev/null 2>&1
rc=$?
say "command finished $nonce: status $rc (uptime $(up) s)"
# $LAB_OUT (cmd.sh sets it) goes back as a base64 tar: the console is the
# only way out of Bochs.
if [ -n "$(ls -A /run/lab-out 2>/dev/null)" ]; then
    say "out begin $nonce"
    tar -czf - -C /run/lab-out . | base64
    say "out end $nonce"
fi
drain
poweroff -f
