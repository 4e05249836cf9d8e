#!/usr/bin/python3
"""
Every field of cpu/nested-events, corrupted every way, in a real stream.

A guest is saved to a file under TCG; the subsection is spliced into
that real stream and loaded by a fresh destination, which must exit
with status 1 (no crash, no hang, nothing run) and name the field:

  fields      each field of the model (nested_stream.MODEL_FIELDS) is
              given an out-of-range value or one that contradicts
              another field; the error must carry "<path>=<value>".
              Fields that no value makes invalid on their own are
              listed in ALWAYS_VALID and must pass validation.
  base state  a model in guest mode while the stream's CPU state
              (hflags) is not, and a model with nothing in flight.
  truncation  the stream ends at every byte of the subsection: QEMU
              must name the subsection field it was reading.
  controls    the two uncorrupted models pass validation and reach the
              last refusal a TCG destination has ("only -accel
              nested-kvm can restore"), so a refusal above is the
              field's doing, not the base's.

Prints TAP; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

TIMEOUT = 60
tap = nkvm.Tap()
ACCEL_REFUSAL = "only -accel nested-kvm can restore"

# Outside guest mode, as the saved guest is: an L0-origin INT 0x80 that
# KVM_GET_VCPU_EVENTS would drop (AMD APM vol. 2, 15.20; uAPI
# kvm_vcpu_events.interrupt.soft), with its instruction's RIPs.
L1_SOFT = {"l1.injected.valid": True, "l1.injected.type": ns.SOFT_INTR,
           "l1.injected.vector": 0x80, "l1.injected.insn_len": 2,
           "l1.injected.old_rip": 0x1000, "l1.injected.next_rip": 0x1002}
# In guest mode: an NMI that L1 injects into L2 through EVENTINJ, whose
# origin (svm->nmi_l1_to_l2) no uAPI field carries.
L2_NMI = {"guest_mode": True, "l2.injected.valid": True,
          "l2.injected.type": ns.NMI, "l2.injected.vector": 2,
          "l2.injected.origin": ns.ORIGIN_L1}
EXCEPTION_PF = {"l1.exception.pending": True, "l1.exception.vector": 14}

# (name, base, changes, text the refusal must contain)
CASES = [
    ("vendor out of range", L1_SOFT, {"vendor": 3}, "vendor=3"),
    ("guest mode with no vendor", L2_NMI, {"vendor": 0}, "guest_mode=1"),
    ("nested_run_pending outside guest mode", L1_SOFT,
     {"nested_run_pending": True}, "nested_run_pending=1"),
    ("gif clear on VMX", L1_SOFT, {"vendor": 2, "gif": False}, "gif=0"),
    ("sipi_vector without sipi_vector_valid", L1_SOFT,
     {"sipi_vector": 5}, "sipi_vector=5"),
    ("sipi_vector over 8 bits", L1_SOFT,
     {"sipi_vector_valid": True, "sipi_vector": 256}, "sipi_vector=256"),
    ("SMM in guest mode", L2_NMI, {"smi.smm": True}, "smi.smm=1"),
    ("smm_inside_nmi outside SMM", L1_SOFT, {"smi.smm_inside_nmi": True},
     "smi.smm_inside_nmi=1"),
    ("L1 events while L2 runs", L2_NMI, {"l1.nmi_pending": 1}, "l1=busy"),
    ("L2 events outside guest mode", L1_SOFT, {"l2.nmi_pending": 1},
     "l2=busy"),
    ("injected.valid clear with fields set", L1_SOFT,
     {"l1.injected.valid": False}, "l1.injected.valid=0"),
    ("reserved event type", L1_SOFT, {"l1.injected.type": 9},
     "l1.injected.type=9"),
    ("NMI on vector 5", L2_NMI, {"l2.injected.vector": 5},
     "l2.injected.vector=5"),
    ("reserved origin", L2_NMI, {"l2.injected.origin": 2},
     "l2.injected.origin=2"),
    ("L1 origin outside guest mode", L1_SOFT,
     {"l1.injected.origin": ns.ORIGIN_L1}, "l1.injected.origin=L1"),
    ("error code on INT n", L1_SOFT, {"l1.injected.has_error_code": True},
     "l1.injected.has_error_code=1"),
    ("error_code without has_error_code", L1_SOFT,
     {"l1.injected.error_code": 5}, "l1.injected.error_code=0x5"),
    ("instruction of 16 bytes", L1_SOFT, {"l1.injected.insn_len": 16},
     "l1.injected.insn_len=16"),
    ("old_rip 1 byte before next_rip", L1_SOFT,
     {"l1.injected.old_rip": 0x1001}, "old_rip=0x1001"),
    ("next_rip before old_rip", L1_SOFT, {"l1.injected.next_rip": 0xfff},
     "l1.injected.next_rip=0xfff"),
    ("cs_base on an NMI", L2_NMI, {"l2.injected.cs_base": 0x10},
     "l2.injected.insn_len=0: instruction fields on a nmi"),
    ("exception fields with pending clear", L1_SOFT,
     {"l1.exception.vector": 13}, "l1.exception.pending=0"),
    ("exception vector 40", L1_SOFT,
     {"l1.exception.pending": True, "l1.exception.vector": 40},
     "l1.exception.vector=40"),
    ("error code on a pending #BP", L1_SOFT,
     {"l1.exception.pending": True, "l1.exception.vector": 3,
      "l1.exception.has_error_code": True},
     "l1.exception.has_error_code=1"),
    ("exception error_code without has_error_code", L1_SOFT,
     dict(EXCEPTION_PF, **{"l1.exception.error_code": 2}),
     "l1.exception.error_code=0x2"),
    ("payload on #GP", L1_SOFT,
     {"l1.exception.pending": True, "l1.exception.vector": 13,
      "l1.exception.has_payload": True}, "l1.exception.has_payload=1"),
    ("payload without has_payload", L1_SOFT,
     dict(EXCEPTION_PF, **{"l1.exception.payload": 0x1000}),
     "l1.exception.payload=0x1000"),
    ("pending exception beside an injected one", L1_SOFT,
     dict(EXCEPTION_PF, **{"l1.injected.type": 3, "l1.injected.vector": 6,
                           "l1.injected.insn_len": 0,
                           "l1.injected.old_rip": 0,
                           "l1.injected.next_rip": 0}),
     "l1.exception.pending=1: exception 14 is pending while exception 6"),
    ("three pending NMIs", L1_SOFT, {"l1.nmi_pending": 3},
     "l1.nmi_pending=3"),
    ("two pending NMIs while masked", L2_NMI,
     {"l2.nmi_masked": True, "l2.nmi_pending": 2}, "l2.nmi_pending=2"),
    ("reserved interrupt-shadow bits", L1_SOFT,
     {"l1.interrupt_shadow": 4}, "l1.interrupt_shadow=0x4"),
    ("guest mode the CPU state does not have", L2_NMI, {"guest_mode": True},
     "guest_mode=1: the CPU state in the same stream is not in guest mode"),
    ("nothing in flight", {}, {}, "nothing in flight"),
]

# No value of these is wrong by itself (or, for a bool, every byte
# loads as true or false); a change must still pass validation.
ALWAYS_VALID = [
    ("triple_fault_pending", L1_SOFT, {"triple_fault_pending": True}),
    ("smi.pending", L1_SOFT, {"smi.pending": True}),
    ("smi.latched_init", L1_SOFT, {"smi.latched_init": True}),
    ("l1.injected.cs_base", L1_SOFT,
     {"l1.injected.cs_base": 0xffff0000}),
    ("l1.nmi_masked", L1_SOFT, {"l1.nmi_masked": True}),
]
CONTROLS = [("L0 soft INT 0x80 outside guest mode", L1_SOFT)]


def load(lab, name, stream):
    """Restore STREAM in a fresh TCG destination; (exit status, stderr)."""
    path = lab.dir / f"{name}.mig"
    path.write_bytes(stream)
    vm = lab.vm(name, "migrate", incoming=f"file:{path}")
    err = lab.dir / f"{name}.err"
    with open(err, "wb") as out:
        try:
            status = subprocess.run(vm.command_line(), stdout=out,
                                    stderr=out, stdin=subprocess.DEVNULL,
                                    timeout=TIMEOUT, check=False).returncode
        except subprocess.TimeoutExpired:
            status = None
    path.unlink()
    return status, err.read_text(errors="replace").strip()


def spliced(stream, values):
    return ns.splice(stream, ns.subsection(ns.encode(values)))


def covered_paths():
    paths = set()
    for _, base, changes, _ in CASES:
        paths.update(changes)
    for path, _, _ in ALWAYS_VALID:
        paths.add(path)
    return paths


def test_fields(lab, stream):
    for i, (name, base, changes, expect) in enumerate(CASES):
        status, err = load(lab, f"field{i}", spliced(stream,
                                                     dict(base, **changes)))
        tap.check(status == 1 and expect in err and
                  "cpu/nested-events" in err,
                  f"fields: refused, naming it: {name}",
                  f"exit={status} stderr={err[-300:]!r}")
    for i, (path, base, changes) in enumerate(ALWAYS_VALID):
        status, err = load(lab, f"valid{i}", spliced(stream,
                                                     dict(base, **changes)))
        tap.check(status == 1 and ACCEL_REFUSAL in err,
                  f"fields: {path} has no invalid value and passes "
                  "validation", f"exit={status} stderr={err[-300:]!r}")
    # Every field is corrupted, or said to have no invalid value; the
    # per-level tails are covered for one level and share the code.
    missing = [path for path, _, _, _ in ns.MODEL_FIELDS
               if path not in covered_paths() and
               path.replace("l2.", "l1.", 1) not in covered_paths() and
               path.replace("l1.", "l2.", 1) not in covered_paths()]
    tap.check(not missing, "fields: every field of the layout is covered",
              f"not covered: {missing}")


def test_controls(lab, stream):
    for i, (name, base) in enumerate(CONTROLS):
        status, err = load(lab, f"control{i}", spliced(stream, base))
        tap.check(status == 1 and ACCEL_REFUSAL in err,
                  f"control: {name} passes validation",
                  f"exit={status} stderr={err[-300:]!r}")


def names_at(offset):
    """The "<vmsd>:<field>" QEMU may name first when the payload ends at
    OFFSET: the field it was reading or, where a VMState struct has just
    ended, that struct's field in its parent (QEMU peeks for the
    struct's own subsections first, and that peek meets the end)."""
    names = set()
    pos = 0
    ends = {}
    for path, fmt, vmsd, field in ns.MODEL_FIELDS:
        size = ns.struct.calcsize(">" + fmt)
        if pos <= offset < pos + size:
            names.add(f"{vmsd}:{field}")
        pos += size
        parts = path.split(".")
        if vmsd in (ns.VMSD_EVENT, ns.VMSD_EXCEPTION):
            ends[pos] = f"{ns.VMSD_LEVEL}:{parts[1]}"
        elif vmsd == ns.VMSD_LEVEL and field == "interrupt_shadow":
            ends[pos] = f"{ns.VMSD_STATE}:{parts[0]}"
    if offset in ends:
        names.add(ends[offset])
    return names


