#!/usr/bin/env python3
"""
The nested-kvm mirror on real KVM: x-query-nested-events and
"info vcpu-events" report each vCPU, and a live migration between two
nested-kvm processes keeps the reported model equal on both sides while
the guest passes.  Needs a usable /dev/kvm (the lab); prints "# SKIP"
lines elsewhere.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

TIMEOUT = 120
tap = nkvm.Tap()
NAMES = [
    "x-query-nested-events answers for every vCPU",
    "info vcpu-events prints every vCPU",
    "migration between nested-kvm processes completes",
    "the model reported after migration equals the source's",
    "the guest passes on the destination",
]


def report(ok, name, detail=""):
    tap.check(ok, f"mirror: {name}", detail)


def comparable(models):
    """The model without what legitimately differs between processes."""
    return [{k: v for k, v in m.items() if k != "restore-pending"}
            for m in models]


def run(smp):
    # -cpu host exposes the lab host's SVM (or VMX), so the mirror reads
    # and carries a real nested state.
    extra = ["-smp", str(smp), "-cpu", "host"]
    with nkvm.Lab("nkvm-mirror-") as lab:
        src = lab.vm("src", "migrate", accel="nested-kvm",
                     extra_args=extra).launch()
        dst = lab.vm("dst", "migrate", accel="nested-kvm", incoming="defer",
                     extra_args=extra).launch()
        src.wait_for_serial_line(r"READY migrate", TIMEOUT)
        before = src.qmp("x-query-nested-events")
        report(len(before) == smp and
               all(m["vendor"] in ("svm", "vmx") and "mirror-error" not in m
                   for m in before),
               f"{NAMES[0]} (smp {smp})", repr(before))
        text = src.qmp("human-monitor-command",
                       **{"command-line": "info vcpu-events"})
        report(all(f"CPU #{i}:" in text for i in range(smp)),
               f"{NAMES[1]} (smp {smp})", repr(text))
        src.qmp("stop")
        stopped = src.qmp("x-query-nested-events")
        info = nkvm.migrate(src, dst, timeout=TIMEOUT)
        report(info.get("status") == "completed",
               f"{NAMES[2]} (smp {smp})", repr(info))
        after = dst.qmp("x-query-nested-events")
        report(comparable(after) == comparable(stopped),
               f"{NAMES[3]} (smp {smp})",
               f"source {stopped!r} destination {after!r}")
        dst.qmp("cont")
        dst.qmp("inject-nmi")
        status = dst.wait_exit(TIMEOUT)
        report(status == nkvm.EXIT_PASS, f"{NAMES[4]} (smp {smp})",
               nkvm.exit_status_name(status))


def main():
    for smp in (1, 4):
        if nkvm.kvm_usable():
            run(smp)
        else:
            for name in NAMES:
                tap.skip(f"mirror: {name} (smp {smp})", "no usable /dev/kvm")
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - mirror: {exc}")
        sys.exit(1)
