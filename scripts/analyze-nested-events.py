#!/usr/bin/env python3
"""
Show the cpu/nested-events subsection of a migration stream in the
vocabulary of QMP x-query-nested-events.

QEMU's own scripts/analyze-migration.py parses the subsection: it reads
every section from the JSON description that QEMU appends to a stream.
Version 2 of the subsection keeps its fields in a VMSTATE_WITH_TMP,
which analyze-migration shows as one "tmp" field of raw bytes, and it
carries only what stock QEMU's CPU fields lack; so this tool runs
analyze-migration, decodes those bytes (the layout of
target-i386/nested-wire.h, docs/mirror.rst) and rebuilds the model from
them and the same cpu section's stock fields, as the destination's
nested_event_wire_decode() does.  The result has the names and values
of x-query-nested-events (target-i386/qapi/nested-kvm-target.json),
which makes a saved stream easy to compare with what the source
reported before it stopped.

  scripts/analyze-nested-events.py -f STREAM [--analyze PATH]
                                   [--vendor svm|vmx] [--raw]

--analyze names analyze-migration.py (default: the copy in the fork's
build tree, build/qemu-10.0.13/scripts).  A stream does not carry the
vCPU model's CPUID, so the vendor comes from the nested state's format
when the stream has one, else from --vendor, else is null.  --raw
prints the wire fields instead of the rebuilt model.  Prints one JSON
list, one entry per cpu section, with "nested-events": null where the
stream has no subsection for that vCPU (nothing in flight that stock
QEMU could not restore), and "error" naming the field and value where
the destination would refuse the subsection's fields or the rebuild.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ANALYZE = REPO / "build" / "qemu-10.0.13" / "scripts" / \
    "analyze-migration.py"
SUBSECTION = "cpu/nested-events"
NESTED_STATE = "cpu/nested_state"

# The model's numbering (target-i386/nested-events.h, VMX interruption
# types) to the QAPI enums of nested-kvm-target.json.
EVENT_TYPES = {0: "ext-intr", 2: "nmi", 3: "hw-exception", 4: "soft-intr",
               5: "priv-soft-exception", 6: "soft-exception", 7: "other"}
SOFT_TYPES = {4, 5, 6}
# kvm_nested_state.format
FORMATS = {0: "vmx", 1: "svm"}

# nested-wire.h
FLAG_EVENT, FLAG_EXCEPTION, FLAG_TRIPLE_FAULT = 0x01, 0x02, 0x04
FLAGS_ALL = 0x1f
EVENT_TYPE, EVENT_L1, EVENT_ERROR_CODE, EVENT_ALL = 0x07, 0x08, 0x10, 0x1f
EXC_ERROR_CODE, EXC_PAYLOAD, EXC_ALL = 0x01, 0x02, 0x03
# (name, struct format, bit that must be set in (flags, event, exc_info))
WIRE = (("flags", "B", None), ("shadow", "B", None),
        ("event", "B", (FLAG_EVENT, 0, 0)),
        ("vector", "B", (FLAG_EVENT, 0, 0)),
        ("error_code", "I", (FLAG_EVENT, EVENT_ERROR_CODE, 0)),
        ("exc_vector", "B", (FLAG_EXCEPTION, 0, 0)),
        ("exc_info", "B", (FLAG_EXCEPTION, 0, 0)),
        ("exc_error_code", "I", (FLAG_EXCEPTION, 0, EXC_ERROR_CODE)),
        ("exc_payload", "Q", (FLAG_EXCEPTION, 0, EXC_PAYLOAD)))

# target/i386/cpu.h
HF_SMM = 1 << 19
HF_GUEST = 1 << 21
HF2_GIF = 1 << 0
HF2_NMI = 1 << 2
R_CS = 1
KVM_STATE_NESTED_RUN_PENDING = 0x2
# vmcb_control_area.next_rip; vmcs12.vm_entry_instruction_len
VMCB_NEXT_RIP = 0xc8
VMCS12_ENTRY_INSN_LEN = 796
MAX_INSN_LEN = 15


class Refused(Exception):
    """What the destination would refuse, worded as it would."""


def number(value):
    """analyze-migration prints integers as hex strings, e.g. "0x0e"; a
    negative-looking one carries its signed value in parentheses."""
    if isinstance(value, (bool, int)):
        return int(value)
    return int(str(value).split()[0], 16)


def raw_bytes(value):
    """A field analyze-migration printed as bytes: "01 ff ..." (a field
    of a type it does not know) or a list of uint8 ("0x01", ...)."""
    if isinstance(value, list):
        return bytes(number(v) for v in value)
    return bytes.fromhex(str(value))


def decode_wire(data):
    """The wire fields of DATA, refused as nested_event_wire_decode()
    refuses unknown bits."""
    w = {name: 0 for name, _, _ in WIRE}
    pos = 0
    for name, fmt, need in WIRE:
        if need and not (w["flags"] & need[0] and
                         (not need[1] or w["event"] & need[1]) and
                         (not need[2] or w["exc_info"] & need[2])):
            continue
        size = struct.calcsize(">" + fmt)
        if pos + size > len(data):
            raise Refused(f"{name}: the subsection ends after {pos} bytes")
        (w[name],) = struct.unpack(">" + fmt, data[pos:pos + size])
        pos += size
    if pos != len(data):
        raise Refused(f"{len(data) - pos} bytes after the fields that "
                      f"flags=0x{w['flags']:02x} announces")
    for name, known in (("flags", FLAGS_ALL), ("event", EVENT_ALL),
                        ("exc_info", EXC_ALL)):
        if w[name] & ~known:
            raise Refused(f"{name}=0x{w[name]:02x}: unknown bits "
                          f"0x{w[name] & ~known:02x}")
    return w


def nested_state(section):
    """(vendor, flags, blob view) of the cpu section's kvm_nested_state,
    or None: {"next_rip"} on SVM, {"insn_len"} on VMX, each None when
    the stream has no vmcb12/vmcs12."""
    outer = section.get(NESTED_STATE)
    if not outer:
        return None
    ns = outer.get("env.nested_state", outer)
    vendor = FORMATS.get(number(ns["format"]))
    view = {}
    svm = ns.get("cpu/kvm_nested_state/svm", {}).get("data.svm[0].vmcb12")
    vmx = ns.get("cpu/kvm_nested_state/vmx", {}) \
        .get("cpu/kvm_nested_state/vmx/vmcs12", {}) \
        .get("data.vmx[0].vmcs12")
    if svm is not None:
        blob = raw_bytes(svm)
        (view["next_rip"],) = struct.unpack_from("<Q", blob, VMCB_NEXT_RIP)
    if vmx is not None:
        blob = raw_bytes(vmx)
        (view["insn_len"],) = struct.unpack_from("<I", blob,
                                                 VMCS12_ENTRY_INSN_LEN)
    return vendor, number(ns["flags"]), view


def soft_rips(out, p, origin_l1, vendor, rip, cs_base, state):
    """A soft event's RIPs, rebuilt as rebuild_soft_rips() does."""
    name = out["type"]
    if not origin_l1:
        raise Refused(f"{p}.injected.origin=L0: a soft event of L0's is "
                      "never sent (KVM re-executes the instruction)")
    if state is None:
        raise Refused(f"{p}.injected.type={name}: no nested state in the "
                      "stream holds its return address")
    view = state[2]
    if vendor == "svm" and "next_rip" in view:
        d = (view["next_rip"] - rip) % (1 << 64)
        out["insn-len"] = d if d <= MAX_INSN_LEN else 0
        out["next-rip"] = view["next_rip"]
    elif vendor == "vmx" and "insn_len" in view:
        if view["insn_len"] > MAX_INSN_LEN:
            raise Refused("vmcs12.vm_entry_instruction_len="
                          f"{view['insn_len']}: longer than 15 bytes")
        out["insn-len"] = view["insn_len"]
        out["next-rip"] = (rip + view["insn_len"]) % (1 << 64)
    else:
        raise Refused(f"{p}.injected.type={name}: the stream's nested "
                      "state has no vmcb12/vmcs12")
    out["old-rip"] = rip
    out["cs-base"] = cs_base


