#!/usr/bin/env python3
"""
The nested-kvm mirror on real KVM: x-query-nested-events and
"info vcpu-events" report each vCPU, and a live migration between two
nested-kvm processes keeps the reported model equal on both sides while
the guest passes.  A stream whose cpu/nested-events subsection carries
an interrupt shadow (spliced in by a proxy) must reach the destination's
KVM: stock QEMU never writes kvm_vcpu_events.interrupt.shadow, so only
the mirror's put hook can.  Needs a usable /dev/kvm (the lab); prints "# SKIP"
lines elsewhere.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

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
    return [{k: v for k, v in m.items()
             if k not in ("restore-pending", "state-source")}
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


def run_shadow():
    """An interrupt shadow spliced into the stream of a vCPU held in its
    NMI handler (spinning on COM1, so not halted: a halted vCPU cannot
    be in a shadow) with a second NMI pending.  The spliced subsection
    carries only the shadow; the destination rebuilds that NMI state
    from the stream's CPU fields, as for the source's own.
    KVM_X86_SHADOW_INT_MOV_SS goes in; SVM keeps one shadow bit (VMCB
    int_state bit 0) and reports MOV_SS | STI = 3, VMX keeps MOV SS
    blocking and reports 1."""
    extra = ["-cpu", "host"]
    with nkvm.Lab("nkvm-mirror-shadow-") as lab:
        src = lab.vm("src", "events-nmi-held", accel="nested-kvm",
                     extra_args=extra, serial_input=True).launch()
        dst = lab.vm("dst", "events-nmi-held", accel="nested-kvm",
                     incoming="defer", extra_args=extra + ["-S"],
                     serial_input=True).launch()
        src.wait_for_serial_line(r"READY nmi-held", TIMEOUT)
        src.qmp("inject-nmi")
        src.wait_for_serial_line(r"HELD nmi", TIMEOUT)
        src.qmp("inject-nmi")
        l1 = nkvm.poll(lambda: src.qmp("x-query-nested-events")[0]["l1"],
                       lambda l1: l1["nmi-pending"] == 1, TIMEOUT)
        if l1["nmi-pending"] != 1:
            raise nkvm.NkvmTimeout(f"the second NMI never became pending: "
                                   f"{l1!r}")
        # The NMI state is rebuilt from the stream's own CPU fields.
        shadow = ns.model(shadow=ns.SHADOW_MOV_SS)
        proxy = ns.migrate_spliced(src, dst, ns.subsection(shadow),
                                   nkvm.LOOPBACK)
        try:
            info = src.wait_migration(timeout=TIMEOUT)
            nkvm.wait_incoming_done(dst, time.monotonic() + TIMEOUT)
            after = dst.qmp("x-query-nested-events")[0]
        finally:
            proxy.close()
        want = 3 if after["vendor"] == "svm" else 1
        report(proxy.spliced and info.get("status") == "completed" and
               after["l1"]["interrupt-shadow"] == want and
               after["l1"]["nmi-pending"] == 1 and
               not after["restore-pending"],
               "a migrated interrupt shadow reaches the destination's KVM",
               f"spliced={proxy.spliced} migrate={info.get('status')} "
               f"destination {after!r}")
        dst.qmp("cont")
        src.qmp("quit")
        dst.serial_write(b"R")
        status = dst.wait_exit(TIMEOUT, fatal=False)
        report(status == nkvm.EXIT_PASS,
               "the guest passes after the shadowed resume",
               nkvm.exit_status_name(status))


def main():
    usable, why = nkvm.kvm_probe(nested=True)
    why = f"no usable /dev/kvm: {why}"
    for smp in (1, 4):
        if usable:
            run(smp)
        else:
            for name in NAMES:
                tap.skip(f"mirror: {name} (smp {smp})", why)
    if usable:
        run_shadow()
    else:
        for name in ("a migrated interrupt shadow reaches the destination's "
                     "KVM", "the guest passes after the shadowed resume"):
            tap.skip(f"mirror: {name}", why)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - mirror: {exc}")
        sys.exit(1)
