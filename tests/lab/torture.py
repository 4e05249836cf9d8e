#!/usr/bin/python3
"""
Nested torture: live-migrate the test guest's "torture" scenario (a test
hypervisor that keeps injecting events into its L2, see
tests/guest/torture.c) back and forth between two QEMU processes,
and count what got lost.  Meant for the lab (docs/lab.rst), where
/dev/kvm is a real kvm_amd with nested SVM.

  torture.py --accel kvm|nested-kvm|tcg --migrations N [--pair]
             [--control-seconds S] [--expect-clean | --report-only]

1. Migration run: QEMU A runs the guest; N times, after a random sleep
   (and --fail-every K migrations broken on purpose, each of which must
   leave the source running and idle),
   a fresh QEMU is started with -incoming and the VM is migrated to it
   over 127.0.0.1; the source quits.  Before each migration the L1 KVM
   tracepoints (tracefs) of the source's threads are cleared; after the
   source stopped, the last record of each vCPU thread says whether the
   stop landed while an L1->L2 event was in flight inside KVM: a nested
   #VMEXIT that KVM handled itself (no kvm_nested_vmexit_inject after
   it), with EXITINTINFO valid, and no kvm_entry after it ("requeued");
   or L1's VMRUN emulated (kvm_nested_vmenter) with EVENTINJ valid and
   no kvm_entry after it ("vmrun").
   With --pair (on host A of "scripts/lab pair"), every migration goes
   to the other host over the pair's link: A to B, B to A, and so on,
   through B's lab-agent.py; a migration from B is traced by B's agent,
   on B's KVM.
   --mode chooses how the VM leaves its host (docs/hidden-window.rst,
   "Every way a VM leaves a host"): precopy (the default), multifd,
   postcopy (switched to postcopy as soon as the migration runs),
   paused (the source is stopped before the migration, as libvirt's
   save and offline migration do; the destination is resumed after
   it), or savevm (no second QEMU: stop, snapshot-save, cont, a random
   sleep, stop, snapshot-load, cont, into a qcow2 node that QMP creates,
   as libvirt's internal snapshots do).
2. Control run: the same guest for as long (or --control-seconds), no
   migration.  It proves that the KVM below delivers correctly.

The guest ends its run when it reads 'q' on its serial port and prints
"torture-result {json}".  Progress goes to stderr; stdout gets one JSON
line.  Exit status: with --expect-clean (the default for nested-kvm),
0 iff neither run lost, duplicated or misdirected anything and the
window was hit; with --report-only (the default for kvm and tcg), 0 iff
both runs produced results and the control run is clean.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402
import remote  # noqa: E402

RESULT_RE = r"torture-result (\{.*\})"
# A destination QEMU in a lab L1 that other lab runs share the host's
# cores with once took longer than nkvm's 15 s to answer QMP, which
# ended the whole run (2026-12-01); a QEMU that dies is still seen at
# once.
LAUNCH_QMP_TIMEOUT = 60.0
# An event delivered more than once or not as injected.
MISDIRECTED_KEYS = ("duplicated", "wrong_vector", "wrong_rip",
                    "wrong_error_code", "wrong_cr2", "bad_exitintinfo",
                    "unexpected_exit")
BAD_KEYS = ("lost",) + MISDIRECTED_KEYS + ("l1_nmi_corrupt",)
# The report's totals: BAD_KEYS (also per type), NMIs L1 never sent, and
# the IPIs and NMIs one vCPU sent another that never arrived.
RESULT_BAD_KEYS = BAD_KEYS + ("l1_nmi_extra", "cross_ipis_lost",
                              "cross_nmis_lost")
TRACE_EVENTS = ("kvm_entry", "kvm_exit", "kvm_nested_vmexit",
                "kvm_nested_vmexit_inject", "kvm_nested_vmenter",
                "kvm_nested_vmrun", "kvm_inj_virq", "kvm_inj_exception",
                "kvm_userspace_exit")
# The field of kvm_nested_vmexit that holds the delivery an exit cut
# short: on SVM EXITINTINFO (intr_info, from svm_get_exit_info()); on
# VMX the IDT-vectoring information, which vmx_get_exit_info() passes as
# info2 (intr_info is the exit's own interruption information there).
EXITINTINFO_FIELDS = {
    "svm": ("exit_int_info", "intr_info", "exit_intr_info"),
    "vmx": ("info2",),
}
INSTANCE = "nkvm-torture"
# What strict mode says when it refuses to save a vCPU it cannot judge
STRICT_REFUSALS = ("cannot tell whether L1's event is in flight",
                   "nothing watched its nested entries and exits")
MODES = ("precopy", "multifd", "postcopy", "paused", "savevm")
# --fail-every breaks migrations on purpose, each of these in turn.
FAILURE_KINDS = [(phase, action) for phase in ns.PHASES
                 for action in ns.ACTIONS] + [("refused", None)]


def log(msg):
    print(f"torture: {msg}", file=sys.stderr, flush=True)


# ---- tracefs ---------------------------------------------------------


def split_args(text):
    """Split a print fmt argument list at top-level commas."""
    out, depth, cur, quote = [], 0, "", False
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "([{":
            depth += 1
        elif not quote and ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


CONV_RE = re.compile(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?"
                     r"(?:hh|h|ll|l|z|j|t|L)?[diouxXcsp][a-zA-Z]*)")


class EventFormat:
    """A tracepoint's print fmt, turned into a regex over the text that
    tracefs prints, with named groups for the plain REC->field args."""

    def __init__(self, name, text):
        self.name = name
        m = re.search(r'^print fmt: "((?:[^"\\]|\\.)*)"\s*,?\s*(.*)$',
                      text, re.M | re.S)
        if not m:
            raise ValueError(f"{name}: no print fmt")
        fmt = m.group(1).encode().decode("unicode_escape")
        args = split_args(m.group(2))
        parts, pos, i, self.fields, self.bases = [], 0, 0, {}, {}
        for conv in CONV_RE.finditer(fmt):
            parts.append(re.escape(fmt[pos:conv.start()]))
            pos = conv.end()
            if conv.group(0) == "%%":
                parts.append("%")
                continue
            arg = args[i] if i < len(args) else ""
            i += 1
            fm = re.fullmatch(r"\(*\s*(?:\([\w\s]+\)\s*)?REC->(\w+)\s*\)*",
                              arg)
            if fm and fm.group(1) not in self.fields:
                group = f"f{len(self.fields)}"
                self.fields[fm.group(1)] = group
                # "%08x" prints hex digits with no 0x: parse by the
                # conversion, not by the look of the digits
                self.bases[group] = 16 if conv.group(0)[-1] in "xX" else 0
                parts.append(f"(?P<{group}>.*?)")
            else:
                parts.append(".*?")
        parts.append(re.escape(fmt[pos:]))
        self.regex = re.compile("".join(parts) + r"\s*$")

    def field(self, rest, name):
        group = self.fields.get(name)
        if group is None:
            return None
        m = self.regex.match(rest)
        if not m:
            return None
        try:
            return int(m.group(group), self.bases[group])
        except ValueError:
            return None


LINE_RE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+"
                     r"(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                     r"(?:\S+\s+)?(?P<ts>\d+\.\d+): (?P<ev>\w+): "
                     r"(?P<rest>.*)$")


class Tracer:
    """L1's KVM tracepoints in a private tracefs instance."""

    def __init__(self):
        self.root = None
        self.inst = None
        self.formats = {}
        self.eii_field = None
        self.why = None
        self.debug = 0
        self.last_text = ""
        self.in_flight_events = []
        try:
            self.root = self.find_root()
            self.inst = self.root / "instances" / INSTANCE
            if not self.inst.is_dir():
                self.inst.mkdir()
            events = self.inst / "events" / "kvm"
            for ev in TRACE_EVENTS:
                fmt = events / ev / "format"
                if fmt.exists():
                    self.formats[ev] = EventFormat(ev, fmt.read_text())
            if "kvm_nested_vmexit" not in self.formats:
                raise OSError("no kvm:kvm_nested_vmexit tracepoint")
            nv = self.formats["kvm_nested_vmexit"]
            self.eii_field = next((f for f in EXITINTINFO_FIELDS[
                host_vendor()] if f in nv.fields), None)
            if self.eii_field is None:
                raise OSError("kvm_nested_vmexit prints no EXITINTINFO "
                              f"(fields {sorted(nv.fields)})")
            (self.inst / "buffer_size_kb").write_text("1024\n")
            for ev in self.formats:
                (events / ev / "enable").write_text("1\n")
            (self.inst / "tracing_on").write_text("1\n")
            log(f"tracing {', '.join(self.formats)} in {self.inst} "
                f"(EXITINTINFO field {self.eii_field})")
        except (OSError, ValueError) as exc:
            self.why = str(exc)
            log(f"tracing unavailable: {exc}")
            self.formats = {}

    @staticmethod
    def find_root():
        for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
            if Path(d, "events").is_dir():
                return Path(d)
        subprocess.run(["mount", "-t", "tracefs", "nodev",
                        "/sys/kernel/tracing"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if Path("/sys/kernel/tracing/events").is_dir():
            return Path("/sys/kernel/tracing")
        raise OSError("no tracefs (mount -t tracefs failed)")

    @property
    def ok(self):
        return bool(self.formats)

    def start(self, tids):
        """Trace only these threads, from an empty buffer."""
        if not self.ok:
            return
        (self.inst / "set_event_pid").write_text(
            " ".join(str(t) for t in tids) + "\n")
        with open(self.inst / "trace", "w", encoding="ascii"):
            pass

    def analyse(self):
        """Return (in_flight, threads_seen, windows) for the buffer.

        windows counts nested exits with EXITINTINFO valid that KVM
        handled itself (the hidden window), over the whole buffer."""
        if not self.ok:
            return None
        text = (self.inst / "trace").read_text(errors="replace")
        self.last_text = text
        if self.debug:
            self.debug -= 1
            nv = self.formats["kvm_nested_vmexit"]
            log(f"trace debug: kvm_nested_vmexit fields {nv.fields} "
                f"regex {nv.regex.pattern}")
            lines = text.splitlines()
            log(f"trace debug: {len(lines)} lines; last ones:")
            for line in lines[-12:]:
                log(f"trace debug: {line}")
            for line in lines:
                if "nested_vmexit:" in line and \
                        "intr_info 0x00000000" not in line:
                    log(f"trace debug (eii?): {line}")
                    break
        last = {}
        pending = {}
        windows = 0
        for line in text.splitlines():
            m = LINE_RE.match(line)
            if not m or m.group("ev") not in self.formats or \
                    m.group("ev") in ("kvm_exit", "kvm_inj_virq",
                                      "kvm_inj_exception",
                                      "kvm_userspace_exit"):
                continue
            tid, ev = int(m.group("pid")), m.group("ev")
            if ev == "kvm_nested_vmenter":
                inj = self.formats[ev].field(m.group("rest"), "event_inj")
                valid = inj is not None and bool(inj & 0x80000000)
                if pending.get(tid):
                    windows += 1
                pending[tid] = False
                last[tid] = (ev, valid, inj or 0)
            elif ev == "kvm_nested_vmexit":
                eii = self.formats[ev].field(m.group("rest"),
                                             self.eii_field)
                valid = eii is not None and bool(eii & 0x80000000)
                if pending.get(tid):
                    windows += 1
                pending[tid] = valid
                last[tid] = (ev, valid, eii)
            else:
                if ev != "kvm_nested_vmexit_inject" and pending.get(tid):
                    windows += 1
                pending[tid] = False
                last[tid] = (ev, False, 0)
        # (how, event): "requeued" is an exit KVM handled itself in the
        # middle of delivery, "vmrun" L1's VMRUN emulated with EVENTINJ
        # valid but L2 not entered yet; both leave the event inside KVM
        self.in_flight_events = [
            ("requeued" if ev == "kvm_nested_vmexit" else "vmrun", eii)
            for ev, valid, eii in last.values()
            if ev in ("kvm_nested_vmexit", "kvm_nested_vmenter") and valid]
        return len(self.in_flight_events), len(last), windows

    def close(self):
        if self.inst is None or not self.inst.is_dir():
            return
        try:
            (self.inst / "tracing_on").write_text("0\n")
            for ev in self.formats:
                (self.inst / "events" / "kvm" / ev / "enable").write_text(
                    "0\n")
            self.inst.rmdir()
        except OSError:
            pass


# ---- runs ------------------------------------------------------------


class RemoteTracer:
    """The Tracer of host B of a pair, run by its agent: a migration whose
    source is on B is judged by B's KVM tracepoints."""

    def __init__(self, agent):
        self.agent = agent
        reply = agent.call("tracer.open")
        self._ok = reply["ok"]
        self.why = reply["why"]
        self.in_flight_events = []
        self.last_text = ""

    @property
    def ok(self):
        return self._ok

    def start(self, tids):
        if self.ok:
            self.agent.call("tracer.start", tids=tids)

    def analyse(self):
        if not self.ok:
            return None
        reply = self.agent.call("tracer.analyse")
        self.in_flight_events = [tuple(e) for e in reply["events"]]
        self.last_text = reply["tail"]
        return tuple(reply["res"]) if reply["res"] else None

    def close(self):
        """The agent closes its Tracer when it ends."""


def host_vendor():
    """svm or vmx: which nested virtualization this host's KVM runs."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "svm"
    return "vmx" if re.search(r"^flags\s*:.*\bvmx\b", text, re.M) else "svm"


def event_kind(eii):
    """Name an EXITINTINFO (or VMX's IDT-vectoring information) the way
    the guest names its event types: INT3 and INTO are type 3 on SVM,
    type 6 (software exception) on VMX."""
    kind, vec = (eii >> 8) & 7, eii & 0xff
    names = {(4, 0x82): "soft_int", (3, 3): "int3", (3, 4): "into",
             (6, 3): "int3", (6, 4): "into",
             (0, 0x41): "intr", (3, 13): "gp", (3, 14): "pf"}
    if kind == 2:
        return "nmi"
    return names.get((kind, vec), f"type{kind}_vector{vec:#x}")


def cpu_for(accel):
    # the guest uses x2APIC, which the EPYC model lacks under TCG
    return "EPYC,+svm,+x2apic" if accel == "tcg" else "host"


def accel_options(args, gen):
    """The -accel argument of a VM of generation GEN (how many
    migrations its state has been through: see new_vm()), and the
    state-source it names (None: the accelerator's default)."""
    accel = args.accel
    if args.unknown_verdicts and \
            (args.unknown_verdicts_on == "all" or gen % 2 == 0):
        accel += f",x-unknown-verdicts={args.unknown_verdicts}"
    if args.stop_settle_ms is not None:
        accel += f",stop-settle-ms={args.stop_settle_ms}"
    if args.best_effort:
        accel += ",event-migration=best-effort"
    source = args.state_source if args.accel == "nested-kvm" else None
    if source == "alternate":
        # every migration between a kernel source and an observer one
        source = "kernel" if gen % 2 == 0 else "observer"
    if source:
        accel += f",state-source={source}"
    return accel, source


def new_vm(lab, n, args, incoming=None, agent=None, drop=0, after=None):
    """VM number n, on this host, or with agent on the pair's other;
    drop: the guest's negative control, round DROP injects nothing;
    after: the source whose migration this VM is the destination of.

    Its generation, one more than after's, picks the options that
    alternate: by generation, not by n, every migration goes from one
    kind of QEMU to the other, however many destinations a refused or
    broken migration used up."""
    gen = 0 if after is None else after.generation + 1
    scenario = "torture" + (f" seed={args.seed}" if args.seed else "") + \
        (f" drop={drop}" if drop else "") + \
        (f" cpus={args.cpus}" if args.cpus > 1 else "") + \
        (" bp_hw=1" if args.bp_hw else "")
    accel, source = accel_options(args, gen)
    extra = ["-cpu", cpu_for(args.accel), "-smp", str(args.cpus)] + \
        [a for t in args.trace for a in ("-trace", t)]
    if args.unprivileged and args.helper_socket:
        accel += f",observer-helper={args.helper_socket}"
        # the helper opens only threads named "CPU n/KVM"
        extra += ["-name", f"vm{n},debug-threads=on"]
    kwargs = {"accel": accel, "memory_mb": 32, "incoming": incoming,
              "extra_args": extra}
    if args.unprivileged:
        # local VMs only: --unprivileged is refused with --pair
        kwargs["wrapper"] = nkvm.unprivileged_wrapper()
    # serial input: finish_guest() sends the guest its 'q'
    if agent is None:
        vm = nkvm.GuestVM(lab, f"vm{n}", scenario, serial_input=True,
                          **kwargs)
        if args.agent is not None:
            # a VM coming from B listens on A's end of the link
            vm.listen_host = args.own_addr
    else:
        vm = remote.RemoteVM(agent, lab, f"vm{n}", scenario,
                             serial_input=True, **kwargs)
    vm.generation = gen
    lab.vms.append(vm)      # so that the Lab kills it on any exit
    vm.launch(qmp_timeout=LAUNCH_QMP_TIMEOUT)
    if source in ("kernel", "observer") and n == 0:
        check_state_source(vm, source)
    return vm


def check_state_source(vm, want):
    """The first VM (not an incoming one, whose vCPU state a query would
    sync before the stream loads) says where its in-flight state comes
    from: what --state-source asked for."""
    got = {m["state-source"] for m in vm.qmp("x-query-nested-events")}
    if got != {want}:
        raise nkvm.NkvmError(f"{vm.name}: x-query-nested-events says "
                             f"state-source {sorted(got)}, not {want}")
    log(f"{vm.name}: state-source {want}")


def is_remote(vm):
    return isinstance(vm, remote.RemoteVM)


def finish_guest(vm, timeout):
    """Ask the guest to stop, return (result dict or None, status)."""
    vm.serial_write(b"q")
    m = vm.wait_for_serial_line(RESULT_RE, timeout, fatal=False)
    status = vm.wait_exit(timeout, fatal=False)
    if not m:
        vm.dump(out=sys.stderr)
        return None, status
    for path in sorted(vm.lab.dir.glob("*.serial"),
                       key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)):
        for line in path.read_text(errors="replace").splitlines():
            # "# torture: cpu N round R KIND: what: got ... expected ..."
            if re.match(r"# torture: (cpu \d+ )?round ", line):
                log(f"{path.stem} guest: {line[2:].strip()}")
    return json.loads(m.group(1)), status


def induced_failure(lab, src, n, args, stats):
    """Break a migration of SRC on purpose, the next of FAILURE_KINDS,
    with a fresh destination numbered N; the source must end failed or
    cancelled, running, with no more fds than before and no restore
    plan pending."""
    kinds = [k for k in FAILURE_KINDS
             if not args.fail_kinds or k[0] in args.fail_kinds]
    phase, action = kinds[stats["induced_failures"] % len(kinds)]
    idle = nkvm.open_fds(src)
    dst = new_vm(lab, n, args, incoming="defer", after=src)
    if phase == "refused":
        why = ns.refuse_migration(src, dst, args.timeout)
    else:
        held, status = ns.break_migration(src, dst, phase, action,
                                          args.timeout)
        why = ns.broken_as_expected(phase, action, held, status)
    dst.close()
    why = why or nkvm.source_idle(src, idle, args.accel == "nested-kvm")
    stats["induced_failures"] += 1
    if why:
        stats["induced_failures_bad"] += 1
        log(f"induced failure {phase} {action or ''}: {why}")


def induced_problem(args, stats):
    """What went wrong with the --fail-every failures, or None.  They
    come before every try, so --extend and the retries after a refusal
    add to the planned ones: fewer than planned is a failure, more is
    not."""
    planned = args.fail_every * args.migrations
    if stats["induced_failures_bad"] or stats["induced_failures"] < planned:
        return (f"{stats['induced_failures_bad']} of "
                f"{stats['induced_failures']} induced failures went wrong "
                f"(at least {planned} planned)")
    return None


def wait_started(vm, timeout):
    vm.wait_for_serial_line(r"torture: start", timeout)


def strict_refusals(vm):
    """The lines in which VM's QEMU said that strict mode refused a save."""
    return [ln for ln in vm.stderr_log().splitlines()
            if any(s in ln for s in STRICT_REFUSALS)]


def set_mode(args, vm):
    """The migration capabilities of --mode, on either end."""
    caps = {"multifd": "multifd", "postcopy": "postcopy-ram"}
    if args.mode in caps:
        vm.qmp("migrate-set-capabilities", capabilities=[
            {"capability": caps[args.mode], "state": True}])
    if args.mode == "multifd":
        vm.qmp("migrate-set-parameters", **{"multifd-channels": 2})


def start_postcopy(vm):
    """Switch an active migration to postcopy at once: the source stops
    with the guest wherever it is, as in precopy's final stop."""
    vm.qmp("migrate-start-postcopy")


def run_job(vm, command, timeout, **args):
    """Run a QMP job command to its end; return its error or None."""
    job = f"{command}-{time.monotonic_ns()}"
    vm.qmp(command, **{"job-id": job}, **args)
    deadline = time.monotonic() + timeout
    while True:
        jobs = [j for j in vm.qmp("query-jobs") if j["id"] == job]
        if jobs and jobs[0]["status"] == "concluded":
            vm.qmp("job-dismiss", id=job)
            return jobs[0].get("error")
        if time.monotonic() >= deadline:
            raise nkvm.NkvmError(f"{command} did not end within {timeout} s")
        time.sleep(0.02)


def snapshot_node(vm, timeout):
    """A qcow2 node named "snap" for internal snapshots, made through QMP
    (the lab has no qemu-img)."""
    path = str(vm.lab.dir / f"{vm.name}-snap.qcow2")
    err = run_job(vm, "blockdev-create", timeout,
                  options={"driver": "file", "filename": path, "size": 0})
    if err:
        raise nkvm.NkvmError(f"blockdev-create file: {err}")
    vm.qmp("blockdev-add", driver="file", filename=path,
           **{"node-name": "snap-file"})
    err = run_job(vm, "blockdev-create", timeout,
                  options={"driver": "qcow2", "file": "snap-file",
                           "size": 1 << 20})
    if err:
        raise nkvm.NkvmError(f"blockdev-create qcow2: {err}")
    vm.qmp("blockdev-add", driver="qcow2", file="snap-file",
           **{"node-name": "snap"})


def snapshot_job(vm, command, timeout, tag):
    """snapshot-save, -load or -delete of TAG on the "snap" node."""
    args = {"tag": tag, "devices": ["snap"]}
    if command != "snapshot-delete":
        args["vmstate"] = "snap"
    return run_job(vm, command, timeout, **args)


def snapshot_loop(args, tracer, stats, start, lab):
    """--mode savevm: save the running guest hypervisor, let it run on,
    go back to the snapshot; the guest's own counts, rewound with it,
    must show every event that was in flight at the save delivered."""
    vm = new_vm(lab, 0, args, drop=args.drop)
    wait_started(vm, args.timeout)
    snapshot_node(vm, args.timeout)
    i = 0
    while want_more(args, stats, i, tracer.ok):
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        tracer.start(vm.threads())
        refusals = len(strict_refusals(vm))
        idle = nkvm.open_fds(vm)
        vm.qmp("stop")
        err = snapshot_job(vm, "snapshot-save", args.timeout, f"t{i}")
        if err:
            why = strict_refusals(vm)[refusals:]
            record_failure(args, vm, stats, "snapshot-save",
                           " | ".join(why[-1:] + [err]), bool(why))
            vm.qmp("cont")
            if why:
                check_refusal_left(args, vm, stats, idle, "running")
            if args.expect_refusals:
                i += 1
            continue
        note = count_stop(tracer, stats)
        vm.qmp("cont")
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        vm.qmp("stop")
        err = snapshot_job(vm, "snapshot-load", args.timeout, f"t{i}")
        if err:
            raise nkvm.NkvmError(f"snapshot-load t{i}: {err}")
        vm.qmp("cont")
        err = snapshot_job(vm, "snapshot-delete", args.timeout, f"t{i}")
        if err:
            raise nkvm.NkvmError(f"snapshot-delete t{i}: {err}")
        i += 1
        stats["migrations"] += 1
        log_progress(args, stats, start, i, note)
    result, status = finish_guest(vm, args.timeout)
    stats["seconds"] = round(time.monotonic() - start, 1)
    return stats, result, status


@contextlib.contextmanager
def observer_helper(args, lab):
    """--unprivileged: the observer helper, as root, for this Lab's QEMUs
    (which run as nobody: they must reach the Lab's folder and
    /dev/kvm, which in the lab's throwaway L1 is fine to open up)."""
    if not args.unprivileged:
        yield
        return
    os.chmod(lab.dir, 0o777)
    os.chmod("/dev/kvm", 0o666)
    if args.state_source == "kernel":
        # the kernel reports the window: nothing to open, no helper
        yield
        return
    proc, args.helper_socket = nkvm.start_observer_helper(lab.dir)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()
        log_text = (Path(lab.dir) / "observer-helper.log").read_text()
        for line in log_text.splitlines()[-5:]:
            log(f"observer helper: {line}")


def stop_stats():
    """The counts that count_stop() keeps, all at zero."""
    return {"stops_in_flight": 0, "stops_traced": 0, "windows_seen": 0,
            "stops_in_flight_requeued": 0, "stops_in_flight_vmrun": 0,
            "stops_in_flight_by_type": {}}


def migration_run(args, tracer):
    stats = {"migrations": 0, "migrations_failed": 0,
             "migrations_a_to_b": 0, "migrations_b_to_a": 0,
             "failures": [], **stop_stats(), "induced_failures": 0,
             "induced_failures_bad": 0, "strict_refusals": 0,
             "strict_refusals_bad": 0}
    start = time.monotonic()
    loop = snapshot_loop if args.mode == "savevm" else migration_loop
    with nkvm.Lab(prefix="nkvm-torture-") as lab, observer_helper(args, lab):
        try:
            return loop(args, tracer, stats, start, lab)
        except nkvm.NkvmError:
            # say which QEMU died and why, and keep every log
            for vm in lab.vms:
                if vm.poll() is not None:
                    err = [ln for ln in vm.stderr_log().splitlines()
                           if ln.strip() and "warning:" not in ln][-3:]
                    log(f"{vm.name}: {nkvm.exit_status_name(vm.poll())}: "
                        + " | ".join(err))
                    for line in vm.serial_lines()[-3:]:
                        log(f"{vm.name} serial: {line}")
            raise
        finally:
            if args.keep_dir:
                # one name per run, so that a later run keeps this one's
                tag = f"{args.accel}-{args.mode}-{time.strftime('%H%M%S')}"
                for f in list(lab.dir.glob("*.serial")) + \
                        list(lab.dir.glob("*.stderr")):
                    Path(args.keep_dir, f"{tag}-{f.name}") \
                        .write_bytes(f.read_bytes())


def record_failure(args, src, stats, status, reason, refused):
    """Count a failed migration or save of SRC; refused: strict mode
    refused it.  A refusal must leave the source as a broken migration
    does: running (after the cont that follows), idle."""
    stats["migrations_failed"] += 1
    log(f"{args.mode} failed ({status}): {reason}")
    stats["failures"].append({"status": status, "reason": reason,
                              "strict_refusal": refused})
    if refused:
        stats["strict_refusals"] += 1
    if stats["migrations_failed"] > max(10, args.migrations):
        raise nkvm.NkvmError("too many failed migrations")


def check_refusal_left(args, src, stats, idle_fds, state):
    """A strict refusal must leave SRC as it was: in run state STATE, no
    more than IDLE_FDS open, no restore plan pending."""
    why = nkvm.source_idle(src, idle_fds, args.accel == "nested-kvm",
                           state=state)
    if why:
        stats["strict_refusals_bad"] += 1
        log(f"strict refusal: {why}")


def count_stop(tracer, stats):
    """Judge the source's stop from its trace; a note for the log."""
    res = tracer.analyse()
    if res is None:
        return ""
    in_flight, seen, windows = res
    stats["stops_in_flight"] += min(in_flight, 1)
    for how, eii in tracer.in_flight_events:
        stats[f"stops_in_flight_{how}"] += 1
        kind = event_kind(eii)
        by_type = stats["stops_in_flight_by_type"]
        by_type[kind] = by_type.get(kind, 0) + 1
    stats["stops_traced"] += 1 if seen else 0
    stats["windows_seen"] += windows
    how = tracer.in_flight_events[0][0] if in_flight else "no"
    return f" in_flight={how} windows={windows}"


def log_progress(args, stats, start, i, note):
    elapsed = time.monotonic() - start
    log(f"{args.mode} {i}/{args.migrations}{note} "
        f"stops_in_flight={stats['stops_in_flight']} "
        f"elapsed={elapsed:.0f}s rate={60 * i / elapsed:.1f}/min "
        f"left={elapsed * max(0, args.migrations - i) / i:.0f}s")


def in_flight_wanted(args, tracing):
    """The stops in flight a run needs: --min-in-flight, by default 1
    where the trace can tell (tracing), else none."""
    if args.min_in_flight is not None:
        return args.min_in_flight
    return 1 if tracing else 0


def want_more(args, stats, i, tracing):
    """Whether migration i + 1 is due: --migrations, then --extend
    more while too few stops landed in flight (as far as tracing can
    tell), or while a run that expects strict refusals has had none."""
    if i < args.migrations:
        return True
    if i >= args.migrations + args.extend:
        return False
    refusals_due = (args.unknown_verdicts or args.expect_refusals) and \
        not stats["strict_refusals"]
    return stats["stops_in_flight"] < in_flight_wanted(args, tracing) or \
        refusals_due


def migration_loop(args, tracer, stats, start, lab):
    """The body of migration_run, inside its Lab."""
    def other_host(vm):
        """The agent of the host a VM on vm's host migrates to."""
        return None if is_remote(vm) else args.agent

    n = 0
    src = new_vm(lab, n, args, drop=args.drop)
    wait_started(src, args.timeout)
    n += 1
    dst = new_vm(lab, n, args, incoming="defer", agent=other_host(src),
                 after=src)
    i = 0
    while want_more(args, stats, i, tracer.ok):
        time.sleep(random.uniform(args.min_gap, args.max_gap))
        for _ in range(args.fail_every):
            n += 1
            induced_failure(lab, src, n, args, stats)
        src.qmp("migrate-set-parameters", **{"max-bandwidth":
                                             10 << 30})
        set_mode(args, src)
        set_mode(args, dst)
        src_tracer = args.tracer_b if is_remote(src) else tracer
        src_tracer.start(src.threads())
        if args.mode == "paused":
            src.qmp("stop")
        # paused: with the observers that the stop armed
        idle = nkvm.open_fds(src)
        refusals = len(strict_refusals(src))
        try:
            info = nkvm.migrate(src, dst, timeout=args.timeout,
                                started=(start_postcopy
                                         if args.mode == "postcopy"
                                         else None))
        except nkvm.NkvmError as exc:
            info = {"status": f"error: {exc}"}
        if info.get("status") != "completed" or dst.poll() is not None:
            # The migration failed (a destination that refuses the
            # stream, e.g. TCG in L2): the source must go on.
            err = [ln for ln in dst.stderr_log().splitlines()
                   if ln.strip() and "warning:" not in ln][-3:]
            refusal = strict_refusals(src)[refusals:]
            reason = " | ".join(refusal[-1:] + [info.get("error-desc", "")] +
                                err).strip(" |") or "no reason given"
            dst.close()
            refused = bool(refusal)
            record_failure(args, src, stats, info.get("status"), reason,
                           refused)
            if refused:
                check_refusal_left(args, src, stats, idle,
                                   "paused" if args.mode == "paused"
                                   else "running")
            if src.qmp("query-status").get("status") != "running":
                src.qmp("cont")
            n += 1
            dst = new_vm(lab, n, args, incoming="defer",
                         agent=other_host(src), after=src)
            if args.expect_refusals:
                i += 1      # each try counts: refusals are the point
            continue
        i += 1
        stats["migrations"] += 1
        if args.agent is not None:
            stats["migrations_b_to_a" if is_remote(src)
                  else "migrations_a_to_b"] += 1
        note = count_stop(src_tracer, stats)
        if args.keep_dir and src_tracer.ok:
            tail = src_tracer.last_text.splitlines()[-60:]
            Path(args.keep_dir, f"trace-{args.accel}-{i:04d}.txt") \
                .write_text("\n".join(tail) + "\n")
        if args.mode == "paused":
            dst.qmp("cont")
        src.qmp("quit")
        src.wait_exit(args.timeout, fatal=False)
        src.close()
        src, dst = dst, None
        log_progress(args, stats, start, i, note)
        if want_more(args, stats, i, tracer.ok):
            n += 1
            dst = new_vm(lab, n, args, incoming="defer",
                         agent=other_host(src), after=src)
    result, status = finish_guest(src, args.timeout)
    stats["seconds"] = round(time.monotonic() - start, 1)
    return stats, result, status


def control_run(args, seconds):
    start = time.monotonic()
    with nkvm.Lab(prefix="nkvm-torture-ctl-") as lab, \
            observer_helper(args, lab):
        vm = new_vm(lab, 0, args)
        wait_started(vm, args.timeout)
        log(f"control run: {seconds:.0f} s without migration")
        time.sleep(seconds)
        result, status = finish_guest(vm, args.timeout)
    return result, status, round(time.monotonic() - start, 1)


def bad_total(result):
    """The report's bad counts summed; None without a report or with a
    count missing from it (a missing count is not a zero)."""
    if result is None or any(k not in result for k in RESULT_BAD_KEYS):
        return None
    return sum(result[k] for k in RESULT_BAD_KEYS)


def report_problems(result, status, name):
    """Why a guest's report does not show a clean run: [] if it does."""
    if result is None:
        return [f"{name}: no torture-result line"]
    missing = [k for k in RESULT_BAD_KEYS + ("bad", "rounds", "injected")
               if k not in result]
    if missing:
        return [f"{name}: the report lacks {', '.join(missing)}"]
    why = [f"{name}: {k}={result[k]}" for k in RESULT_BAD_KEYS if result[k]]
    if bad_total(result) != result["bad"]:
        why.append(f"{name}: the guest's bad={result['bad']}, its counts "
                   f"sum to {bad_total(result)}")
    if status != nkvm.EXIT_PASS:
        why.append(f"{name}: {nkvm.exit_status_name(status)}")
    per_cpu = result.get("per_cpu") or [{"rounds": result["rounds"],
                                        "done": 1}]
    if len(per_cpu) != result.get("cpus", 1):
        why.append(f"{name}: {len(per_cpu)} vCPUs reported, "
                   f"{result.get('cpus', 1)} ran")
    why += [f"{name}: vCPU {i} did {c.get('rounds')} rounds and "
            f"{'stopped' if c.get('done') else 'never stopped'}"
            for i, c in enumerate(per_cpu)
            if not c.get("rounds") or not c.get("done")]
    return why


def arg_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accel", default="nested-kvm",
                    choices=("kvm", "nested-kvm", "tcg"))
    ap.add_argument("--migrations", type=int, default=50)
    ap.add_argument("--min-gap", type=float, default=0.05,
                    help="shortest random sleep before a migration (s)")
    ap.add_argument("--max-gap", type=float, default=1.0,
                    help="longest random sleep before a migration (s)")
    ap.add_argument("--control-seconds", type=float, default=None,
                    help="length of the control run (default: as long "
                         "as the migration run; 0: none)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="bound on each single wait (s)")
    ap.add_argument("--seed", type=int, default=0,
                    help="guest PRNG seed (default: from the TSC)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--expect-clean", action="store_true",
                      help="fail unless nothing was lost (default for "
                           "nested-kvm)")
    mode.add_argument("--report-only", action="store_true",
                      help="report losses without failing (default for "
                           "kvm and tcg)")
    ap.add_argument("--keep-dir", default=None,
                    help="keep serial logs and each migration's trace "
                         "tail here (default: $LAB_OUT/torture if set)")
    ap.add_argument("--fail-every", type=int, default=0,
                    help="before each migration, break this many on "
                         "purpose (setup, live and device phases: "
                         "destination killed, cancel, link cut; and a "
                         "refused stream, in turn)")
    ap.add_argument("--fail-kinds", type=lambda v: v.split(","), default=[],
                    help="with --fail-every, only these phases "
                         "(comma-separated: setup, live, device, refused)")
    ap.add_argument("--unknown-verdicts", type=int, default=0,
                    help="start each QEMU with x-unknown-verdicts=N: "
                         "strict mode refuses its first N migrations "
                         "that stop in guest mode, at the final stop")
    ap.add_argument("--unknown-verdicts-on", default="all",
                    choices=("all", "alternate"),
                    help="which QEMUs get --unknown-verdicts: all, or "
                         "every other generation (the first source, the "
                         "destination of its destination, ...), so that "
                         "the others' stops in guest mode can land in "
                         "flight")
    ap.add_argument("--trace", action="append", default=[],
                    help="a QEMU -trace pattern for every QEMU; the "
                         "output is in the kept stderr logs")
    ap.add_argument("--debug-trace", type=int, default=0,
                    help="show the trace of the first N migrations")
    ap.add_argument("--cpus", type=int, default=1, choices=(1, 2, 3, 4),
                    help="vCPUs of the guest hypervisor, each with its own "
                         "L2 and rounds (default 1)")
    ap.add_argument("--min-in-flight", type=int, default=None,
                    help="fail with fewer stops in flight (default: 1 "
                         "with --expect-clean and tracing, else 0)")
    ap.add_argument("--extend", type=int, default=0,
                    help="after --migrations, migrate at most this many "
                         "more until the stops in flight reach "
                         "--min-in-flight (default 1) and, where "
                         "refusals are expected, one was seen, so that a "
                         "short run still proves something")
    ap.add_argument("--drop", type=int, default=0,
                    help="negative control: the guest skips round N's "
                         "injection in the migration run; the run passes "
                         "only if that is reported lost")
    ap.add_argument("--bp-hw", action="store_true",
                    help="VMX only: L1 injects #BP as a hardware exception "
                         "(type 3) instead of INT3's software exception")
    ap.add_argument("--mode", default="precopy", choices=MODES,
                    help="how the VM leaves its host (default precopy)")
    ap.add_argument("--stop-settle-ms", type=int, default=None,
                    help="nested-kvm's stop-settle-ms for every QEMU "
                         "(default: the accelerator's)")
    ap.add_argument("--allow-refusals", action="store_true",
                    help="a strict refusal that leaves the source as it "
                         "was is an outcome the mode allows (a stop whose "
                         "vCPU crossed no chain boundary within "
                         "stop-settle-ms): counted, not required")
    ap.add_argument("--best-effort", action="store_true",
                    help="nested-kvm with event-migration=best-effort")
    ap.add_argument("--expect-refusals", action="store_true",
                    help="strict refusals are expected: at least one, "
                         "each leaving the source as it was")
    ap.add_argument("--unprivileged", action="store_true",
                    help="run every QEMU as nobody without capabilities, "
                         "the observer through nested-kvm-observer-helper "
                         "(started here, as root; docs/libvirt.rst), "
                         "none with --state-source kernel")
    ap.add_argument("--state-source", default=None,
                    choices=("auto", "kernel", "observer", "alternate"),
                    help="nested-kvm's state-source for every QEMU "
                         "(default: the accelerator's); kernel or "
                         "observer is checked in x-query-nested-events; "
                         "alternate: kernel for the first source and "
                         "every other generation after it, observer for "
                         "the rest, so that every migration goes from "
                         "one to the other")
    ap.add_argument("--pair", action="store_true",
                    help="on host A of scripts/lab pair: migrate between "
                         "the two hosts")
    return ap


def main():
    ap = arg_parser()
    args = ap.parse_args()
    args.agent = None
    args.helper_socket = None
    if args.pair:
        env = remote.pair_env()
        if env is None:
            ap.error("--pair runs on host A of 'scripts/lab pair' "
                     "(LAB_ADDR, LAB_PEER and LAB_AGENT_PORT are unset)")
        if args.fail_every:
            ap.error("--fail-every breaks migrations on this host only: "
                     "not with --pair")
        if args.mode == "savevm":
            ap.error("--mode savevm stays on one host: not with --pair")
        if args.unprivileged:
            ap.error("--unprivileged starts its helper on this host only: "
                     "not with --pair")
        args.own_addr = env[0]
        args.agent = remote.AgentClient(env[1], env[2], progress=log)
        ping = args.agent.call("ping")
        args.kernel_b = ping.get("series") or ping["kernel"]
        args.tracer_b = RemoteTracer(args.agent)
        log(f"pair: A {env[0]} ({os.uname().release}), "
            f"B {env[1]} ({args.kernel_b})")
    if args.keep_dir is None and os.environ.get("LAB_OUT"):
        args.keep_dir = os.path.join(os.environ["LAB_OUT"], "torture")
    if args.keep_dir:
        os.makedirs(args.keep_dir, exist_ok=True)
    expect_clean = args.expect_clean or (args.accel == "nested-kvm" and
                                         not args.report_only)

    kernel = os.environ.get("LAB_KERNEL") or os.uname().release
    tracer = Tracer() if args.accel != "tcg" else None
    if tracer is not None:
        tracer.debug = args.debug_trace
    if tracer is None:
        tracer = Tracer.__new__(Tracer)
        tracer.formats, tracer.inst, tracer.why = {}, None, "accel tcg"
    if args.pair and not (tracer.ok and args.tracer_b.ok):
        # one host untraced: no in-flight figures at all
        tracer.formats = {}
        tracer.why = tracer.why or f"host B: {args.tracer_b.why}"
    try:
        stats, result, status = migration_run(args, tracer)
        ctl_seconds = (stats["seconds"] if args.control_seconds is None
                       else args.control_seconds)
        ctl = ctl_status = None
        ctl_len = 0
        if ctl_seconds > 0:
            ctl, ctl_status, ctl_len = control_run(args, ctl_seconds)
    finally:
        tracer.close()
        if args.agent is not None:
            args.agent.close()

    out = {
        "accel": args.accel + (",event-migration=best-effort"
                               if args.best_effort else ""),
        "mode": args.mode,
        **({"stop_settle_ms": args.stop_settle_ms}
           if args.stop_settle_ms is not None else {}),
        **({"unprivileged": True} if args.unprivileged else {}),
        **({"state_source": args.state_source}
           if args.state_source else {}),
        "kernel": kernel,
        "cpus": args.cpus,
        "migrations": stats["migrations"],
        "migrations_failed": stats["migrations_failed"],
        "failures": stats["failures"],
        **({"kernel_b": args.kernel_b,
            "migrations_a_to_b": stats["migrations_a_to_b"],
            "migrations_b_to_a": stats["migrations_b_to_a"]}
           if args.pair else {}),
        "induced_failures": stats["induced_failures"],
        "induced_failures_bad": stats["induced_failures_bad"],
        "strict_refusals": stats["strict_refusals"],
        "strict_refusals_bad": stats["strict_refusals_bad"],
        "stops_in_flight": stats["stops_in_flight"] if tracer.ok else None,
        "stops_in_flight_requeued": (stats["stops_in_flight_requeued"]
                                     if tracer.ok else None),
        "stops_in_flight_vmrun": (stats["stops_in_flight_vmrun"]
                                  if tracer.ok else None),
        "stops_traced": stats["stops_traced"] if tracer.ok else None,
        "stops_in_flight_by_type": (stats["stops_in_flight_by_type"]
                                    if tracer.ok else None),
        "windows_seen": stats["windows_seen"] if tracer.ok else None,
        "tracing": "ok" if tracer.ok else f"unavailable: {tracer.why}",
        "events_injected": result.get("injected") if result else None,
    }
    for k in ("lost", "duplicated", "wrong_rip", "wrong_error_code",
              "l1_nmi_corrupt", "wrong_vector", "bad_exitintinfo",
              "unexpected_exit", "wrong_cr2", "l1_nmi_checks",
              "l1_nmi_extra", "cross_ipis_sent", "cross_ipis_lost",
              "cross_nmis_sent", "cross_nmis_lost", "cross_exits",
              "cross_exits_delivering", "bad", "rounds"):
        out[k] = result.get(k) if result else None
    out["seconds"] = stats["seconds"]
    out["guest_status"] = nkvm.exit_status_name(status)
    if result:
        out["per_type"] = {
            name: {k: v for k, v in t.items()
                   if k in ("injected", "delivered") + BAD_KEYS and
                   (v or k == "injected")}
            for name, t in result.get("per_type", {}).items()}
    out["control"] = None if ctl_seconds <= 0 else {
        "seconds": ctl_len,
        "events_injected": ctl.get("injected") if ctl else None,
        "bad": bad_total(ctl),
        "l1_nmi_corrupt": ctl.get("l1_nmi_corrupt") if ctl else None,
        "guest_status": nkvm.exit_status_name(ctl_status),
    }
    print(json.dumps(out), flush=True)

    ok = result is not None
    if ctl_seconds > 0:
        for why in report_problems(ctl, ctl_status, "control run"):
            log(why)
            ok = False
    why = induced_problem(args, stats)
    if why:
        log(why)
        ok = False
    if stats["strict_refusals_bad"] or \
            ((args.unknown_verdicts or args.expect_refusals) and
             not stats["strict_refusals"]):
        log(f"{stats['strict_refusals_bad']} of {stats['strict_refusals']} "
            "strict refusals left the source not running or not idle")
        ok = False
    if args.drop:
        # the negative control: the dropped round must show as lost
        lost = result.get("lost") if result else None
        log(f"negative control drop={args.drop}: lost={lost} "
            + ("caught" if lost else "NOT caught"))
        return 0 if ok and lost else 1
    if expect_clean:
        for why in report_problems(result, status, "migration run"):
            log(why)
            ok = False
        refusals_ok = args.unknown_verdicts or args.expect_refusals or \
            args.allow_refusals
        unexpected = [f for f in stats["failures"]
                      if not (refusals_ok and f["strict_refusal"])]
        for f in unexpected:
            log(f"a migration failed that was not an expected refusal: "
                f"{f['status']}: {f['reason']}")
            ok = False
        min_in_flight = in_flight_wanted(args, tracer.ok)
        if min_in_flight and not stats["windows_seen"]:
            log("the in-flight window was never seen in the trace")
            ok = False
        if (stats["stops_in_flight"] if tracer.ok else 0) < min_in_flight:
            log(f"{stats['stops_in_flight']} stops in flight, fewer than "
                f"{min_in_flight}: the run proves nothing about them")
            ok = False
    elif result is not None and bad_total(result) is None:
        log("migration run: the report lacks a count")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    # On SIGTERM (timeout(1)) unwind, so that every QEMU is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
