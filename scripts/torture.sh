#!/bin/bash
# The full nested torture measurement (issue #6, docs/results.rst): for
# each lab kernel and accelerator, boot the lab and run
# tests/lab/torture.py with TORTURE_MIGRATIONS live migrations plus a
# control run.  Progress (the lab's and torture.py's) goes to stderr;
# every run's JSON line is kept in build/torture/results-<date>.jsonl,
# its whole output next to it, and the JSON lines are printed at the end.
#
# Environment: TORTURE_MIGRATIONS (default 1000), TORTURE_KVM_MIGRATIONS
# (upstream's count, default TORTURE_MIGRATIONS), TORTURE_KERNELS
# (default "6.1 6.12"), TORTURE_ACCELS (default "kvm nested-kvm"),
# TORTURE_CONTROL_SECONDS (default 300), TORTURE_MAX_GAP (longest random
# sleep before a migration, default 0.5 s), TORTURE_TIMEOUT (lab
# timeout per run in seconds, default 14400).
#
# Exits 0 iff every run produced a result, every control run was clean
# and nested-kvm lost nothing.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
migrations=${TORTURE_MIGRATIONS:-1000}
kernels=${TORTURE_KERNELS:-6.1 6.12}
accels=${TORTURE_ACCELS:-kvm nested-kvm}
kvm_migrations=${TORTURE_KVM_MIGRATIONS:-$migrations}
control=${TORTURE_CONTROL_SECONDS:-300}
max_gap=${TORTURE_MAX_GAP:-0.5}
timeout=${TORTURE_TIMEOUT:-14400}

mkdir -p build/torture
stamp=$(date +%Y%m%d-%H%M%S)
results=build/torture/results-$stamp.jsonl
status=0
for k in $kernels; do
    for a in $accels; do
        mode=--report-only
        n=$kvm_migrations
        if [ "$a" = nested-kvm ]; then
            mode=--expect-clean
            n=$migrations
        fi
        log=build/torture/run-$stamp-$k-$a.log
        echo "torture: kernel $k, accel $a, $n migrations" \
             "(output in $log)" >&2
        scripts/lab run --kernel "$k" --timeout "$timeout" -- \
            /usr/bin/python3 tests/lab/torture.py --accel "$a" \
            --migrations "$n" --control-seconds "$control" \
            --max-gap "$max_gap" $mode 2>&1 | tee "$log" >&2
        rc=${PIPESTATUS[0]}
        line=$(grep '^{' "$log" | tail -1)
        if [ -z "$line" ]; then
            line="{\"accel\": \"$a\", \"kernel\": \"$k\", \"error\": \"no result, status $rc\"}"
        fi
        echo "$line" >>"$results"
        echo "torture: kernel $k, accel $a: status $rc" >&2
        [ "$rc" -eq 0 ] || status=1
    done
done
echo "torture: results in $results" >&2
cat "$results"
exit $status
