#!/usr/bin/python3
"""
SVM fidelity of the lab's L0: run the guest's "svm-fidelity" scenario
(tests/guest/svm-fidelity.c) under TCG with -cpu EPYC,+svm.  The guest is a
minimal SVM hypervisor; each case below is a TCG defect that hook patches
0013-0022 fix (docs/lab.rst, "Fidelity"), and each fails with its patch
reverted:

  lmsw         0013  LMSW takes the selective CR0 write intercept (65h)
  cr-read      0014  MOV from CR3/CR4 checks its own read intercept
  rdtscp       0015  RDTSCP exits with 87h when intercepted
  xsetbv       0016  XSETBV with CR4.OSXSAVE=0 raises #UD before its
                     intercept
  bad-inject   0017  a VMRUN that fails on EVENTINJ keeps the guest's RIP
  pae-pdpte    0019  a legacy PAE guest's PDPTEs get no Accessed bit
  alignment    0020  a misaligned access at CPL 3 with CR0.AM and
                     RFLAGS.AC raises #AC
  lbr          0021  DebugCtl.LBR records the last branch (jmp, jz,
                     ret) in LastBranchFromIP/ToIP
  lbrv         0022  LBR virtualization: VMRUN loads L2's DebugCtl and
                     LBR MSRs from the VMCB, #VMEXIT saves them there
                     and restores L1's

Always -accel tcg.  Prints TAP; exits 0 if every check passed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

CPU = "EPYC,+svm"

# Each case: the guest's check descriptions that must all be "ok".
CASES = {
    "lmsw": (
        "lmsw toggling only CR0.MP, selective CR0 write intercepted: "
        "exit code",
        "lmsw toggling only CR0.MP, selective CR0 write intercepted: "
        "saved RIP",
        "lmsw: CR0 in the VMCB is unchanged",
        "mov to cr0 toggling only CR0.MP, selective CR0 write "
        "intercepted: exit code",
        "mov to cr0: the guest's CR0.MP changed",
    ),
    "cr-read": (
        "mov from cr3, CR3 read intercepted: exit code",
        "mov from cr3, CR3 read intercepted: saved RIP",
        "mov from cr4, CR4 read intercepted: exit code",
        "mov from cr3 and cr4, only CR0 reads intercepted: exit code",
    ),
    "rdtscp": (
        "rdtscp, RDTSCP intercepted: exit code",
        "rdtscp, RDTSCP intercepted: saved RIP",
    ),
    "xsetbv": (
        "xsetbv with CR4.OSXSAVE=0, XSETBV and #UD intercepted: exit code",
        "xsetbv with CR4.OSXSAVE=1, XSETBV and #UD intercepted: exit code",
    ),
    "bad-inject": (
        "EVENTINJ exception vector 2: exit code is VMEXIT_INVALID",
        "EVENTINJ exception vector 2: saved RIP is the guest's",
        "EVENTINJ exception vector 2: saved RFLAGS are the guest's",
        "then EVENTINJ #DE: pushed RIP is the guest's",
    ),
    "pae-pdpte": (
        "legacy PAE guest without NPT runs to its VMMCALL: exit code",
        "legacy PAE guest: its PDPTE is unchanged (no Accessed bit)",
    ),
    "alignment": (
        "misaligned 8-byte store at CPL 3, CR0.AM and RFLAGS.AC, "
        "#AC intercepted: exit code",
        "misaligned 8-byte store at CPL 3, CR0.AM and RFLAGS.AC, "
        "#AC intercepted: saved RIP",
        "#AC: the misaligned store did not happen",
        "misaligned 4-byte load at CPL 3, CR0.AM and RFLAGS.AC, "
        "#AC intercepted: exit code",
        "aligned and byte accesses at CPL 3, CR0.AM and RFLAGS.AC: "
        "exit code",
        "misaligned store at CPL 3, CR0.AM, RFLAGS.AC clear: exit code",
        "misaligned store at CPL 3, RFLAGS.AC, CR0.AM clear: exit code",
    ),
    "lbr": (
        "lbr jmp: DebugCtl reads back with LBR set",
        "lbr jmp: LastBranchFromIP is the branch",
        "lbr jmp: LastBranchToIP is its target",
        "lbr taken jz: DebugCtl reads back with LBR set",
        "lbr taken jz: LastBranchFromIP is the branch",
        "lbr taken jz: LastBranchToIP is its target",
        "lbr ret: DebugCtl reads back with LBR set",
        "lbr ret: LastBranchFromIP is the branch",
        "lbr ret: LastBranchToIP is its target",
        "lbr: DebugCtl reads 0 once cleared",
    ),
    "lbrv": (
        "lbrv, L2 LBR on: exit code",
        "lbrv, L2 LBR on: L2 starts with the VMCB's DebugCtl",
        "lbrv, L2 LBR on: L2 starts with the VMCB's LastBranchFromIP",
        "lbrv, L2 LBR on: L2 starts with the VMCB's LastBranchToIP",
        "lbrv, L2 LBR on: #VMEXIT saves L2's DebugCtl",
        "lbrv, L2 LBR on: #VMEXIT saves L2's LastBranchFromIP",
        "lbrv, L2 LBR on: #VMEXIT saves L2's LastBranchToIP",
        "lbrv, L2 LBR on: L1's DebugCtl is restored",
        "lbrv, L2 LBR on: L1's LastBranchFromIP is restored",
        "lbrv, L2 LBR on: L1's LastBranchToIP is restored",
        "lbrv, L2 LBR off: exit code",
        "lbrv, L2 LBR off: L2 starts with the VMCB's DebugCtl",
        "lbrv, L2 LBR off: L2 starts with the VMCB's LastBranchFromIP",
        "lbrv, L2 LBR off: L2 starts with the VMCB's LastBranchToIP",
        "lbrv, L2 LBR off: #VMEXIT saves L2's DebugCtl",
        "lbrv, L2 LBR off: #VMEXIT saves L2's LastBranchFromIP",
        "lbrv, L2 LBR off: #VMEXIT saves L2's LastBranchToIP",
        "lbrv, L2 LBR off: L1's DebugCtl is restored",
        "lbrv, L2 LBR off: L1's LastBranchFromIP is restored",
        "lbrv, L2 LBR off: L1's LastBranchToIP is restored",
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on the guest run, seconds (default: 60)")
    args = parser.parse_args()

    tap = nkvm.Tap()
    if not nkvm.check_environment(tap):
        return tap.finish()

    status, lines = nkvm.run_guest("fidelity", "svm-fidelity", args.timeout,
                                   CPU)
    oks, not_oks, plan, verdict = nkvm.guest_result(lines)
    ok_descs = {ln.split(" - ", 1)[1] for ln in oks}
    for case, descs in CASES.items():
        missing = [d for d in descs if d not in ok_descs]
        tap.check(not missing, f"{case}: {len(descs)} checks ok",
                  "not ok or absent: " + "; ".join(missing))
    tap.check(status == nkvm.EXIT_PASS and not not_oks,
              f"guest PASS, no not ok (exit status {status})",
              "; ".join(not_oks))
    tap.check(plan is not None and plan == len(oks) + len(not_oks)
              and verdict == "PASS",
              "plan matches and the guest printed PASS",
              f"plan {plan}, {len(oks) + len(not_oks)} lines, {verdict!r}")
    rc = tap.finish()
    print("PASS" if rc == 0 else "FAIL", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
