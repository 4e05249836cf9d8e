#!/usr/bin/python3
"""
bench: what -accel nested-kvm (the fork) costs against -accel kvm of
pristine QEMU 10.0.13 (stock), measured side by side in one run.

  bench.py lab [--pairs N] [--window S] [--mig-reps N] [--smp 1,8]
               [--only hot,nested,mig]
      inside the lab (scripts/lab run, docs/lab.rst), on L1's /dev/kvm:
      hot path, nested exits during a migration, migration, memory
  bench.py devloop [--unit-runs N] [--rebuild-root DIR]
      on the host: unit-suite wall time and an incremental fork rebuild
  bench.py render RESULTS.jsonl RST
      on the host: rewrite the benchmark section of RST (between
      ".. bench-begin" and ".. bench-end") from the JSON lines

lab and devloop print one JSON line per metric on stdout (each starts
with '{"metric": ') and progress on stderr.  Stock and fork always run
interleaved in ABBA blocks (stock, fork, fork, stock, ...) so that the
load of this shared machine hits both alike and a drift that is linear
in time cancels within each block; only ratios within one run mean
much.  Each ratio is reported as the median over the blocks with a 95 %
interval (bench_stats.py).  scripts/bench.sh (make bench) runs all
three; see docs/bench.rst.

Environment: NKVM_QEMU_STOCK and NKVM_QEMU (the two binaries, default
build/qemu-system-x86_64-stock and build/qemu-system-x86_64), and what
tests/functional/nkvm.py reads (NKVM_GUEST, NKVM_FIRMWARE).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_stats as stats  # noqa: E402

REPO = nkvm.REPO
BUILDS = ("stock", "fork")
ACCEL = {"stock": "kvm", "fork": "nested-kvm"}
# --tcg: both builds under TCG, to try the harness outside the lab.
TCG = os.environ.get("NKVM_BENCH_TCG") == "1"
READY_RE = r"READY (\S+) counter=0x([0-9a-f]+)"
BOOT_TIMEOUT = 120          # L2 boot under a TCG L1 takes seconds
MIG_TIMEOUT = 300
# A migration that stays active until it is ended: it writes into a pipe
# that nobody reads ("exec:" to a process that only sleeps).  A pipe
# holds 64 KiB, less than the stream, whereas a loopback socket's
# autotuned buffers swallow a small guest whole and let it complete.
# Killing the sleeper ends the migration (QEMU ignores SIGPIPE).
SINK_CMD = "echo $$ > {pidfile}; exec sleep 3600"
# The fork's peak RSS over stock's, at most (TARGETS["rss"]).
RSS_BOUND_KIB = 1024
TARGETS = {
    "exits": ">= 0.995",
    "exits_migrating": ">= 0.98",
    "downtime": "<= 1.01",
    "bytes_idle": "0 B/vCPU",
    "bytes_inflight": "<= 64 B/vCPU",
    "rss": f"<= {RSS_BOUND_KIB} KiB",
    "unit": "<= 10 s",
}
# The ratio floors of TARGETS' "exits" entries, for bench_stats.judge().
FLOORS = {"exits": 0.995, "exits_migrating": 0.98}

# QEMU_VM_VMDESCRIPTION: the JSON description after the stream's EOF
# marker (migration/savevm.c); not part of the device state.
VMDESC_MARK = b'{"page_size"'


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def emit(record):
    """One JSON line, "metric" first: scripts/bench.sh picks the lines
    that start with '{"metric": ' out of the lab's mixed output."""
    print(json.dumps({"metric": record["metric"], **record}), flush=True)


def spread(values):
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values),
            "max": max(values)}


# What judges a target that the timing cannot resolve (issue #16: "judge
# the target on the exact counts instead").
COUNTS_IPI = ("judged on exact counts: bench-ipi's MSR exits and "
              "interrupt never leave KVM, and tests/lab/test_syscalls.py "
              "asserts 0 extra syscalls and ioctls per exit that does "
              "(docs/results.rst, \"System calls per exit\")")
COUNTS_MIGRATION = ("judged on exact counts: tests/lab/test_syscalls.py "
                    "reports the calls the fork adds per migration of "
                    "bench-nested (docs/results.rst, \"System calls per "
                    "exit\")")
DOWNTIME_RES = ("no verdict from the timing (query-migrate's downtime "
                "has a resolution of 1 ms)")


def emit_ratios(metric, what, pairs, order, rates, cpu, target_key,
                judged_on):
    """Two records for one scenario: guest iterations per second of wall
    time (fork over stock) and per CPU second of the QEMU process (stock's
    CPU per iteration over the fork's, so that for both 1.00 is parity and
    less is a cost).  Each has the raw per-pair values in run order, the
    window order, the per-block ratios, their median and 95 % interval,
    and the verdict against TARGETS[TARGET_KEY]; JUDGED_ON says what
    judges a target this run cannot resolve."""
    floor, target = FLOORS[target_key], TARGETS[target_key]
    per_pair = [f / s for s, f in zip(rates["stock"], rates["fork"])]
    wall = stats.ratio_summary(rates["fork"], rates["stock"], floor=floor,
                               fallback="judged on exact counts")
    emit({"metric": metric, "what": what, "unit": "iter/s",
          "stock": rates["stock"], "fork": rates["fork"], "order": order,
          "ratio": spread(per_pair), "pairs": pairs, "summary": wall,
          "judged_on": judged_on, "target": target, "met": wall["met"]})
    cpu_sum = stats.ratio_summary(cpu["stock"], cpu["fork"], floor=floor,
                                  fallback="judged on exact counts")
    emit({"metric": metric + ".cpu",
          "what": "QEMU process CPU time (all threads) per guest iteration;"
                  " ratio: stock's over the fork's", "unit": "ns/iter",
          "stock": cpu["stock"], "fork": cpu["fork"], "order": order,
          "pairs": pairs, "summary": cpu_sum, "judged_on": judged_on,
          "target": target, "met": cpu_sum["met"]})


# ---- VMs -------------------------------------------------------------


def binary(build):
    if build == "stock":
        return Path(os.environ.get(
            "NKVM_QEMU_STOCK", REPO / "build" / "qemu-system-x86_64-stock"))
    return nkvm.qemu_binary()


def syscalls_runs(rec):
    """How test_syscalls.py's record says its two runs ended: by time
    until 2026-12-03, then by the guest's count."""
    if "short_count" in rec:
        return (f"until {rec['short_count']} guest iterations and for "
                f"{rec.get('added_count')} more")
    return f"for {rec.get('short_s')} s and {rec.get('long_s')} s"


