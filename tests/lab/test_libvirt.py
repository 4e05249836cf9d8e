#!/usr/bin/python3
"""
The torture guest (tests/guest/torture.c) as a libvirt domain, in a
lab L1, in the root that tests/lab/in-l1-libvirt.sh builds: Debian 12's
libvirtd 9.0, unpatched, starts the fork through
scripts/libvirt/nested-kvm-emulator as libvirt-qemu, with no
capabilities, and nested-kvm's observer comes from
nested-kvm-observer-helper (docs/libvirt.rst).

While the guest hypervisor is in the middle of its injection rounds:
  - virsh save / restore, --cycles times: nothing lost, and at least one
    save stopped the guest with an L1->L2 event in flight (L1's KVM
    tracepoints, as tests/lab/torture.py judges them);
  - virsh managedsave, then start;
  - virsh dumpxml, domstats and qemu-monitor-command x-query-nested-events;
  - with the helper stopped: strict refuses the save, naming the helper,
    and the domain runs on; best-effort (a second domain) warns and saves;
  - the same save/restore rounds under plain -accel kvm, whose losses
    are reported, not asserted (upstream's side of the comparison);
  - kernel.perf_event_paranoid is what it was, and QEMU's CapEff is 0.
With --no-nesting (an L1 whose kvm_amd has nested=0): a domain that asks
for nested-kvm fails to start, saying why, while -accel kvm starts.

TAP lines on stdout (numbered; tests/lab/test_lab.sh renumbers them).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "functional"))
sys.path.insert(0, str(HERE))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import remote  # noqa: E402
import torture  # noqa: E402

URI = "qemu:///system"
EMULATOR = nkvm.REPO / "scripts/libvirt/nested-kvm-emulator"
HELPER_SOCKET = Path("/run/nested-kvm/observer-helper.sock")
QEMU_USER = "libvirt-qemu"
QEMU_UID = 64055
LOG_DIR = Path("/var/log/libvirt/qemu")
SAVE_DIR = Path("/run/libvirt-saves")
# The observer's own checks: state-source=observer also where the
# kernel's KVM would report the window itself (docs/hidden-window.rst).
STRICT = (f"event-migration=strict,observer-helper={HELPER_SOCKET},"
          "state-source=observer")
BEST_EFFORT = (f"event-migration=best-effort,observer-helper={HELPER_SOCKET},"
               "state-source=observer")
# A lab pair's host UUID, less its last 12 digits (the host's address)
PAIR_HOST_UUID = "6e6b766d-1ab0-4000-8000-"
# The libvirt root as host B's agent sees it (tests/lab/in-l1-libvirt.sh)
PAIR_ROOT = Path("/run/libvirt-lab/root")


def log(msg):
    for line in str(msg).splitlines() or [""]:
        print(f"# {line}", flush=True)


def virsh(*args, timeout=120, uri=URI):
    """virsh ARGS on URI's connection: (status, stdout, stderr)."""
    try:
        res = subprocess.run(["virsh", "-c", uri, *args], timeout=timeout,
                             capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"virsh {' '.join(args)}: no answer in {timeout} s"
    return res.returncode, res.stdout.strip(), res.stderr.strip()


def wait_for(probe, timeout, what):
    if not nkvm.poll(probe, bool, timeout, interval=0.1):
        raise nkvm.NkvmTimeout(f"{what}: not within {timeout} s")


def tcp_uri(addr):
    return f"qemu+tcp://{addr}/system"


def virsh_migrate(name, dst_addr, uri=URI):
    """virsh migrate --live NAME from URI's host to DST_ADDR's, over the
    pair's link."""
    return virsh("migrate", "--live", name, tcp_uri(dst_addr),
                 "--migrateuri", f"tcp://{dst_addr}",
                 "--listen-address", dst_addr, uri=uri, timeout=300)


def listen_on(addr):
    """libvirtd's configuration for a lab pair's link: plain TCP with no
    authentication, on ADDR only (the link joins the two lab hosts and
    nothing else), and a host UUID and hostname of its own, since
    libvirt refuses to migrate a domain to the host it runs on."""
    host = int(addr.rsplit(".", 1)[1])
    conf = Path("/etc/libvirt/libvirtd.conf")
    conf.write_text(conf.read_text() + "\n".join((
        "listen_tls = 0", "listen_tcp = 1", f'listen_addr = "{addr}"',
        'auth_tcp = "none"',
        f'host_uuid = "{PAIR_HOST_UUID}{host:012x}"', "")))
    subprocess.run(["hostname", f"nkvm-lab-{host}"], check=True)


def start_daemons(out, listen=None):
    """virtlogd and libvirtd, as Debian's units start them (no systemd
    here: they daemonise themselves); libvirtd also on TCP at LISTEN."""
    env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{out}/libvirtd.log")
    if listen:
        listen_on(listen)
    subprocess.run(["virtlogd", "--daemon"], env=env, check=True)
    subprocess.run(["libvirtd", "--daemon"] + (["--listen"] if listen else []),
                   env=env, check=True)
    wait_for(lambda: virsh("list")[0] == 0, 60, "libvirtd answering")


class Helper:
    """nested-kvm-observer-helper as its systemd units set it up: root,
    the socket root:kvm 0660 (scripts/observer-helper/*.socket)."""

    def __init__(self, out):
        self.out = out
        self.proc = None

    def start(self):
        self.proc, _ = nkvm.start_observer_helper(
            self.out, timeout=10, path=HELPER_SOCKET, group="kvm")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def domain_xml(name, accel_opts, cpus):
    """The torture guest, booted directly (its multiboot image), with
    its COM1 on a Unix socket and logged to a file.  accel_opts None:
    the fork itself as <emulator>, so plain -accel kvm."""
    if accel_opts is None:
        emulator = nkvm.qemu_binary()
        env = ""
    else:
        emulator = EMULATOR
        env = f"<qemu:env name='NESTED_KVM_ACCEL' value='{accel_opts}'/>"
    return f"""<domain type='kvm'
        xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>{cpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{nkvm.guest_image()}</kernel>
    <cmdline>torture{f' cpus={cpus}' if cpus > 1 else ''}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{emulator}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/{name}.serial'/>
      <log file='{LOG_DIR}/{name}.serial.log' append='on'/>
    </serial>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-L'/>
    <qemu:arg value='{nkvm.firmware_dir()}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='{nkvm.DEBUG_EXIT_DEVICE}'/>
    {env}
  </qemu:commandline>
</domain>
"""


class Domain:
    """One libvirt domain running the torture guest."""

    def __init__(self, name, accel_opts, cpus):
        self.name = name
        self.accel_opts = accel_opts
        self.cpus = cpus
        self.serial_log = LOG_DIR / f"{name}.serial.log"

    def start(self, timeout, wait=True):
        xml = Path(f"/run/{self.name}.xml")
        xml.write_text(domain_xml(self.name, self.accel_opts, self.cpus))
        for args in (("define", str(xml)), ("start", self.name)):
            rc, out, err = virsh(*args)
            if rc:
                raise nkvm.NkvmError(f"virsh {args[0]}: {err or out}: "
                                     f"{self.qemu_log()[-600:]}")
        if wait:
            wait_for(lambda: "torture: start" in self.serial(), timeout,
                     f"{self.name}: the guest's 'torture: start'")

    def serial(self):
        try:
            return self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def qemu_log(self):
        try:
            return (LOG_DIR / f"{self.name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid(self):
        return int(Path(f"/run/libvirt/qemu/{self.name}.pid").read_text())

    def threads(self):
        return [int(t) for t in os.listdir(f"/proc/{self.pid()}/task")]

    def state(self):
        return virsh("domstate", self.name)[1]

    def status_field(self, field):
        text = Path(f"/proc/{self.pid()}/status").read_text()
        m = re.search(rf"^{field}:\s*(.*)$", text, re.M)
        return m.group(1) if m else ""

    def finish(self, timeout):
        """Send the guest its 'q'; return its torture-result or None.

        The socket is read all along: a 16550 sends a byte per write, and
        a client that reads nothing stalls the guest within a few hundred
        bytes (each byte is a socket buffer of its own)."""
        got = b""
        m = None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(f"/run/libvirt/qemu/{self.name}.serial")
            sock.settimeout(0.2)
            sock.sendall(b"q")
            deadline = time.monotonic() + timeout
            while not m and time.monotonic() < deadline:
                try:
                    got += sock.recv(65536)
                except socket.timeout:
                    pass
                m = re.search(torture.RESULT_RE + "\r?\n",
                              got.decode(errors="replace"))
        virsh("destroy", self.name)
        virsh("undefine", self.name, "--managed-save")
        return json.loads(m.group(1)) if m else None


def new_stats():
    return {**torture.stop_stats(), "strict_refusals": 0}


def save_restore_cycles(dom, cycles, tracer, stats):
    """CYCLES virsh saves and restores, at random points of the
    injection rounds; returns the first failure, or None.  A save that
    strict refuses because it cannot judge the stop (docs/hidden-window.rst)
    is no failure if the domain runs on: it is counted, and retried."""
    SAVE_DIR.mkdir(exist_ok=True)
    path = SAVE_DIR / f"{dom.name}.save"
    done = 0
    while done < cycles:
        time.sleep(random.uniform(0.2, 1.2))
        tracer.start(dom.threads())
        before = len(dom.qemu_log())
        rc, out, err = virsh("save", dom.name, str(path))
        if rc:
            said = dom.qemu_log()[before:]
            refused = any(r in said for r in torture.STRICT_REFUSALS)
            if not refused or dom.state() != "running" or \
                    stats["strict_refusals"] >= cycles:
                return f"cycle {done}: virsh save: {err or out}"
            stats["strict_refusals"] += 1
            log(f"{dom.name}: strict refused a save, the domain runs on: "
                f"{said.strip().splitlines()[0][:200]}")
            continue
        note = torture.count_stop(tracer, stats)
        rc, out, err = virsh("restore", str(path))
        path.unlink(missing_ok=True)
        if rc:
            return f"cycle {done}: virsh restore: {err or out}"
        done += 1
        log(f"{dom.name}: save/restore {done}/{cycles}{note}")
    return None


def bad_counts(result):
    return {k: result.get(k) for k in torture.RESULT_BAD_KEYS
            if result.get(k)}


def check_nested(tap, args, tracer, helper):
    dom = Domain("nkvm-strict", STRICT, args.cpus)
    dom.start(args.timeout)
    tap.check(dom.status_field("Uid").split()[0] == str(QEMU_UID),
              f"QEMU runs as {QEMU_USER}", dom.status_field("Uid"))
    tap.check(int(dom.status_field("CapEff"), 16) == 0,
              "QEMU has no effective capabilities",
              dom.status_field("CapEff"))
    tap.check("-accel nested-kvm,event-migration=strict" in
              " ".join(Path(f"/proc/{dom.pid()}/cmdline").read_text()
                       .split("\0")),
              "nested-kvm-emulator turned libvirt's -accel kvm into "
              "-accel nested-kvm")
    rc, out, _ = virsh("dumpxml", dom.name)
    tap.check(rc == 0 and "NESTED_KVM_ACCEL" in out,
              "virsh dumpxml shows the domain and its accelerator options")
    rc, out, _ = virsh("domstats", dom.name)
    tap.check(rc == 0 and "state.state=1" in out,
              "virsh domstats reports the domain running")
    rc, out, err = virsh("qemu-monitor-command", dom.name,
                         '{"execute":"x-query-nested-events"}')
    tap.check(rc == 0 and re.search(r'"vendor":\s*"svm"', out),
              "virsh qemu-monitor-command x-query-nested-events answers",
              (err or out)[:200])

    stats = new_stats()
    failure = save_restore_cycles(dom, args.cycles, tracer, stats)
    tap.check(failure is None,
              f"{args.cycles} virsh save/restore cycles mid-injection",
              failure or "")
    log(f"nested-kvm save/restore: {json.dumps(stats)}")

    rc, out, err = virsh("managedsave", dom.name)
    rc2, out2, err2 = virsh("start", dom.name) if rc == 0 else (1, "", "")
    tap.check(rc == 0 and rc2 == 0 and dom.state() == "running",
              "virsh managedsave, then start, resumes the domain",
              err or err2 or out or out2)

    helper.stop()
    before = dom.qemu_log()
    rc, out, err = virsh("save", dom.name, str(SAVE_DIR / "refused.save"))
    said = dom.qemu_log()[len(before):]
    tap.check(rc != 0 and str(HELPER_SOCKET) in err and
              "strict refuses" in err,
              "with the helper stopped, strict refuses virsh save and "
              "names the helper", (err or "saved") + " | " + said[-300:])
    log(f"virsh said: {err}")
    tap.check(dom.state() == "running",
              "the refused domain runs on", dom.state())
    helper.start()

    result = dom.finish(args.timeout)
    ok = result is not None and not bad_counts(result) and \
        result.get("injected", 0) > 0
    tap.check(ok, "nested-kvm lost nothing across the saves",
              json.dumps(bad_counts(result) if result else "no result"))
    if result:
        log(f"nested-kvm guest: injected={result.get('injected')} "
            f"lost={result.get('lost')}")
    traced = tracer.ok
    tap.check(not traced or stats["stops_in_flight"] >= 1,
              "at least one save stopped the guest with an event in flight",
              json.dumps(stats))
    if not traced:
        log(f"tracepoints unavailable ({tracer.why}): in-flight not judged")


def check_best_effort(tap, args, helper):
    """best-effort, with the helper gone: a warning, and the save."""
    helper.stop()
    dom = Domain("nkvm-best-effort", BEST_EFFORT, 1)
    try:
        dom.start(args.timeout)
        rc, out, err = virsh("save", dom.name,
                             str(SAVE_DIR / "best-effort.save"))
        tap.check(rc == 0 and "event-migration=best-effort" in
                  dom.qemu_log(),
                  "with the helper stopped, best-effort warns and saves",
                  err or out)
        (SAVE_DIR / "best-effort.save").unlink(missing_ok=True)
        virsh("undefine", dom.name)
    finally:
        helper.start()


def check_upstream(args, tracer):
    """The same rounds under -accel kvm: losses reported, not asserted."""
    dom = Domain("kvm", None, args.cpus)
    dom.start(args.timeout)
    stats = new_stats()
    failure = save_restore_cycles(dom, args.kvm_cycles, tracer, stats)
    result = dom.finish(args.timeout)
    log(f"-accel kvm: {args.kvm_cycles} save/restore cycles, "
        f"{failure or 'all saved and restored'}, "
        f"stops in flight {stats['stops_in_flight']}, guest result "
        + (json.dumps({k: result.get(k) for k in ("injected", "lost")})
           if result else "none (the guest hung or died)"))


class LocalHost:
    """Host A of a lab pair, this one, as migrate_cycles() sees a host."""

    def __init__(self, addr, tracer):
        self.name = "A"
        self.addr = addr
        self.tracer = tracer

    @staticmethod
    def threads(dom):
        return dom.threads()

    @staticmethod
    def qemu_log(dom):
        return dom.qemu_log()


class PeerHost:
    """Host B of a lab pair, through its agent (tests/lab/lab-agent.py):
    the domain's QEMU there, its log, and B's KVM tracepoints."""

    def __init__(self, agent, addr):
        self.name = "B"
        self.addr = addr
        self.agent = agent
        self.tracer = None

    def run(self, *argv, timeout=60):
        reply = self.agent.call("run", argv=list(argv), timeout=timeout)
        return reply["status"], reply["output"]

    def threads(self, dom):
        pid_file = PAIR_ROOT / f"run/libvirt/qemu/{dom.name}.pid"
        rc, out = self.run("cat", str(pid_file))
        if rc:
            raise nkvm.NkvmError(f"host B: no {pid_file}: {out[-200:]}")
        rc, out = self.run("ls", f"/proc/{int(out)}/task")
        return [int(t) for t in out.split()] if rc == 0 else []

    def qemu_log(self, dom):
        rc, out = self.run("cat", str(PAIR_ROOT /
                                      f"var/log/libvirt/qemu/{dom.name}.log"))
        return out if rc == 0 else ""


def migrate_cycles(dom, count, hosts, stats, extend=0):
    """COUNT virsh migrate --live of DOM between the pair's HOSTS (A, B),
    A to B and back in turn, at random points of the injection rounds,
    and up to EXTEND more while no stop has landed in flight; it ends on
    A.  Returns the first failure, or None.  As with the saves, a strict
    refusal that leaves the domain running on its source is counted and
    retried."""
    done = 0
    while done < count or done % 2 or \
            (done < count + extend and not stats["stops_in_flight"]):
        src, dst = hosts[done % 2], hosts[1 - done % 2]
        time.sleep(random.uniform(0.2, 1.2))
        src.tracer.start(src.threads(dom))
        before = len(src.qemu_log(dom))
        rc, out, err = virsh_migrate(dom.name, dst.addr,
                                     uri=tcp_uri(src.addr))
        if rc:
            said = src.qemu_log(dom)[before:]
            refused = any(r in said for r in torture.STRICT_REFUSALS)
            state = virsh("domstate", dom.name, uri=tcp_uri(src.addr))[1]
            if not refused or state != "running" or \
                    stats["strict_refusals"] >= count:
                return (f"migration {done + 1} ({src.name} to {dst.name}): "
                        f"virsh migrate: {err or out}; domain {state!r} on "
                        f"{src.name}; QEMU said: {said.strip()[-300:]}")
            stats["strict_refusals"] += 1
            log(f"{dom.name}: strict refused a migration, the domain runs "
                f"on: {said.strip().splitlines()[0][:200]}")
            continue
        note = torture.count_stop(src.tracer, stats)
        done += 1
        stats[f"migrations_{src.name.lower()}_to_{dst.name.lower()}"] += 1
        log(f"{dom.name}: migrated {src.name} to {dst.name}, "
            f"{done}/{count}{note}")
    return None


def pair_stats():
    return {**new_stats(), "migrations_a_to_b": 0, "migrations_b_to_a": 0}


def serve_peer(tap, peer, kernel):
    """Host B: its own libvirt root, libvirtd on the link and the helper
    (in-l1-libvirt.sh --serve, through the agent)."""
    rc, out = peer.run("bash", str(HERE / "in-l1-libvirt.sh"), "--serve",
                       timeout=300)
    return tap.check(rc == 0, f"host B ({kernel}): libvirtd listens on "
                     f"{peer.addr}, with the observer helper", out[-400:])


def migrate_refused(tap, dom, peer, helper):
    """With the helper stopped, strict refuses virsh migrate before it
    starts (libvirt reads QEMU's blocked-reasons), naming the helper, the
    domain runs on where it was, and B's QEMU saw no migration."""
    helper.stop()
    before = len(dom.qemu_log())
    before_b = len(peer.qemu_log(dom))
    rc, out, err = virsh_migrate(dom.name, peer.addr)
    said = dom.qemu_log()[before:]
    said_b = peer.qemu_log(dom)[before_b:]
    helper.start()
    tap.check(rc != 0 and str(HELPER_SOCKET) in err and
              "strict refuses" in err and dom.state() == "running",
              "with the helper stopped, strict refuses virsh migrate, "
              "naming the helper, and the domain keeps running on host A",
              f"{err or out} | {dom.state()} | {said[-300:]}")
    # Refused before it connected, B's QEMU read no stream (a refusal
    # after the connection makes it quit, and virsh may say only that).
    reached = [ln for ln in said_b.splitlines()
               if any(m in ln for m in ("load of migration failed",
                                        "Not a migration stream"))]
    tap.check(not reached, "the refused migration never reached host B's "
              "QEMU", " | ".join(reached))
    log(f"host B's QEMU said: {said_b.strip()[-600:]}")
    log(f"virsh said: {err}")


def check_pair(tap, args, tracer, helper):
    """virsh migrate --live to host B of a lab pair and back, while the
    guest hypervisor injects: nothing lost under nested-kvm; the same
    under -accel kvm reported."""
    addr, peer_addr, port = remote.pair_env()
    agent = remote.AgentClient(peer_addr, port, progress=log, source=addr)
    peer = PeerHost(agent, peer_addr)
    kernel = agent.call("ping")["kernel"]
    if not serve_peer(tap, peer, kernel):
        return
    peer.tracer = torture.RemoteTracer(agent)
    hosts = (LocalHost(addr, tracer), peer)
    count = args.pair_migrations

    dom = Domain("nkvm-pair", STRICT, args.cpus)
    dom.start(args.timeout)
    stats = pair_stats()
    failure = migrate_cycles(dom, count, hosts, stats, extend=2 * count)
    if failure is None:
        migrate_refused(tap, dom, peer, helper)
    result = dom.finish(args.timeout)
    log(f"{dom.name}: {json.dumps(stats)}")
    done = stats["migrations_a_to_b"] + stats["migrations_b_to_a"]
    tap.check(failure is None, f"{done} virsh migrate --live to host B "
              f"({kernel}) and back, mid-injection", failure or "")
    tap.check(result is not None and not bad_counts(result) and
              result.get("injected", 0) > 0,
              "nested-kvm lost nothing across the migrations",
              json.dumps(bad_counts(result) if result else "no result"))
    tap.check(not tracer.ok or not peer.tracer.ok or
              stats["stops_in_flight"] >= 1,
              "at least one migration stopped the guest with an event "
              "in flight", json.dumps(stats))

    # The same under -accel kvm: upstream's losses, reported.
    dom = Domain("kvm-pair", None, args.cpus)
    dom.start(args.timeout)
    stats = pair_stats()
    failure = migrate_cycles(dom, args.pair_kvm_migrations, hosts, stats)
    result = dom.finish(args.timeout)
    log(f"{dom.name}: {json.dumps(stats)}")
    log(f"-accel kvm: {failure or 'all migrated'}, stops in flight "
        f"{stats['stops_in_flight']}, guest result " +
        (json.dumps({k: result.get(k) for k in ("injected", "lost")})
         if result else "none (the guest hung or died)"))


def check_no_nesting(tap, args):
    """--no-nesting, in an L1 whose kvm_amd has nested=0: the domain that
    asks for nested-kvm fails to start, saying why; plain kvm starts."""
    dom = Domain("nkvm-no-nesting", STRICT, 1)
    try:
        dom.start(args.timeout)
        started, err = True, ""
    except nkvm.NkvmError as exc:
        started, err = False, str(exc)
    tap.check(not started and "offers neither SVM nor VMX" in err and
              dom.state() == "shut off",
              "without nested SVM, a nested-kvm domain fails to start, "
              "saying why", err[-400:] or dom.state())
    log(f"virsh said: {err[:400]}")
    # The guest finds no SVM and stops: started is all this can show.
    control = Domain("kvm-no-nesting", None, 1)
    try:
        control.start(args.timeout, wait=False)
        tap.check(True, "without nested SVM, the same domain under "
                  "-accel kvm starts")
    except nkvm.NkvmError as exc:
        tap.check(False, "without nested SVM, the same domain under "
                  "-accel kvm starts", str(exc))
    virsh("destroy", control.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Two vCPUs: each save then stops two guest hypervisors' rounds, and
    # one of them is in the middle of an injection more often.
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=12)
    ap.add_argument("--kvm-cycles", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--no-nesting", action="store_true",
                    help="L1's kvm_amd has nested=0: only the start "
                    "refusal and its control")
    ap.add_argument("--pair-migrations", type=int, default=0,
                    help="on host A of a lab pair: also this many virsh "
                    "migrate --live to host B and back (even), and up to "
                    "twice as many more while none stopped an event in "
                    "flight")
    ap.add_argument("--pair-kvm-migrations", type=int, default=4)
    ap.add_argument("--serve", action="store_true",
                    help="on host B of a lab pair: start libvirtd on the "
                    "link and the helper, and return")
    args = ap.parse_args()
    out = os.environ.get("LAB_OUT", "/run")
    if args.serve or args.pair_migrations:
        if not remote.pair_env():
            ap.error("--serve and --pair-migrations run in a lab pair only")
        args.pair_migrations += args.pair_migrations % 2
        args.pair_kvm_migrations += args.pair_kvm_migrations % 2
    if args.serve:
        start_daemons(out, listen=remote.pair_env()[0])
        Helper(out).start()
        return 0

    tap = nkvm.Tap("libvirt: ")
    paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text()
    helper = Helper(out)
    try:
        start_daemons(out, listen=remote.pair_env()[0]
                      if args.pair_migrations else None)
        if args.no_nesting:
            check_no_nesting(tap, args)
        else:
            helper.start()
            tracer = torture.Tracer()
            check_nested(tap, args, tracer, helper)
            check_best_effort(tap, args, helper)
            check_upstream(args, tracer)
            if args.pair_migrations:
                check_pair(tap, args, tracer, helper)
    except (nkvm.NkvmError, OSError, subprocess.CalledProcessError) as exc:
        tap.check(False, "the libvirt checks ran to the end", str(exc))
    finally:
        helper.stop()
    tap.check(Path("/proc/sys/kernel/perf_event_paranoid").read_text() ==
              paranoid, "kernel.perf_event_paranoid is unchanged "
              f"({paranoid.strip()})")
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
