#!/usr/bin/python3
"""
Live-migration demo ("make demo"): boot the nkvm guest with scenario
"migrate", migrate it over loopback TCP to a second QEMU process, then
inject the NMI the guest is waiting for on the destination.  The guest
rechecks the memory pattern it wrote before migration and reports PASS.

Final line: "demo: PASS (migrated in X ms, downtime Y ms)", or
"demo: FAIL: <reason>" with a non-zero exit status.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402


def say(msg):
    print(f"demo: {msg}", flush=True)


def show_guest(vm):
    for line in vm.serial_lines():
        print(f"  {vm.name}| {line}")


def run(args):
    say(f"qemu {nkvm.qemu_binary()}, guest {nkvm.guest_image()}, "
        f"accel {args.accel}")
    with nkvm.Lab(prefix="nkvm-demo-") as lab:
        src = lab.vm("src", "migrate", accel=args.accel)
        dst = lab.vm("dst", "migrate", accel=args.accel, incoming="defer")

        t0 = time.monotonic()
        src.launch()
        src.wait_for_serial_line(r"READY migrate", args.timeout)
        say(f"source guest ready after "
            f"{(time.monotonic() - t0) * 1000:.0f} ms")
        show_guest(src)
        oks, not_oks, _, _ = nkvm.guest_result(src.serial_lines())
        if not_oks or not oks:
            src.dump()
            return f"source guest checks before migration: {not_oks}"

        dst.launch()
        status = dst.qmp("query-status")["status"]
        say(f"destination started, status {status}")
        if status != "inmigrate":
            dst.dump()
            return f"destination status {status}, expected inmigrate"

        say("migrating over loopback TCP")
        try:
            info = nkvm.migrate(src, dst, timeout=args.timeout,
                                progress=lambda m: say(f"  {m}"))
        except nkvm.NkvmError as exc:
            src.dump()
            dst.dump()
            return f"migration: {exc}"
        if info.get("status") != "completed":
            src.dump()
            dst.dump()
            return f"migration ended with status {info.get('status')}: " \
                   f"{info.get('error-desc', '')}"
        total_ms = info.get("total-time")
        downtime_ms = info.get("downtime")
        say(f"source reports completed: total-time {total_ms} ms, "
            f"downtime {downtime_ms} ms, "
            f"transferred {info.get('ram', {}).get('transferred')} bytes")

        src_status = src.qmp("query-status")["status"]
        say(f"source status {src_status}")

        # The destination resumes by itself once the stream is complete.
        deadline = time.monotonic() + args.timeout
        while True:
            dst_status = dst.qmp("query-status")["status"]
            if dst_status == "running" or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        say(f"destination status {dst_status}")
        if dst_status != "running":
            dst.dump()
            return f"destination not running ({dst_status})"
        if src_status != "postmigrate":
            return f"source status {src_status}, expected postmigrate"

        # The source is now a stale copy; stop it before the guest runs on.
        src.qmp("quit")
        src.wait_exit(args.timeout)

        say("injecting NMI on the destination")
        dst.qmp("inject-nmi")
        dst.wait_for_serial_line(r"PASS|FAIL.*", args.timeout)
        rc = dst.wait_exit(args.timeout)
        show_guest(dst)
        # The guest's TAP stream starts on the source and ends on the
        # destination; together they must make up the whole plan.
        dst_lines = dst.serial_lines()
        if any(ln.startswith("# scenario:") for ln in dst_lines):
            return "destination guest booted afresh instead of resuming"
        oks, not_oks, plan, verdict = nkvm.guest_result(
            src.serial_lines() + dst_lines)
        if rc != nkvm.EXIT_PASS or not_oks or verdict != "PASS":
            return (f"destination guest: {nkvm.exit_status_name(rc)}, "
                    f"verdict {verdict!r}, not ok: {not_oks}")
        if plan != len(oks):
            return f"guest plan 1..{plan} but {len(oks)} ok lines"
        say(f"guest: {len(oks)} of {plan} checks ok across both hosts, "
            f"exit status {rc}")
        return (None, total_ms, downtime_ms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accel", default="tcg",
                        help="QEMU accelerator for both VMs (default: tcg)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on each wait, seconds (default: 60)")
    args = parser.parse_args()
    try:
        result = run(args)
    except nkvm.NkvmError as exc:
        result = str(exc)
    if isinstance(result, tuple):
        _, total_ms, downtime_ms = result
        say(f"PASS (migrated in {total_ms} ms, downtime {downtime_ms} ms)")
        return 0
    say(f"FAIL: {result}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
