#!/usr/bin/python3
"""
SVM NRIP save under TCG: run the guest's "svm-nrip" scenario, in which the
guest is a minimal SVM hypervisor (see tests/guest/svm-nrip.c and
docs/nrip-save.rst), with and without the nrip-save CPU feature.

Cases:
  epyc       -cpu EPYC,+svm (its model includes NRIPSAVE): guest PASS;
  qemu64     -cpu qemu64,+svm,+npt,+nrip-save: guest PASS;
  no-nrips   -cpu EPYC,+svm,-nrip-save: the guest must see CPUID
             Fn8000_000A_EDX[NRIPS] clear and report exactly that one
             "not ok"; NextRIP must stay 0 on every intercept and soft
             event injection must push the guest RIP (old behaviour).

Always -accel tcg: NRIP save is emulated by TCG.  Prints TAP; exits 0 if
every case passed, 1 otherwise.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

CPUS = {
    "epyc": "EPYC,+svm",
    "qemu64": "qemu64,+svm,+npt,+nrip-save",
    "no-nrips": "EPYC,+svm,-nrip-save",
}


def case_nrips(tap, case, timeout):
    status, lines = nkvm.run_guest(case, "svm-nrip", timeout, CPUS[case])
    oks, not_oks, plan, verdict = nkvm.guest_result(lines)
    cpu = CPUS[case]
    tap.check(any("NRIPS present" in ln for ln in lines),
              f"{case}: guest sees CPUID NRIPS with -cpu {cpu}")
    tap.check(status == nkvm.EXIT_PASS,
              f"{case}: exit status {nkvm.EXIT_PASS} (guest PASS)",
              f"got {status} ({nkvm.exit_status_name(status)})")
    nrip_oks = [ln for ln in oks if "next_rip is the next instruction" in ln]
    tap.check(not not_oks and len(nrip_oks) >= 20,
              f"{case}: no not ok, and at least 20 intercepts saved the "
              f"next RIP ({len(nrip_oks)}, {len(oks)} ok)",
              "; ".join(not_oks))
    inj = [ln for ln in oks if "pushed return RIP is VMCB NextRIP" in ln]
    tap.check(len(inj) == 5,
              f"{case}: 5 injected soft events returned to NextRIP",
              f"{len(inj)} such ok lines")
    tap.check(plan == len(oks) + len(not_oks) and verdict == "PASS",
              f"{case}: plan matches and the guest printed PASS",
              f"plan {plan}, {len(oks) + len(not_oks)} lines, {verdict!r}")


def case_no_nrips(tap, timeout):
    case = "no-nrips"
    status, lines = nkvm.run_guest(case, "svm-nrip", timeout, CPUS[case])
    oks, not_oks, _, verdict = nkvm.guest_result(lines)
    tap.check(any("NRIPS absent" in ln for ln in lines),
              f"{case}: guest sees CPUID NRIPS clear with -cpu {CPUS[case]}")
    tap.check(status == nkvm.EXIT_FAIL,
              f"{case}: exit status {nkvm.EXIT_FAIL} (guest FAIL)",
              f"got {status} ({nkvm.exit_status_name(status)})")
    tap.check(len(not_oks) == 1 and "[NRIPS] is set" in not_oks[0],
              f"{case}: the only not ok is the CPUID NRIPS check",
              f"not ok lines: {not_oks}")
    zero = [ln for ln in oks if "next_rip stays 0 without NRIPS" in ln]
    tap.check(len(zero) >= 20,
              f"{case}: next_rip stayed 0 on {len(zero)} intercepts")
    old = [ln for ln in oks
           if "pushed return RIP is the guest RIP without NRIPS" in ln]
    tap.check(len(old) == 5,
              f"{case}: 5 injected soft events returned to the guest RIP",
              f"{len(old)} such ok lines")
    tap.check(verdict is not None and verdict.startswith("FAIL"),
              f"{case}: final line FAIL", f"got {verdict!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on each guest run, seconds (default: 60)")
    parser.add_argument("--case", action="append", choices=tuple(CPUS),
                        help="run only this case (repeatable)")
    args = parser.parse_args()
    cases = args.case or list(CPUS)

    tap = nkvm.Tap()
    if not nkvm.check_environment(tap):
        return tap.finish()

    for case in cases:
        if case == "no-nrips":
            case_no_nrips(tap, args.timeout)
        else:
            case_nrips(tap, case, args.timeout)
    rc = tap.finish()
    print("PASS" if rc == 0 else "FAIL", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
