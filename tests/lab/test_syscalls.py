#!/usr/bin/python3
"""
Exact counts, not timings (issue #16 item 1): the system calls and KVM
ioctls that QEMU makes per guest exit and per migration, the fork under
-accel nested-kvm against stock QEMU 10.0.13 under -accel kvm, counted
with strace on real KVM (the lab).

Per exit: the test guest's bench-pio loop (an OUT to an unassigned port,
each one a KVM_RUN return to QEMU) runs twice under strace -ff, a short
and a long run, each until its counter reaches a count (not for a time:
under the lab's load a 3-s run once added 45 iterations to a 1-s one,
too few to count against).  On the vCPU thread (the one that calls KVM_RUN)
everything but KVM_RUN is counted; the long run's count minus the short
run's is what the added exits cost, so start-up and shut-down cancel.
The check: the fork's vCPU thread adds no ioctl per exit that stock's
does not (the difference of differences is 0, whatever the number of
exits).  bench-nested (an L2 in a VMMCALL loop, so the vCPU is in guest
mode) is counted the same way.

Per migration: one migration of bench-nested, the source traced; what
the fork's source calls that stock's does not is reported (the
observer's perf_event_open and reads, the stop probe's
KVM_GET_NESTED_STATE), not asserted.

Prints TAP lines and one "# counts {json}" line; exits 1 if a check
failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import collections
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

# pylint: disable=wrong-import-position
import bench  # noqa: E402
import nkvm  # noqa: E402

STOCK = bench.binary("stock")
BUILDS = {b: (bench.binary(b), bench.ACCEL[b]) for b in bench.BUILDS}
# The guest iterations that end the short run, and those that the long
# run goes on for beyond where the short one ended.
SHORT, ADDED = 500, 2000
POLL_S = 0.1
TIMEOUT = 60
# About 700 bench-pio iterations a second under strace in the lab.
RUN_TIMEOUT = 120
SYSCALL_RE = re.compile(r"^(?:\d+\s+)?(\w+)\((.*)")
IOCTL_RE = re.compile(r"^\d+, ([A-Z][A-Z0-9_]*|_IOC\([^)]*\)|0x[0-9a-f]+)")

tap = nkvm.Tap("syscalls: ")


def log(msg):
    print(f"# {msg}", flush=True)


def call_name(line):
    """'ioctl:KVM_RUN', 'futex', ... for one strace line, or None."""
    m = SYSCALL_RE.match(line)
    if not m:
        return None
    name, args = m.groups()
    if name == "ioctl":
        im = IOCTL_RE.match(args)
        return f"ioctl:{im.group(1) if im else '?'}"
    return name


def count_threads(prefix):
    """{tid: Counter of calls} from strace -ff's PREFIX.TID files."""
    threads = {}
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        calls = collections.Counter()
        for line in path.read_text(errors="replace").splitlines():
            name = call_name(line)
            if name:
                calls[name] += 1
        threads[int(path.suffix[1:])] = calls
    return threads


def vcpu_calls(threads):
    """The vCPU threads' calls, summed (one vCPU here)."""
    total = collections.Counter()
    for calls in threads.values():
        if calls["ioctl:KVM_RUN"]:
            total += calls
    return total


def traced_vm(lab, build, scenario, name, incoming=None):
    binary, accel = BUILDS[build]
    out = lab.dir / f"{name}.strace"
    wrapper = [shutil.which("strace"), "-ff", "-qq", "-e", "signal=none",
               "-o", str(out)]
    vm = lab.vm(name, scenario, accel=accel, binary=binary,
                wrapper=wrapper, incoming=incoming,
                extra_args=["-cpu", "host"])
    vm.launch(qmp_timeout=TIMEOUT)
    return vm, out


