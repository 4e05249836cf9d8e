#!/usr/bin/python3
"""
The KVM probe (nkvm.kvm_probe) that decides whether the KVM tests run.

A KVM test that runs on a /dev/kvm that cannot run its guest fails for
the wrong reason; one that skips on a KVM that could run it proves
nothing.  So the probe is checked on each kind of machine the README
names:

  no device      a path that does not exist is refused, naming it;
  not KVM        /dev/null opens read-write but is no KVM: QEMU fails,
                 and the probe says so (this proves that the probe
                 boots a guest rather than trusting open());
  this machine   a PVM-based KVM (module kvm_pvm) must be refused; in
                 the lab (LAB_KERNEL set, real kvm_amd nested=1) the
                 device must be usable, nested too, or every lab test
                 would skip; elsewhere the verdict is printed.

Prints TAP; exits 0 if every check passed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

tap = nkvm.Tap()


def test_no_device():
    usable, why = nkvm.kvm_probe("/nonexistent/kvm")
    tap.check(not usable and "/nonexistent/kvm" in why and
              "No such file" in why,
              "probe: a missing device is refused, naming it", why)


def test_not_kvm():
    os.environ["NKVM_KVM_PROBE_CACHE"] = "0"
    try:
        usable, why = nkvm.kvm_probe("/dev/null", timeout=20)
    finally:
        del os.environ["NKVM_KVM_PROBE_CACHE"]
    tap.check(not usable and "smoke guest under -accel kvm" in why,
              "probe: /dev/null opens read-write but is refused after "
              "QEMU tries it", why)


def test_this_machine():
    device = "/dev/kvm"
    usable, why = nkvm.kvm_probe(device)
    print(f"# {device}: {'usable' if usable else 'not usable: ' + why}")
    if not Path(device).exists():
        tap.check(not usable and "No such file" in why,
                  "probe: no /dev/kvm on this machine is refused", why)
    elif Path("/sys/module/kvm_pvm").exists():
        tap.check(not usable,
                  "probe: this machine's PVM-based /dev/kvm is refused",
                  "the probe called it usable")
    elif os.environ.get("LAB_KERNEL"):
        tap.check(usable, "probe: the lab's /dev/kvm is usable", why)
        nested, why_nested = nkvm.kvm_probe(device, nested=True)
        tap.check(nested, "probe: the lab's /dev/kvm is usable for "
                  "nested tests", why_nested)
    else:
        tap.check(usable == (why == ""),
                  "probe: a verdict on this machine's /dev/kvm, with a "
                  "reason exactly when it is refused", why)
    again, why_again = nkvm.kvm_probe(device)
    tap.check((again, why_again) == (usable, why),
              "probe: a second probe gives the same verdict",
              f"{usable}/{why!r} then {again}/{why_again!r}")


def main():
    if not nkvm.check_environment(tap):
        return tap.finish()
    test_no_device()
    test_not_kvm()
    test_this_machine()
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - kvm probe: {exc}")
        sys.exit(1)