def read_counter(vm, address):
    """The iteration count at ADDRESS of VM's bench-* loop, and the
    monotonic time it was read at (the middle of the HMP round trip).
    HMP xp syncs the monitor's vCPU first (mon_get_cpu()): one
    KVM_GET_* round per read, the same for every build."""
    t0 = time.monotonic()
    out = vm.qmp("human-monitor-command",
                 **{"command-line": f"xp /1gx {address:#x}"})
    t1 = time.monotonic()
    m = re.search(r":\s*0x([0-9a-f]+)", out)
    if not m:
        raise nkvm.NkvmError(f"{vm.name}: cannot parse xp: {out!r}")
    return int(m.group(1), 16), (t0 + t1) / 2


def read_counter_nosync(vm, address, path):
    """The iteration count at ADDRESS, read through QMP pmemsave into
    PATH: unlike xp, it syncs no vCPU, so the vCPU thread makes no call
    for it (test_syscalls.py counts those calls)."""
    vm.qmp("pmemsave", val=address, size=8, filename=str(path))
    return int.from_bytes(Path(path).read_bytes(), "little")


# The fork's trace events that time its work at a stop and at each
# vCPU's save (target-i386/mirror/trace-events), in microseconds: the
# downtime query-migrate reports has a resolution of 1 ms.
STOP_TRACES = ("nested_mirror_stop_*", "nested_mirror_pull")
STOP_PHASES = (("armed", r"nested_mirror_stop_armed .* in (\d+) us"),
               ("probed", r"nested_mirror_stop_probed .* in (\d+) us"),
               ("settled", r"nested_mirror_stop_settled .* after (\d+) us"))
PULL_RE = r"nested_mirror_pull cpu \d+ .* in (\d+) us"


def stop_work(stderr):
    """The fork's work at the last stop in a QEMU's stderr, in us: each
    phase of nested_mirror_prepare_stop(), and the vCPUs' pulls (the
    mirror's part of the save) after it, summed; None without a stop."""
    last = stderr.rfind("nested_mirror_stop_armed ")
    if last < 0:
        return None
    tail = stderr[last:]
    work = {}
    for phase, pattern in STOP_PHASES:
        m = re.search(pattern, tail)
        work[phase] = int(m.group(1)) if m else None
    work["pull"] = sum(int(us) for us in re.findall(PULL_RE, tail))
    work["total"] = sum(v for v in work.values() if v is not None)
    return work


class BenchVM(nkvm.GuestVM):
    """The test guest in one of the bench-* scenarios."""

    def __init__(self, lab, name, build, scenario, smp=1, incoming=None,
                 accel_opts=""):
        traces = [a for t in STOP_TRACES for a in ("-trace", t)] \
            if build == "fork" and not TCG else []
        super().__init__(lab, name, scenario,
                         accel="tcg" if TCG else ACCEL[build] + accel_opts,
                         incoming=incoming, binary=binary(build),
                         extra_args=["-cpu",
                                     "qemu64,+svm,+x2apic" if TCG else "host",
                                     "-smp", str(smp)] + traces)
        self.build = build
        self.counter = None
        # The Lab's record of every VM started in it: the post-mortem of
        # a failed part reads it, and the Lab's exit closes what is left.
        lab.vms.append(self)

    def ready(self):
        m = self.wait_for_serial_line(READY_RE, BOOT_TIMEOUT)
        self.counter = int(m.group(2), 16)
        return self

    def read_counter(self):
        return read_counter(self, self.counter)

    def cpu_ns(self):
        """CPU time of the whole QEMU process so far, in ns: every
        thread's, including threads that have exited, at the scheduler's
        resolution (utime and stime in /proc/PID/stat count 10-ms
        ticks, a third of a percent of a 3-s window)."""
        return time.clock_gettime_ns(process_cpu_clock(self.proc.pid))

    def measure(self, window, warmup=0.3):
        """Guest iterations per second of wall time over WINDOW s, and
        the QEMU process's CPU ns per guest iteration over the same
        window.  Each CPU reading directly follows a counter reading, so
        both spans are equally long."""
        time.sleep(warmup)
        c0, t0 = self.read_counter()
        u0 = self.cpu_ns()
        time.sleep(window)
        c1, t1 = self.read_counter()
        u1 = self.cpu_ns()
        if c1 <= c0:
            self.fail(f"guest counter did not advance ({c0} -> {c1})")
        return (c1 - c0) / (t1 - t0), (u1 - u0) / (c1 - c0)

    def vm_hwm_kib(self):
        return self.status_kib("VmHWM")["VmHWM"]

    def status_kib(self, *fields):
        """FIELDS of /proc/PID/status in KiB (None where absent)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        vals = {}
        for f in fields:
            m = re.search(rf"^{f}:\s+(\d+) kB", status, re.M)
            vals[f] = int(m.group(1)) if m else None
        return vals


def process_cpu_clock(pid):
    """The clock id of PID's process CPU clock, as glibc's
    clock_getcpuclockid() makes it (Linux: MAKE_PROCESS_CPUCLOCK(pid,
    CPUCLOCK_SCHED), include/linux/posix-timers.h): Python has no
    wrapper for another process's clock."""
    cpuclock_sched = 2
    return ((~pid) << 3) | cpuclock_sched


def end_sink(pidfile):
    """Kill the sleeper of SINK_CMD, whose pid it wrote itself."""
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        if time.monotonic() >= deadline:
            raise nkvm.NkvmError(f"no pid in {pidfile}")
        time.sleep(0.05)
    try:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    except ProcessLookupError:
        pass


def mount_tracefs():
    """The fork's strict event migration watches KVM's tracepoints
    through tracefs, which the lab's /init does not mount."""
    if Path("/sys/kernel/tracing/events").is_dir():
        return
    subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                   check=False, stderr=subprocess.DEVNULL)
    log("tracefs " + ("mounted" if Path("/sys/kernel/tracing/events")
                      .is_dir() else "unavailable"))


# ---- hot path and memory -----------------------------------------------


