#!/bin/bash
# The torture at scale between two lab hosts (issue #14, docs/results.rst
# "Between two hosts"): for each kernel pair, guest vCPU count and
# accelerator, boot a lab pair (scripts/lab pair) and run
# tests/lab/torture.py --pair.  Each run appends its JSON line, with the
# pair, the date and the commit, to docs/results/torture-pairs/DATE.jsonl
# (committed; scripts/torture-table.py sums them into table.rst there,
# which docs/results.rst includes) as soon
# as it ends, so an interrupted campaign keeps what it finished.
# Progress (the lab's and torture.py's: migrations done, rate, time
# left) goes to stderr.
#
# Environment: TORTURE_PAIRS (default "6.1,6.1 6.12,6.12 6.1,6.12
# 6.12,6.1", host A first), TORTURE_CPUS (default "1 2 4"),
# TORTURE_ACCELS (default "nested-kvm kvm"), TORTURE_MIGRATIONS per
# nested-kvm run (default 200), TORTURE_KVM_MIGRATIONS per kvm run
# (default 50), TORTURE_CONTROL_SECONDS (default 30), TORTURE_MAX_GAP
# (default 0.5 s), TORTURE_TIMEOUT (lab timeout per run, default 3600 s),
# TORTURE_RUNS (repeat the whole matrix, default 1).
#
# Exits 0 iff every run produced a result and every nested-kvm run was
# clean (torture.py --expect-clean).
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
pairs=${TORTURE_PAIRS:-6.1,6.1 6.12,6.12 6.1,6.12 6.12,6.1}
cpus_list=${TORTURE_CPUS:-1 2 4}
accels=${TORTURE_ACCELS:-nested-kvm kvm}
migrations=${TORTURE_MIGRATIONS:-200}
kvm_migrations=${TORTURE_KVM_MIGRATIONS:-50}
control=${TORTURE_CONTROL_SECONDS:-30}
max_gap=${TORTURE_MAX_GAP:-0.5}
timeout=${TORTURE_TIMEOUT:-3600}
repeat=${TORTURE_RUNS:-1}

outdir=docs/results/torture-pairs
mkdir -p "$outdir" build/torture
results=$outdir/$(date -u +%Y-%m-%d).jsonl

# result_line LOG: torture.py's last JSON line in LOG.  Host B's lab
# messages ("[b] ...") share the terminal and once landed inside that
# line, so they are taken out before it is looked for.
result_line() {
    /usr/bin/python3 -c '
import json, re, sys
text = re.sub(r"\[[ab]\] [^\n]*\n", "", open(sys.argv[1], errors="replace").read())
for line in reversed(text.splitlines()):
    if line.startswith("{"):
        try:
            json.loads(line)
        except ValueError:
            continue
        print(line)
        break' "$1"
}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
status=0
total=$(( repeat * $(wc -w <<<"$pairs") * $(wc -w <<<"$cpus_list") *
          $(wc -w <<<"$accels") ))
n=0
start=$(date +%s)
for _ in $(seq 1 "$repeat"); do
for pair in $pairs; do
    for cpus in $cpus_list; do
        for a in $accels; do
            n=$((n + 1))
            mode=--expect-clean
            m=$migrations
            if [ "$a" = kvm ]; then
                mode=--report-only
                m=$kvm_migrations
            fi
            log=build/torture/pair-$(date -u +%Y%m%d-%H%M%S)-$pair-$cpus-$a.log
            echo "torture-pairs: run $n/$total: pair $pair, $cpus vCPUs," \
                 "$a, $m migrations (output in $log)" >&2
            scripts/lab pair --kernels "$pair" --timeout "$timeout" -- \
                /usr/bin/python3 tests/lab/torture.py --pair --accel "$a" \
                --cpus "$cpus" --migrations "$m" \
                --control-seconds "$control" --max-gap "$max_gap" $mode \
                2>&1 | tee "$log" >&2
            rc=${PIPESTATUS[0]}
            line=$(result_line "$log")
            [ -n "$line" ] || line="{\"accel\": \"$a\", \"error\": \"no result, status $rc\"}"
            /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
d.update(pair=sys.argv[2], cpus=int(sys.argv[3]), status=int(sys.argv[4]),
         commit=sys.argv[5], date=sys.argv[6])
print(json.dumps(d))' "$line" "$pair" "$cpus" "$rc" "$commit" \
                "$(date -u +%FT%TZ)" >> "$results"
            elapsed=$(( $(date +%s) - start ))
            echo "torture-pairs: run $n/$total: status $rc;" \
                 "$((elapsed / 60)) min so far, about" \
                 "$(( elapsed * (total - n) / n / 60 )) min left" >&2
            [ "$rc" -eq 0 ] || status=1
        done
    done
done
done
echo "torture-pairs: results appended to $results" >&2
/usr/bin/python3 scripts/torture-table.py "$outdir" > "$outdir/table.rst"
cat "$outdir/table.rst"
exit $status
