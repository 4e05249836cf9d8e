#!/usr/bin/env python3
"""
Migration streams and the cpu/nested-events subsection, under TCG.

- A save to a file and a restore from it: the guest goes on and passes.
- Crafted streams (cpu/nested-events spliced into a real saved stream)
  are refused by the destination with the field and value named, and the
  destination exits cleanly rather than crashing or running half-loaded.
- A hostile live stream (spliced in by a proxy) fails the migration and
  the source runs on: the guest then passes on the source.
- x-query-nested-events and "info vcpu-events" refuse to run outside
  -accel nested-kvm.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

TIMEOUT = 60
tap = nkvm.Tap()



def report(ok, name, detail=""):
    tap.check(ok, f"stream: {name}", detail)


def restore(lab, name, path):
    dst = lab.vm(name, "migrate", incoming="defer").launch()
    dst.qmp("migrate-incoming", uri=f"file:{path}")
    return dst


def test_file_roundtrip(lab, stream_path):
    dst = restore(lab, "restore", stream_path)
    info = dst.wait_migration(timeout=TIMEOUT)
    dst.qmp("inject-nmi")
    status = dst.wait_exit(TIMEOUT)
    _, not_oks, _, verdict = nkvm.guest_result(dst.serial_lines())
    report(info.get("status") == "completed" and status == nkvm.EXIT_PASS
           and not not_oks and verdict == "PASS",
           "save to file, restore, guest passes after restore",
           f"migrate={info.get('status')} "
           f"exit={nkvm.exit_status_name(status)}")


# The saved guest is not in guest mode, so the wire's fields are L1's;
# TCG has no kvm_nested_state in the stream.
CRAFTED = [
    ("NMI with vector 5",
     ns.model(injected=ns.event(ns.NMI, 5)),
     "l1.injected.vector=5: NMI must use vector 2"),
    ("soft INT n of L0's (never sent: KVM re-executes it)",
     ns.model(injected=ns.event(ns.SOFT_INTR, 0x80)),
     "l1.injected.origin=L0: a soft event of L0's is never sent"),
    ("L1-origin event outside guest mode",
     ns.model(injected=ns.event(ns.EXT_INTR, 0x30, ns.ORIGIN_L1)),
     "l1.injected.origin=L1: L1-origin event while not in guest mode"),
    ("error code on #UD",
     ns.model(injected=ns.event(ns.HW_EXCEPTION, 6, error_code=1)),
     "l1.injected.has_error_code=1: vector 6 never pushes an error code"),
    ("unknown flag bit",
     ns.encode(dict(ns.fields(shadow=ns.SHADOW_MOV_SS), flags=0x40)),
     "flags=0x40: unknown bits 0x40"),
    # Version 1 checked the model's guest_mode against hflags; version 2
    # takes guest_mode from hflags, and what can still disagree with the
    # stream's CPU state is a soft event its nested state cannot back.
    ("L1 soft INT with no nested state in the stream",
     ns.model(injected=ns.event(ns.SOFT_INTR, 0x80, ns.ORIGIN_L1)),
     "l1.injected.type=soft-intr: no nested state in the stream holds "
     "its return address"),
    ("valid in-flight interrupt shadow on a TCG destination",
     ns.model(shadow=ns.SHADOW_MOV_SS),
     "only -accel nested-kvm can restore"),
]


def test_crafted(lab, stream):
    for i, (name, payload, expect) in enumerate(CRAFTED):
        path = lab.dir / f"crafted{i}.mig"
        path.write_bytes(ns.splice(stream, ns.subsection(payload)))
        dst = restore(lab, f"crafted{i}", path)
        status = dst.wait_exit(TIMEOUT, fatal=False)
        err = dst.stderr_log()
        report(status == 1 and expect in err and
               "cpu/nested-events" in err,
               f"crafted stream refused: {name}",
               f"exit={status} stderr={err.strip()[-300:]!r}")
        dst.kill()


def test_malformed(lab, stream):
    ok_fields = ns.fields(shadow=ns.SHADOW_MOV_SS,
                          exception=ns.pending_exception(14, 2, 0x1000))
    full = ns.encode(ok_fields)
    cases = [
        # The version 1 layout, once the only one: refused by version
        # before any of its 120 bytes is read.
        ("version 1 stream (the whole model)",
         ns.subsection(ns.model_v1(injected=(ns.SOFT_INTR, 0x80,
                                             ns.ORIGIN_L0, 2, 0x1000,
                                             0x1002)), version=1),
         "cpu/nested-events: incoming version_id 1 is too old for local "
         "minimum version_id  2"),
        ("unknown subsection version",
         ns.subsection(full, version=3),
         "cpu/nested-events: incoming version_id 3 is too new for local "
         "version_id 2"),
        # The stream ends inside exc_error_code, which exc_info announced.
        ("truncated subsection",
         ns.subsection(full)[:ns.FRAMING + 5],
         "Failed to load cpu/nested-events/wire:wire.exc_error_code"),
    ]
    _, footer = ns._cpu_section_bounds(stream, 0)  # pylint: disable=W0212
    for i, (name, sub, expect) in enumerate(cases):
        path = lab.dir / f"malformed{i}.mig"
        if name.startswith("truncated"):
            path.write_bytes(stream[:footer] + sub)
        else:
            path.write_bytes(ns.splice(stream, sub))
        dst = restore(lab, f"malformed{i}", path)
        status = dst.wait_exit(TIMEOUT, fatal=False)
        err = dst.stderr_log()
        report(status == 1 and expect in err,
               f"malformed stream refused cleanly: {name}",
               f"exit={status} stderr={err.strip()[-300:]!r}")
        dst.kill()


def test_hostile_live(lab):
    """The source must run on after its destination refuses the stream."""
    src = lab.vm("live-src", "migrate").launch()
    dst = lab.vm("live-dst", "migrate", incoming="defer").launch()
    src.wait_for_serial_line(r"READY migrate", TIMEOUT)
    caps = [{"capability": "return-path", "state": True}]
    src.qmp("migrate-set-capabilities", capabilities=caps)
    dst.qmp("migrate-set-capabilities", capabilities=caps)
    proxy = ns.migrate_spliced(src, dst, ns.subsection(ns.REFUSED_MODEL),
                               nkvm.LOOPBACK)
    try:
        info = src.wait_migration(timeout=TIMEOUT)
        run = src.qmp("query-status")
        dst_status = dst.wait_exit(TIMEOUT, fatal=False)
        report(proxy.spliced and info.get("status") == "failed" and
               run.get("status") == "running" and dst_status == 1 and
               ns.REFUSED_TEXT in dst.stderr_log(),
               "hostile live stream: migration fails, source runs on",
               f"spliced={proxy.spliced} migrate={info.get('status')} "
               f"source={run.get('status')} dst_exit={dst_status}")
        src.qmp("inject-nmi")
        status = src.wait_exit(TIMEOUT)
        report(status == nkvm.EXIT_PASS,
               "hostile live stream: guest passes on the source",
               nkvm.exit_status_name(status))
    finally:
        proxy.close()


def test_query_needs_nested_kvm(lab):
    vm = lab.vm("query", "smoke").launch()
    try:
        vm.qmp("x-query-nested-events")
        report(False, "x-query-nested-events refused under tcg",
               "it answered")
    except nkvm.NkvmError as exc:
        report("needs -accel nested-kvm" in str(exc),
               "x-query-nested-events refused under tcg", str(exc))
    out = vm.qmp("human-monitor-command", **{"command-line":
                                             "info vcpu-events"})
    report("needs -accel nested-kvm" in out,
           "info vcpu-events says it needs nested-kvm", repr(out))
    vm.kill()
    # A machine without vCPUs has no mirror to ask, but the answer is
    # still that the accelerator is the wrong one, not an empty list.
    cmds = ['{"execute": "qmp_capabilities"}',
            '{"execute": "x-query-nested-events", "id": "q"}',
            '{"execute": "quit"}']
    proc = subprocess.run([str(nkvm.qemu_binary()), "-M", "none", "-accel",
                           "tcg", "-display", "none", "-qmp", "stdio"],
                          input="\n".join(cmds) + "\n", text=True,
                          capture_output=True, timeout=60, check=False)
    answers = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith("{")]
    answer = next((a for a in answers if a.get("id") == "q"), {})
    report("needs -accel nested-kvm" in
           answer.get("error", {}).get("desc", ""),
           "x-query-nested-events refused under tcg without vCPUs",
           repr(answer or proc.stdout))


def main():
    with nkvm.Lab("nkvm-stream-") as lab:
        stream_path = lab.dir / "saved.mig"
        nkvm.save_to_file(lab, stream_path, TIMEOUT).kill()
        stream = stream_path.read_bytes()
        test_file_roundtrip(lab, stream_path)
        test_crafted(lab, stream)
        test_malformed(lab, stream)
        test_hostile_live(lab)
        test_query_needs_nested_kvm(lab)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - stream: {exc}")
        sys.exit(1)