def rebuild(w, section, vendor_arg):
    """The model from wire fields W and the cpu SECTION's stock fields,
    in x-query-nested-events' shape (less cpu-index, restore-pending,
    mirror-error and state-source, which a stream does not carry)."""
    state = nested_state(section)
    vendor = state[0] if state else vendor_arg
    hflags = number(section["env.hflags"])
    hflags2 = number(section["env.hflags2"])
    rip = number(section["env.eip"])
    cs_base = number(section["env.segs"][R_CS]["base"])
    guest_mode = bool(hflags & HF_GUEST)
    p = "l2" if guest_mode else "l1"
    current = {"nmi-pending": number(section["env.nmi_pending"]),
               "nmi-masked": bool(hflags2 & HF2_NMI),
               "interrupt-shadow": w["shadow"]}
    if w["flags"] & FLAG_EVENT:
        kind = w["event"] & EVENT_TYPE
        ev = {"type": EVENT_TYPES.get(kind, "reserved"),
              "vector": w["vector"],
              "origin": "l1" if w["event"] & EVENT_L1 else "l0"}
        if w["event"] & EVENT_ERROR_CODE:
            ev["error-code"] = w["error_code"]
        if kind in SOFT_TYPES:
            soft_rips(ev, p, w["event"] & EVENT_L1, vendor, rip, cs_base,
                      state)
        current["injected"] = ev
    if w["flags"] & FLAG_EXCEPTION:
        exc = {"vector": w["exc_vector"]}
        if w["exc_info"] & EXC_ERROR_CODE:
            exc["error-code"] = w["exc_error_code"]
        if w["exc_info"] & EXC_PAYLOAD:
            exc["payload"] = w["exc_payload"]
        current["pending-exception"] = exc
    idle = {"nmi-pending": 0, "nmi-masked": False, "interrupt-shadow": 0}
    return {"vendor": vendor, "guest-mode": guest_mode,
            "nested-run-pending": bool(guest_mode and state and
                                       state[1] &
                                       KVM_STATE_NESTED_RUN_PENDING),
            "gif": vendor == "vmx" or bool(hflags2 & HF2_GIF),
            "smm": bool(hflags & HF_SMM),
            "triple-fault-pending": bool(w["flags"] & FLAG_TRIPLE_FAULT),
            "l1": idle if guest_mode else current,
            "l2": current if guest_mode else idle}


