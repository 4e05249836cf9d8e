#!/usr/bin/python3
"""
Sum the torture's raw results between two lab hosts (the JSON lines that
scripts/torture-pairs.sh appends under docs/results/torture-pairs/) into
the table of docs/results.rst, one row per kernel pair, vCPU count and
accelerator, and print it as an RST csv-table with the totals.  With
--modes, sum scripts/torture-modes.sh's lines instead, one row per
kernel, mode and accelerator.

  torture-table.py [DIR]            default: docs/results/torture-pairs
  torture-table.py --modes [DIR]    default: docs/results/modes

A line without a result (a run that died) counts as a failed run.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

MISDIRECTED = ("duplicated", "wrong_vector", "wrong_rip",
               "wrong_error_code", "wrong_cr2", "bad_exitintinfo",
               "unexpected_exit")
PAIR_ORDER = {"6.1,6.1": 0, "6.12,6.12": 1, "6.1,6.12": 2, "6.12,6.1": 3}


def load(folder):
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{number}: not JSON: {exc}")
    return rows


def num(run, key):
    value = run.get(key)
    return value if isinstance(value, int) else 0


def pair_key(run):
    return (run.get("pair", "?"), run.get("cpus", 1), run.get("accel", "?"))


def mode_key(run):
    return (run.get("kernel", "?"), run.get("mode", "precopy"),
            run.get("accel", "?"))


def summarise(rows, key_of):
    groups = defaultdict(lambda: defaultdict(int))
    for run in rows:
        g = groups[key_of(run)]
        g["runs"] += 1
        ok = "error" not in run and run.get("migrations") is not None
        if not ok or run.get("status", 0) != 0:
            g["failed_runs"] += 1
        if not ok:
            continue
        for k in ("migrations", "migrations_a_to_b", "migrations_b_to_a",
                  "migrations_failed", "stops_in_flight", "stops_traced",
                  "events_injected", "lost", "l1_nmi_corrupt",
                  "l1_nmi_extra", "strict_refusals", "cross_ipis_sent",
                  "cross_nmis_sent"):
            g[k] += num(run, k)
        g["cross_lost"] += num(run, "cross_ipis_lost") + \
            num(run, "cross_nmis_lost")
        g["misdirected"] += sum(num(run, k) for k in MISDIRECTED)
        ctl = run.get("control") or {}
        g["control_bad"] += ctl.get("bad") or 0
        g["control_events"] += ctl.get("events_injected") or 0
    return groups


def outcome_cells(g):
    """The columns both tables end with: in flight, events, lost,
    misdirected, L1 NMIs blocked, and the IPIs and NMIs between vCPUs."""
    return (f"{g['stops_in_flight']}, {g['events_injected']}, {g['lost']}, "
            f"{g['misdirected']}, {g['l1_nmi_corrupt']}, "
            f"\"{g['cross_ipis_sent'] + g['cross_nmis_sent']}, "
            f"{g['cross_lost']}\"")


def print_pairs(groups):
    print(".. csv-table::")
    print("   :header: \"pair (A,B)\", vCPUs, accel, runs (failed), "
          "\"migrations (A to B + B to A)\", in flight, events, lost, "
          "\"duplicated, misdirected\", l1_nmi_corrupt, "
          "\"IPIs + NMIs between vCPUs, lost\", "
          "\"control: events, bad\"")
    print()
    totals = defaultdict(int)
    for key in sorted(groups, key=lambda k: (PAIR_ORDER.get(k[0], 9),
                                             k[1], k[2] != "nested-kvm")):
        pair, cpus, accel = key
        g = groups[key]
        totals[accel] += g["migrations"]
        print(f"   \"{pair}\", {cpus}, {accel}, "
              f"{g['runs']} ({g['failed_runs']}), "
              f"\"{g['migrations']} ({g['migrations_a_to_b']} + "
              f"{g['migrations_b_to_a']})\", {outcome_cells(g)}, "
              f"\"{g['control_events']}, {g['control_bad']}\"")
    return totals


def print_modes(groups):
    print(".. csv-table::")
    print("   :header: kernel, mode, accel, runs (failed), \"saved and "
          "restored\", \"strict refusals\", in flight, events, lost, "
          "\"duplicated, misdirected\", l1_nmi_corrupt, "
          "\"IPIs + NMIs between vCPUs, lost\"")
    print()
    totals = defaultdict(int)
    for key in sorted(groups, key=lambda k: (k[0], k[1],
                                             k[2] != "nested-kvm", k[2])):
        kernel, mode, accel = key
        g = groups[key]
        totals[accel] += g["migrations"]
        print(f"   {kernel}, {mode}, \"{accel}\", "
              f"{g['runs']} ({g['failed_runs']}), {g['migrations']}, "
              f"{g['strict_refusals']}, {outcome_cells(g)}")
    return totals


def main():
    args = sys.argv[1:]
    modes = bool(args) and args[0] == "--modes"
    if modes:
        args = args[1:]
    folder = args[0] if args else \
        ("docs/results/modes" if modes else "docs/results/torture-pairs")
    rows = load(folder)
    if modes:
        totals = print_modes(summarise(rows, mode_key))
    else:
        totals = print_pairs(summarise(rows, pair_key))
    print()
    print("Totals: " + ", ".join(f"{accel} {n} "
                                 f"{'saves' if modes else 'migrations'}"
                                 for accel, n in sorted(totals.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
