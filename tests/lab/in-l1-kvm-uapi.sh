#!/bin/bash
# Runs inside a lab L1 on kernel 6.12 (scripts/lab run --kernel 6.12
# [--kvm patched] -- bash tests/lab/in-l1-kvm-uapi.sh stock|patched BIN):
# the KVM selftest that the series in scripts/kernel adds (BIN, built on
# the host by tests/lab/run-kvm-selftest.sh --build-only), which saves and
# restores a vCPU while KVM re-injects an event L1 injected into L2
# (docs/kvm-uapi.rst).
#
#   stock    Debian's modules: the four controls must pass and the four
#            save/restore sub-tests must fail, each with the loss the old
#            uAPI causes.  This is the negative control of the patched
#            run: a test that passed here would prove nothing there.
#   patched  the series' modules (KVM_CAP_X86_NESTED_EVENT_STATE): all
#            eight sub-tests pass on the new uAPI, and the torture under
#            nested-kvm with state-source=kernel (no observer, QEMU as
#            nobody) loses nothing.
#
# Prints TAP lines without numbers (tests/lab/test_lab.sh numbers them).
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/lab/lab-lib.sh
. "$top/tests/lab/lab-lib.sh"

mode=${1:?usage: in-l1-kvm-uapi.sh stock|patched SELFTEST}
bin=${2:?usage: in-l1-kvm-uapi.sh stock|patched SELFTEST}
cases=(soft-int int3 into nmi)
out=$(mktemp)

"$bin" > "$out" 2>&1
rc=$?
# The sub-tests' verdicts and the line that says which uAPI ran
grep -E '^(ok|not ok) [0-9]+ |uAPI|Totals' "$out" | sed 's/^/# selftest: /'

# verdict CASE/SUB: "ok" or "not ok", as the selftest printed it
verdict() {
    sed -n "s#^\(ok\|not ok\) [0-9]* $1: .*#\1#p" "$out" | head -n 1
}

controls_pass() {
    local c
    for c in "${cases[@]}"; do
        [ "$(verdict "$c/control")" = ok ] || return 1
    done
}

restores_are() {
    local want=$1 c
    for c in "${cases[@]}"; do
        [ "$(verdict "$c/save/restore")" = "$want" ] || return 1
    done
}

# The stock failures must be the losses the test exists to catch, not a
# crash or a refused ioctl.
stock_losses_named() {
    local c
    for c in soft-int int3 into; do
        grep -q "^not ok [0-9]* $c/save/restore: .*event lost" "$out" ||
            return 1
    done
    grep -q "^not ok [0-9]* nmi/save/restore: .*self-NMI blocked" "$out"
}

stock_restores_lose() {
    restores_are "not ok" && stock_losses_named
}

patched_all_pass() {
    controls_pass && restores_are ok && [ "$rc" -eq 0 ]
}

case $mode in
stock)
    check "kvm uapi, stock 6.12: the selftest runs on the old uAPI" \
        grep -q "old uAPI (no KVM_CAP_X86_NESTED_EVENT_STATE)" "$out"
    check "kvm uapi, stock 6.12: the four controls deliver every event" \
        controls_pass
    check "kvm uapi, stock 6.12 (negative control): each save/restore sub-test catches the loss (soft-int, int3, into lost; L1's NMIs blocked)" \
        stock_restores_lose
    ;;
patched)
    check "kvm uapi, patched 6.12: the selftest runs on KVM_CAP_X86_NESTED_EVENT_STATE" \
        grep -q "new uAPI: KVM_CAP_X86_NESTED_EVENT_STATE" "$out"
    check "kvm uapi, patched 6.12: all 8 sub-tests pass (status $rc), the 4 restores included" \
        patched_all_pass
    # The fork on the kernel's report (docs/hidden-window.rst, "From the
    # kernel"): nested-kvm arms no observer, so QEMU runs as nobody with
    # no helper at all, and strict still loses nothing, also where the
    # observer has to refuse (a pause or a savevm with no settling).
    check "kvm uapi, patched 6.12: torture, state-source=kernel, as nobody with no observer, 2 vCPUs, 20 migrations, nothing lost, a stop in flight" \
        lab_torture "torture kernel" 600 --accel nested-kvm \
        --state-source kernel --unprivileged --cpus 2 --migrations 20 \
        --max-gap 0.5 --control-seconds 0 --expect-clean
    # A paused stop lands in flight less often (1 of 10, 4 of 10 for
    # savevm, 2026-11-30), hence twice the pauses.
    for m in paused:20 savevm:10; do
        check "kvm uapi, patched 6.12: torture, state-source=kernel, ${m%:*} with stop-settle-ms=0, ${m#*:} times, nothing refused, nothing lost, a stop in flight" \
            lab_torture "torture kernel ${m%:*}" 600 --accel nested-kvm \
            --state-source kernel --mode "${m%:*}" --cpus 2 \
            --migrations "${m#*:}" --max-gap 0.5 --control-seconds 0 \
            --stop-settle-ms 0 \
            --expect-clean
    done
    ;;
*)
    echo "not ok - in-l1-kvm-uapi.sh: unknown mode '$mode'"
    ;;
esac
rm -f "$out"
