#!/usr/bin/env python3
"""
Show the cpu/nested-events subsection of a migration stream in the
vocabulary of QMP x-query-nested-events.

QEMU's own scripts/analyze-migration.py already parses the subsection:
it reads every section from the JSON description that QEMU appends to a
stream, so a stream that carries cpu/nested-events shows it, field by
field, under each "cpu (N)" section, without any change to that script.
Its output is raw, though (event types and origins as numbers, RIPs as
hex strings), so this tool runs it and decodes our fields into the same
names and values as x-query-nested-events (target-i386/qapi/
nested-kvm-target.json), which makes a saved stream easy to compare
with what the source reported before it stopped.

  scripts/analyze-nested-events.py -f STREAM [--analyze PATH] [--raw]

--analyze names analyze-migration.py (default: the copy in the fork's
build tree, build/qemu-10.0.13/scripts).  --raw prints analyze-migration's
own view of the subsection instead.  Prints one JSON list, one entry per
cpu section, with "nested-events": null where the stream has no
subsection for that vCPU (nothing in flight that stock QEMU could not
restore).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ANALYZE = REPO / "build" / "qemu-10.0.13" / "scripts" / \
    "analyze-migration.py"
SUBSECTION = "cpu/nested-events"

# The model's numbering (target-i386/nested-events.h, VMX interruption
# types) to the QAPI enums of nested-kvm-target.json.
EVENT_TYPES = {0: "ext-intr", 2: "nmi", 3: "hw-exception", 4: "soft-intr",
               5: "priv-soft-exception", 6: "soft-exception"}
SOFT_TYPES = {4, 5, 6}
ORIGINS = {0: "l0", 1: "l1"}
VENDORS = {0: "none", 1: "svm", 2: "vmx"}


def number(value):
    """analyze-migration prints integers as hex strings, e.g. "0x0e"; a
    negative-looking one carries its signed value in parentheses."""
    if isinstance(value, bool) or isinstance(value, int):
        return int(value)
    return int(str(value).split()[0], 16)


def decode_event(ev):
    if not ev["valid"]:
        return None
    kind = number(ev["type"])
    out = {"type": EVENT_TYPES.get(kind, "other"),
           "vector": number(ev["vector"]),
           "origin": ORIGINS.get(number(ev["origin"]), "l0")}
    if ev["has_error_code"]:
        out["error-code"] = number(ev["error_code"])
    if kind in SOFT_TYPES:
        out["insn-len"] = number(ev["insn_len"])
        out["old-rip"] = number(ev["old_rip"])
        out["next-rip"] = number(ev["next_rip"])
        out["cs-base"] = number(ev["cs_base"])
    return out


def decode_level(level):
    out = {}
    injected = decode_event(level["injected"])
    if injected:
        out["injected"] = injected
    exc = level["exception"]
    if exc["pending"]:
        pending = {"vector": number(exc["vector"])}
        if exc["has_error_code"]:
            pending["error-code"] = number(exc["error_code"])
        if exc["has_payload"]:
            pending["payload"] = number(exc["payload"])
        out["pending-exception"] = pending
    out["nmi-pending"] = number(level["nmi_pending"])
    out["nmi-masked"] = bool(level["nmi_masked"])
    out["interrupt-shadow"] = number(level["interrupt_shadow"])
    return out


def decode_model(sub):
    """The subsection as analyze-migration shows it -> QMP's shape (less
    cpu-index, restore-pending and mirror-error, which a stream does not
    carry)."""
    model = sub["env.nested_events"]
    return {"vendor": VENDORS.get(number(model["vendor"]), "?"),
            "guest-mode": bool(model["guest_mode"]),
            "nested-run-pending": bool(model["nested_run_pending"]),
            "gif": bool(model["gif"]),
            "smm": bool(model["smi.smm"]),
            "triple-fault-pending": bool(model["triple_fault_pending"]),
            "l1": decode_level(model["l1"]),
            "l2": decode_level(model["l2"])}


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
    parser.add_argument("--raw", action="store_true",
                        help="print analyze-migration's own view")
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
        if sub is not None and not args.raw:
            sub = decode_model(sub)
        out.append({"cpu-instance": instance, "nested-events": sub})
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
