#!/usr/bin/env python3
"""
The lab torture's own decisions (tests/lab/torture.py), without a lab:

- when a run stops migrating: after --migrations, and with --extend only
  while a stop in flight or an expected strict refusal is still missing
  (a run whose check needs them must not stop short of them, nor run on
  once it has them);
- the --fail-every verdict: fewer induced failures than planned, or one
  that went wrong, fails the run; more (an extended run) does not;
- which QEMUs get x-unknown-verdicts: all, or with
  --unknown-verdicts-on alternate every other generation only (the
  first source, its destination's destination, ...), so that the
  others' stops in guest mode can land in flight.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import torture  # noqa: E402

tap = nkvm.Tap("torture-loop: ")


def parse(*argv):
    return torture.arg_parser().parse_args(list(argv))


def stats(in_flight=0, refusals=0):
    out = torture.stop_stats()
    out.update({"stops_in_flight": in_flight, "strict_refusals": refusals})
    return out


def test_plain():
    args = parse("--migrations", "3")
    tap.check(torture.want_more(args, stats(), 2, True),
              "migration 3 of 3 is due")
    tap.check(not torture.want_more(args, stats(), 3, True),
              "no --extend: the run ends at --migrations, even without "
              "a stop in flight")


def test_extend_in_flight():
    args = parse("--migrations", "3", "--extend", "2")
    tap.check(torture.want_more(args, stats(), 3, True) and
              torture.want_more(args, stats(), 4, True),
              "--extend 2 migrates on while no stop landed in flight")
    tap.check(not torture.want_more(args, stats(), 5, True),
              "--extend 2 runs at most 2 more")
    tap.check(not torture.want_more(args, stats(in_flight=1), 3, True),
              "one stop in flight ends the extension (default "
              "--min-in-flight 1)")
    args = parse("--migrations", "3", "--extend", "2",
                 "--min-in-flight", "2")
    tap.check(torture.want_more(args, stats(in_flight=1), 3, True),
              "--min-in-flight 2 wants a second stop in flight")
    args = parse("--migrations", "3", "--extend", "2",
                 "--min-in-flight", "0")
    tap.check(not torture.want_more(args, stats(), 3, True),
              "--min-in-flight 0 asks for no stop in flight, so nothing "
              "extends the run")


def test_untraced():
    args = parse("--migrations", "3", "--extend", "2")
    tap.check(not torture.want_more(args, stats(), 3, False),
              "without tracing no stop can be seen in flight, so none "
              "extends the run")
    tap.check(torture.in_flight_wanted(args, False) == 0 and
              torture.in_flight_wanted(args, True) == 1,
              "the verdict's default: 1 stop in flight where traced")
    args = parse("--min-in-flight", "2")
    tap.check(torture.in_flight_wanted(args, False) == 2,
              "--min-in-flight stands, traced or not")


def test_extend_refusals():
    for flag in (["--expect-refusals"], ["--unknown-verdicts", "1"]):
        args = parse("--migrations", "4", "--extend", "12",
                     "--min-in-flight", "0", *flag)
        name = " ".join(flag)
        tap.check(torture.want_more(args, stats(), 4, True) and
                  torture.want_more(args, stats(), 15, True),
                  f"{name}: no refusal yet, so the run goes on")
        tap.check(not torture.want_more(args, stats(), 16, True),
                  f"{name}: but not past --extend")
        tap.check(not torture.want_more(args, stats(refusals=1), 4, True),
                  f"{name}: one refusal ends the extension")
    args = parse("--migrations", "4", "--extend", "12",
                 "--unknown-verdicts", "1")
    tap.check(torture.want_more(args, stats(refusals=3), 4, True),
              "a refusal without a stop in flight still extends the run")
    tap.check(torture.want_more(args, stats(in_flight=2), 4, True),
              "a stop in flight without a refusal still extends the run")
    tap.check(not torture.want_more(args, stats(2, 3), 4, True),
              "both: the run ends")


def test_induced():
    args = parse("--migrations", "20", "--fail-every", "1",
                 "--extend", "20")
    st = stats()
    st.update({"induced_failures": 20, "induced_failures_bad": 0})
    tap.check(torture.induced_problem(args, st) is None,
              "--fail-every 1: 20 induced failures in 20 migrations")
    st["induced_failures"] = 23
    tap.check(torture.induced_problem(args, st) is None,
              "3 more, from --extend or retries, are no failure")
    st["induced_failures"] = 19
    tap.check(torture.induced_problem(args, st) is not None,
              "one fewer than planned is")
    st.update({"induced_failures": 20, "induced_failures_bad": 1})
    why = torture.induced_problem(args, st)
    tap.check(why is not None and "1 of 20" in why,
              "one that went wrong is, and the message counts it", why)


def test_unknown_verdicts_on():
    args = parse("--unknown-verdicts", "1")
    tap.check(all("x-unknown-verdicts=1" in torture.accel_options(args, n)[0]
                  for n in range(4)),
              "--unknown-verdicts 1 reaches every QEMU by default")
    args = parse("--unknown-verdicts", "2", "--unknown-verdicts-on",
                 "alternate")
    got = ["x-unknown-verdicts=2" in torture.accel_options(args, n)[0]
           for n in range(4)]
    tap.check(got == [True, False, True, False],
              "alternate: generations 0 and 2 only", str(got))
    args = parse("--state-source", "alternate", "--unknown-verdicts", "1",
                 "--unknown-verdicts-on", "alternate")
    accel, source = torture.accel_options(args, 0)
    tap.check(source == "kernel" and accel == "nested-kvm,"
              "x-unknown-verdicts=1,state-source=kernel",
              "with state-source alternate, the options add up", accel)
    accel, _ = torture.accel_options(parse("--accel", "kvm"), 0)
    tap.check(accel == "kvm", "kvm gets no nested-kvm option", accel)


def main():
    test_plain()
    test_extend_in_flight()
    test_untraced()
    test_extend_refusals()
    test_induced()
    test_unknown_verdicts_on()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
