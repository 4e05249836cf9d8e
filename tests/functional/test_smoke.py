#!/usr/bin/python3
"""
Smoke test: boot the nkvm guest, let it check INT 0x80, INT3, INTO,
#PF, then inject an NMI over QMP and require a guest PASS.

Two negative cases show that the harness and the guest can fail:
  no-nmi       the same guest without the NMI must not PASS within a
               short bound (it must still be waiting in HLT);
  expect-fail  the guest's "expect-fail" scenario, with one expectation
               wrong on purpose, must report "not ok", FAIL and exit 35.

Prints TAP; exits 0 if every case passed, 1 otherwise.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402


def echo_guest(vm):
    for line in vm.serial_lines():
        print(f"#   {vm.name}| {line}")


def case_smoke(tap, accel, timeout):
    with nkvm.Lab() as lab:
        vm = lab.vm("smoke", "smoke", accel=accel).launch()
        t0 = time.monotonic()
        try:
            vm.wait_for_serial_line(r"READY nmi", timeout)
        except nkvm.NkvmError as exc:
            tap.check(False, "smoke: guest reached READY nmi", str(exc))
            return
        tap.check(True, f"smoke: guest reached READY nmi "
                        f"({(time.monotonic() - t0) * 1000:.0f} ms)")
        try:
            vm.qmp("inject-nmi")
            tap.check(True, "smoke: QMP inject-nmi accepted")
        except nkvm.NkvmError as exc:
            tap.check(False, "smoke: QMP inject-nmi accepted", str(exc))
        status = None
        try:
            status = vm.wait_exit(timeout)
        except nkvm.NkvmError as exc:
            tap.check(False, "smoke: QEMU exited", str(exc))
        oks, not_oks, plan, verdict = nkvm.guest_result(vm.serial_lines())
        echo_guest(vm)
        tap.check(status == nkvm.EXIT_PASS,
                  f"smoke: exit status {nkvm.EXIT_PASS} (guest PASS)",
                  f"got {status} ({nkvm.exit_status_name(status)})")
        tap.check(not not_oks and len(oks) > 0,
                  f"smoke: guest reported {len(oks)} ok and no not ok",
                  "; ".join(not_oks))
        tap.check(plan == len(oks) + len(not_oks),
                  "smoke: guest plan matches its check lines",
                  f"plan {plan}, {len(oks) + len(not_oks)} lines")
        tap.check(verdict == "PASS", "smoke: guest printed PASS",
                  f"got {verdict!r}")


def case_no_nmi(tap, accel, timeout, bound):
    with nkvm.Lab() as lab:
        vm = lab.vm("no-nmi", "smoke", accel=accel).launch()
        try:
            vm.wait_for_serial_line(r"READY nmi", timeout)
        except nkvm.NkvmError as exc:
            tap.check(False, "no-nmi: guest reached READY nmi", str(exc))
            return
        # Deliberately no inject-nmi: the harness must see no PASS.
        m = vm.wait_for_serial_line(r"PASS", bound, fatal=False)
        running = vm.poll() is None
        if m or not running:
            echo_guest(vm)
        tap.check(m is None and running,
                  f"no-nmi: without the NMI the guest does not PASS "
                  f"within {bound} s and keeps waiting",
                  f"PASS seen: {m is not None}, "
                  f"QEMU: {nkvm.exit_status_name(vm.poll())}")
        vm.kill()


def case_expect_fail(tap, accel, timeout):
    with nkvm.Lab() as lab:
        vm = lab.vm("expect-fail", "expect-fail", accel=accel).launch()
        try:
            status = vm.wait_exit(timeout)
        except nkvm.NkvmError as exc:
            tap.check(False, "expect-fail: QEMU exited", str(exc))
            return
        oks, not_oks, _, verdict = nkvm.guest_result(vm.serial_lines())
        echo_guest(vm)
        tap.check(status == nkvm.EXIT_FAIL,
                  f"expect-fail: exit status {nkvm.EXIT_FAIL} (guest FAIL)",
                  f"got {status} ({nkvm.exit_status_name(status)})")
        tap.check(len(not_oks) == 1 and "wrong on purpose" in not_oks[0],
                  "expect-fail: exactly the deliberate check is not ok",
                  f"not ok lines: {not_oks}")
        tap.check(len(oks) > 0 and verdict is not None
                  and verdict.startswith("FAIL"),
                  "expect-fail: other checks ok, final line FAIL",
                  f"{len(oks)} ok, verdict {verdict!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accel", default="tcg",
                        help="QEMU accelerator (default: tcg)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on each wait, seconds (default: 60)")
    parser.add_argument("--no-nmi-bound", type=float, default=3.0,
                        help="how long the no-nmi case waits for a PASS "
                             "that must not come (default: 3)")
    parser.add_argument("--case", action="append",
                        choices=("smoke", "no-nmi", "expect-fail"),
                        help="run only this case (repeatable)")
    args = parser.parse_args()
    cases = args.case or ["smoke", "no-nmi", "expect-fail"]

    tap = nkvm.Tap()
    if not nkvm.check_environment(tap):
        return tap.finish()

    if "smoke" in cases:
        case_smoke(tap, args.accel, args.timeout)
    if "no-nmi" in cases:
        case_no_nmi(tap, args.accel, args.timeout, args.no_nmi_bound)
    if "expect-fail" in cases:
        case_expect_fail(tap, args.accel, args.timeout)
    rc = tap.finish()
    print("PASS" if rc == 0 else "FAIL", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