def cpu_sections(state):
    """Yield (instance, cpu section) in stream order; analyze-migration
    keys sections as "<idstr> (<section id>)"."""
    instance = 0
    for key, section in state.items():
        if re.fullmatch(r"cpu \(\d+\)", key):
            yield instance, section
            instance += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("-f", "--file", required=True,
                        help="migration stream (file: or exec:cat> output)")
    parser.add_argument("--analyze", default=str(DEFAULT_ANALYZE),
                        help="path of QEMU's analyze-migration.py")
    parser.add_argument("--vendor", choices=("svm", "vmx"),
                        help="the vCPU model's nested vendor, where the "
                        "stream has no nested state to tell")
    parser.add_argument("--raw", action="store_true",
                        help="print the wire fields, not the model")
    args = parser.parse_args()

    proc = subprocess.run([sys.executable, args.analyze, "-f", args.file],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        print(f"analyze-migration.py failed with status {proc.returncode}",
              file=sys.stderr)
        return 1
    state = json.loads(proc.stdout)
    out = []
    for instance, section in cpu_sections(state):
        sub = section.get(SUBSECTION)
        entry = {"cpu-instance": instance, "nested-events": None}
        if sub is not None:
            try:
                wire = decode_wire(raw_bytes(sub["tmp"]))
                entry["nested-events"] = wire if args.raw else \
                    rebuild(wire, section, args.vendor)
            except Refused as exc:
                entry["error"] = str(exc)
        out.append(entry)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
