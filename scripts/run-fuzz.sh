#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the libFuzzer targets (tests/fuzz) and run each for an equal share
# of SECONDS_TOTAL.  Prints one TAP line per target; exits non-zero if the
# build fails or any target crashes, leaks, times out or runs out of
# memory.
#
# The seed corpora in tests/fuzz/corpus are copied to a scratch directory
# first, so fuzzing never modifies the source tree.  Logs and reproducers
# are kept under the build directory.
#
# Environment: NKVM_FUZZ_BUILD overrides the build directory (build/fuzz);
# FUZZ_CC the compiler used when it is first configured (clang).
#
# For a recorded campaign: NKVM_FUZZ_RECORD=FILE appends one JSON line per
# target to FILE (date, seconds, executions, final cov and ft, corpus size,
# result); NKVM_FUZZ_MERGE=1 merges each target's grown corpus back into
# tests/fuzz/corpus/<name>/ with libFuzzer's -merge=1, which keeps only the
# inputs that add coverage.  This is the one case where the source tree is
# written to.  Neither changes the ok/not ok lines; a merge adds a comment.

set -u

usage() {
    echo "usage: $0 SECONDS_TOTAL" >&2
    exit 2
}

[ $# -eq 1 ] || usage
case $1 in
    '' | *[!0-9]*) usage ;;
esac
total=$1
[ "$total" -gt 0 ] || usage

top=$(cd "$(dirname "$0")/.." && pwd)
meson="$top/scripts/meson"
build=${NKVM_FUZZ_BUILD:-$top/build/fuzz}
logdir="$build/fuzz-logs"
record=${NKVM_FUZZ_RECORD:-}
merge=${NKVM_FUZZ_MERGE:-0}

bail() {
    echo "Bail out! $*"
    exit 1
}

# Configure on first use; afterwards reconfigure anyway, because the list
# of targets depends on which fuzz-*.c files exist (tests/fuzz/meson.build
# checks with fs.exists at configure time).
mkdir -p "$build" || bail "cannot create $build"
setup_log="$build/run-fuzz-setup.log"
if [ ! -f "$build/build.ninja" ]; then
    CC=${FUZZ_CC:-clang} "$meson" setup -Dfuzz=true "$build" "$top" \
        >"$setup_log" 2>&1
else
    "$meson" setup --reconfigure -Dfuzz=true "$build" "$top" \
        >"$setup_log" 2>&1
fi || {
    sed 's/^/# /' "$setup_log"
    bail "meson setup failed (log: $setup_log)"
}

