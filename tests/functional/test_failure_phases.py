#!/usr/bin/python3
"""
A migration that fails at any phase leaves the source running and whole.

The stream runs through a loopback proxy that holds it at a chosen
point, so each phase is reached for certain rather than by timing:

  setup   nothing has reached the destination yet;
  live    the RAM iteration is under way (the guest still runs);
  device  RAM is done, the source is stopped, and the stream is held
          right before the cpu section (the destination is loading
          device state).

At each phase the migration is then broken three ways: the destination
is killed, the source cancels, or the link is cut (the proxy resets
both connections).  A fourth way is a destination that refuses the
stream because its cpu/nested-events subsection fails validation.

After every failure the source must report failed or cancelled, be
running, and be back to its idle state: the same open file descriptors
as before the migration and, under nested-kvm, no restore plan pending.
After all failures a migration to a fresh destination must complete,
and the guest must pass there (its memory pattern is checked after the
final NMI), so nothing was lost on the way.

Usage: test_failure_phases.py [--accel tcg|nested-kvm] [--rounds N]
(--rounds repeats the whole set; `make failure-loop` runs 200 failures).

Prints TAP; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

TIMEOUT = 60
# The source learns of a destination's refusal only over the return path.
RETURN_PATH = [{"capability": "return-path", "state": True}]
tap = nkvm.Tap()


class Run:
    def __init__(self, lab, args):
        self.lab = lab
        self.args = args
        self.n = 0
        self.src = None
        self.idle_fds = None
        self.has_model = args.accel == "nested-kvm"

    def vm(self, name, **kwargs):
        extra = ["-cpu", "host"] if self.args.accel != "tcg" else []
        return self.lab.vm(name, "migrate", accel=self.args.accel,
                           extra_args=extra, **kwargs)

    def start_source(self):
        self.src = self.vm("src").launch()
        self.src.wait_for_serial_line(r"READY migrate", TIMEOUT)
        self.src.qmp("migrate-set-capabilities", capabilities=RETURN_PATH)
        self.idle_fds = nkvm.open_fds(self.src)

    def destination(self):
        self.n += 1
        dst = self.vm(f"dst{self.n}", incoming="defer").launch()
        dst.qmp("migrate-set-capabilities", capabilities=RETURN_PATH)
        return dst

    def fail_at(self, phase, action):
        dst = self.destination()
        held, status = ns.break_migration(self.src, dst, phase, action,
                                          TIMEOUT)
        why = ns.broken_as_expected(phase, action, held, status) or \
            nkvm.source_idle(self.src, self.idle_fds, self.has_model)
        tap.check(not why, f"{phase}, {action}: the migration fails and the "
                  "source is running and idle", why)

    def refused(self):
        """The destination refuses a subsection that fails validation."""
        why = ns.refuse_migration(self.src, self.destination(), TIMEOUT) or \
            nkvm.source_idle(self.src, self.idle_fds, self.has_model)
        tap.check(not why, "refused: a destination refuses a bad "
                  "cpu/nested-events; the source ends failed, running and "
                  "idle", why)

    def control(self):
        """The idle check must catch a source left paused with an extra
        fd open, or the checks above would prove nothing."""
        self.src.qmp("stop")
        # nested-kvm arms its observers at a stop (3 fds per vCPU)
        paused_fds = nkvm.open_fds(self.src)
        self.src.qmp("chardev-add", id="leak", backend={
            "type": "file",
            "data": {"out": str(self.lab.dir / "leak.out")}})
        why = nkvm.source_idle(self.src, self.idle_fds, self.has_model,
                               timeout=1)
        self.src.qmp("chardev-remove", id="leak")
        self.src.qmp("cont")
        again = nkvm.source_idle(self.src, self.idle_fds, self.has_model)
        tap.check(why and "source paused" in why and
                  f"{paused_fds + 1} fds open" in why and not again,
                  "control: a paused source with one fd more is caught, "
                  "and passes once restored", f"{why}; then {again}")

    def retry(self):
        dst = self.destination()
        info = nkvm.migrate(self.src, dst, TIMEOUT)
        ok = info["status"] == "completed"
        if ok:
            dst.qmp("inject-nmi")
        status = dst.wait_exit(TIMEOUT, fatal=False) if ok else None
        _, not_oks, _, verdict = nkvm.guest_result(dst.serial_lines())
        tap.check(ok and status == nkvm.EXIT_PASS and not not_oks and
                  verdict == "PASS",
                  f"retry after {self.failures()} failures: the migration "
                  "completes and the guest passes on the destination",
                  f"migrate={info['status']} "
                  f"exit={nkvm.exit_status_name(status)} {not_oks[:2]}")

    def failures(self):
        return self.args.rounds * (len(ns.PHASES) * len(ns.ACTIONS) + 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accel", default="tcg",
                        choices=("tcg", "nested-kvm"))
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not nkvm.check_environment(tap):
        return tap.finish()
    if args.accel != "tcg":
        usable, why = nkvm.kvm_probe(nested=args.accel == "nested-kvm")
        if not usable:
            tap.skip(f"failure phases under {args.accel}",
                     f"no usable /dev/kvm: {why}")
            return tap.finish()
    with nkvm.Lab("nkvm-fail-") as lab:
        run = Run(lab, args)
        run.start_source()
        for _ in range(args.rounds):
            for phase in ns.PHASES:
                for action in ns.ACTIONS:
                    run.fail_at(phase, action)
            run.refused()
        run.control()
        run.retry()
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - failure phases: {exc}")
        sys.exit(1)