def bench_hot(lab, args):
    """Both builds' VMs boot once and stay up, stopped; each pair lets
    stock run a window, then the fork: a cont/stop per window costs far
    less than a QEMU start under the TCG L1 and keeps boot noise out."""
    what = {"pio": "OUT to port 0x80, one userspace exit per iteration",
            "ipi": "x2APIC self-IPI: two MSR exits and one injected "
                   "interrupt per iteration"}
    for kind, desc in what.items():
        vms = {}
        for b in BUILDS:
            vms[b] = BenchVM(lab, f"{kind}-{b}", b, f"bench-{kind}").launch()
        # A second stock process: how far two processes of one build
        # part in peak RSS is the noise the memory target is judged on
        # (in the lab the first VM started ends 2.3 to 6.6 MiB fatter in
        # RssAnon, whichever build it is, docs/bench.rst).
        twin = BenchVM(lab, f"{kind}-stock-twin", "stock",
                       f"bench-{kind}").launch()
        for vm in (*vms.values(), twin):
            vm.ready().qmp("stop")
        rates = {b: [] for b in BUILDS}
        cpu = {b: [] for b in BUILDS}
        for i, pair in enumerate(stats.abba_order(args.pairs)):
            for b in pair:
                vms[b].qmp("cont")
                rate, ns = vms[b].measure(args.window)
                rates[b].append(rate)
                cpu[b].append(ns)
                vms[b].qmp("stop")
            # The twin gets the same windows, stops and conts, so that
            # its peak RSS differs from stock's by noise alone.
            twin.qmp("cont")
            twin.measure(args.window)
            twin.qmp("stop")
            log(f"hot {kind} pair {i + 1}/{args.pairs} ({pair[0]} first): "
                f"stock {rates['stock'][-1]:.0f}/s "
                f"{cpu['stock'][-1]:.0f} ns/iter, "
                f"fork {rates['fork'][-1]:.0f}/s "
                f"{cpu['fork'][-1]:.0f} ns/iter")
        emit_ratios(f"hot.{kind}", desc, args.pairs,
                    stats.flat_order(args.pairs), rates, cpu, "exits",
                    COUNTS_IPI if kind == "ipi" else stats.COUNTS)
        # Peak RSS after the same guest ran as long in all three.
        hwm = {b: vms[b].vm_hwm_kib() for b in BUILDS}
        twin_hwm = twin.vm_hwm_kib()
        met, why = stats.judge_growth(hwm["stock"], hwm["fork"], twin_hwm,
                                      RSS_BOUND_KIB)
        log(f"memory {kind}: VmHWM stock {hwm['stock']} KiB, fork "
            f"{hwm['fork']} KiB, stock twin {twin_hwm} KiB: {why}")
        for name, vm in (*vms.items(), ("twin", twin)):
            log(f"memory {kind} {name} now: " + ", ".join(
                f"{k} {v}" for k, v in vm.status_kib(
                    "VmRSS", "RssAnon", "RssFile", "RssShmem").items()))
        emit({"metric": f"memory.rss.{kind}", "unit": "KiB",
              "what": f"VmHWM after the bench-{kind} windows, 64 MiB guest",
              "stock": hwm["stock"], "fork": hwm["fork"],
              "twin": twin_hwm,
              "delta": hwm["fork"] - hwm["stock"],
              "target": TARGETS["rss"], "met": met, "verdict": why})
        for vm in (*vms.values(), twin):
            vm.close()


# ---- nested exits while a migration runs -------------------------------


def bench_nested(lab, args):
    """bench-nested (L2 VMMCALL loop) with no migration, then during an
    active migration that cannot end (see SINK_CMD), cancelled
    after the window: that is when the fork's strict event migration has
    its tracepoints armed on every vCPU thread."""
    fork_opts = ",event-migration=strict"
    if args.state_source != "auto":
        fork_opts += f",state-source={args.state_source}"
    srcs = {b: BenchVM(lab, f"nested-{b}", b, "bench-nested",
                       accel_opts=(fork_opts if b == "fork" else ""))
            .launch() for b in BUILDS}
    for b in BUILDS:
        srcs[b].ready().qmp("stop")
    source = fork_state_source(srcs["fork"], args.state_source)
    idle = {b: [] for b in BUILDS}
    during = {b: [] for b in BUILDS}
    cpu_idle = {b: [] for b in BUILDS}
    cpu_during = {b: [] for b in BUILDS}
    for i, pair in enumerate(stats.abba_order(args.pairs)):
        for b in pair:
            src = srcs[b]
            src.qmp("cont")
            rate, ns = src.measure(args.window)
            idle[b].append(rate)
            cpu_idle[b].append(ns)
            pidfile = lab.dir / f"sink-{b}-{i}.pid"
            src.qmp("migrate", uri="exec:" + SINK_CMD.format(pidfile=pidfile))
            info = src.wait_migration(("active", "failed", "completed"),
                                      MIG_TIMEOUT)
            if info["status"] != "active":
                src.fail(f"migration {info['status']} instead of staying "
                         f"active: {info.get('error-desc', '')}")
            rate, ns = src.measure(args.window, warmup=0.5)
            during[b].append(rate)
            cpu_during[b].append(ns)
            still = src.qmp("query-migrate")["status"]
            src.qmp("migrate_cancel")
            end_sink(pidfile)
            src.wait_migration(("cancelled", "failed", "completed"),
                               MIG_TIMEOUT)
            if still != "active":
                src.fail(f"migration ended ({still}) inside the window; "
                         "see SINK_CMD")
            src.qmp("stop")
        log(f"nested pair {i + 1}/{args.pairs} ({pair[0]} first): "
            "idle stock "
            f"{idle['stock'][-1]:.0f}/s fork {idle['fork'][-1]:.0f}/s; "
            f"migrating stock {during['stock'][-1]:.0f}/s "
            f"fork {during['fork'][-1]:.0f}/s")
    # Rows of a run with the state asked of the kernel get a name of
    # their own, so that one make bench can show both paths.
    prefix = "nested." if args.state_source == "auto" else \
        f"nested.{args.state_source}."
    for name, data, cpu in (("idle", idle, cpu_idle),
                            ("migrating", during, cpu_during)):
        migrating = name == "migrating"
        emit_ratios(prefix + name,
                    "bench-nested: L2 VMMCALL -> nested #VMEXIT -> VMRUN"
                    + (" during an active migration (fork: "
                       f"event-migration=strict, state-source {source})"
                       if migrating else ", no migration")
                    + f"; lab kernel {os.environ.get('LAB_KERNEL')}"
                    f" ({platform.release()})",
                    args.pairs, stats.flat_order(args.pairs), data, cpu,
                    "exits_migrating" if migrating else "exits",
                    COUNTS_MIGRATION if migrating else stats.COUNTS)
    for vm in srcs.values():
        vm.close()


