#!/bin/bash
# `make check-sanitize`: the functional tests (tests/functional/test_*.py,
# as in check.sh) against the ASan+UBSan build of the fork
# (scripts/build-fork.sh --sanitize -> build/qemu-system-x86_64-asan),
# ending with one line "N passed, N failed".  Every sanitizer report
# counts as one more failure, whatever the test itself said.
#
# Where the reports go: the sanitizers write them to files of their own
# (ASAN_OPTIONS/UBSAN_OPTIONS log_path), which are sorted by test into
# build/check-sanitize/reports/TEST/{asan,ubsan}.PID.  GCC's UBSan, linked
# beside ASan, writes only its SUMMARY line there and the report itself
# (the "runtime error:" line and the stack) to QEMU's stderr; the tests
# keep that in temporary directories they delete, so here they run with
# TMPDIR in a private directory and NKVM_KEEP=1, and after each test the
# QEMU stderr logs holding a report are copied beside the sanitizer files
# (reports/TEST/stderr-*) and the rest is removed.  Each SUMMARY line is
# one report and one failure; a report seen only in the tests' output
# (no SUMMARY written) counts too.
#
# Runtime options (docs/results.rst, "Sanitizers"):
#   ASan   abort_on_error=1: a report kills QEMU with SIGABRT, so the test
#          sees QEMU die and fails too.  Leak detection stays on (LSan
#          runs when QEMU exits on its own; a test's SIGKILL skips it):
#          upstream's own ASan run, tests/docker/test-debug, turns it
#          off for QEMU's noise at exit, but these tests show none but
#          one upstream leak, suppressed in scripts/sanitize/lsan.supp
#          with its reason.  fast_unwind_on_malloc=0: GLib has no frame
#          pointers, and without it allocation stacks end at g_malloc
#          (and no suppression can match).  NKVM_SANITIZE_LEAKS=0 turns
#          leak detection off.
#   UBSan  halt_on_error=1 abort_on_error=1 print_stacktrace=1: the first
#          "runtime error:" aborts QEMU with a stack.
# scripts/sanitize/ubsan.supp, if present, holds UBSan suppressions, each
# with its reason.  NKVM_SANITIZE_OPTIONS is appended to both option
# strings; NKVM_SANITIZE_TESTS="test_a.py test_b.py" runs only those.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
passed=0
failed=0
skipped=0
logdir=$build/check-sanitize
reports=$logdir/reports
mkdir -p "$logdir"
rm -rf "$reports"
mkdir -p "$reports/cur"

# count and stage
. "$top/scripts/tap-stages.sh"

build_asan() {
    "$top/scripts/build-fork.sh" --sanitize &&
        echo "ok - build qemu-system-x86_64-asan"
}

# Pristine 10.0.13: the peer of test_compat.py (not sanitized).
build_stock() {
    "$top/scripts/build-fork.sh" --pristine &&
        echo "ok - build stock qemu-system-x86_64"
}

# The test guest (build/standalone/tests/guest/nkvm-guest.elf).
build_guest() {
    local sb=$build/standalone
    [ -f "$sb/build.ninja" ] || "$top/scripts/meson" setup "$sb" "$top" ||
        return 1
    "$top/scripts/meson" compile -C "$sb" && echo "ok - build standalone"
}

sanitizer_env() {
    local opts=${NKVM_SANITIZE_OPTIONS:-} supp=$top/scripts/sanitize/ubsan.supp
    local leaks=1
    [ "${NKVM_SANITIZE_LEAKS:-1}" = 0 ] && leaks=0
    export NKVM_QEMU=$build/qemu-system-x86_64-asan
    export NKVM_FIRMWARE=$build/firmware-asan
    export ASAN_OPTIONS="detect_leaks=$leaks:fast_unwind_on_malloc=0:abort_on_error=1:halt_on_error=1:print_summary=1:log_path=$reports/cur/asan${opts:+:$opts}"
    export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1:log_path=$reports/cur/ubsan${opts:+:$opts}"
    [ -f "$supp" ] && UBSAN_OPTIONS="$UBSAN_OPTIONS:suppressions=$supp"
    export LSAN_OPTIONS="suppressions=$top/scripts/sanitize/lsan.supp:print_suppressions=1"
    echo "# NKVM_QEMU=$NKVM_QEMU"
    echo "# ASAN_OPTIONS=$ASAN_OPTIONS"
    echo "# UBSAN_OPTIONS=$UBSAN_OPTIONS"
    echo "# LSAN_OPTIONS=$LSAN_OPTIONS"
}

pat='ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer'

