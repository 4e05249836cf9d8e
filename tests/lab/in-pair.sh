#!/bin/bash
# Runs on host A of a lab pair (scripts/lab pair -- bash tests/lab/in-pair.sh):
# the torture, a guest hypervisor on 2 vCPUs, migrated between the two
# hosts, each way in turn, under nested-kvm (nothing may be lost, at
# least one stop in flight) and under kvm (upstream's figure from the
# same harness, reported).  Prints TAP
# lines without numbers and "# " diagnostics, like in-l1.sh;
# tests/lab/test_lab.sh numbers them and names the pair.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# 20 each way: a stop in flight comes about once in three migrations.
migrations=${NKVM_PAIR_MIGRATIONS:-40}
# Upstream's figure is reported, not asserted, over 10 migrations
# (upstream lost 5 events in make demo's 20 on 2026-12-03, 5 in make
# check's 20, 13 in its 40): 164 s of a 584-s pair stage at 20, and
# make check must stay under 45 minutes.
kvm_migrations=${NKVM_PAIR_KVM_MIGRATIONS:-10}
cpus=${NKVM_PAIR_CPUS:-2}

# shellcheck source=tests/lab/lab-lib.sh
. "$top/tests/lab/lab-lib.sh"

echo "# host A: kernel $(uname -r), $LAB_ADDR; host B: $LAB_PEER"

# torture ACCEL MIGRATIONS ARGS...
torture() {
    local accel=$1 n=$2
    shift 2
    lab_torture "pair torture $accel" 900 --pair --accel "$accel" \
        --migrations "$n" --cpus "$cpus" --max-gap 0.5 \
        --control-seconds 20 "$@"
}

check "pair torture: nested-kvm, $cpus vCPUs, $migrations migrations between the hosts, nothing lost, duplicated or misdirected, a stop in flight" \
    torture nested-kvm "$migrations" --expect-clean
check "pair torture: kvm, $cpus vCPUs, $kvm_migrations migrations between the hosts measured, control run clean" \
    torture kvm "$kvm_migrations" --report-only
