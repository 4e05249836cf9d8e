#!/bin/bash
# Runs inside the VMX lab's L1 (scripts/lab run --vmx --python): the
# nested torture (tests/lab/torture.py) on kvm_intel nested=1, first
# under -accel kvm (upstream's figure, report only), then under
# -accel nested-kvm in strict mode, which must lose nothing, and last
# the negative control: the guest skips round DROP's injection on
# purpose, and torture.py must report it lost.
#
#   in-l1-vmx-torture.sh KVM_MIGRATIONS NKVM_MIGRATIONS EXTEND [DROP]
#
# KVM_MIGRATIONS 0 leaves upstream out, DROP 0 (the default) the
# negative control.  EXTEND: torture.py --extend, the most migrations
# nested-kvm may add until one stop lands in flight.
# Prints, for each run, "result LABEL STATUS JSON" (LABEL is kvm,
# nested-kvm or drop; torture.py's exit status and its JSON line, or {}
# when it gave none), which
# tests/lab/test_lab_vmx_torture.sh turns into TAP; torture.py's
# progress goes to stderr.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

kvm_n=${1:?KVM_MIGRATIONS}
nkvm_n=${2:?NKVM_MIGRATIONS}
extend=${3:?EXTEND}
drop=${4:-0}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1

# run LABEL ACCEL ARGS...: one torture.py run; its JSON line (stdout)
# goes into the result line, its progress (stderr) straight on.  A later
# --control-seconds wins over the first.
run() {
    local label=$1 accel=$2 out line rc
    shift 2
    out=$(mktemp)
    python3 tests/lab/torture.py --accel "$accel" --control-seconds 10 \
        --timeout 120 "$@" > "$out"
    rc=$?
    line=$(grep '^{' "$out" | tail -n 1)
    rm -f "$out"
    echo "result $label $rc ${line:-"{}"}"
}

if [ "$kvm_n" -gt 0 ]; then
    run kvm kvm --migrations "$kvm_n" --report-only
fi
run nested-kvm nested-kvm --migrations "$nkvm_n" --extend "$extend" \
    --expect-clean --min-in-flight 1
if [ "$drop" -gt 0 ]; then
    run drop nested-kvm --drop "$drop" --migrations 3 --control-seconds 0
fi
