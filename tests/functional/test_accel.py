#!/usr/bin/env python3
"""
The nested-kvm accelerator: registration, inheritance from kvm-accel,
clean failure without KVM, and a QMP start/stop where KVM is usable.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "build" / "qemu-10.0.13" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402
import nkvm  # noqa: E402

QEMU = os.environ.get("NKVM_QEMU", str(REPO / "build" / "qemu-system-x86_64"))
FIRMWARE = os.environ.get("NKVM_FIRMWARE", str(REPO / "build" / "firmware"))
TIMEOUT = 30
failures = 0
number = 0


def report(ok, name, detail=""):
    global failures, number
    number += 1
    if ok:
        print(f"ok {number} - accel: {name}")
    else:
        failures += 1
        print(f"not ok {number} - accel: {name}: {detail}")


def qemu(*args):
    return subprocess.run([QEMU, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def test_listed():
    out = qemu("-accel", "help").stdout.split()
    report("nested-kvm" in out and "kvm" in out and "tcg" in out,
           "-accel help lists nested-kvm, kvm and tcg", repr(out))


def test_pkgversion():
    out = qemu("--version").stdout
    report("10.0.13" in out and "qemu-nested-kvm" in out,
           "--version names 10.0.13 and the fork", out.strip())


def test_inherits_kvm_options():
    # kernel-irqchip is a kvm-accel class property: that nested-kvm parses
    # and rejects its value proves the subclass inherited it.
    r = qemu("-accel", "nested-kvm,kernel-irqchip=bogus", "-M", "none")
    report(r.returncode == 1 and
           "Parameter 'kernel-irqchip' does not accept value 'bogus'"
           in r.stderr,
           "nested-kvm inherits kvm-accel's kernel-irqchip property",
           r.stderr.strip())


def test_unknown_option():
    r = qemu("-accel", "nested-kvm,no-such-option=1", "-M", "none")
    report(r.returncode == 1 and "no-such-option" in r.stderr,
           "an unknown nested-kvm option is refused by name",
           r.stderr.strip())


def test_missing_device():
    r = qemu("-accel", "nested-kvm,device=/nonexistent/kvm", "-M", "none")
    report(r.returncode == 1 and
           "failed to initialize nested-kvm" in r.stderr and
           "Aborted" not in r.stderr,
           "without a KVM device nested-kvm fails cleanly, naming itself",
           f"rc={r.returncode} {r.stderr.strip()}")


def start_stop(accel):
    """Start a paused pc machine under ACCEL, check query-kvm, quit."""
    name = f"{accel} starts and stops under QMP"
    want_kvm = accel != "tcg"
    if want_kvm:
        usable, why = nkvm.kvm_probe(nested=accel == "nested-kvm")
        if not usable:
            print(f"ok {number + 1} - accel: {name} # SKIP no usable "
                  f"/dev/kvm: {why}")
            globals()["number"] += 1
            return
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "qmp.sock")
        mon = QEMUMonitorProtocol(sock, server=True)
        proc = subprocess.Popen(
            [QEMU, "-L", FIRMWARE, "-accel", accel, "-M", "pc", "-nodefaults",
             "-display", "none", "-S", "-qmp", f"unix:{sock}"],
            stderr=subprocess.PIPE, text=True)
        try:
            mon.accept(timeout=TIMEOUT)
            kvm = mon.cmd("query-kvm")
            mon.cmd("cont")
            status = mon.cmd("query-status")
            mon.cmd("quit")
            rc = proc.wait(timeout=TIMEOUT)
            report(kvm["enabled"] == want_kvm and
                   status["status"] == "running" and rc == 0,
                   name, f"query-kvm={kvm} status={status} rc={rc}")
        except Exception as exc:  # pylint: disable=broad-except
            proc.kill()
            report(False, name, f"{exc!r} stderr={proc.stderr.read()}")
        finally:
            try:
                mon.close()
            except EOFError:
                # QEMU may close the socket right after answering quit.
                pass


def main():
    test_listed()
    test_pkgversion()
    test_inherits_kvm_options()
    test_unknown_option()
    test_missing_device()
    start_stop("tcg")
    start_stop("kvm")
    start_stop("nested-kvm")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
