#!/usr/bin/env python3
"""
Live migration with events in flight: two fork processes, loopback TCP,
the test guest's events-* scenarios (tests/guest/events.c), at 1 and 4
vCPUs.

nmi-held
  The guest enters its NMI handler on a first QMP inject-nmi and stays
  there; a second inject-nmi leaves an NMI pending while NMIs are
  blocked; the VM migrates; a byte on the destination's COM1 releases
  the handler.  The guest must see exactly two NMIs, the second right
  after the first one's IRET, both returning to the instruction after
  HLT.  Under nested-kvm the model at the stop must be "NMI pending 1,
  masked" on both sides.
stream
  The guest raises self-NMIs, #PF (CR2 checked), #DB by single-step and
  by data breakpoint (DR6 checked) and self-IPIs taken on STI;HLT in a
  loop, counting each raised and handled; the test migrates it back
  and forth at random moments, then ends the loop with a byte on COM1.
  Every event must have been handled exactly once with the right return
  RIP and payload.  Under nested-kvm the states the model shows at each
  stop are counted and reported: injected events, pending exceptions
  with payload and interrupt shadows exist only transiently in KVM, so
  they are reported, not required.

At every stop the source's x-query-nested-events (after it stopped) must
equal the destination's (started with -S, before "cont").  That command
exists only under nested-kvm, so under tcg and kvm those checks report
"# SKIP".  Under kvm and nested-kvm the test needs a usable /dev/kvm and
skips without one.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import collections
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

tap = nkvm.Tap()
SMPS = (1, 4)
HELD_NAMES = [
    "the guest enters its NMI handler and a second NMI is injected",
    "live migration completes with the second NMI pending",
    "model at the source's stop: NMI pending 1 and masked",
    "destination's model before it resumes equals the source's",
    "the guest sees exactly two NMIs, right RIPs (guest PASS)",
]
STREAM_NAMES = [
    "every live migration completes",
    "the guest runs on after every migration",
    "source and destination models are equal at every stop",
    "every event handled exactly once, right RIP and payload "
    "(guest PASS)",
]
ANY_STATE_NAME = ("stream: some stop landed with an event in flight "
                  "(model checked equal on both sides)")
CONTROL_NAME = ("nmi-held control: without the second NMI the guest "
                "does not pass")


def stock_view(model):
    """One vCPU's model as the destination must see it.

    Outside guest mode, stock QEMU's cpu_pre_save (target/i386/
    machine.c) turns a pending exception into an injected one, writing
    a #PF or #DB payload to CR2 or DR6 first, because only L1 could tell
    the two apart; the destination's KVM then holds an injected
    exception of L0 origin.  Delivery is the same, so compare in that
    form.  Returns (model, whether it was converted).
    """
    model = {k: v for k, v in model.items()
             if k not in ("restore-pending", "state-source")}
    l1 = model["l1"]
    exc = l1.get("pending-exception")
    if model["guest-mode"] or not exc or l1.get("injected"):
        return model, False
    injected = {"type": "hw-exception", "vector": exc["vector"],
                "origin": "l0"}
    if "error-code" in exc:
        injected["error-code"] = exc["error-code"]
    l1 = {k: v for k, v in l1.items() if k != "pending-exception"}
    l1["injected"] = injected
    return dict(model, l1=l1), True


def comparable(models):
    """The models without what legitimately differs between processes,
    and how many pending exceptions stock QEMU's conversion touched."""
    views = [stock_view(m) for m in models]
    return [v for v, _ in views], sum(c for _, c in views)


def same_models(src_models, dst_models):
    src_view, converted = comparable(src_models)
    return src_view == comparable(dst_models)[0], converted


def states_of(level):
    """Name the in-flight states of one level of the model."""
    names = []
    injected = level.get("injected")
    if injected:
        names.append(f"{injected['type']}-injected")
    exc = level.get("pending-exception")
    if exc:
        kind = {1: "db", 14: "pf"}.get(exc["vector"],
                                       f"vector{exc['vector']}")
        with_payload = "-payload" if "payload" in exc else ""
        names.append(f"{kind}-pending{with_payload}")
    if level.get("interrupt-shadow"):
        names.append("interrupt-shadow")
    if level.get("nmi-pending"):
        names.append("nmi-pending" +
                     ("-masked" if level.get("nmi-masked") else ""))
    elif level.get("nmi-masked"):
        names.append("nmi-masked")
    return names or ["nothing-in-flight"]


