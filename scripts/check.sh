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

count() {
    local log=$1 rc=$2 name=$3 ok notok skip
    skip=$(grep -c '^ok .*# SKIP' "$log")
    ok=$(( $(grep -c '^ok ' "$log") - skip ))
    notok=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        echo "not ok - $name exited with status $rc (log: $log)"
        notok=1
    fi
    passed=$((passed + ok))
    skipped=$((skipped + skip))
    failed=$((failed + notok))
}

# stage NAME CMD...: run CMD, show its output, count its TAP lines.
stage() {
    local name=$1 log rc
    shift
    log=$logdir/$name.log
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    count "$log" "$rc" "$name"
}

build_fork() {
    "$top/scripts/build-fork.sh" && echo "ok - build qemu-system-x86_64"
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

functional() {
    local t rc=0
    for t in "$top"/tests/functional/test_*.py; do
        [ -e "$t" ] || continue
        /usr/bin/python3 "$t" || rc=1
    done
    return $rc
}

"$top/scripts/install-deps.sh" || { echo "not ok - install-deps"; }
stage build build_fork
stage stock build_stock
stage unit unit_tests
if [ -x "$top/scripts/run-fuzz.sh" ]; then
    stage fuzz "$top/scripts/run-fuzz.sh" "$FUZZ_SECONDS"
fi
stage checkpatch checkpatch
stage functional functional
# Real KVM: nested SVM inside the fork's TCG (docs/lab.rst).
if [ "${NKVM_LAB:-1}" = 1 ]; then
    stage lab "$top/tests/lab/test_lab.sh"
fi
echo "$skipped skipped (they need a usable /dev/kvm)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
