#!/usr/bin/env python3
"""
QEMU's scripts/analyze-migration.py on a stream that carries
cpu/nested-events, and scripts/analyze-nested-events.py, which decodes
the subsection and rebuilds the model into x-query-nested-events'
vocabulary.

analyze-migration.py parses a stream with the JSON description QEMU
appends to it, so it shows any subsection the source described.  Only
nested-kvm sends cpu/nested-events, and only while an event that stock
QEMU cannot restore is in flight, which the test guest cannot stop in on
purpose; so the test saves a TCG guest to a file and splices into it
both the subsection's bytes (nested_stream.py, as test_stream.py does)
and its JSON description.  The description is derived from the
VMState declarations in target-i386/mirror/nested-mirror-vmstate.c
following QEMU's writer (migration/vmstate.c: vmsd_desc_field_start/end,
vmstate_subsection_save, and put_tmp for VMSTATE_WITH_TMP, whose fields
land in the "tmp" field's own object; a _TEST field is described only
when it is sent), so a change of the C side is seen here.

A TCG stream has no kvm_nested_state, so the rebuild of a soft event's
RIPs from vmcb12/vmcs12 is checked on a copy of the saved stream's cpu
section with a nested state added, through the decoder's own rebuild().

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import copy
import importlib.util
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
FORMATS = {1: "B", 4: "I", 8: "Q"}

# What the spliced model holds, valid outside guest mode: an external
# interrupt being injected, a #PF pending behind it with its error code
# and CR2, a MOV SS shadow and a triple fault pending.
PF_CR2 = 0xdead0000
PF_ERROR = 0x2
PAYLOAD_FIELDS = ns.fields(
    injected=ns.event(ns.EXT_INTR, 0x30),
    exception=ns.pending_exception(14, PF_ERROR, PF_CR2),
    shadow=ns.SHADOW_MOV_SS, triple_fault=True)
# An L1 soft INT 0x80 in L2, for the rebuild from a nested state.
SOFT_RIP = 0x401000
SOFT_NEXT_RIP = 0x401002
CS_BASE = 0x10000
# Where those live, independently of the decoder's own constants:
# target/i386/cpu.h HF_GUEST_MASK and R_CS, vmcb_control_area.next_rip,
# vmcs12.vm_entry_instruction_len (docs/mirror.rst).
HF_GUEST_MASK = 1 << 21
R_CS = 1
VMCB_NEXT_RIP = 0xc8
VMCS12_ENTRY_INSN_LEN = 796


def report(ok, name, detail=""):
    tap.check(ok, f"analyze: {name}", detail)


def parse_vmstate_c(text):
    """Map each VMStateDescription variable of the C file to (name,
    version, fields); a field is (field name, QEMU type, size or the
    variable of its description, the name of its _TEST function)."""
    descs = {}
    for m in re.finditer(r"VMStateDescription (\w+) = \{(.*?)\n\};", text,
                         re.S):
        body = m.group(2)
        name = re.search(r'\.name = "([^"]+)"', body).group(1)
        version = re.search(r"\.version_id = (\w+)", body)
        fields = []
        for f in re.finditer(r"VMSTATE_(\w+)\(([^;]*?)\),\n", body):
            macro = f.group(1)
            args = [a.strip() for a in f.group(2).split(",")]
            test = None
            if macro.endswith("_TEST"):
                macro = macro[:-len("_TEST")]
                test = args[2]
            if macro in SCALARS:
                fields.append((args[0],) + SCALARS[macro] + (test,))
            elif macro == "WITH_TMP":
                fields.append(("tmp", "tmp", args[2], None))
            elif macro != "END_OF_LIST":
                raise ValueError(f"unhandled VMState macro {macro}")
        descs[m.group(1)] = (name, version.group(1) if version else "0",
                             fields)
    return descs


def describe(descs, var, versions, values):
    """The JSON description QEMU writes for one VMStateDescription whose
    _TEST fields hold for the wire VALUES, and the bytes its fields
    take.  A tmp field's description is its own object with the inner
    VMStateDescription's keys added."""
    name, version, fields = descs[var]
    present = {name for name, _, _ in ns.layout(values)}
    out, total = [], 0
    for fname, ftype, arg, test in fields:
        if ftype == "tmp":
            inner, size = describe(descs, arg, versions, values)
            out.append(dict({"name": fname, "type": "tmp"}, **inner,
                            size=size))
        else:
            if test and fname.split(".", 1)[-1] not in present:
                continue
            size = arg
            out.append({"name": fname, "type": ftype, "size": size})
        total += size
    return {"vmsd_name": name, "version": versions(version),
            "fields": out}, total


