#!/usr/bin/python3
"""
make demo, part 1, on host A of a lab pair (scripts/lab pair): the same
guest hypervisor (the torture guest, 2 vCPUs, each injecting events
into its own L2) live-migrated between the two hosts, back and forth,
first under -accel kvm (upstream) and then under -accel nested-kvm, and
what each lost, side by side.

  demo_pair.py [--migrations N] [--cpus N]

Prints the table on stdout; torture.py's progress goes to stderr.
Exits 0 if both runs produced a result and nested-kvm lost nothing.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
from torture import MISDIRECTED_KEYS  # noqa: E402

TORTURE = Path(__file__).resolve().parent / "torture.py"


def run(accel, args):
    print(f"demo: {accel}: {args.migrations} migrations between the hosts, "
          f"{args.cpus} vCPUs ...", file=sys.stderr, flush=True)
    mode = "--expect-clean" if accel == "nested-kvm" else "--report-only"
    proc = subprocess.run(
        [sys.executable, str(TORTURE), "--pair", "--accel", accel,
         "--migrations", str(args.migrations), "--cpus", str(args.cpus),
         "--control-seconds", "0", "--max-gap", "0.5", mode],
        stdout=subprocess.PIPE, text=True, check=False,
        timeout=args.migrations * 30 + 120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if lines else None), proc.returncode


def cell(result, key):
    if result is None:
        return "no result"
    if key == "misdirected":
        return str(sum(result.get(k) or 0 for k in MISDIRECTED_KEYS))
    value = result.get(key)
    return "?" if value is None else str(value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--migrations", type=int, default=20)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()

    results = {accel: run(accel, args) for accel in ("kvm", "nested-kvm")}
    rows = (("migrations (A to B and back)", "migrations"),
            ("stops with an event in flight", "stops_in_flight"),
            ("events injected", "events_injected"),
            ("events lost", "lost"),
            ("duplicated or misdirected", "misdirected"),
            ("L1's NMIs left blocked", "l1_nmi_corrupt"))
    first = next((r for r, _ in results.values() if r), {})
    print()
    print(f"Between two lab hosts: A on {first.get('kernel', '?')}, "
          f"B on {first.get('kernel_b', '?')}; the guest hypervisor has "
          f"{args.cpus} vCPUs.")
    print(f"{'':32} {'-accel kvm':>14} {'-accel nested-kvm':>18}")
    for label, key in rows:
        print(f"{label:32} {cell(results['kvm'][0], key):>14} "
              f"{cell(results['nested-kvm'][0], key):>18}")
    nested, status = results["nested-kvm"]
    ok = results["kvm"][0] is not None and nested is not None and \
        status == 0
    print()
    print("nested-kvm: nothing lost" if ok else
          f"nested-kvm: NOT clean (torture.py status {status})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