def fork_state_source(vm, want):
    """Where the fork takes the in-flight state from, as
    x-query-nested-events says; a run that asked for a source and got
    another measures the wrong thing, so it stops.  Under --tcg (no
    lab) both builds run TCG and there is no source to ask."""
    if TCG:
        return "none (TCG)"
    got = {m["state-source"] for m in vm.qmp("x-query-nested-events")}
    if len(got) != 1 or (want != "auto" and got != {want}):
        vm.fail(f"x-query-nested-events says state-source {sorted(got)}, "
                f"asked for {want}")
    source = got.pop()
    log(f"fork: state-source {source}")
    return source


# ---- migration ---------------------------------------------------------


def stream_bytes(path):
    """Split a saved stream into its length without the JSON description
    QEMU appends after the EOF marker (QEMU_VM_VMDESCRIPTION, be32
    length, JSON to the end of the file) and that description."""
    data = Path(path).read_bytes()
    # The JSON holds no 0x06 byte, so the marker is the last one whose
    # length field points exactly at the end of the file.
    p = data.rfind(b"\x06")
    while p >= 0:
        if int.from_bytes(data[p + 1:p + 5], "big") == len(data) - p - 5:
            try:
                return p, json.loads(data[p + 5:].decode())
            except ValueError:
                pass
        p = data.rfind(b"\x06", 0, p)
    return len(data), None


def vmsd_bytes(node, only=None, inside=False):
    """Bytes of device state a vmstate description accounts for: the
    fields' sizes as QEMU measured them while writing, and for each
    subsection its header (QEMU_VM_SUBSECTION, name length, name, be32
    version).  With only, just the subsections of that name."""
    total = 0
    if inside or only is None:
        # "size" is per element of an array field
        total += sum(f["size"] * f.get("array_len", 1)
                     for f in node.get("fields", [])
                     if isinstance(f.get("size"), int))
    for sub in node.get("subsections", []):
        sub_inside = inside or sub.get("vmsd_name") == only
        if sub_inside or only is None:
            total += 1 + 1 + len(sub.get("vmsd_name", "")) + 4
        total += vmsd_bytes(sub, only, sub_inside)
    return total


def device_bytes(desc, only=None):
    """vmsd_bytes over every device of a stream description."""
    return sum(vmsd_bytes(d, only) for d in (desc or {}).get("devices", []))


def migrate_once(lab, build, smp, state, tag):
    src = BenchVM(lab, f"mig-{tag}", build, "bench-nmi", smp=smp).launch()
    dst = BenchVM(lab, f"mig-{tag}-dst", build, "bench-nmi", smp=smp,
                  incoming="defer").launch()
    src.ready()
    if state == "nmi":
        # First NMI: the handler counts and spins without IRET.  Second:
        # pending behind it, blocked; both are in flight at the stop.
        src.qmp("inject-nmi")
        deadline = time.monotonic() + 30
        while src.read_counter()[0] < 1:
            if time.monotonic() >= deadline:
                src.fail("the NMI handler never ran")
            time.sleep(0.05)
        src.qmp("inject-nmi")
    # The state first goes to a file, for exact sizes: the guest is
    # stopped first, or pages it (or QEMU) dirties while the save runs are
    # sent again, a few bytes more or less each run.  QEMU refuses a
    # second migration from the postmigrate state but lets the guest go on.
    path = lab.dir / f"mig-{tag}.stream"
    src.qmp("stop")
    src.qmp("migrate", uri=f"file:{path}")
    info = src.wait_migration(("completed", "failed"), MIG_TIMEOUT)
    if info["status"] != "completed":
        src.fail("save to file failed")
    size, desc = stream_bytes(path)
    path.unlink()
    src.qmp("cont")
    info = nkvm.migrate(src, dst, timeout=MIG_TIMEOUT)
    if info.get("status") != "completed":
        src.fail(f"migration {info.get('status')}")
    hwm = src.vm_hwm_kib()
    work = stop_work(src.stderr_log()) if build == "fork" else None
    src.close()
    dst.close()
    return {"downtime": info.get("downtime"), "stop_work": work,
            "total": info.get("total-time"),
            "transferred": info.get("ram", {}).get("transferred"),
            "file": size, "device": device_bytes(desc),
            "subsection": device_bytes(desc, "cpu/nested-events"),
            "hwm": hwm}


def emit_stop_work(smp, state, fork_runs):
    """What the fork's final stop and save did, phase by phase, against
    its downtime (issue #16 item 5): the part of the downtime that is
    the fork's own work, exactly, where the downtime ratio cannot tell."""
    works = [r["stop_work"] for r in fork_runs if r.get("stop_work")]
    if not works:
        return
    phases = ("armed", "probed", "settled", "pull", "total")
    cols = {p: [w[p] for w in works if w.get(p) is not None]
            for p in phases}
    downtime = [r["downtime"] for r in fork_runs if r.get("downtime")]
    emit({"metric": f"migration.stop_work.smp{smp}.{state}", "unit": "us",
          **cols, "median": {p: med(cols[p]) for p in phases if cols[p]},
          "downtime_ms": med(downtime) if downtime else None})


