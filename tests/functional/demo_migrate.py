#!/usr/bin/python3
"""
Live-migration demo ("make demo"): boot the nkvm guest with scenario
"events-nmi-held", put an NMI in flight and live-migrate the VM over
loopback TCP to a second QEMU process, showing the vCPU event state on
both sides of the stop.

The guest takes a first NMI (QMP inject-nmi) and stays in its handler,
so NMIs are blocked; a second NMI is injected and stays pending.  The
VM migrates with that NMI pending; the destination is started with -S,
so that the event state of the source (after it stopped) and of the
destination (loaded, not yet running) can both be shown: QMP
x-query-nested-events and HMP "info vcpu-events".  The destination then
runs, a byte on its COM1 releases the handler, and the guest must see the
pending NMI exactly once, right after its IRET, and report PASS.

The mirrored event state exists only under -accel nested-kvm (the lab
runs the demo that way); under tcg the demo says so and shows what the
guest saw.

Final line: "demo: PASS (migrated in X ms, downtime Y ms)", or
"demo: FAIL: <reason>" with a non-zero exit status.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
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


def show_event_state(vm, accel):
    """Print the mirrored event model of vm as QMP and HMP report it."""
    if accel != "nested-kvm":
        say(f"  {vm.name}: no mirrored event state under -accel {accel} "
            "(x-query-nested-events needs -accel nested-kvm)")
        return None
    model = vm.qmp("x-query-nested-events")
    for cpu in model:
        say(f"  {vm.name} QMP x-query-nested-events, vCPU "
            f"{cpu['cpu-index']}: {json.dumps(cpu, sort_keys=True)}")
    text = vm.qmp("human-monitor-command",
                  **{"command-line": "info vcpu-events"})
    for line in text.splitlines():
        print(f"  {vm.name} HMP| {line}")
    return model


def same_model(src_model, dst_model):
    """Equal but for restore-pending, which only a destination sets, and
    state-source, which each side's kernel decides."""
    def strip(models):
        return [{k: v for k, v in m.items()
                 if k not in ("restore-pending", "state-source")}
                for m in models]
    return strip(src_model) == strip(dst_model)


def run(args):
    say(f"qemu {nkvm.qemu_binary()}, guest {nkvm.guest_image()}, "
        f"accel {args.accel}")
    # -cpu host on KVM so that the mirror reads a real nested state.
    extra = ["-cpu", "host"] if args.accel != "tcg" else []
    with nkvm.Lab(prefix="nkvm-demo-") as lab:
        src = lab.vm("src", "events-nmi-held", accel=args.accel,
                     extra_args=extra)
        # -S: the destination stays paused after loading the stream, so
        # its event state can be shown before the guest runs on.
        dst = lab.vm("dst", "events-nmi-held", accel=args.accel,
                     incoming="defer", extra_args=extra + ["-S"],
                     serial_input=True)

        t0 = time.monotonic()
        src.launch()
        src.wait_for_serial_line(r"READY nmi-held", args.timeout)
        say(f"source guest ready after "
            f"{(time.monotonic() - t0) * 1000:.0f} ms")
        say("injecting NMI 1: the guest enters its NMI handler and stays")
        src.qmp("inject-nmi")
        src.wait_for_serial_line(r"HELD nmi", args.timeout)
        say("injecting NMI 2: NMIs are blocked, so it stays pending")
        src.qmp("inject-nmi")
        time.sleep(0.2)
        show_guest(src)

        dst.launch()
        status = dst.qmp("query-status")["status"]
        say(f"destination started, status {status}")
        if status != "inmigrate":
            dst.dump()
            return f"destination status {status}, expected inmigrate"

        say("migrating over loopback TCP with the NMI pending")
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
        dst_status = dst.qmp("query-status")["status"]
        say(f"source status {src_status}, destination status {dst_status}")
        if src_status != "postmigrate":
            return f"source status {src_status}, expected postmigrate"
        if dst_status != "paused":
            dst.dump()
            return f"destination status {dst_status}, expected paused"

        say("event state at the stop, source (stopped):")
        src_model = show_event_state(src, args.accel)
        say("event state at the stop, destination (loaded, not running):")
        dst_model = show_event_state(dst, args.accel)
        if src_model is not None:
            l1 = src_model[0]["l1"]
            if l1.get("nmi-pending") != 1 or not l1.get("nmi-masked"):
                return f"source vCPU 0 l1 at the stop: {l1}, expected " \
                       "nmi-pending 1 and nmi-masked"
            if not same_model(src_model, dst_model):
                return "the destination's event state differs from the " \
                       "source's"
            say("both sides: vCPU 0 l1 nmi-pending 1, nmi-masked true; "
                "the models are equal")

        # The source is now a stale copy; stop it before the guest runs on.
        src.qmp("quit")
        src.wait_exit(args.timeout)

        say("resuming the destination and releasing the NMI handler")
        dst.qmp("cont")
        dst.serial_write(b"R")
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
