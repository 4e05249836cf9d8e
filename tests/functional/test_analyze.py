#!/usr/bin/env python3
"""
QEMU's scripts/analyze-migration.py on a stream that carries
cpu/nested-events, and scripts/analyze-nested-events.py, which decodes
the subsection into x-query-nested-events' vocabulary.

analyze-migration.py parses a stream with the JSON description QEMU
appends to it, so it shows any subsection the source described.  Only
nested-kvm sends cpu/nested-events, and only while an event that stock
QEMU cannot restore is in flight, which the test guest cannot stop in on
purpose; so the test saves a TCG guest to a file and splices into it
both the subsection's bytes (nested_stream.py, as test_stream.py does)
and its JSON description.  The description is derived from the
VMState declarations in target-i386/mirror/nested-mirror-vmstate.c
following QEMU's writer (migration/vmstate.c: vmsd_desc_field_start/end
and vmstate_subsection_save), so a change of the C side is seen here.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

TIMEOUT = 60
tap = nkvm.Tap()
ANALYZE = nkvm.REPO / "build" / "qemu-10.0.13" / "scripts" / \
    "analyze-migration.py"
DECODER = nkvm.REPO / "scripts" / "analyze-nested-events.py"
VMSTATE_C = nkvm.REPO / "target-i386" / "mirror" / "nested-mirror-vmstate.c"
QEMU_VM_VMDESCRIPTION = 0x06

# VMState scalar macros used by the subsection: QEMU type name, bytes.
SCALARS = {"BOOL": ("bool", 1), "UINT8": ("uint8", 1),
           "UINT32": ("uint32", 4), "UINT64": ("uint64", 8)}

# What the spliced model holds: an L1-injected soft interrupt in L2
# (the case the subsection exists for), a pending #PF with its CR2 in L1
# and an NMI pending while blocked.
SOFT_OLD_RIP = 0x401000
SOFT_NEXT_RIP = 0x401002
CS_BASE = 0x10000
PF_CR2 = 0xdead0000
PF_ERROR = 0x2


def report(ok, name, detail=""):
    tap.check(ok, f"analyze: {name}", detail)


def parse_vmstate_c(text):
    """Map each VMStateDescription variable of the C file to (name,
    version, fields); a field is (field name, QEMU type, size or the
    variable of its struct's description)."""
    descs = {}
    for m in re.finditer(r"VMStateDescription (\w+) = \{(.*?)\n\};", text,
                         re.S):
        body = m.group(2)
        name = re.search(r'\.name = "([^"]+)"', body).group(1)
        version = re.search(r"\.version_id = (\w+)", body).group(1)
        fields = []
        for f in re.finditer(r"VMSTATE_(\w+)\(([^;]*?)\),\n", body):
            macro = f.group(1)
            args = [a.strip() for a in f.group(2).split(",")]
            if macro in SCALARS:
                fields.append((args[0],) + SCALARS[macro])
            elif macro == "STRUCT":
                fields.append((args[0], "struct", args[3]))
            elif macro == "STRUCT_POINTER":
                fields.append((args[0], "struct", args[2]))
            elif macro != "END_OF_LIST":
                raise ValueError(f"unhandled VMState macro {macro}")
        descs[m.group(1)] = (name, version, fields)
    return descs


def describe(descs, var, versions):
    """The JSON description QEMU writes for one VMStateDescription, and
    the number of bytes its fields take."""
    name, version, fields = descs[var]
    out, total = [], 0
    for fname, ftype, arg in fields:
        if ftype == "struct":
            inner, size = describe(descs, arg, versions)
            out.append({"name": fname, "type": "struct", "struct": inner,
                        "size": size})
        else:
            size = arg
            out.append({"name": fname, "type": ftype, "size": size})
        total += size
    return {"vmsd_name": name, "version": versions(version),
            "fields": out}, total


def subsection_description():
    text = VMSTATE_C.read_text()
    descs = parse_vmstate_c(text)
    consts = dict(re.findall(r"#define (\w+) (\d+)", text))

    def version(token):
        return int(consts.get(token, token))

    top = next(v for v, d in descs.items() if d[0] == "cpu/nested-events")
    desc, size = describe(descs, top, version)
    return desc, size


def spliced_payload():
    l1 = ns.level(exception=ns.pending_exception(
        pending=True, vector=14, has_error_code=True, error_code=PF_ERROR,
        has_payload=True, payload=PF_CR2), nmi_pending=1, nmi_masked=True)
    l2 = ns.level(injected=ns.event(
        valid=True, type_=ns.SOFT_INTR, vector=0x80, origin=ns.ORIGIN_L1,
        insn_len=2, old_rip=SOFT_OLD_RIP, next_rip=SOFT_NEXT_RIP,
        cs_base=CS_BASE))
    return ns.model(guest_mode=True, gif=True, l1=l1, l2=l2)


def splice_description(stream, sub_desc, instance=0):
    """Add sub_desc to the subsections of cpu INSTANCE in the stream's
    trailing JSON description, as the source would have written it."""
    nul = stream.rfind(b"\0")
    start = stream.find(b"{", nul)
    if start < 5 or stream[start - 5] != QEMU_VM_VMDESCRIPTION:
        raise ValueError("stream has no JSON description")
    (length,) = struct.unpack(">I", stream[start - 4:start])
    desc = json.loads(stream[start:start + length])
    cpus = [d for d in desc["devices"] if d["name"] == "cpu"]
    cpu = next(d for d in cpus if d["instance_id"] == instance)
    # The spliced bytes follow every subsection the source sent.
    cpu.setdefault("subsections", []).append(sub_desc)
    new = json.dumps(desc, separators=(",", ":")).encode()
    return stream[:start - 4] + struct.pack(">I", len(new)) + new + \
        stream[start + length:]


def run_json(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          check=False, timeout=120)
    if proc.returncode != 0:
        return None, proc.stderr.strip()[-2000:]
    return json.loads(proc.stdout), ""


def test_analyze(lab):
    plain = lab.dir / "plain.stream"
    nkvm.save_to_file(lab, plain, TIMEOUT).kill()
    stream = plain.read_bytes()
    sub_desc, size = subsection_description()
    payload = spliced_payload()
    report(size == len(payload),
           "the C VMState description and nested_stream.py agree on the "
           "subsection's size", f"C {size} bytes, nested_stream "
           f"{len(payload)} bytes")
    spliced = lab.dir / "nested.stream"
    spliced.write_bytes(splice_description(
        ns.splice(stream, ns.subsection(payload)), sub_desc))

    # The stream without the subsection: analyze-migration parses it and
    # no cpu section shows one.
    state, err = run_json([sys.executable, str(ANALYZE), "-f", str(plain)])
    cpus = [v for k, v in (state or {}).items()
            if re.fullmatch(r"cpu \(\d+\)", k)]
    report(state is not None and cpus and
           all(ns.SUBSECTION_NAME.decode() not in c for c in cpus),
           "a stream with nothing in flight parses, without the subsection",
           err)

    state, err = run_json([sys.executable, str(ANALYZE), "-f",
                           str(spliced)])
    cpu = next((v for k, v in (state or {}).items()
                if re.fullmatch(r"cpu \(\d+\)", k)), {})
    sub = cpu.get(ns.SUBSECTION_NAME.decode())
    report(sub is not None,
           "upstream analyze-migration.py shows cpu/nested-events", err)
    model = (sub or {}).get("env.nested_events", {})
    l1 = model.get("l1", {})
    l2 = model.get("l2", {})
    want = [
        (model.get("vendor"), "0x01"),
        (model.get("guest_mode"), True),
        (l2.get("injected", {}).get("type"), "0x04"),
        (l2.get("injected", {}).get("vector"), "0x80"),
        (l2.get("injected", {}).get("origin"), "0x01"),
        (l2.get("injected", {}).get("old_rip"), f"0x{SOFT_OLD_RIP:016x}"),
        (l2.get("injected", {}).get("next_rip"), f"0x{SOFT_NEXT_RIP:016x}"),
        (l2.get("injected", {}).get("cs_base"), f"0x{CS_BASE:016x}"),
        (l1.get("exception", {}).get("vector"), "0x0e"),
        (l1.get("exception", {}).get("payload"), f"0x{PF_CR2:016x}"),
        (l1.get("nmi_pending"), "0x01"),
        (l1.get("nmi_masked"), True),
    ]
    report(all(got == exp for got, exp in want),
           "its fields appear by name with the spliced values",
           repr([(g, e) for g, e in want if g != e]))

    decoded, err = run_json([sys.executable, str(DECODER), "-f",
                             str(spliced)])
    first = (decoded or [{}])[0].get("nested-events") or {}
    expected = {
        "vendor": "svm", "guest-mode": True, "nested-run-pending": False,
        "gif": True, "smm": False, "triple-fault-pending": False,
        "l1": {"pending-exception": {"vector": 14, "error-code": PF_ERROR,
                                     "payload": PF_CR2},
               "nmi-pending": 1, "nmi-masked": True, "interrupt-shadow": 0},
        "l2": {"injected": {"type": "soft-intr", "vector": 0x80,
                            "origin": "l1", "insn-len": 2,
                            "old-rip": SOFT_OLD_RIP,
                            "next-rip": SOFT_NEXT_RIP, "cs-base": CS_BASE},
               "nmi-pending": 0, "nmi-masked": False, "interrupt-shadow": 0},
    }
    report(first == expected,
           "analyze-nested-events.py decodes it as x-query-nested-events "
           "would show it", f"{err} got {first!r}")
    plain_decoded, err = run_json([sys.executable, str(DECODER), "-f",
                                   str(plain)])
    report(bool(plain_decoded) and
           all(c["nested-events"] is None for c in plain_decoded),
           "analyze-nested-events.py reports no subsection for a stream "
           "with nothing in flight", f"{err} {plain_decoded!r}")


def main():
    if not nkvm.check_environment(tap):
        return tap.finish()
    if not ANALYZE.is_file():
        tap.check(False, "analyze: QEMU's analyze-migration.py is present",
                  f"no {ANALYZE}")
        return tap.finish()
    with nkvm.Lab("nkvm-analyze-") as lab:
        test_analyze(lab)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - analyze: {exc}")
        sys.exit(1)