def bench_migration(lab, args):
    runs = {}
    # ABBA over the repetitions, as for the windows: the first rep
    # migrates stock first, the second the fork first, ...
    order = stats.abba_order(args.mig_reps)
    for rep in range(args.mig_reps):
        for smp in args.smp:
            for state in ("idle", "nmi"):
                for b in order[rep]:
                    tag = f"{b}-{smp}-{state}-{rep}"
                    r = migrate_once(lab, b, smp, state, tag)
                    runs.setdefault((smp, state), {}).setdefault(
                        b, []).append(r)
                    log(f"migration rep {rep + 1}/{args.mig_reps} "
                        f"smp={smp} {state} {b}: downtime "
                        f"{r['downtime']} ms, total {r['total']} ms, "
                        f"{r['transferred']} B live, {r['file']} B saved")
    for (smp, state), by in sorted(runs.items()):
        st, fk = by["stock"], by["fork"]

        def col(rs, key):
            return [r[key] for r in rs]
        # Per pair (same rep): fork over stock.  A ratio with a zero
        # downtime means nothing; such pairs are left out of the spread,
        # and such blocks out of the interval.
        dratio = [f["downtime"] / s["downtime"] for s, f in zip(st, fk)
                  if s["downtime"]]
        down = stats.ratio_summary(col(fk, "downtime"), col(st, "downtime"),
                                   ceiling=1.01, fallback=DOWNTIME_RES)
        emit({"metric": f"migration.downtime.smp{smp}.{state}",
              "unit": "ms", "stock": col(st, "downtime"),
              "fork": col(fk, "downtime"), "ratio": spread(dratio),
              "order": stats.flat_order(args.mig_reps),
              "pairs": len(dratio), "summary": down,
              "target": TARGETS["downtime"], "met": down["met"]})
        emit_stop_work(smp, state, fk)
        tratio = [f["total"] / s["total"] for s, f in zip(st, fk)
                  if s["total"]]
        emit({"metric": f"migration.total.smp{smp}.{state}", "unit": "ms",
              "stock": col(st, "total"), "fork": col(fk, "total"),
              "order": stats.flat_order(args.mig_reps),
              "ratio": spread(tratio), "pairs": len(tratio),
              "summary": stats.ratio_summary(col(fk, "total"),
                                             col(st, "total"))})
        live = [f["transferred"] - s["transferred"] for s, f in zip(st, fk)]
        emit({"metric": f"migration.live_bytes.smp{smp}.{state}",
              "unit": "B", "stock": col(st, "transferred"),
              "fork": col(fk, "transferred"), "delta": spread(live)})
        # Device state as the stream's own description measures it: exact,
        # unlike RAM, where a page or two may be sent twice in one run.
        extra = [(f["device"] - s["device"]) / smp for s, f in zip(st, fk)]
        target = TARGETS["bytes_idle" if state == "idle"
                         else "bytes_inflight"]
        limit = 0 if state == "idle" else 64
        emit({"metric": f"migration.extra_bytes_per_vcpu.smp{smp}.{state}",
              "unit": "B/vCPU", "stock": col(st, "device"),
              "fork": col(fk, "device"), "delta": spread(extra),
              "stream_stock": col(st, "file"),
              "stream_fork": col(fk, "file"),
              "subsection_bytes": col(fk, "subsection"),
              "target": target, "met": statistics.median(extra) <= limit})


def subsection_wire_size():
    """Bytes one vCPU's cpu/nested-events adds to the stream when it is
    sent, built by nested_stream.py from the same field list as the C
    side: what a vCPU stopped in the window KVM hides would cost (an L1
    soft INT n, framing included; docs/mirror.rst)."""
    try:
        import nested_stream as ns  # pylint: disable=import-outside-toplevel
        return len(ns.subsection(ns.model(injected=ns.event(
            ns.SOFT_INTR, 0x80, ns.ORIGIN_L1))))
    except Exception as exc:  # pylint: disable=broad-except
        log(f"cannot build a cpu/nested-events subsection: {exc}")
        return None


def meta(args):
    kvm_params = {}
    for p in ("nested", "nrips", "npt", "avic"):
        try:
            kvm_params[p] = Path(f"/sys/module/kvm_amd/parameters/{p}") \
                .read_text().strip()
        except OSError:
            pass
    versions = {}
    for b in BUILDS:
        out = subprocess.run([str(binary(b)), "--version"],
                             capture_output=True, text=True, check=False)
        versions[b] = out.stdout.splitlines()[0] if out.stdout else None
    return {"metric": "meta", "lab_kernel": os.environ.get("LAB_KERNEL"),
            "l1_uname": platform.release(), "l1_cpus": os.cpu_count(),
            "kvm_amd": kvm_params, "versions": versions,
            "pairs": args.pairs, "window_s": args.window,
            "order": "ABBA", "blocks": args.pairs // 2,
            "interval": "median over ABBA blocks, distribution-free "
                        f"{stats.LEVEL:.0%} order-statistic interval",
            "cpu_clock": "process CPU clock (all threads)",
            "mig_reps": args.mig_reps, "smp": args.smp,
            "only": args.only, "state_source": args.state_source,
            "subsection_wire_bytes": subsection_wire_size()}


def cmd_lab(args):
    if not TCG:
        if not os.environ.get("LAB_OUT") or \
                not os.access("/dev/kvm", os.R_OK | os.W_OK):
            log("no lab: run this inside scripts/lab (docs/lab.rst)")
            return 1
        # Only inside the lab's L1, never on a host.
        mount_tracefs()
    if args.pairs % 2:
        # An odd last pair belongs to no ABBA block (bench_stats).
        args.pairs += 1
        log(f"--pairs rounded up to {args.pairs}: whole ABBA blocks")
    emit(meta(args))
    start = time.monotonic()
    parts = {"hot": bench_hot, "nested": bench_nested,
             "mig": bench_migration}
    with nkvm.Lab(prefix="nkvm-bench-") as lab:
        for name in args.only:
            t = time.monotonic()
            log(f"--- {name} ---")
            try:
                parts[name](lab, args)
            except nkvm.NkvmError:
                # Which VM went away, how, and what it said: the lab's
                # scratch folder and its logs end with the run.
                for vm in lab.vms:
                    if vm.proc is not None:
                        vm.dump(out=sys.stderr)
                raise
            log(f"{name} took {time.monotonic() - t:.0f} s")
    log(f"lab part done in {time.monotonic() - start:.0f} s")
    return 0


# ---- host ------------------------------------------------------------