def vmstate():
    text = VMSTATE_C.read_text()
    consts = dict(re.findall(r"#define (\w+) (\d+)", text))

    def version(token):
        return int(consts.get(token, token))

    descs = parse_vmstate_c(text)
    top = next(v for v, d in descs.items() if d[0] == ns.VMSD_TOP)
    return descs, top, version


def subsection_description(values):
    descs, top, version = vmstate()
    return describe(descs, top, version, values)


def layout_disagreements():
    """Where the C wire fields and nested_stream.WIRE_FIELDS differ in
    order, name, width or in being conditional at all."""
    descs, _, _ = vmstate()
    wire = next(d for d in descs.values() if d[0] == ns.VMSD_WIRE)
    c_side = [(f.split(".", 1)[-1], size, test is not None)
              for f, _, size, test in wire[2]]
    py_side = [(name, struct.calcsize(">" + fmt), present is not ns.always)
               for name, fmt, present in ns.WIRE_FIELDS]
    return [(c, p) for c, p in zip(c_side, py_side) if c != p] + \
        ([("length", len(c_side), len(py_side))]
         if len(c_side) != len(py_side) else [])


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


def spliced_stream(lab, stream, name, values):
    desc, size = subsection_description(values)
    payload = ns.encode(values)
    path = lab.dir / f"{name}.stream"
    path.write_bytes(splice_description(
        ns.splice(stream, ns.subsection(payload)), desc))
    return path, size, payload