class Run:
    """Settings shared by every case of this run."""

    def __init__(self, args):
        self.accel = args.accel
        self.timeout = args.timeout
        self.hops = args.hops
        self.samples = args.samples
        self.rng = random.Random(args.seed)
        self.has_model = args.accel == "nested-kvm"
        # -cpu host on KVM so that the mirror sees the host's SVM, as in
        # test_mirror.py; TCG keeps QEMU's default model.
        self.cpu = ["-cpu", "host"] if args.accel != "tcg" else []

    def vm(self, lab, name, scenario, smp, incoming=False):
        extra = ["-smp", str(smp)] + self.cpu
        if incoming:
            # Paused after the load, so that its model can be read
            # before the guest runs on.
            extra.append("-S")
        return lab.vm(name, scenario, accel=self.accel, extra_args=extra,
                      incoming="defer" if incoming else None,
                      serial_input=True)

    def model(self, vm):
        return vm.qmp("x-query-nested-events") if self.has_model else None

    def check_model(self, ok, name, detail=""):
        if self.has_model:
            tap.check(ok, name, detail)
        else:
            tap.skip(name, "x-query-nested-events needs -accel nested-kvm")


def echo_guest(vm):
    for line in vm.serial_lines():
        print(f"#   {vm.name}| {line}")


def guest_passed(vms, status):
    """The guest's verdict across the serial logs of all its hosts."""
    lines = [ln for vm in vms for ln in vm.serial_lines()]
    oks, not_oks, plan, verdict = nkvm.guest_result(lines)
    ok = (status == nkvm.EXIT_PASS and verdict == "PASS" and not not_oks
          and plan == len(oks))
    return ok, (f"{nkvm.exit_status_name(status)}, verdict {verdict!r}, "
                f"{len(oks)} ok of plan {plan}, not ok: {not_oks}")


def test_nmi_held(run, smp):
    label = f"nmi-held (smp {smp})"
    with nkvm.Lab("nkvm-states-") as lab:
        src = run.vm(lab, "src", "events-nmi-held", smp).launch()
        dst = run.vm(lab, "dst", "events-nmi-held", smp,
                     incoming=True).launch()
        src.wait_for_serial_line(r"READY nmi-held", run.timeout)
        src.qmp("inject-nmi")
        held = src.wait_for_serial_line(r"HELD nmi", run.timeout,
                                        fatal=False)
        if held:
            src.qmp("inject-nmi")
        tap.check(held is not None, f"{label}: {HELD_NAMES[0]}")
        if not held:
            src.dump()
            return
        # Let the second NMI reach the vCPU's state before the stop;
        # with a model, wait until it shows there.
        if run.has_model:
            nkvm.poll(lambda: run.model(src),
                      lambda m: m[0]["l1"]["nmi-pending"] == 1, run.timeout)
        else:
            time.sleep(0.2)

        info = nkvm.migrate(src, dst, timeout=run.timeout)
        done = info.get("status") == "completed"
        tap.check(done, f"{label}: {HELD_NAMES[1]}", repr(info))
        if not done:
            return
        src_model = run.model(src)
        dst_model = run.model(dst)
        if src_model is not None:
            print(f"# {label}: source model at the stop, vCPU 0 l1: "
                  f"{src_model[0]['l1']}")
        cpu0 = src_model[0]["l1"] if src_model else {}
        run.check_model(cpu0.get("nmi-pending") == 1 and
                        cpu0.get("nmi-masked") is True,
                        f"{label}: {HELD_NAMES[2]}", repr(cpu0))
        run.check_model(src_model is not None and
                        same_models(src_model, dst_model)[0],
                        f"{label}: {HELD_NAMES[3]}",
                        f"source {src_model!r} destination {dst_model!r}")

        dst.qmp("cont")
        src.qmp("quit")
        dst.serial_write(b"R")
        status = dst.wait_exit(run.timeout, fatal=False)
        ok, detail = guest_passed([src, dst], status)
        if status is None:
            # Stuck: in the handler without the release byte, or waiting
            # for the second NMI.  Say which, in the TAP line itself.
            tail = dst.serial_lines()[-1:] or ["nothing"]
            try:
                model = run.model(dst)
            except nkvm.NkvmError as exc:
                model = f"unreadable: {exc}"
            detail += (f"; the destination printed {tail[0]!r} last, its "
                       f"model now: {model!r}")
        tap.check(ok, f"{label}: {HELD_NAMES[4]}", detail)
        if not ok:
            echo_guest(src)
            echo_guest(dst)