def test_truncation(lab, stream):
    """The stream ends inside the subsection, at every byte of it."""
    sub = ns.subsection(ns.encode(L1_SOFT))
    _, footer = ns._cpu_section_bounds(stream, 0)  # pylint: disable=W0212
    head = ns.subsection_header_len()
    bad = []
    for cut in range(len(sub)):
        status, err = load(lab, f"cut{cut}", stream[:footer] + sub[:cut])
        failed = re.findall(r"Failed to load (cpu/nested-events\S*)", err)
        if cut < head:
            ok = status == 1 and "load of migration failed" in err
            want = "a failed load"
        else:
            want = names_at(cut - head)
            ok = status == 1 and failed and failed[0] in want
        if not ok:
            bad.append(f"cut at {cut}: exit={status} want {want}, "
                       f"named {failed[:1]}")
    tap.check(not bad, f"truncation: a stream cut at each of the "
              f"{len(sub)} bytes of the subsection is refused, naming the "
              "field being read", "; ".join(bad[:3]))


def main():
    if not nkvm.check_environment(tap):
        return tap.finish()
    with nkvm.Lab("nkvm-fields-") as lab:
        stream_path = lab.dir / "saved.mig"
        nkvm.save_to_file(lab, stream_path, TIMEOUT).kill()
        stream = stream_path.read_bytes()
        test_controls(lab, stream)
        test_fields(lab, stream)
        test_truncation(lab, stream)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - fields: {exc}")
        sys.exit(1)