def load_decoder():
    spec = importlib.util.spec_from_file_location("analyze_nested_events",
                                                  DECODER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_cpu(state):
    return next((v for k, v in (state or {}).items()
                 if re.fullmatch(r"cpu \(\d+\)", k)), {})


def test_analyze(lab):
    plain = lab.dir / "plain.stream"
    nkvm.save_to_file(lab, plain, TIMEOUT).kill()
    stream = plain.read_bytes()
    bad = layout_disagreements()
    report(not bad, "the C VMState wire fields and nested_stream.py agree "
           "on order, names, widths and which are conditional",
           repr(bad))
    spliced, size, payload = spliced_stream(lab, stream, "nested",
                                            PAYLOAD_FIELDS)
    report(size == len(payload) == 18,
           "the C VMState description and nested_stream.py agree on the "
           "subsection's size", f"C {size} bytes, nested_stream "
           f"{len(payload)} bytes, want 18")

    # The stream without the subsection: analyze-migration parses it and
    # no cpu section shows one.
    state, err = run_json([sys.executable, str(ANALYZE), "-f", str(plain)])
    cpus = [v for k, v in (state or {}).items()
            if re.fullmatch(r"cpu \(\d+\)", k)]
    report(state is not None and cpus and
           all(ns.VMSD_TOP not in c for c in cpus),
           "a stream with nothing in flight parses, without the subsection",
           err)
    plain_cpu = first_cpu(state)

    state, err = run_json([sys.executable, str(ANALYZE), "-f",
                           str(spliced)])
    sub = first_cpu(state).get(ns.VMSD_TOP)
    report(sub is not None,
           "upstream analyze-migration.py shows cpu/nested-events", err)
    report((sub or {}).get(ns.TMP_FIELD) == payload.hex(" "),
           "it shows the wire fields as the tmp field's bytes",
           f"{(sub or {}).get(ns.TMP_FIELD)!r} want {payload.hex(' ')!r}")

    raw, err = run_json([sys.executable, str(DECODER), "--raw", "-f",
                         str(spliced)])
    report(bool(raw) and raw[0]["nested-events"] == PAYLOAD_FIELDS,
           "analyze-nested-events.py --raw reads back the wire fields",
           f"{err} got {raw!r}")

    decoded, err = run_json([sys.executable, str(DECODER), "--vendor",
                             "svm", "-f", str(spliced)])
    first = (decoded or [{}])[0].get("nested-events") or {}
    expected = {
        "vendor": "svm", "guest-mode": False, "nested-run-pending": False,
        "gif": True, "smm": False, "triple-fault-pending": True,
        "l1": {"injected": {"type": "ext-intr", "vector": 0x30,
                            "origin": "l0"},
               "pending-exception": {"vector": 14, "error-code": PF_ERROR,
                                     "payload": PF_CR2},
               "nmi-pending": 0, "nmi-masked": False,
               "interrupt-shadow": ns.SHADOW_MOV_SS},
        "l2": {"nmi-pending": 0, "nmi-masked": False, "interrupt-shadow": 0},
    }
    report(first == expected,
           "analyze-nested-events.py rebuilds it as x-query-nested-events "
           "would show it", f"{err} got {first!r}")

    soft, err = run_json([sys.executable, str(DECODER), "-f", str(
        spliced_stream(lab, stream, "soft", ns.fields(injected=ns.event(
            ns.SOFT_INTR, 0x80, ns.ORIGIN_L1)))[0])])
    want = ("l1.injected.type=soft-intr: no nested state in the stream "
            "holds its return address")
    report(bool(soft) and soft[0].get("error") == want,
           "analyze-nested-events.py refuses a soft event without a nested "
           "state as the destination does", f"{err} got {soft!r}")

    garbled, err = run_json([sys.executable, str(DECODER), "-f", str(
        spliced_stream(lab, stream, "garbled",
                       dict(PAYLOAD_FIELDS, flags=0x80 | ns.FLAG_EVENT |
                            ns.FLAG_EXCEPTION))[0])])
    report(bool(garbled) and
           garbled[0].get("error") == "flags=0x83: unknown bits 0x80",
           "analyze-nested-events.py names an unknown flag bit",
           f"{err} got {garbled!r}")

    plain_decoded, err = run_json([sys.executable, str(DECODER), "-f",
                                   str(plain)])
    report(bool(plain_decoded) and
           all(c["nested-events"] is None for c in plain_decoded),
           "analyze-nested-events.py reports no subsection for a stream "
           "with nothing in flight", f"{err} {plain_decoded!r}")
    test_rebuild_from_nested_state(plain_cpu)


def test_rebuild_from_nested_state(cpu):
    """An L1 soft INT 0x80 in L2 takes its RIPs from eip, CS and vmcb12
    next_rip (SVM) or vmcs12 vm_entry_instruction_len (VMX)."""
    decoder = load_decoder()
    cpu = copy.deepcopy(cpu)
    cpu["env.hflags"] = hex(int(cpu["env.hflags"], 16) | HF_GUEST_MASK)
    cpu["env.eip"] = hex(SOFT_RIP)
    cpu["env.segs"][R_CS]["base"] = hex(CS_BASE)
    vmcb12 = bytearray(0x400)
    struct.pack_into("<Q", vmcb12, VMCB_NEXT_RIP, SOFT_NEXT_RIP)
    vmcs12 = bytearray(0x1000)
    struct.pack_into("<I", vmcs12, VMCS12_ENTRY_INSN_LEN, 3)
    wire = decoder.decode_wire(ns.model(injected=ns.event(
        ns.SOFT_INTR, 0x80, ns.ORIGIN_L1)))
    got = {}
    for vendor, fmt, sub in (
            ("svm", 1, {"cpu/kvm_nested_state/svm": {
                "data.svm[0].vmcb12": [f"0x{b:02x}" for b in vmcb12]}}),
            ("vmx", 0, {"cpu/kvm_nested_state/vmx": {
                "cpu/kvm_nested_state/vmx/vmcs12": {
                    "data.vmx[0].vmcs12": vmcs12.hex(" ")}}})):
        cpu["cpu/nested_state"] = {"env.nested_state": dict(
            {"flags": "0x0003", "format": hex(fmt), "size": "0x4000"},
            **sub)}
        model = decoder.rebuild(wire, cpu, None)
        got[vendor] = (model["vendor"], model["guest-mode"],
                       model["nested-run-pending"],
                       model["l2"].get("injected"))
    ev = {"type": "soft-intr", "vector": 0x80, "origin": "l1",
          "old-rip": SOFT_RIP, "cs-base": CS_BASE}
    want = {"svm": ("svm", True, True, dict(ev, **{
                "insn-len": 2, "next-rip": SOFT_NEXT_RIP})),
            "vmx": ("vmx", True, True, dict(ev, **{
                "insn-len": 3, "next-rip": SOFT_RIP + 3}))}
    report(got == want, "analyze-nested-events.py rebuilds a soft event's "
           "RIPs from vmcb12 next_rip and vmcs12's instruction length",
           f"got {got!r}")


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
