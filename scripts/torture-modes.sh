#!/bin/bash
# The torture in every way a VM leaves a host (issue #14 item 6,
# docs/hidden-window.rst "Every way a VM leaves a host"): for each lab
# kernel, mode and accelerator, boot a lab L1 (scripts/lab run) and run
# tests/lab/torture.py --mode MODE.  Each run appends its JSON line, with
# the date and the commit, to docs/results/modes/DATE.jsonl (committed;
# scripts/torture-table.py --modes sums them into table.rst there, which
# docs/results.rst includes) as soon as it ends.  Progress goes to
# stderr.
#
# Environment: TORTURE_KERNELS (default "6.1 6.12"), TORTURE_MODES
# (default "postcopy multifd paused savevm"), TORTURE_ACCELS (default
# "nested-kvm kvm"; "nested-kvm-best-effort-nosettle" is nested-kvm with
# event-migration=best-effort and stop-settle-ms=0, what strict did
# before stops were prepared), TORTURE_CPUS (default 2),
# TORTURE_MIGRATIONS (default 30).
#
# Exits 0 iff every run produced a result and every nested-kvm run was
# clean.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
kernels=${TORTURE_KERNELS:-6.1 6.12}
modes=${TORTURE_MODES:-postcopy multifd paused savevm}
accels=${TORTURE_ACCELS:-nested-kvm kvm}
cpus=${TORTURE_CPUS:-2}
migrations=${TORTURE_MIGRATIONS:-30}

outdir=docs/results/modes
mkdir -p "$outdir" build/torture
results=$outdir/$(date -u +%Y-%m-%d).jsonl
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
status=0
total=$(( $(wc -w <<<"$kernels") * $(wc -w <<<"$modes") *
          $(wc -w <<<"$accels") ))
n=0
start=$(date +%s)
for k in $kernels; do
    for mode in $modes; do
        for a in $accels; do
            n=$((n + 1))
            case $a in
                nested-kvm) opts=(--accel nested-kvm --expect-clean
                                  --allow-refusals) ;;
                kvm) opts=(--accel kvm --report-only) ;;
                nested-kvm-best-effort-nosettle)
                    opts=(--accel nested-kvm --best-effort
                          --stop-settle-ms 0 --report-only) ;;
                *) echo "torture-modes: unknown accel $a" >&2; exit 2 ;;
            esac
            log=build/torture/modes-$(date -u +%Y%m%d-%H%M%S)-$k-$mode-$a.log
            echo "torture-modes: run $n/$total: kernel $k, $mode, $a," \
                 "$cpus vCPUs, $migrations times (output in $log)" >&2
            scripts/lab run --kernel "$k" --timeout 1800 -- \
                /usr/bin/python3 tests/lab/torture.py --mode "$mode" \
                --cpus "$cpus" --migrations "$migrations" --max-gap 0.5 \
                --control-seconds 0 "${opts[@]}" 2>&1 | tee "$log" >&2
            rc=${PIPESTATUS[0]}
            line=$(grep '^{' "$log" | tail -1)
            [ -n "$line" ] || line="{\"accel\": \"$a\", \"mode\": \"$mode\", \"error\": \"no result, status $rc\"}"
            /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
d.update(status=int(sys.argv[2]), commit=sys.argv[3], date=sys.argv[4],
         source="scripts/torture-modes.sh")
print(json.dumps(d))' "$line" "$rc" "$commit" "$(date -u +%FT%TZ)" \
                >> "$results"
            elapsed=$(( $(date +%s) - start ))
            echo "torture-modes: run $n/$total: status $rc;" \
                 "$((elapsed / 60)) min so far, about" \
                 "$(( elapsed * (total - n) / n / 60 )) min left" >&2
            if [ "$rc" -ne 0 ] && [ "$a" = nested-kvm ]; then
                status=1
            fi
            if ! grep -q '^{' "$log"; then
                status=1
            fi
        done
    done
done
/usr/bin/python3 scripts/torture-table.py --modes "$outdir" > "$outdir/table.rst"
exit "$status"
