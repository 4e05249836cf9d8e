#!/usr/bin/python3
"""
L1's timer while its L2 loops on I/O: run the guest's "svm-timer" scenario
(tests/guest/svm-timer.c) again and again.  The guest is an SVM hypervisor
whose x2APIC timer ticks every 200 us; L2 loops on INSB, each tick is an
INTR exit, and L1 takes its tick in a one-instruction window, as in
kvm-unit-tests' reg_corruption.  A lost interrupt shows up as a run that
times out.  Before that, L1 injects one interrupt into L2 through EVENTINJ
and the test stops and continues the VM while L2's handler runs: the
interrupt must be delivered once (hook patch 0018).

  --accel tcg (default)       TCG is the SVM: every run must pass.
  --accel kvm|nested-kvm      the guest on KVM, L1's KVM nesting it (the
                              lab); skipped where KVM cannot run a guest.

make check runs 10 runs under TCG and 5 under each KVM accelerator in the
lab; docs/lab.rst quotes 200-run loops.  Prints TAP, one line per run and
a summary with the most ticks one window took.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

CPU = {"tcg": "EPYC,+svm,+x2apic", "kvm": "host", "nested-kvm": "host"}
SUMMARY = re.compile(r"# (\d+) ticks in (\d+) INTR exits; (\d+) windows "
                     r"took more than one tick, the most was (\d+)")


def dump_stuck(vm):
    """A run that does not end: print the guest's APIC and event state,
    so that a lost tick (IRR set, nothing in service) can be told from a
    slow one (the progress lines) before QEMU is killed."""
    for cmd in ("info lapic", "info registers", "info vcpu-events"):
        try:
            text = vm.qmp("human-monitor-command", **{"command-line": cmd})
        except nkvm.NkvmError as exc:
            text = f"{exc}"
        for line in text.splitlines():
            print(f"#   {cmd}| {line}")


def run_once(accel, index, timeout):
    """One guest run: (status, summary match or None, not ok lines)."""
    with nkvm.Lab() as lab:
        vm = lab.vm(f"timer{index}", "svm-timer", accel=accel,
                    extra_args=["-cpu", CPU[accel]]).launch()
        try:
            # A stop while L2's handler runs makes TCG's vCPU leave its
            # loop with no interrupt to take (svm-timer.c, inject_once).
            vm.wait_for_serial_line(r"SPINNING: .*", timeout)
            time.sleep(0.1)
            vm.qmp("stop")
            time.sleep(0.05)
            vm.qmp("cont")
            status = vm.wait_exit(timeout, fatal=False)
            if status is None:
                dump_stuck(vm)
                vm.fail(f"QEMU still running after {timeout} s")
        except nkvm.NkvmError as exc:
            return None, None, [f"harness: {exc}"]
        lines = vm.serial_lines()
    _, not_oks, _, _ = nkvm.guest_result(lines)
    summary = next((SUMMARY.match(ln) for ln in lines
                    if SUMMARY.match(ln)), None)
    return status, summary, not_oks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accel", default="tcg", choices=tuple(CPU))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="bound on each run, seconds (default: 120; a "
                        "run takes 1 s under TCG, 3 to 40 s in a loaded "
                        "lab)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")

    tap = nkvm.Tap()
    if not nkvm.check_environment(tap):
        return tap.finish()
    if args.accel != "tcg":
        usable, why = nkvm.kvm_probe()
        if not usable:
            tap.skip(f"svm-timer under {args.accel}", why)
            return tap.finish()

    passed = stepped = widest = 0
    start = time.monotonic()
    for i in range(args.runs):
        status, summary, not_oks = run_once(args.accel, i, args.timeout)
        if summary:
            print(f"# run {i}: {summary.group(0)[2:]}")
            stepped += int(summary.group(3)) > 0
            widest = max(widest, int(summary.group(4)))
        ok = status == nkvm.EXIT_PASS and not not_oks and summary
        passed += bool(ok)
        tap.check(ok, f"{args.accel} run {i}: the injected interrupt "
                  f"came once; the timer reached its count by INTR exits",
                  f"status {status} "
                  f"({nkvm.exit_status_name(status) if status else 'none'})"
                  f"; " + "; ".join(not_oks))
    print(f"# {passed}/{args.runs} runs passed in "
          f"{time.monotonic() - start:.0f} s; {stepped} runs had a window "
          f"with more than one tick, at most {widest} in one window")
    rc = tap.finish()
    print("PASS" if rc == 0 else "FAIL", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