def run_until(vm, address, count, path):
    """Poll the guest's counter at ADDRESS (through PATH) until it
    reaches COUNT, then stop the VM; the count it stopped at.  The polls
    sync no vCPU, so their number does not show on the vCPU thread; the
    stop's own calls are the same in the short and the long run and
    cancel."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        iterations = bench.read_counter_nosync(vm, address, path)
        if iterations >= count:
            vm.qmp("stop")
            return bench.read_counter_nosync(vm, address, path)
        if time.monotonic() > deadline:
            raise nkvm.NkvmError(f"{vm.name}: the guest's counter reached "
                                 f"only {iterations} of {count} in "
                                 f"{RUN_TIMEOUT} s")
        time.sleep(POLL_S)


def exit_run(lab, build, scenario, count):
    """(the guest's iterations, the vCPU thread's calls) over a run that
    ends once the guest has done COUNT iterations."""
    name = f"{build}-{scenario}-{count}"
    vm, out = traced_vm(lab, build, scenario, name)
    m = vm.wait_for_serial_line(bench.READY_RE, TIMEOUT)
    iterations = run_until(vm, int(m.group(2), 16), count,
                           lab.dir / f"{name}.counter")
    vm.qmp("quit")
    vm.wait_exit(TIMEOUT)
    return iterations, vcpu_calls(count_threads(out))


def per_exit(lab, scenario):
    """{build: (added iterations, added KVM_RUN exits, Counter of the
    other added calls)}."""
    res = {}
    for build in BUILDS:
        s_iter, short = exit_run(lab, build, scenario, SHORT)
        l_iter, long_ = exit_run(lab, build, scenario, s_iter + ADDED)
        added = collections.Counter(long_)
        added.subtract(short)
        exits = added.pop("ioctl:KVM_RUN", 0)
        res[build] = (l_iter - s_iter, exits, added)
    return res


def ioctls(calls):
    return {k: v for k, v in calls.items() if k.startswith("ioctl:") and v}


def check_per_exit(lab, scenario, record):
    """bench-pio's iterations are userspace exits (KVM_RUN returns);
    bench-nested's are L2 exits that L1's KVM reflects to the guest
    hypervisor without returning to QEMU at all."""
    res = per_exit(lab, scenario)
    extra = collections.Counter(ioctls(res["fork"][2]))
    extra.subtract(ioctls(res["stock"][2]))
    extra = {k: v for k, v in extra.items() if v}
    record[scenario] = {
        build: {"iterations": it, "kvm_run_exits": exits,
                "other_calls": {k: v for k, v in added.items() if v}}
        for build, (it, exits, added) in res.items()}
    record[scenario]["fork_extra_ioctls"] = extra
    for build, (it, exits, added) in res.items():
        log(f"{scenario} {build}: the long run added {it} iterations and "
            f"{exits} KVM_RUN exits; the other calls of the vCPU thread "
            f"changed by {json.dumps(record[scenario][build]['other_calls'])}")
    tap.check(all(it >= ADDED for it, _, _ in res.values()),
              f"{scenario}: the long runs added iterations to count against "
              f"(stock {res['stock'][0]}, fork {res['fork'][0]})")
    tap.check(not extra,
              f"{scenario}: the fork's vCPU thread adds no ioctl per guest "
              "exit that stock's does not", json.dumps(extra))


def migration_calls(lab, build):
    """The source's calls, all threads, for one migration of
    bench-nested, minus a run without one: what the migration costs."""
    src, out = traced_vm(lab, build, "bench-nested", f"{build}-mig-src")
    dst = lab.vm(f"{build}-mig-dst", "bench-nested", accel=BUILDS[build][1],
                 binary=BUILDS[build][0], incoming="defer",
                 extra_args=["-cpu", "host"]).launch()
    src.wait_for_serial_line(bench.READY_RE, TIMEOUT)
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    src.qmp("quit")
    src.wait_exit(TIMEOUT)
    dst.kill()
    total = collections.Counter()
    for calls in count_threads(out).values():
        total += calls
    return info.get("status"), total


def check_per_migration(lab, record):
    results = {b: migration_calls(lab, b) for b in BUILDS}
    ok = all(status == "completed" for status, _ in results.values())
    extra = collections.Counter(results["fork"][1])
    extra.subtract(results["stock"][1])
    # Only what the fork calls more than stock: the migration's own
    # traffic varies with timing (page-rate, polls) on both.
    record["migration"] = {
        "fork_more_than_stock": {k: v for k, v in sorted(extra.items())
                                 if v > 0 and (k.startswith("ioctl:") or
                                               k.startswith("perf"))}}
    log(f"one migration of bench-nested, fork's source minus stock's: "
        f"{json.dumps(record['migration']['fork_more_than_stock'])}")
    tap.check(ok, "both sources complete a traced migration",
              str({b: s for b, (s, _) in results.items()}))


def main():
    if not nkvm.check_environment(tap):
        return tap.finish()
    why = None
    if not shutil.which("strace"):
        why = "no strace"
    elif not STOCK.exists():
        why = f"no stock QEMU at {STOCK} (make stock)"
    else:
        usable, reason = nkvm.kvm_probe(nested=True)
        why = None if usable else f"no usable nested /dev/kvm: {reason}"
    if why:
        tap.skip("per-exit and per-migration counts", why)
        return tap.finish()
    record = {"kernel": os.uname().release, "short_count": SHORT,
              "added_count": ADDED}
    with nkvm.Lab(prefix="nkvm-syscalls-") as lab:
        try:
            for scenario in ("bench-pio", "bench-nested"):
                check_per_exit(lab, scenario, record)
            check_per_migration(lab, record)
        except nkvm.NkvmError as exc:
            tap.check(False, "the counted runs ran to the end", str(exc))
    print(f"# counts {json.dumps(record, sort_keys=True)}", flush=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
