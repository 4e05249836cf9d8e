#!/usr/bin/env python3
"""
The fork built without KVM (scripts/build-fork.sh --no-kvm,
build/qemu-system-x86_64-nokvm): what a TCG-only binary does with what
needs KVM.

  -accel nested-kvm      refused at start-up with QEMU's own error
                         ("invalid accelerator nested-kvm"): the
                         accelerator is built only with CONFIG_KVM;
  -accel tcg             starts a pc machine (stopped, -S) with QMP on
                         stdio;
  x-query-nested-events  answers the stub's GenericError, which says
                         that this QEMU was built without KVM (the
                         schema keeps the command in every x86 build);
                         not a crash, not a result;
  and QEMU then still answers query-status and quits with status 0.

    tests/nokvm/test_nokvm.py QEMU [-L DIR]...

-L as for QEMU (SeaBIOS, the option ROMs); check.sh passes build/tools'
SeaBIOS and the nokvm build's option ROMs.  Prints TAP lines; exits 1 if
any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
import nkvm  # noqa: E402  pylint: disable=wrong-import-position

TIMEOUT = 60
REFUSE_TIMEOUT = 20


def status_name(rc):
    return f"killed by signal {-rc}" if rc < 0 else f"status {rc}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("qemu")
    ap.add_argument("-L", dest="firmware", action="append", default=[])
    args = ap.parse_args()
    base = [args.qemu, "-M", "pc", "-nodefaults", "-display", "none", "-S"]
    for d in args.firmware:
        base += ["-L", d]
    tap = nkvm.Tap("nokvm: ")

    # nested-kvm: refused, by QEMU's accelerator lookup.  A QEMU that
    # accepted it sits stopped (-S) until the timeout kills it.
    try:
        proc = subprocess.run(base + ["-accel", "nested-kvm"],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=REFUSE_TIMEOUT, check=False)
        refused = proc.returncode == 1 and \
            "invalid accelerator nested-kvm" in proc.stderr
        detail = f"{status_name(proc.returncode)}, {proc.stderr.strip()!r}"
    except subprocess.TimeoutExpired:
        refused = False
        detail = f"QEMU started; still running after {REFUSE_TIMEOUT} s"
    tap.check(refused, "-accel nested-kvm is refused", detail)

    # tcg: QMP on stdio, every command tagged with an id.
    cmds = [("caps", "qmp_capabilities"), ("query", "x-query-nested-events"),
            ("status", "query-status"), ("quit", "quit")]
    stdin = "".join(json.dumps({"execute": c, "id": i}) + "\n"
                    for i, c in cmds)
    try:
        proc = subprocess.run(base + ["-accel", "tcg", "-qmp", "stdio"],
                              input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        tap.check(False, "-accel tcg starts and answers QMP",
                  f"no exit within {TIMEOUT} s; stdout {exc.stdout!r}")
        return tap.finish()
    answers = {}
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" in msg:
            answers[msg["id"]] = msg
    detail = (f"{status_name(proc.returncode)}, stderr "
              f"{proc.stderr.strip()!r}")
    tap.check("return" in answers.get("caps", {}),
              "-accel tcg starts and answers QMP", detail)
    query = answers.get("query", {})
    err = query.get("error", {})
    tap.check(err.get("class") == "GenericError" and
              "built without KVM" in err.get("desc", ""),
              "x-query-nested-events says this QEMU has no KVM",
              f"answer {query or 'none'}; {detail}")
    tap.check("return" in answers.get("status", {}) and
              "return" in answers.get("quit", {}) and proc.returncode == 0,
              "QEMU runs on after it and quits with status 0", detail)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