def test_nmi_held_control(run, bound):
    """Without the second NMI the guest waits for it for ever: proves
    that the exactly-two check cannot pass by accident."""
    with nkvm.Lab("nkvm-states-") as lab:
        vm = run.vm(lab, "control", "events-nmi-held", 1).launch()
        vm.wait_for_serial_line(r"READY nmi-held", run.timeout)
        vm.qmp("inject-nmi")
        vm.wait_for_serial_line(r"HELD nmi", run.timeout)
        vm.serial_write(b"R")
        passed = vm.wait_for_serial_line(r"PASS", bound, fatal=False)
        tap.check(passed is None and vm.poll() is None, CONTROL_NAME,
                  "the guest passed with a single NMI")


def wait_progress(vm, timeout):
    """True once the guest has printed a progress line on this host."""
    return vm.wait_for_serial_line(r"# round \d+", timeout,
                                   fatal=False) is not None


def sample_stop(run, vm, hits):
    """Stop the VM; under nested-kvm, until its model shows an event in
    flight, resume it for a random moment and stop again, up to
    run.samples times.  Injected events, pending exceptions and
    interrupt shadows last only a few instructions in KVM, and a stop
    lands in them only by chance; sampling is much cheaper than a
    migration per try.  For the first half of the tries only a state
    not yet migrated (not in hits) will do, to spread the hops over
    different states.  Returns the number of stops made."""
    stops = 0
    while True:
        vm.qmp("stop")
        stops += 1
        if not run.has_model or stops >= run.samples:
            return stops
        states = set(states_of(run.model(vm)[0]["l1"]))
        states.discard("nothing-in-flight")
        if states and (stops >= run.samples // 2 or states - set(hits)):
            return stops
        vm.qmp("cont")
        time.sleep(run.rng.uniform(0.0, 0.02))


def test_stream(run, smp, hits):
    label = f"stream (smp {smp})"
    with nkvm.Lab("nkvm-states-") as lab:
        hosts = [run.vm(lab, "h0", "events-stream", smp).launch()]
        hosts[0].wait_for_serial_line(r"READY events-stream.*", run.timeout)
        completed = ran_on = models_equal = 0
        unequal = []
        samples = [0]
        hop_states = {}
        for hop in range(1, run.hops + 1):
            src = hosts[-1]
            if not wait_progress(src, run.timeout):
                break
            dst = run.vm(lab, f"h{hop}", "events-stream", smp,
                         incoming=True).launch()
            hosts.append(dst)
            time.sleep(run.rng.uniform(0.0, 0.5))
            how = "live"
            if hop % 2 == 0:
                # Stop first, at a point chosen by sampling (see
                # sample_stop), then migrate the paused VM.
                stops = sample_stop(run, src, hits)
                samples[0] += stops
                how = f"paused after {stops} stop(s)"
            # Odd hops migrate live: the stop lands wherever the guest
            # is when the last dirty pages have gone.
            info = nkvm.migrate(src, dst, timeout=run.timeout)
            if info.get("status") != "completed":
                print(f"# {label}: hop {hop}: {info!r}")
                break
            completed += 1
            src_model = run.model(src)
            dst_model = run.model(dst)
            hop_states[hop] = how
            if src_model is not None:
                states = states_of(src_model[0]["l1"])
                for state in states:
                    hits[state] += 1
                hop_states[hop] = f"{how}, {', '.join(states)}"
                print(f"# {label}: hop {hop} ({how}) stopped with "
                      f"{', '.join(states)}")
                equal, converted = same_models(src_model, dst_model)
                if converted:
                    print(f"# {label}: hop {hop}: the source's pending "
                          "exception was sent as injected (stock QEMU, "
                          "outside guest mode); compared in that form")
                if equal:
                    models_equal += 1
                else:
                    unequal.append((hop, src_model, dst_model))
            dst.qmp("cont")
            src.qmp("quit")
            src.wait_exit(run.timeout, fatal=False)
            if wait_progress(dst, run.timeout):
                ran_on += 1
            else:
                break

        last = hosts[-1]
        if run.has_model:
            print(f"# {label}: {samples[0]} stop-and-look samples taken "
                  "before the stopped hops")
        tap.check(completed == run.hops, f"{label}: {STREAM_NAMES[0]}",
                  f"{completed} of {run.hops}")
        tap.check(ran_on == run.hops, f"{label}: {STREAM_NAMES[1]}",
                  f"{ran_on} of {run.hops}")
        run.check_model(models_equal == run.hops,
                        f"{label}: {STREAM_NAMES[2]}",
                        f"{models_equal} of {run.hops} equal; "
                        f"differing: {unequal!r}")
        last.serial_write(b"E")
        status = last.wait_exit(run.timeout, fatal=False)
        ok, detail = guest_passed(hosts, status)
        tap.check(ok, f"{label}: {STREAM_NAMES[3]}", detail)
        # The guest's own summary, raised/handled per kind of event.
        for line in last.serial_lines():
            if line.startswith("# ") and "raised" in line:
                print(f"# {label}: guest{line[1:]}")
        # A duplicate is printed where it happens: name the host, hence
        # the migration (and the state it stopped in) that came before.
        for index, vm in enumerate(hosts):
            for line in vm.serial_lines():
                if line.startswith("# DUPLICATE"):
                    print(f"# {label}: on {vm.name}, after hop {index} "
                          f"({hop_states.get(index, 'boot')}): {line[2:]}")
        if not ok:
            for vm in hosts:
                echo_guest(vm)


def skip_all(why):
    for smp in SMPS:
        for name in HELD_NAMES:
            tap.skip(f"nmi-held (smp {smp}): {name}", why)
        for name in STREAM_NAMES:
            tap.skip(f"stream (smp {smp}): {name}", why)
    tap.skip(CONTROL_NAME, why)
    tap.skip(ANY_STATE_NAME, why)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accel", default="tcg",
                        choices=("tcg", "kvm", "nested-kvm"))
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="bound on each wait, seconds (default: 60)")
    parser.add_argument("--hops", type=int, default=6,
                        help="migrations per stream case (default: 6)")
    parser.add_argument("--samples", type=int, default=40,
                        help="most stops per stopped hop while looking "
                             "for an in-flight state (default: 40)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random migration points")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    print(f"# accel {args.accel}, {args.hops} hops per stream case, "
          f"seed {args.seed}")
    if not nkvm.check_environment(tap):
        return tap.finish()
    if args.accel != "tcg":
        usable, why = nkvm.kvm_probe(nested=args.accel == "nested-kvm")
        if not usable:
            skip_all(f"no usable /dev/kvm: {why}")
            return tap.finish()

    run = Run(args)
    hits = collections.Counter()
    for smp in SMPS:
        test_nmi_held(run, smp)
        test_stream(run, smp, hits)
    test_nmi_held_control(run, 3.0)
    if run.has_model:
        print("# states at the final stops of the stream cases (vCPU 0, "
              "l1): " + ", ".join(f"{k} {v}" for k, v in
                                  sorted(hits.items())))
    transient = sorted(set(hits) - {"nothing-in-flight"})
    run.check_model(bool(transient), ANY_STATE_NAME,
                    f"states hit: {dict(hits)}")
    if not run.has_model:
        print("# states at the stops are not observable under "
              f"{args.accel} (no x-query-nested-events)")
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - states: {exc}")
        sys.exit(1)
