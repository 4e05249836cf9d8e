#!/bin/bash
# make torture-vmx (issue #17): the nested torture under -accel nested-kvm
# in the VMX lab (Bochs 3.0, kvm_intel nested=1), TORTURE_VMX_MIGRATIONS
# migrations (default 1000) in chunks of TORTURE_VMX_CHUNK (default 100),
# one L1 boot each, so that a run cut short keeps every finished chunk.
# Each chunk's JSON line is appended to
# docs/results/torture-vmx/<date>.jsonl as soon as it ends; the totals
# over every file there are printed at the end.  At 5 migrations a
# minute on one host core, 1,000 take about 3.5 h; Bochs runs on one
# thread, so TORTURE_VMX_JOBS=2 runs two chunks at once on two cores.
#
#   scripts/torture-vmx.sh            run, then print the totals
#   scripts/torture-vmx.sh --totals   only print the totals so far
#
# Environment: TORTURE_VMX_MIGRATIONS, TORTURE_VMX_CHUNK,
# TORTURE_VMX_JOBS (default 1), TORTURE_VMX_KVM_MIGRATIONS (upstream's
# count per chunk, report only, default 0), TORTURE_VMX_KERNEL (default
# 6.12).
#
# Prints, after each chunk, how many migrations are done, the rate and
# the time left; each chunk's torture.py progress goes to its log.
# Exits 0 iff every chunk gave a result and nested-kvm lost nothing.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
dir=docs/results/torture-vmx

# The totals over every recorded day, nested-kvm and upstream apart.
totals() {
    /usr/bin/python3 - "$dir" <<'EOF'
import json, pathlib, sys
SUMS = ("migrations", "migrations_failed", "stops_in_flight",
        "stops_in_flight_requeued", "stops_in_flight_vmrun",
        "events_injected", "lost", "bad", "duplicated", "wrong_rip",
        "wrong_error_code", "wrong_vector", "wrong_cr2", "l1_nmi_corrupt",
        "l1_nmi_checks", "strict_refusals")
tot = {}
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
    for line in f.read_text().splitlines():
        r = json.loads(line)
        t = tot.setdefault(r["accel"], {"runs": 0, "by_type": {},
                                        **dict.fromkeys(SUMS, 0)})
        t["runs"] += 1
        for k in SUMS:
            t[k] += r.get(k, 0)
        for k, v in r.get("stops_in_flight_by_type", {}).items():
            t["by_type"][k] = t["by_type"].get(k, 0) + v
for accel, t in sorted(tot.items()):
    by_type = t.pop("by_type")
    print(f"torture-vmx {accel}: " +
          ", ".join(f"{k} {v}" for k, v in t.items()))
    print(f"torture-vmx {accel}: stops in flight by type: " +
          ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
EOF
}
if [ "${1:-}" = --totals ]; then
    totals
    exit
fi
[ $# -eq 0 ] || { echo "usage: $0 [--totals]" >&2; exit 2; }
total=${TORTURE_VMX_MIGRATIONS:-1000}
chunk=${TORTURE_VMX_CHUNK:-100}
kvm_n=${TORTURE_VMX_KVM_MIGRATIONS:-0}
kernel=${TORTURE_VMX_KERNEL:-6.12}
jobs_n=${TORTURE_VMX_JOBS:-1}
for n in "$total" "$chunk" "$kvm_n" "$jobs_n"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "$0: '$n' is not a count" >&2; exit 2; }
done
if [ "$chunk" -eq 0 ] || [ "$jobs_n" -eq 0 ]; then
    echo "$0: TORTURE_VMX_CHUNK and TORTURE_VMX_JOBS must be > 0" >&2
    exit 2
fi

mkdir -p "$dir" build/torture
record=$dir/$(date +%Y-%m-%d).jsonl
# run_chunk N FIRST LOG: one L1 boot with N nested-kvm migrations
run_chunk() {
    local n=$1 log=$3 rc
    echo "torture-vmx: chunk of $n migrations from $2 of $total" \
         "(output in $log)" >&2
    tests/lab/test_lab_vmx_torture.sh --kernel "$kernel" --kvm "$kvm_n" \
        --nested-kvm "$n" --extend 0 --drop 0 --record "$record" \
        --timeout $((600 + 60 * (n + kvm_n))) > "$log" 2>&1
    rc=$?
    grep -E '^(not )?ok ' "$log" >&2
    return $rc
}

# progress: after each chunk, the migrations this run's chunks have done,
# finished or not, the rate and the time left at that rate.  A chunk's
# count is torture.py's last "precopy I/N" line in its log, N its size
# (upstream's lines, with TORTURE_VMX_KVM_MIGRATIONS, have another N
# unless the two counts are equal).
t0=$(date +%s)
chunk_logs=()
chunk_done() {
    sed -n "s|^torture: precopy \([0-9]*\)/$1 .*|\1|p" "$2" 2>/dev/null |
        tail -n 1
}
progress() {
    local el rate left entry d finished=0
    for entry in "${chunk_logs[@]}"; do
        d=$(chunk_done "${entry%% *}" "${entry#* }")
        finished=$((finished + ${d:-0}))
    done
    el=$(($(date +%s) - t0))
    rate=$(awk -v n="$finished" -v s="$el" 'BEGIN { printf "%.1f", 60 * n / (s > 0 ? s : 1) }')
    left=$(awk -v n="$finished" -v t="$total" -v s="$el" \
               'BEGIN { printf "%d", (t - n) * s / (n > 0 ? n : 1) / 60 }')
    echo "torture-vmx: $finished of $total migrations done in" \
         "$((el / 60)) min, $rate/min, about $left min left" >&2
}

status=0
done_n=0
running=0
while [ "$done_n" -lt "$total" ]; do
    n=$((total - done_n < chunk ? total - done_n : chunk))
    log=build/torture/vmx-$(date +%Y%m%d-%H%M%S)-$done_n.log
    chunk_logs+=("$n $log")
    run_chunk "$n" "$done_n" "$log" &
    running=$((running + 1))
    done_n=$((done_n + n))
    if [ "$running" -ge "$jobs_n" ]; then
        wait -n || status=1
        running=$((running - 1))
        progress
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
    progress
done

totals
exit $status