def cmd_host(args):
    """Where and when: the record the report's header comes from."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    emit({"metric": "host",
          "date": datetime.datetime.now(datetime.timezone.utc)
          .strftime("%Y-%m-%d %H:%M UTC"),
          "machine": f"{model}, {os.cpu_count()} CPUs, "
                     f"{platform.system()} {platform.release()}",
          "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
          "tcg_threads": args.tcg_threads})
    return 0


# ---- developer loop (host) ---------------------------------------------


def timed(cmd, **kwargs):
    t = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                         **kwargs)
    wall = time.monotonic() - t
    if out.returncode:
        log(f"{' '.join(cmd)} failed ({out.returncode}):\n"
            f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return None
    return wall


def cmd_devloop(args):
    unit = []
    for i in range(args.unit_runs):
        wall = timed([str(REPO / "scripts" / "meson"), "test", "-C",
                      str(REPO / "build" / "standalone"), "--no-rebuild"])
        if wall is None:
            break
        unit.append(wall)
        log(f"unit suite run {i + 1}/{args.unit_runs}: {wall:.2f} s")
    emit({"metric": "devloop.unit", "unit": "s", "samples": unit,
          "spread": spread(unit), "target": TARGETS["unit"],
          "met": bool(unit) and statistics.median(unit) <= 10})
    root = Path(args.rebuild_root) if args.rebuild_root else None
    if not root or not (root / "qemu-build" / "build.ninja").is_file():
        emit({"metric": "devloop.rebuild", "unit": "s", "samples": [],
              "note": "skipped: no fork build root (BENCH_REBUILD=0, or "
                      "build-bench/ failed to build)"})
        return 0
    # Touch the copy inside the build root's tree: build-fork.sh syncs by
    # content, so touching the repository's file would rebuild nothing.
    touched = root / "qemu-10.0.13" / "target" / "i386" / "nested-kvm" / \
        "mirror" / "nested-mirror.c"
    if not touched.is_file():
        # touch() would create it, and build-fork.sh then delete it.
        emit({"metric": "devloop.rebuild", "unit": "s", "samples": [],
              "note": f"skipped: {touched} not found"})
        return 0
    env = dict(os.environ, NKVM_BUILD=str(root))
    rebuild = []
    for i in range(args.rebuild_runs):
        touched.touch()
        wall = timed([str(REPO / "scripts" / "build-fork.sh")], env=env)
        if wall is None:
            break
        rebuild.append(wall)
        log(f"incremental rebuild {i + 1}/{args.rebuild_runs}: {wall:.1f} s")
    emit({"metric": "devloop.rebuild", "unit": "s", "samples": rebuild,
          "spread": spread(rebuild),
          "what": "scripts/build-fork.sh after touching "
                  "target/i386/nested-kvm/mirror/nested-mirror.c "
                  f"(build root {root.name})"})
    return 0


# ---- report (host) -----------------------------------------------------

BEGIN = ".. bench-begin"
END = ".. bench-end"


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 1000:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        else:
            s = f"{v:.3g}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    return f"{s} {unit}".strip()


def med(values):
    values = [v for v in values or [] if v is not None]
    return statistics.median(values) if values else None


def fmt_spread(sp, digits=3):
    if not sp:
        return "n/a"
    return " / ".join(f"{sp[k]:.{digits}f}" for k in ("min", "median", "max"))


def blocks(n):
    return f"{n} block" + ("" if n == 1 else "s")


def fmt_interval(sm, per_pair=None):
    """'median [lo, hi]' of a bench_stats.ratio_summary(), or why there
    is no interval (with the per-pair spread, if any, where there is not
    even a block)."""
    if not sm or sm.get("median") is None:
        return "n/a (no complete ABBA block" + (
            f"; pairs {fmt_spread(per_pair)})" if per_pair else ")")
    if sm.get("lo") is None:
        return f"{sm['median']:.3f} [no interval: {blocks(sm['n'])}]"
    return f"{sm['median']:.3f} [{sm['lo']:.3f}, {sm['hi']:.3f}]"


def verdict(r):
    """The Verdict cell: yes / **no** / why the timing gives none."""
    if r.get("met") is True:
        return "yes"
    if r.get("met") is False:
        return "**no**"
    sm = r.get("summary")
    if sm and r.get("target"):
        return sm.get("verdict", "")
    return ""


def calls_text(calls):
    return ", ".join(f"{k} {v:+d}" for k, v in sorted(calls.items())) \
        or "none"


def count_rows(r):
    """The exact counts of tests/lab/test_syscalls.py: per exit, the
    KVM_RUN returns the long run added and the ioctls the fork's vCPU
    thread makes per exit beyond stock's (target none); per migration,
    what the fork's source calls more than stock's (reported)."""
    if "error" in r:
        return [("counts.syscalls", "", "", r["error"], "", "**no**")]
    rows = []
    # A count whose run failed a check of its own (too few iterations
    # added, on a loaded host) vouches for nothing.
    failed = r.get("checks_failed") or r.get("status")
    for scenario in ("bench-pio", "bench-nested"):
        sc = r.get(scenario)
        if not sc:
            continue
        extra = sc.get("fork_extra_ioctls", {})
        if failed:
            verdict_text = (f"**no** ({r.get('checks_failed')} checks "
                            f"failed: {r.get('log')})")
        else:
            verdict_text = "**no**" if extra else "yes"
        rows.append((f"counts.ioctls_per_exit.{scenario}",
                     f"{sc['stock']['kvm_run_exits']:,} exits",
                     f"{sc['fork']['kvm_run_exits']:,} exits",
                     "fork's extra ioctls: " + calls_text(extra),
                     "none", verdict_text))
    mig = r.get("migration", {}).get("fork_more_than_stock")
    if mig is not None:
        rows.append(("counts.calls_per_migration.bench-nested", "", "",
                     "fork's source beyond stock's: " + calls_text(mig),
                     "", ""))
    return rows


def table_rows(recs):
    rows = []
    for r in recs:
        m, unit = r["metric"], r.get("unit", "")
        met = {True: "yes", False: "**no**"}.get(r.get("met"), "")
        if "summary" in r:
            rows.append((m, fmt(med(r["stock"]), unit),
                         fmt(med(r["fork"]), unit),
                         fmt_interval(r["summary"], r.get("ratio")),
                         r.get("target", ""), verdict(r)))
        elif m.startswith(("hot.", "nested.")) or \
                m.startswith(("migration.downtime", "migration.total")):
            # A record of the harness before the ABBA blocks: per-pair
            # ratios only.
            rows.append((m, fmt(med(r["stock"]), unit),
                         fmt(med(r["fork"]), unit),
                         "pairs " + fmt_spread(r.get("ratio")),
                         r.get("target", ""), met))
        elif m.startswith(("migration.live_bytes",
                           "migration.extra_bytes")):
            rows.append((m, fmt(med(r["stock"]), "B"),
                         fmt(med(r["fork"]), "B"),
                         "delta " + fmt_spread(r.get("delta"), 1)
                         + (" B/vCPU" if "extra" in m else " B"),
                         r.get("target", ""), met))
        elif m.startswith("migration.stop_work"):
            md = r.get("median", {})
            share = (f", {md['total'] / 10 / r['downtime_ms']:.1f} % of "
                     f"{fmt(r['downtime_ms'], 'ms')}"
                     if md.get("total") and r.get("downtime_ms") else "")
            rows.append((m, "", fmt(md.get("total"), "us"),
                         "enable {} / probe {} / settle {} / pulls {} us"
                         .format(*(md.get(p, "-") for p in
                                   ("armed", "probed", "settled", "pull")))
                         + share, "", ""))
        elif m == "counts.syscalls":
            rows.extend(count_rows(r))
        elif m.startswith("memory."):
            twin = (f" (stock twin: {fmt(r['twin'] - r['stock'], unit)})"
                    if r.get("twin") is not None else "")
            rows.append((m, fmt(r["stock"], unit), fmt(r["fork"], unit),
                         f"delta {fmt(r['delta'], unit)}{twin}",
                         r.get("target", ""),
                         met or ("no verdict" if r.get("twin") is not None
                                 else "")))
        elif m.startswith("devloop."):
            sp = r.get("spread")
            rows.append((m, "", fmt_spread(sp, 2) + " s" if sp
                         else r.get("note", "n/a"),
                         "min / median / max" if sp else "",
                         r.get("target", ""), met))
    return rows


def why_missed(r):
    """By how much a target was missed, and whether this run's own spread
    can explain it (on a loaded machine it usually can)."""
    sp = r.get("ratio") or r.get("delta")
    target = r.get("target", "")
    sm = r.get("summary")
    if sm and sm.get("lo") is not None:
        # Only a resolved interval gets met False (bench_stats.judge).
        return (f"median ratio {sm['median']:.3f}, 95 % interval "
                f"[{sm['lo']:.3f}, {sm['hi']:.3f}] over {sm['n']} ABBA "
                f"blocks, against {target}: {sm['verdict']}.")
    if r["metric"].startswith(("hot.", "nested.")) and sp:
        gap = (0.995 - sp["median"]) * 100
        noise = sp["min"] <= 0.995 <= sp["max"]
        return (f"median ratio {sp['median']:.3f}, {gap:.1f} points below "
                f"{target}; " + (f"the pairs range from {sp['min']:.3f} to "
                                 f"{sp['max']:.3f}, so this run cannot tell "
                                 "it from noise." if noise else
                                 "every pair is below: a real cost."))
    if r["metric"].startswith("migration.downtime") and sp:
        noise = sp["min"] <= 1.01 <= sp["max"]
        return (f"median ratio {sp['median']:.3f} against {target}; "
                + (f"the pairs range from {sp['min']:.3f} to "
                   f"{sp['max']:.3f}, so this run cannot tell it from noise."
                   if noise else "every pair is above."))
    if r["metric"].startswith("migration.extra_bytes") and sp:
        return (f"{sp['median']:.1f} B/vCPU against {target}: the fork "
                "sent state that stock does not (cpu/nested-events: "
                f"{r.get('subsection_bytes')} B in all).")
    if r["metric"].startswith("memory."):
        return (f"{r['delta']} KiB more than stock, against {target}"
                + (f"; {r['verdict']}." if r.get("verdict") else "."))
    if r["metric"] == "devloop.rebuild":
        return r.get("note", "")
    if r["metric"] == "devloop.unit" and r.get("spread"):
        return (f"median {r['spread']['median']:.2f} s against {target} "
                "(the machine's load counts in it).")
    return f"target {target}."


def render(recs, wall=None, raw=None):
    meta_rec = next((r for r in recs if r["metric"] == "meta"), {})
    host = next((r for r in recs if r["metric"] == "host"), {})
    rows = table_rows(r for r in recs
                      if r["metric"] not in ("meta", "host", "incomplete"))
    head = ("Metric", "Stock (median)", "Fork (median)",
            "Fork vs stock: median [95 % interval]", "Target", "Verdict")
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    missed = [r for r in recs if r.get("met") is False]
    out = [BEGIN, "", "Benchmarks", "----------", "",
           "Written by ``make bench`` (``scripts/bench.sh``, "
           "``tests/lab/bench.py``; how to reproduce: ``docs/bench.rst``). "
           "Stock is pristine QEMU 10.0.13 with ``-accel kvm``, fork is "
           "this project with ``-accel nested-kvm``, interleaved in one run "
           "inside the lab (L1 under the fork's TCG, real ``kvm_amd`` "
           "nested=1); the guests are the test guest's ``bench-*`` "
           "scenarios.  Stock and fork windows run in ABBA blocks (stock, "
           "fork, fork, stock); each block gives one ratio, its fork sum "
           "over its stock sum, so that a linear drift cancels, and each "
           "ratio is the median over the blocks with its distribution-free "
           "95 % interval (``docs/bench.rst``, \"Statistics\").  Rates are "
           "guest loop iterations per second of wall time, fork over stock;"
           " ``.cpu`` rows are the QEMU process's CPU time per iteration, "
           "stock over fork, so that below 1.00 is a cost in both.  A "
           "ratio target is met if its interval includes 1.00 or lies at "
           "or above the target (at or below, for downtime); an interval "
           "wider than ±1 % of its median gives no verdict.  Raw values "
           f"of every window: ``{raw or 'build/bench/results.jsonl'}``.",
           "",
           f"- Date: {host.get('date', 'n/a')}",
           f"- Machine: {host.get('machine', 'n/a')}",
           f"- Load average at start / end: {host.get('load_start', 'n/a')}"
           " / " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
           f"- Lab kernel: {meta_rec.get('lab_kernel', 'n/a')} "
           f"({meta_rec.get('l1_uname', 'n/a')}), L1 vCPUs "
           f"{meta_rec.get('l1_cpus', 'n/a')} (L0 TCG threads: "
           f"{host.get('tcg_threads', 'multi')}), kvm_amd "
           + ", ".join(f"{k}={v}" for k, v in
                       sorted((meta_rec.get("kvm_amd") or {}).items())),
           f"- Pairs: {meta_rec.get('pairs', 'n/a')} of "
           f"{meta_rec.get('window_s', 'n/a')} s windows "
           f"({meta_rec.get('order', 'ABAB')} order, "
           f"{meta_rec.get('blocks', 'no')} blocks); migrations: "
           f"{meta_rec.get('mig_reps', 'n/a')} per build, smp and state",
           f"- Whole ``make bench``: {fmt(wall, 's') if wall else 'n/a'}",
           "", "::", ""]
    out += ["   " + ln for ln in lines]
    out += ["", "Notes:", ""]
    out += [f"- Incomplete: the ``{r['run']}`` lab run ended with status "
            f"{r['status']} (``{r['log']}``), so its metrics are missing or "
            f"partial; its last error: ``{r['error'] or 'none printed'}``."
            for r in recs if r["metric"] == "incomplete"]
    for m in recs:
        if m["metric"] == "meta" and m.get("state_source", "auto") != "auto":
            src = m["state_source"]
            out.append(
                f"- ``nested.{src}.*``: a second lab run, on kernel "
                f"{m.get('lab_kernel')} ({m.get('l1_uname')}) with the KVM "
                "modules built from ``scripts/kernel/``'s series "
                "(``scripts/lab --kvm patched``, ``docs/kvm-uapi.rst``), the "
                f"fork with ``state-source={src}``: the in-flight state "
                "comes from the kernel and no tracepoint is armed; "
                f"{m.get('pairs')} pairs of {m.get('window_s')} s windows.")
    for r in recs:
        if r["metric"] == "counts.syscalls" and "error" not in r:
            out.append(
                "- ``counts.*``: ``tests/lab/test_syscalls.py`` in a third "
                f"lab run (kernel {r.get('kernel')}, status {r.get('status')}"
                f", {r.get('checks_failed')} checks failed): each scenario "
                f"under ``strace -ff`` {syscalls_runs(r)}; the exits are "
                "the KVM_RUN returns the longer run added (bench-nested's "
                "L2 exits stay in L1's KVM), and the fork's extra ioctls "
                "are those its vCPU thread makes beyond stock's over the "
                "same exits.  Per "
                "migration: the calls of one migration of bench-nested's "
                "source, fork's beyond stock's, all threads.")
    wire = meta_rec.get("subsection_wire_bytes")
    if wire:
        out.append(f"- ``cpu/nested-events`` costs {wire} bytes per vCPU "
                   "for an L1 soft INT n when it is sent (only while an "
                   "event stock cannot carry is in flight, which these "
                   "guests never stop in; the in-flight rows measure an "
                   "NMI held and one pending, which stock's own state "
                   "carries).")
    out += [f"- ``{r['metric']}``: {r['what']}." for r in recs
            if r.get("what") and r["metric"].startswith(("hot.", "nested.",
                                                         "devloop."))]
    out.append("- ``migration.extra_bytes_per_vcpu``: the stock and fork "
               "columns are the device state (all but RAM) of the saved "
               "stream of the stopped guest, as the stream's own vmstate "
               "description measures it; the difference is divided by the "
               "vCPUs.  ``live_bytes`` is query-migrate's ram.transferred "
               "of the live migration.")
    for r in recs:
        if r["metric"].startswith("memory.") and r.get("delta", 0) < -1024:
            out.append(f"- ``{r['metric']}``: the fork's peak RSS is "
                       f"{-r['delta']} KiB below stock's; the target only "
                       "bounds a growth.")
    for r in missed:
        out.append(f"- Missed: ``{r['metric']}``: {why_missed(r)}")
    out += [f"- No verdict: ``{r['metric']}`` (delta {r['delta']} KiB): "
            f"{r['verdict'].removeprefix('no verdict: ')}." for r in recs
            if r["metric"].startswith("memory.") and r.get("met") is None
            and r.get("verdict")]
    # Targets the timing could not resolve, and what judges them instead.
    unresolved = [r for r in recs if r.get("target") and
                  r.get("met") is None and r.get("summary")]
    for r in unresolved:
        sm = r["summary"]
        where = (f"median {sm['median']:.3f}, " if sm.get("median")
                 is not None else "") + blocks(sm["n"])
        if sm.get("lo") is not None:
            where += f", 95 % interval [{sm['lo']:.3f}, {sm['hi']:.3f}]"
        out.append(f"- No verdict: ``{r['metric']}`` ({where}): "
                   f"{sm['verdict'].split(':')[0]}; "
                   f"{r.get('judged_on') or DOWNTIME_RES}.")
    if not missed and not unresolved:
        out.append("- Every target was met in this run.")
    out += ["", END]
    return "\n".join(out) + "\n"


def rejudge(rec):
    """The verdict of a stored ratio under today's bench_stats.judge(),
    so that rendering older raw data applies the same rules."""
    sm, target = rec.get("summary"), rec.get("target") or ""
    m = re.match(r"([<>]=) ([0-9.]+)$", target)
    if not sm or not m:
        return
    # The fallbacks emit_ratios() and bench_migration() give.
    if m.group(1) == ">=":
        bound = {"floor": float(m.group(2)),
                 "fallback": "judged on exact counts"}
    else:
        bound = {"ceiling": float(m.group(2)), "fallback": DOWNTIME_RES}
    interval = None if sm.get("lo") is None else \
        {"lo": sm["lo"], "hi": sm["hi"]}
    met, why = stats.verdict(sm.get("median"), interval, **bound)
    sm["met"], sm["verdict"], rec["met"] = met, why, met


def cmd_render(args):
    recs = [json.loads(ln) for ln in Path(args.results).read_text()
            .splitlines() if ln.startswith('{"')]
    for r in recs:
        rejudge(r)
    section = render(recs, args.wall, args.raw)
    rst = Path(args.rst)
    text = rst.read_text() if rst.exists() else ""
    if BEGIN in text and END in text:
        pre = text[:text.index(BEGIN)]
        post = text[text.index(END) + len(END):].lstrip("\n")
        text = pre + section + ("\n" + post if post else "")
    elif text:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = section
    rst.write_text(text)
    log(f"wrote the benchmark section of {rst}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lab = sub.add_parser("lab")
    # 24 pairs make 12 ABBA blocks, whose 95 % interval for the median
    # runs from the 3rd to the 10th smallest block (bench_stats).
    lab.add_argument("--pairs", type=int, default=24)
    lab.add_argument("--window", type=float, default=2.0)
    lab.add_argument("--mig-reps", type=int, default=12)
    lab.add_argument("--smp", default="1,8",
                     type=lambda s: [int(x) for x in s.split(",")])
    lab.add_argument("--only", default="hot,nested,mig",
                     type=lambda s: s.split(","))
    # kernel: the patched KVM modules' nested event state
    # (scripts/kernel, docs/kvm-uapi.rst) and no observer; its nested
    # rows are named nested.kernel.*
    lab.add_argument("--state-source", default="auto",
                     choices=("auto", "kernel", "observer"))
    dev = sub.add_parser("devloop")
    dev.add_argument("--unit-runs", type=int, default=3)
    dev.add_argument("--rebuild-runs", type=int, default=2)
    dev.add_argument("--rebuild-root")
    p = sub.add_parser("host")
    p.add_argument("--tcg-threads", choices=("single", "multi"),
                   default="multi",
                   help="L0's TCG threading for the lab L1 (scripts/lab)")
    ren = sub.add_parser("render")
    ren.add_argument("results")
    ren.add_argument("rst")
    ren.add_argument("--wall", type=float)
    ren.add_argument("--raw", help="where the run's JSON lines are kept, "
                                   "as the section names them")
    args = ap.parse_args()
    return {"lab": cmd_lab, "devloop": cmd_devloop, "host": cmd_host,
            "render": cmd_render}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
