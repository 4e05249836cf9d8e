#!/bin/bash
# `make check`: build everything, run every test, and end with one line
# "N passed, N failed".  Each stage prints TAP-style "ok"/"not ok" lines;
# a stage that dies without saying which test failed counts as one failure.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
FUZZ_SECONDS=${NKVM_FUZZ_SECONDS:-60}
passed=0
failed=0
skipped=0
logdir=$build/check-logs
mkdir -p "$logdir"

# count and stage
. "$top/scripts/tap-stages.sh"

build_fork() {
    "$top/scripts/build-fork.sh" && echo "ok - build qemu-system-x86_64"
}

# The fork without KVM (--disable-kvm, TCG only) must link too, refuse
# -accel nested-kvm and answer x-query-nested-events under TCG with an
# error, not a crash.
build_nokvm() {
    if ! "$top/scripts/build-fork.sh" --no-kvm; then
        echo "not ok - build qemu-system-x86_64 without KVM"
        return 1
    fi
    echo "ok - build qemu-system-x86_64 without KVM"
    /usr/bin/python3 "$top/tests/nokvm/test_nokvm.py" \
        "$build/qemu-system-x86_64-nokvm" \
        -L "$build/tools/usr/share/seabios" \
        -L "$build/qemu-build-nokvm/pc-bios/optionrom"
}

# Pristine 10.0.13, for the stream-compatibility tests.
build_stock() {
    "$top/scripts/build-fork.sh" --pristine &&
        echo "ok - build stock qemu-system-x86_64"
}

# meson test counts whole test programs; each gtest case prints a TAP line
# into meson's test log, and those lines are what we count.
unit_tests() {
    local sb=$build/standalone rc
    [ -f "$sb/build.ninja" ] || "$top/scripts/meson" setup "$sb" "$top" ||
        return 1
    "$top/scripts/meson" compile -C "$sb" || return 1
    "$top/scripts/meson" test -C "$sb" --no-rebuild > "$sb/test.out" 2>&1
    rc=$?
    sed 's/^/  /' "$sb/test.out"
    grep -E '^(not )?ok ' "$sb/meson-logs/testlog.txt" |
        sed -E 's/^(not ok|ok) [0-9]+ /\1 - unit /'
    return $rc
}

checkpatch() {
    local cp=$build/qemu-10.0.13/scripts/checkpatch.pl f
    while IFS= read -r f; do
        # Relative paths: checkpatch applies its tests/ rules by path.
        if (cd "$top" && "$cp" --no-tree -q -f "$f") > "$logdir/checkpatch.tmp" 2>&1; then
            echo "ok - checkpatch $f"
        else
            sed 's/^/  /' "$logdir/checkpatch.tmp"
            echo "not ok - checkpatch $f"
        fi
    done < <(cd "$top" && git ls-files -co --exclude-standard -- '*.c' '*.h')
}

# One-way layers of our C code (scripts/check-layers.py): its negative
# controls on synthetic trees first, then our tree.
layers() {
    local rc=0
    /usr/bin/python3 "$top/tests/unit/test_check_layers.py" || rc=1
    /usr/bin/python3 "$top/scripts/check-layers.py" || rc=1
    return $rc
}

functional() {
    local t rc=0
    for t in "$top"/tests/functional/test_*.py; do
        [ -e "$t" ] || continue
        /usr/bin/python3 "$t" || rc=1
    done
    return $rc
}

# The stages that the lab does not need.  With the lab they run beside it
# (side_stage, scripts/tap-stages.sh), niced, on the core its L1 leaves
# free: one after the other before it, they took 517 of the 4,150 s of
# the clean-clone make check of 2026-12-03.
later_stages() {
    local run=$1
    "$run" nokvm build_nokvm
    if [ -x "$top/scripts/run-fuzz.sh" ]; then
        "$run" fuzz "$top/scripts/run-fuzz.sh" "$FUZZ_SECONDS"
    fi
    "$run" checkpatch checkpatch
    "$run" layers layers
    "$run" functional functional
}
# Their names, for side_report, from the same list.
side_names=()
side_name() { side_names+=("$1"); }
later_stages side_name

check_start=$SECONDS
"$top/scripts/install-deps.sh" || { echo "not ok - install-deps"; }
stage_times="deps $((SECONDS - check_start))"
# What the lab runs: the fork, stock QEMU (test_compat.py) and the
# standalone tree's test guests (the unit stage builds it).
stage build build_fork
stage stock build_stock
stage unit unit_tests
if [ "${NKVM_LAB:-1}" != 1 ]; then
    later_stages stage
else
    # Real KVM: nested SVM inside the fork's TCG (docs/lab.rst), and
    # beside it the bounded nested torture on VMX in Bochs and the later
    # stages.  The SVM lab runs two L1 boots at a time (LAB_LANES in
    # tests/lab/test_lab.sh), each on one TCG thread, and Bochs has one
    # thread (NKVM_LAB_VMX=0: not); each of the three wants a whole
    # core for most of its run.  The later stages run one after the
    # other, the build without KVM on one job: a fourth thread.  All
    # share the two cores as equals, so that none is left to run alone
    # on one core at the end, as a niced one would be (make check's
    # length is its work over two cores only if nothing runs alone).
    rm -f "$logdir"/*.status "$logdir"/*.cpu
    (export NKVM_JOBS=1; later_stages side_stage) &
    side_pid=$!
    vmx_pid=""
    if [ "${NKVM_LAB_VMX:-1}" = 1 ]; then
        cpu_run "$logdir/vmx.cpu" "$top/tests/lab/test_lab_vmx_torture.sh" \
            > "$logdir/vmx.log" 2>&1 &
        vmx_pid=$!
    fi
    stage lab "$top/tests/lab/test_lab.sh"
    start=$SECONDS
    wait "$side_pid"
    stage_times+=", wait for the later stages $((SECONDS - start))"
    side_report "${side_names[@]}"
    if [ -n "$vmx_pid" ]; then
        echo "=== vmx (log: $logdir/vmx.log)"
        start=$SECONDS
        wait "$vmx_pid"
        rc=$?
        stage_times+=", vmx (after the lab) $((SECONDS - start))"
        grep -E '^(ok|not ok) |^[0-9]+ passed' "$logdir/vmx.log"
        count "$logdir/vmx.log" "$rc" vmx
        cpu_of "$logdir/vmx.cpu"
        stage_cpu+=", vmx $cpu"
    fi
fi
# The CPU time of every stage, with the children that each waited
# for: what make check costs on any number of cores.
cpu_ticks
echo "# stage times (s): $stage_times; in all $((SECONDS - check_start)), CPU $((ticks / 100))"
echo "# stage CPU (s): $stage_cpu"
echo "$skipped skipped (they need a usable /dev/kvm)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