# Build only the fuzz executables, so an unrelated broken target elsewhere
# in the tree does not stop fuzzing.
mapfile -t targets < <(python3 - "$build" <<'EOF'
import json, os, sys
build = sys.argv[1]
with open(os.path.join(build, 'meson-info', 'intro-targets.json')) as f:
    for t in json.load(f):
        if (t['type'] == 'executable' and t['name'].startswith('fuzz-')
                and t['defined_in'].endswith(os.path.join('tests', 'fuzz',
                                                          'meson.build'))):
            print(t['name'] + '\t' + t['filename'][0])
EOF
)
[ ${#targets[@]} -gt 0 ] || bail "no fuzz targets configured in $build"

build_log="$build/run-fuzz-build.log"
names=()
for t in "${targets[@]}"; do
    names+=("tests/fuzz/${t%%$'\t'*}")
done
"$meson" compile -C "$build" "${names[@]}" >"$build_log" 2>&1 || {
    tail -n 60 "$build_log" | sed 's/^/# /'
    bail "build failed (log: $build_log)"
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/run-fuzz.XXXXXX") ||
    bail "cannot create scratch directory"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$logdir"

share=$((total / ${#targets[@]}))
[ "$share" -gt 0 ] || share=1

if [ -n "$record" ]; then
    mkdir -p "$(dirname "$record")" && : >>"$record" ||
        bail "cannot write $record"
fi

# JSON for a number that the log may not have had.
jnum() {
    echo "${1:-null}"
}

count_files() {
    find "$1" -maxdepth 1 -type f | wc -l
}

# Keep what the campaign found in the source tree, but only the inputs
# that reach coverage the committed corpus does not: libFuzzer's -merge=1
# replays the committed corpus first, then copies in each input of the
# campaign's corpus that adds a feature.
merge_corpus() {
    local exe=$1 from=$2 into=$3 artifacts=$4 log=$5

    mkdir -p "$into" &&
    "$exe" -merge=1 -rss_limit_mb=2048 -timeout=10 \
           -artifact_prefix="$artifacts/" "$into" "$from" >"$log" 2>&1
}

# UBSan aborts via -fno-sanitize-recover; ask for a stack in the log.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

echo "1..${#targets[@]}"
failed=0
for t in "${targets[@]}"; do
    name=${t%%$'\t'*}
    exe=${t#*$'\t'}
    short=${name#fuzz-}
    corpus="$scratch/$name/corpus"
    artifacts="$build/fuzz-artifacts/$name"
    log="$logdir/$name.log"

    mkdir -p "$corpus" "$artifacts"
    committed=
    for seeds in "$top/tests/fuzz/corpus/$short" \
                 "$top/tests/fuzz/corpus/$name"; do
        if [ -d "$seeds" ]; then
            cp -R "$seeds/." "$corpus/"
            committed=${committed:-$seeds}
        fi
    done
    committed=${committed:-$top/tests/fuzz/corpus/$short}

    # -timeout: these parsers take microseconds per input; without it a
    # hang would stall "make check" for libFuzzer's default 20 minutes.
    "$exe" -max_total_time="$share" -rss_limit_mb=2048 -timeout=10 \
           -print_final_stats=1 -artifact_prefix="$artifacts/" \
           "$corpus" >"$log" 2>&1
    rc=$?

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
           tail -n 1)
    cov=$(grep -o ' cov: [0-9]*' "$log" | tail -n 1 | tr -dc '0-9')

    merged=
    merge_failed=0
    if [ "$rc" -eq 0 ] && [ "$merge" = 1 ]; then
        before=$(count_files "$committed")
        if merge_corpus "$exe" "$corpus" "$committed" "$artifacts" \
                        "$logdir/$name-merge.log"; then
            merged=$(($(count_files "$committed") - before))
        else
            merge_failed=1
        fi
    fi

    if [ -n "$record" ]; then
        ft=$(grep -o ' ft: [0-9]*' "$log" | tail -n 1 | tr -dc '0-9')
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" |
              tail -n 1)
        rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
        if [ "$merge_failed" -eq 1 ]; then
            result="merge failed"
        elif [ "$rc" -eq 0 ]; then
            result=ok
        elif grep -q 'Test unit written to ' "$log"; then
            result=crash
        else
            result="exit $rc"
        fi
        printf '{"date": "%s", "target": "%s", "seconds": %d, ' \
               "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$share" \
               >>"$record"
        printf '"execs": %s, "exec_per_sec": %s, "cov": %s, "ft": %s, ' \
               "$(jnum "$runs")" "$(jnum "$eps")" "$(jnum "$cov")" \
               "$(jnum "$ft")" >>"$record"
        printf '"corpus": %d, "merged": %s, "peak_rss_mb": %s, ' \
               "$(count_files "$corpus")" "$(jnum "$merged")" \
               "$(jnum "$rss")" >>"$record"
        printf '"result": "%s"}\n' "$result" >>"$record"
    fi

    if [ "$rc" -eq 0 ] && [ "$merge_failed" -eq 0 ]; then
        echo "ok - fuzz $name (${runs:-?} runs, ${cov:-?} cov)"
        if [ -n "$merged" ]; then
            echo "# merged $merged new inputs into ${committed#"$top"/}"
        fi
        continue
    fi
    if [ "$rc" -eq 0 ]; then
        failed=1
        echo "not ok - fuzz $name: corpus merge failed"
        echo "# log: $logdir/$name-merge.log"
        continue
    fi

    failed=1
    repro=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
    if [ -n "$repro" ]; then
        echo "not ok - fuzz $name: crash, reproducer at $repro"
    else
        echo "not ok - fuzz $name: exit status $rc, no reproducer written"
    fi
    echo "# log: $log"
    grep -E 'ERROR|SUMMARY|invariant failed|runtime error|^ *#[0-9]+ ' \
        "$log" | head -n 40 | sed 's/^/#   /'
done

exit "$failed"