# collect TMP NAME: move the sanitizer files of test NAME under
# reports/NAME, with copies of the QEMU stderr logs (kept by NKVM_KEEP
# under TMP) that hold a report; then empty TMP but for its files (the
# /dev/kvm probe's cache).
collect() {
    local tmp=$1 name=$2 dst=$reports/$2 f d
    mkdir -p "$dst"
    for f in "$reports"/cur/*; do
        [ -f "$f" ] && mv "$f" "$dst/"
    done
    while IFS= read -r f; do
        d=$(basename "$(dirname "$f")")
        cp "$f" "$dst/stderr-$d-$(basename "$f")"
    done < <(grep -rlE --include='*.stderr' "$pat" "$tmp" 2>/dev/null)
    rmdir "$dst" 2>/dev/null
    find "$tmp" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
}

functional() {
    local t name tmp rc=0
    local -a wrap=()
    sanitizer_env
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nkvm-sanitize.XXXXXX") || return 1
    # ASan's fixed shadow layout breaks with more than 28 bits of mmap
    # randomisation (google/sanitizers#1716); run without ASLR then.
    if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
        echo "# vm.mmap_rnd_bits > 28: running under setarch -R"
        wrap=(setarch "$(uname -m)" -R)
    fi
    for t in "$top"/tests/functional/test_*.py; do
        [ -e "$t" ] || continue
        name=$(basename "$t")
        if [ -n "${NKVM_SANITIZE_TESTS:-}" ] &&
            [[ " $NKVM_SANITIZE_TESTS " != *" $name "* ]]; then
            continue
        fi
        echo "# --- $name"
        TMPDIR=$tmp NKVM_KEEP=1 "${wrap[@]}" /usr/bin/python3 "$t" |
            grep -v '^# logs kept in '
        [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
        collect "$tmp" "${name%.py}"
    done
    rm -rf "$tmp"
    return $rc
}

# One "not ok" per report (a SUMMARY line in the sanitizers' files), with
# the report and the QEMU stderr that holds its stack; then any report
# seen only in the tests' output.  Files with no report hold only
# messages, such as ASan's warning about swapcontext, which QEMU's
# coroutines use (they tell ASan about each switch); those are summed up
# by their lines.
sanitizer_reports() {
    local f line key n=0 extra=0 sum='^SUMMARY: [A-Za-z]+Sanitizer'
    local -a quiet=()
    local -A seen=()
    # A report is shown once per distinct SUMMARY (or first line), up to
    # its SUMMARY line; repeats get only their "not ok".
    for f in "$reports"/*/asan.* "$reports"/*/ubsan.*; do
        [ -f "$f" ] || continue
        if ! grep -qE "$sum|$pat" "$f"; then
            quiet+=("$f")
            continue
        fi
        while IFS= read -r line; do
            n=$((n + 1))
            echo "not ok - sanitizer report, ${f#"$reports"/}: $line"
        done < <(grep -E "$sum" "$f")
        key=$(grep -m1 -E "$sum" "$f")
        [ -z "${seen[$key]:-}" ] || continue
        seen[$key]=1
        sed -E -n "1,/$sum/p" "$f" | sed -n '1,60s/^/#   /p'
    done
    for f in "$reports"/*/stderr-*; do
        [ -f "$f" ] || continue
        key=$(grep -m1 -E "$pat" "$f" | sed -E 's/^==[0-9]+==//')
        [ -z "${seen[$key]:-}" ] || continue
        seen[$key]=1
        echo "# QEMU stderr ${f#"$reports"/}:"
        grep -E -m1 -A 30 "$pat" "$f" | sed -n '1,40s/^/#   /p'
    done
    if [ "$n" -eq 0 ]; then
        while IFS= read -r line; do
            extra=$((extra + 1))
            echo "not ok - sanitizer report in the test output: $line"
        done < <(grep -E "$pat" "$logdir/functional.log" 2>/dev/null)
        n=$extra
    fi
    if [ "${#quiet[@]}" -gt 0 ]; then
        echo "# ${#quiet[@]} files without a report; their lines:"
        sed -E 's/^==[0-9]+==//' "${quiet[@]}" | grep -vE '^-*$' |
            sort | uniq -c | sed 's/^/#   /'
    fi
    echo "# $n sanitizer reports (files in $reports)"
    [ "$n" -eq 0 ] && echo "ok - no sanitizer reports"
    return 0
}

start=$(date +%s)
stage build build_asan
stage stock build_stock
stage guest build_guest
stage functional functional
stage reports sanitizer_reports
echo "# check-sanitize took $(( $(date +%s) - start )) s"
echo "$skipped skipped (they need a usable /dev/kvm)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
