#!/usr/bin/env python3
"""
Stream compatibility with stock QEMU 10.0.13, both directions, with
nothing in flight: the fork's cpu/nested-events subsection is not sent,
so a pristine build (make stock) loads the fork's stream and the fork
loads the pristine build's.  The guest must pass after each migration.

  test_compat.py [--accel tcg|nested-kvm] [--cpu MODEL]

With --accel nested-kvm (the lab) the fork runs nested-kvm and stock QEMU
runs kvm; "--cpu host" there makes both carry a real nested state.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

STOCK = Path(os.environ.get("NKVM_QEMU_STOCK",
                            nkvm.REPO / "build" / "qemu-system-x86_64-stock"))
TIMEOUT = 120
tap = nkvm.Tap()


def one_way(lab, label, src_bin, src_accel, dst_bin, dst_accel, extra):
    src = lab.vm(f"{label}-src", "migrate", accel=src_accel, binary=src_bin,
                 extra_args=extra).launch()
    dst = lab.vm(f"{label}-dst", "migrate", accel=dst_accel, binary=dst_bin,
                 incoming="defer", extra_args=extra).launch()
    src.wait_for_serial_line(r"READY migrate", TIMEOUT)
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    tap.check(info.get("status") == "completed",
              f"{label}: migration completes",
              info.get("error-desc", info.get("status")) +
              f"; destination stderr: {dst.stderr_log().strip()[-300:]}")
    if info.get("status") != "completed":
        return
    dst.qmp("inject-nmi")
    status = dst.wait_exit(TIMEOUT)
    tap.check(status == nkvm.EXIT_PASS, f"{label}: guest passes afterwards",
              nkvm.exit_status_name(status))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accel", default="tcg",
                        choices=("tcg", "nested-kvm"))
    parser.add_argument("--cpu", default=None)
    args = parser.parse_args()
    if not os.access(STOCK, os.X_OK):
        tap.check(False, "stock QEMU 10.0.13 is built", f"no {STOCK}")
        return tap.finish()
    fork = nkvm.qemu_binary()
    stock_accel = "kvm" if args.accel == "nested-kvm" else "tcg"
    extra = ["-cpu", args.cpu] if args.cpu else []
    with nkvm.Lab("nkvm-compat-") as lab:
        one_way(lab, f"fork ({args.accel}) -> stock ({stock_accel})",
                fork, args.accel, STOCK, stock_accel, extra)
        one_way(lab, f"stock ({stock_accel}) -> fork ({args.accel})",
                STOCK, stock_accel, fork, args.accel, extra)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - compat: {exc}")
        sys.exit(1)
