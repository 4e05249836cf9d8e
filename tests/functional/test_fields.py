#!/usr/bin/python3
"""
Every field of cpu/nested-events, corrupted every way, in a real stream.

A guest is saved to a file under TCG; the subsection (version 2, the
compact fields of target-i386/nested-wire.h) is spliced into that real
stream and loaded by a fresh destination, which must exit with status 1
(no crash, no hang, nothing run) and name the field:

  fields      each wire field (nested_stream.WIRE_FIELDS), and each bit
              of flags, event and exc_info, is given a value that is
              unknown, that the rebuilt model cannot hold, or that
              contradicts another field; the error must carry the text
              the C code reports, "<name>=<value>" or, for what the
              rebuild or validation refuses, "<model path>=<value>".
              Values that are right whatever they are (the three
              trailing flags, error codes, payloads, a shadow's two
              bits) are listed in ALWAYS_VALID and must pass.
  rebuild     a soft event of L0's (never sent) and one of L1's in a
              stream without the nested state that holds its return
              address; a model with nothing stock QEMU cannot carry.
  truncation  the stream ends at every byte of the subsection: QEMU
              must name the wire field it was reading.
  controls    the uncorrupted model (an interrupt shadow) passes the
              rebuild and validation and reaches the last refusal a TCG
              destination has ("only -accel nested-kvm can restore"), so
              a refusal above is the field's doing, not the base's.

Version 1's head (vendor, guest_mode, gif, sipi, SMM, the other level,
NMI counts, RIPs) no longer travels: the destination rebuilds it from the
stream's own CPU fields, so a subsection cannot contradict them.  Those
checks live on in tests/unit/test-nested-validate.c and
test-nested-wire.c.

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

# The saved guest is outside guest mode, so what the wire carries is
# L1's.  An interrupt shadow alone (MOV SS) is in flight and valid there.
SHADOW = ns.fields(shadow=ns.SHADOW_MOV_SS)


def with_(base=None, **changes):
    """SHADOW (or BASE) with the given wire fields replaced."""
    return dict(SHADOW if base is None else base, **changes)


def also(**kwargs):
    """The fields of ns.fields(**kwargs) under the shadow."""
    return ns.fields(shadow=ns.SHADOW_MOV_SS, **kwargs)


INT80_L0 = also(injected=ns.event(ns.SOFT_INTR, 0x80))
INT80_L1 = also(injected=ns.event(ns.SOFT_INTR, 0x80, ns.ORIGIN_L1))
PF = also(exception=ns.pending_exception(14))

# (name, wire fields, text the refusal must contain)
CASES = [
    ("unknown flags bits", with_(flags=0xe0),
     "flags=0xe0: unknown bits 0xe0"),
    ("unknown flags bit beside known ones",
     with_(flags=ns.FLAG_TRIPLE_FAULT | 0x20),
     "flags=0x24: unknown bits 0x20"),
    ("reserved interrupt-shadow bits", with_(shadow=0xfc),
     "l1.interrupt_shadow=0xfc: reserved bits 0xfc"),
    ("unknown event bits",
     with_(flags=ns.FLAG_EVENT, event=0xe0 | ns.EXT_INTR, vector=0x30),
     "event=0xe0: unknown bits 0xe0"),
    ("reserved event type 1",
     also(injected=ns.event(1, 0x30)), "l1.injected.type=1: reserved event"),
    ("'other event' (type 7) of L0's",
     also(injected=ns.event(ns.OTHER, 0)), "l1.injected.type=7"),
    ("NMI on vector 5", also(injected=ns.event(ns.NMI, 5)),
     "l1.injected.vector=5: NMI must use vector 2"),
    ("hardware exception on vector 40",
     also(injected=ns.event(ns.HW_EXCEPTION, 40)),
     "l1.injected.vector=40: exceptions use vectors 0-31"),
    ("L1 origin outside guest mode",
     also(injected=ns.event(ns.EXT_INTR, 0x30, ns.ORIGIN_L1)),
     "l1.injected.origin=L1: L1-origin event while not in guest mode"),
    ("soft INT n of L0's", INT80_L0,
     "l1.injected.origin=L0: a soft event of L0's is never sent"),
    ("INT3 of L0's",
     also(injected=ns.event(ns.SOFT_EXCEPTION, 3)),
     "l1.injected.origin=L0: a soft event of L0's is never sent"),
    ("soft INT n of L1's without a nested state", INT80_L1,
     "l1.injected.type=soft-intr: no nested state in the stream holds "
     "its return address"),
    ("INT1 of L1's without a nested state",
     also(injected=ns.event(ns.PRIV_SOFT_EXCEPTION, 1, ns.ORIGIN_L1)),
     "l1.injected.type=priv-soft-exception: no nested state"),
    ("error code on an external interrupt",
     also(injected=ns.event(ns.EXT_INTR, 0x30, error_code=0)),
     "l1.injected.has_error_code=1: type ext-intr never pushes an error "
     "code"),
    ("error code on an injected #BP",
     also(injected=ns.event(ns.HW_EXCEPTION, 3, error_code=1)),
     "l1.injected.has_error_code=1: vector 3 never pushes an error code"),
    ("unknown exc_info bits",
     with_(flags=ns.FLAG_EXCEPTION, exc_vector=14, exc_info=0xfc),
     "exc_info=0xfc: unknown bits 0xfc"),
    ("exception vector 40",
     also(exception=ns.pending_exception(40)),
     "l1.exception.vector=40: not an exception vector"),
    ("NMI vector as a pending exception",
     also(exception=ns.pending_exception(2)),
     "l1.exception.vector=2: not an exception vector"),
    ("error code on a pending #BP",
     also(exception=ns.pending_exception(3, error_code=0)),
     "l1.exception.has_error_code=1: vector 3 never pushes"),
    ("payload on #GP",
     also(exception=ns.pending_exception(13, error_code=0, payload=0)),
     "l1.exception.has_payload=1: vector 13 has no payload"),
    ("pending exception beside an injected one",
     also(injected=ns.event(ns.HW_EXCEPTION, 6),
          exception=ns.pending_exception(14)),
     "l1.exception.pending=1: exception 14 is pending while exception 6"),
    ("nothing in flight", ns.fields(),
     "nothing in flight that stock QEMU cannot carry"),
    ("an L0 external interrupt is nothing stock cannot carry",
     ns.fields(injected=ns.event(ns.EXT_INTR, 0x30)),
     "nothing in flight that stock QEMU cannot carry"),
    ("a pending #PF alone is nothing stock cannot carry",
     ns.fields(exception=ns.pending_exception(14, 2, 0x1000),
               triple_fault=True, smi_pending=True),
     "nothing in flight that stock QEMU cannot carry"),
]

# No value of these is wrong by itself; the model must pass validation.
ALWAYS_VALID = [
    ("flags.triple_fault", with_(flags=ns.FLAG_TRIPLE_FAULT)),
    ("flags.smi_pending", with_(flags=ns.FLAG_SMI_PENDING)),
    ("flags.smi_latched_init", with_(flags=ns.FLAG_SMI_LATCHED_INIT)),
    ("shadow STI", with_(shadow=ns.SHADOW_STI)),
    ("shadow MOV SS and STI", with_(shadow=ns.SHADOW_MOV_SS |
                                    ns.SHADOW_STI)),
    ("vector of an external interrupt",
     also(injected=ns.event(ns.EXT_INTR, 0xff))),
    ("error_code of #GP",
     also(injected=ns.event(ns.HW_EXCEPTION, 13, error_code=0xffffffff))),
    ("exc_error_code and exc_payload of #PF",
     also(exception=ns.pending_exception(14, 0xffffffff,
                                         0xffffffffffffffff))),
]
CONTROLS = [("an interrupt shadow outside guest mode", SHADOW)]


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


def covered(cases):
    """The wire fields that are on the wire in some case, and the bits
    of flags, event and exc_info set in some case."""
    names, bits = set(), {"flags": 0, "event": 0, "exc_info": 0}
    for values in cases:
        for name, _, _ in ns.layout(values):
            names.add(name)
            if name in bits:
                bits[name] |= values[name]
    return names, bits


def test_fields(lab, stream):
    for i, (name, values, expect) in enumerate(CASES):
        status, err = load(lab, f"field{i}", spliced(stream, values))
        tap.check(status == 1 and expect in err and
                  "cpu/nested-events" in err,
                  f"fields: refused, naming it: {name}",
                  f"exit={status} stderr={err[-300:]!r}")
    for i, (name, values) in enumerate(ALWAYS_VALID):
        status, err = load(lab, f"valid{i}", spliced(stream, values))
        tap.check(status == 1 and ACCEL_REFUSAL in err,
                  f"fields: {name} has no invalid value and passes "
                  "validation", f"exit={status} stderr={err[-300:]!r}")
    # Every wire field travels in some case, and every bit of the three
    # bit fields is set in one.
    names, bits = covered([v for _, v, _ in CASES] +
                          [v for _, v in ALWAYS_VALID])
    missing = [n for n in ns.WIRE_NAMES if n not in names] + \
        [f"{n}&0x{~b & 0xff:02x}" for n, b in bits.items() if b != 0xff]
    tap.check(not missing, "fields: every wire field and flag bit is "
              "covered", f"not covered: {missing}")


def test_controls(lab, stream):
    for i, (name, values) in enumerate(CONTROLS):
        status, err = load(lab, f"control{i}", spliced(stream, values))
        tap.check(status == 1 and ACCEL_REFUSAL in err,
                  f"control: {name} passes validation",
                  f"exit={status} stderr={err[-300:]!r}")


def names_at(values, offset):
    """The "<vmsd>:<field>" QEMU names first when the payload of VALUES
    ends at OFFSET: the wire field it was reading."""
    for name, fmt, pos in ns.layout(values):
        if pos <= offset < pos + ns.struct.calcsize(">" + fmt):
            return {f"{ns.VMSD_WIRE}:wire.{name}"}
    return set()


# Every conditional field on the wire at once.
ALL_FIELDS = ns.fields(injected=ns.event(ns.HW_EXCEPTION, 13, error_code=4),
                       exception=ns.pending_exception(14, 2, 0x1000),
                       shadow=ns.SHADOW_MOV_SS)


def test_truncation(lab, stream):
    """The stream ends inside the subsection, at every byte of it."""
    sub = ns.subsection(ns.encode(ALL_FIELDS))
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
            # The wire field, then the VMSTATE_WITH_TMP holding it.
            want = names_at(ALL_FIELDS, cut - head)
            ok = status == 1 and failed[:2] == [
                next(iter(want), None), f"{ns.VMSD_TOP}:{ns.TMP_FIELD}"]
        if not ok:
            bad.append(f"cut at {cut}: exit={status} want {want}, "
                       f"named {failed[:2]}")
    tap.check(not bad and len(sub) == ns.FRAMING + ns.WIRE_MAX_SIZE,
              f"truncation: a stream cut at each of the {len(sub)} bytes "
              "of the subsection is refused, naming the field being read",
              "; ".join(bad[:3]))


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
