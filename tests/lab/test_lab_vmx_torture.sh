#!/bin/bash
# The nested torture on VMX (issue #17): one Bochs 3.0 L1 with
# kvm_intel nested=1 runs tests/lab/torture.py under -accel kvm
# (upstream's figure, report only) and -accel nested-kvm (strict: it must
# lose nothing, with at least one stop in flight), migrating between two
# QEMUs inside L1 (tests/lab/in-l1-vmx-torture.sh), then the negative
# control: a guest that skips round N's injection (drop=N), which the
# harness must report lost.
#
#   tests/lab/test_lab_vmx_torture.sh [--kernel 6.12|6.1] [--kvm N]
#       [--nested-kvm N] [--extend N] [--drop N] [--record FILE]
#       [--timeout S]
#
# Defaults, make check's bounded stage: 4 upstream migrations, 20 under
# nested-kvm and at most 20 more until a stop lands in flight, and the
# negative control at round 40 (--drop 0 leaves it out).
# make torture-vmx runs it in chunks with --record FILE, which appends
# the JSON line of each kvm and nested-kvm run (never the control's).  Prints TAP and "N passed, N failed"; where
# Bochs 3.0 or the L1 kernel cannot be had (no build tools, no archive),
# one "# SKIP" line with the reason.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${NKVM_BUILD:-$top/build}
kernel=6.12
# Upstream's figure, reported: 4 migrations, about 12 s each in Bochs
# (10 until 2026-12-03), for make check's 45 minutes.
kvm_n=4
nkvm_n=20
extend=20
drop=40
record=""
# A guard against a hung L1, not a budget: its clock follows Bochs'
# instructions, so a busy host only stretches the run.  Beside the SVM
# lab's two lanes it gets a third of the two cores or less; alone it
# took 1,113 s (2026-12-03).
timeout=5400
while [ $# -gt 0 ]; do
    case $1 in
        --kernel) kernel=${2:?}; shift 2 ;;
        --kvm) kvm_n=${2:?}; shift 2 ;;
        --nested-kvm) nkvm_n=${2:?}; shift 2 ;;
        --extend) extend=${2:?}; shift 2 ;;
        --drop) drop=${2:?}; shift 2 ;;
        --record) record=${2:?}; shift 2 ;;
        --timeout) timeout=${2:?}; shift 2 ;;
        *) echo "usage: $0 [--kernel K] [--kvm N] [--nested-kvm N]" \
                "[--extend N] [--drop N] [--record FILE] [--timeout S]" >&2
           exit 2 ;;
    esac
done
for n in "$kvm_n" "$nkvm_n" "$extend" "$drop" "$timeout"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "$0: '$n' is not a count" >&2; exit 2; }
done

passed=0
failed=0
tap() {
    echo "$1 - vmx torture $kernel $2"
    if [ "$1" = ok ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

qemu=$build/qemu-system-x86_64
guest=$build/standalone/tests/guest/nkvm-guest.elf
for f in "$qemu" "$guest" "$build/firmware"; do
    [ -e "$f" ] || { tap "not ok" "needs $f (make fork standalone)"; finish; }
done

# The one skip: Bochs 3.0 is built from source and the kernel comes from
# the archive, so a host without either cannot run the VMX lab at all.
prep=$(mktemp)
if ! "$top/scripts/lab" fetch --vmx --bochs 3.0 --kernel "$kernel" \
        > "$prep" 2>&1; then
    echo "ok - vmx torture $kernel # SKIP no VMX lab on this host:" \
         "$(grep -v '^$' "$prep" | tail -n 1)"
    rm -f "$prep"
    finish
fi
rm -f "$prep"

# torture.py's progress lines (migrations done, rate, time left) also go
# to stderr as they come, so that a long run shows where it is.
out=$(mktemp)
"$top/scripts/lab" run --vmx --bochs 3.0 --python --kernel "$kernel" \
    --timeout "$timeout" \
    --ship "$build/qemu-10.0.13/python/qemu" --ship "$top/tests/functional" \
    --ship "$top/tests/lab" --ship "$build/firmware" --ship "$qemu" \
    --ship "$guest" -- \
    bash "$top/tests/lab/in-l1-vmx-torture.sh" "$kvm_n" "$nkvm_n" \
    "$extend" "$drop" | tee "$out" | grep --line-buffered '^torture: ' >&2
rc=${PIPESTATUS[0]}

# summary JSON: one line of what a run measured
summary() {
    /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
if "migrations" not in r:
    print("no result")
    sys.exit()
wrong = ("wrong_rip", "wrong_error_code", "wrong_vector", "wrong_cr2",
         "duplicated", "l1_nmi_corrupt", "bad_exitintinfo")
bad = "".join(", %s %d" % (k, r[k]) for k in wrong if r.get(k))
c = r.get("control")   # null without a control run
print("%d migrations, %d stops in flight, lost %d%s in %d events, "
      "%d strict refusals; control %s"
      % (r["migrations"], r["stops_in_flight"], r["lost"], bad,
         r["events_injected"], r["strict_refusals"],
         "none" if c is None else "clean" if c.get("bad") == 0 else c))
' "$1"
}

seen=0
while read -r tag label status json; do
    [ "$tag" = result ] || continue
    seen=$((seen + 1))
    what=$(summary "$json")
    if [ "$label" = drop ]; then
        # torture.py exits 0 here only if the skipped round was lost
        if [ "$status" = 0 ]; then
            tap ok "nested-kvm negative control drop=$drop, caught: $what"
        else
            tap "not ok" "nested-kvm negative control drop=$drop, not caught: $what (torture.py status $status)"
        fi
        continue
    fi
    if [ -n "$record" ] && [ "$json" != "{}" ]; then
        echo "$json" >> "$record"
    fi
    if [ "$label" = kvm ]; then
        # Upstream loses events by design; only a run without a clean
        # control or without a result is a failure.
        case $what in
            *"control clean") tap ok "kvm (upstream, report only): $what" ;;
            *) tap "not ok" "kvm (upstream): $what (torture.py status $status)" ;;
        esac
    elif [ "$status" = 0 ]; then
        tap ok "nested-kvm: $what"
    else
        tap "not ok" "nested-kvm: $what (torture.py status $status)"
    fi
done < "$out"
# the rest, less the lines already on stderr
grep -v -e '^result ' -e '^torture: ' "$out" | sed 's/^/# /'
rm -f "$out"
want=1
[ "$kvm_n" -gt 0 ] && want=$((want + 1))
[ "$drop" -gt 0 ] && want=$((want + 1))
[ "$seen" = "$want" ] || tap "not ok" "$seen of $want runs gave a result (scripts/lab status $rc)"
finish
