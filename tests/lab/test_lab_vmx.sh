#!/bin/bash
# The VMX lab end to end (make lab-vmx): one Bochs L1 per kernel with
# kvm_intel nested=1, in which KVM's nVMX selftests run (an L2 that itself
# executes VMX instructions on L1's KVM) and the fork runs the test guest's
# smoke scenario under -accel kvm and -accel nested-kvm with -cpu host
# (tests/lab/in-l1-vmx.sh).  Not part of make check: one boot is about a
# minute and a half of a host core.
#
#   tests/lab/test_lab_vmx.sh [KERNEL...]     default: 6.12
#
# The selftests are built from the lab 6.12 kernel's source by
# tests/lab/run-kvm-selftest.sh (run "scripts/lab fetch --kernel 6.12"
# first if it has no kernel yet).  Prints TAP ("ok N - vmx 6.12: ...") and
# "N passed, N failed"; exits 1 if any check failed.  A check listed in
# known_bochs below is marked "# TODO" (a Bochs defect, docs/lab.rst, "The
# VMX lab"), which TAP does not count as a failure.  LAB_VMX_TIMEOUT
# (default 1200 s) bounds each boot.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${NKVM_BUILD:-$top/build}
timeout=${LAB_VMX_TIMEOUT:-1200}
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(6.12)

# Quick ones first: a test that stalls L1 would take the rest with it.
selftests=(state_test vmx_close_while_nested_test nested_exceptions_test
           vmx_apic_access_test vmx_dirty_log_test
           vmx_exception_with_invalid_guest_state
           vmx_invalid_nested_guest_state vmx_msrs_test
           vmx_set_nested_state_test smm_test triple_fault_event_test
           hyperv_evmcs vmx_pmu_caps_test vmx_tsc_adjust_test
           vmx_nested_tsc_scaling_test)
# vmx_preemption_timer_test is left out: on Bochs it stops L1 for good
# (docs/lab.rst, "The VMX lab"), which would take the fork's checks
# with it.  LAB_VMX_SELFTESTS="a b ..." runs another list; a test named
# in known_bochs is then marked "# TODO".
if [ -n "${LAB_VMX_SELFTESTS:-}" ]; then
    read -r -a selftests <<< "$LAB_VMX_SELFTESTS"
fi
# LAB_VMX_BOCHS: 3.0 (built from source, the default) or 2.7 (Debian
# 12's), whose virtual-NMI defect fails L1's NMI check in the torture.
bochs=${LAB_VMX_BOCHS:-3.0}
known_bochs=(vmx_preemption_timer_test)
[ "$bochs" = 3.0 ] || known_bochs+=(bochs-vnmi)

number=0
failures=0

tap() {
    local ok=$1 name=$2 k
    number=$((number + 1))
    if [ "$ok" = ok ]; then
        echo "ok $number - $name"
        return
    fi
    for k in "${known_bochs[@]}"; do
        if [[ $name == *" $k "* || $name == *" $k" ]]; then
            echo "not ok $number - $name # TODO known Bochs defect"
            return
        fi
    done
    echo "not ok $number - $name"
    failures=$((failures + 1))
}

args=()
for t in "${selftests[@]}"; do
    args+=(--test "$t")
done
if ! mapfile -t bins < <("$top/tests/lab/run-kvm-selftest.sh" --build-only "${args[@]}"); then
    tap "not ok" "vmx: KVM selftests build"
    echo "0 passed, $failures failed"
    exit 1
fi
[ ${#bins[@]} = ${#selftests[@]} ] || { echo "selftest build gave ${#bins[@]} binaries" >&2; exit 1; }
guest=$build/standalone/tests/guest/nkvm-guest.elf
qemu=$build/qemu-system-x86_64
for f in "$guest" "$qemu"; do
    [ -e "$f" ] || { echo "missing $f (make fork standalone)" >&2; exit 1; }
done

for k in "${kernels[@]}"; do
    out=$(mktemp)
    "$top/scripts/lab" run --vmx --bochs "$bochs" --kernel "$k" \
        --timeout "$timeout" \
        --ship "$build/firmware" -- \
        bash "$top/tests/lab/in-l1-vmx.sh" --timeout 120 --qemu "$qemu" \
        --firmware "$build/firmware" --guest "$guest" "${bins[@]}" > "$out"
    rc=$?
    while IFS= read -r line; do
        case $line in
            "ok - "*) tap ok "vmx $k: ${line#ok - }" ;;
            "not ok - "*) tap "not ok" "vmx $k: ${line#not ok - }" ;;
            *) echo "$line" ;;
        esac
    done < "$out"
    rm -f "$out"
    [ "$rc" = 0 ] || tap "not ok" "vmx $k: the L1 ran to the end (scripts/lab status $rc)"
done
echo "1..$number"
echo "$((number - failures)) passed, $failures failed"
[ "$failures" = 0 ]
