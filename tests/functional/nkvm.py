"""
nkvm: launch the nkvm test guest (tests/guest) under the fork's QEMU

A small library for the functional tests and the migration demo.  It
starts QEMU with the guest as a Multiboot kernel, its serial port in a
file and QMP on a unix socket in a private temporary directory, and
offers bounded waits on all of them.  Every wait has a timeout; when one
expires the serial log and QEMU's stderr are dumped and the processes
are killed.

Environment:
  NKVM_QEMU      QEMU binary (default <repo>/build/qemu-system-x86_64)
  NKVM_FIRMWARE  firmware directory passed as -L
                 (default <repo>/build/firmware)
  NKVM_GUEST     guest image (default <repo>/build/standalone/tests/guest/
                 nkvm-guest.elf, then build/standalone-guest/...)
  NKVM_KEEP      if set, keep the temporary directory (logs) after a run

SPDX-License-Identifier: GPL-2.0-or-later
"""

import grp
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QEMU_PYTHON = REPO / "build" / "qemu-10.0.13" / "python"
sys.path.insert(0, str(QEMU_PYTHON))

# pylint: disable=wrong-import-position
from qemu.qmp import ExecuteError, QMPError  # noqa: E402
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

# Keep in sync with tests/guest/nkvm-guest.h.  isa-debug-exit turns a
# guest write of V into QEMU exit status (V << 1) | 1.
GUEST_EXIT_PASS = 0x10
GUEST_EXIT_FAIL = 0x11
EXIT_PASS = (GUEST_EXIT_PASS << 1) | 1    # 33
EXIT_FAIL = (GUEST_EXIT_FAIL << 1) | 1    # 35

DEBUG_EXIT_DEVICE = "isa-debug-exit,iobase=0xf4,iosize=0x04"
LOOPBACK = "127.0.0.1"

SCENARIOS = ("smoke", "migrate", "expect-fail", "svm-nrip",
             "events-nmi-held", "events-stream",
             "bench-pio", "bench-ipi", "bench-nested", "bench-nmi",
             "torture")


def exit_status_name(status):
    """Describe a QEMU exit status in terms of the guest protocol."""
    names = {
        EXIT_PASS: "guest PASS",
        EXIT_FAIL: "guest FAIL",
        0: "QEMU exited normally (shutdown or triple fault with "
           "-no-reboot; the guest never reached isa-debug-exit)",
        1: "QEMU error",
    }
    if status is None:
        return "still running"
    if status < 0:
        return f"killed by signal {-status}"
    return names.get(status, f"unexpected status {status}")


class Tap:
    """Numbered TAP lines for a test script; finish() prints the plan and
    returns the script's exit status (1 if any check failed or none ran)."""

    def __init__(self, prefix=""):
        self.n = 0
        self.failed = 0
        self.prefix = prefix    # names the script in its lines

    def check(self, cond, desc, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {self.prefix}{desc}", flush=True)
        else:
            self.failed += 1
            extra = f": {detail}" if detail else ""
            print(f"not ok {self.n} - {self.prefix}{desc}{extra}",
                  flush=True)
        return cond

    def skip(self, desc, why):
        self.n += 1
        print(f"ok {self.n} - {self.prefix}{desc} # SKIP {why}", flush=True)

    def finish(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed or not self.n else 0


class NkvmError(Exception):
    """A harness-level failure (QEMU missing, died, protocol error)."""


class NkvmTimeout(NkvmError):
    """A bounded wait expired."""


def qemu_binary():
    path = Path(os.environ.get("NKVM_QEMU",
                               REPO / "build" / "qemu-system-x86_64"))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise NkvmError(f"QEMU binary {path} not found (set NKVM_QEMU)")
    return path


def firmware_dir():
    path = Path(os.environ.get("NKVM_FIRMWARE", REPO / "build" / "firmware"))
    if not (path / "bios-256k.bin").is_file():
        raise NkvmError(f"no bios-256k.bin in {path} (set NKVM_FIRMWARE)")
    return path


def guest_image():
    if "NKVM_GUEST" in os.environ:
        candidates = [Path(os.environ["NKVM_GUEST"])]
    else:
        candidates = [REPO / "build" / d / "tests" / "guest" /
                      "nkvm-guest.elf"
                      for d in ("standalone", "standalone-guest")]
    for path in candidates:
        if path.is_file():
            return path
    raise NkvmError("guest image not found in "
                    + ", ".join(str(p) for p in candidates)
                    + " (build it, or set NKVM_GUEST)")


def check_environment(tap):
    """Print which QEMU, firmware and guest a test uses; if one is
    missing, report it as a failed check and return False."""
    try:
        print(f"# qemu: {qemu_binary()}")
        print(f"# firmware: {firmware_dir()}")
        print(f"# guest: {guest_image()}", flush=True)
    except NkvmError as exc:
        tap.check(False, "test environment present", str(exc))
        return False
    return True


KVM_PROBE_TIMEOUT = float(os.environ.get("NKVM_KVM_PROBE_TIMEOUT", 30))
KVM_PROBE_ATTEMPTS = 3
NESTED_PARAMS = ("/sys/module/kvm_amd/parameters/nested",
                 "/sys/module/kvm_intel/parameters/nested")


def kvm_nested_enabled():
    """The nested= parameter of a loaded kvm_amd or kvm_intel is on."""
    for path in NESTED_PARAMS:
        try:
            if Path(path).read_text().strip() in ("1", "Y"):
                return True
        except OSError:
            pass
    return False


def _probe_cache_path(device):
    """A per-boot cache file for the probe of DEVICE with this QEMU and
    guest: the probe boots a guest, and every test file asks again."""
    parts = [str(os.getuid()), device]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            parts.append("-")
    for path in (qemu_binary(), guest_image(), Path(device)):
        st = os.stat(path)
        parts.append(f"{path}:{st.st_rdev}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(",".join(sorted(m for m in ("kvm_amd", "kvm_intel",
                                             "kvm_pvm")
                                 if Path(f"/sys/module/{m}").exists())))
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nkvm-kvm-probe-{key}.json"


def _probe_failure(vm, what):
    """WHAT went wrong in the probe VM, with QEMU's fate and its first
    line of stderr (where an abort names its cause)."""
    err = [line.strip() for line in vm.stderr_log().splitlines()
           if line.strip()]
    # A harmless CPUID warning may come first.
    err.sort(key=lambda line: not re.search("error|assert|abort", line,
                                            re.IGNORECASE))
    return (f"the smoke guest under -accel kvm {what} "
            f"({exit_status_name(vm.poll())})"
            + (f": {err[0]}" if err else ""))


def _probe_guest(device, timeout):
    """Boot the smoke guest under -accel kvm on DEVICE: it must take
    INT 0x80, INT3, INTO and #PF through its IDT and then the NMI that
    QMP injects, and exit with PASS.  Returns (None or why not, whether
    it got as far as READY, i.e. KVM delivered the IDT events)."""
    with Lab(prefix="nkvm-probe-") as lab:
        vm = lab.vm("probe", "smoke", accel=f"kvm,device={device}")
        try:
            vm.launch()
            if not vm.wait_for_serial_line(r"READY nmi", timeout,
                                           fatal=False):
                return _probe_failure(
                    vm, f"did not reach READY nmi within {timeout:.0f} s, "
                    "as on a KVM that cannot deliver a native guest's IDT "
                    "events (PVM)"), False
            vm.qmp("inject-nmi")
            status = vm.wait_exit(timeout, fatal=False)
        except NkvmError:
            return _probe_failure(vm, "failed to start"), False
        if status != EXIT_PASS:
            return _probe_failure(vm, "did not PASS after the NMI"), True
    return None, True


def kvm_probe(device="/dev/kvm", nested=False, timeout=None):
    """Whether DEVICE can run what a KVM test needs, as (usable, why).

    Opening the device proves nothing: a PVM-based KVM opens, then
    aborts QEMU at vCPU set-up or never delivers the guest's IDT events.
    So the probe boots the smoke guest on it and requires a PASS.  With
    NESTED, a loaded kvm_amd or kvm_intel must also have nested on.  The
    verdict is cached per boot, device, QEMU and guest image
    (NKVM_KVM_PROBE_CACHE=0 turns the cache off)."""
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as exc:
        return False, f"{device}: {exc.strerror}"
    if nested and not kvm_nested_enabled():
        return False, ("no kvm_amd or kvm_intel with nested=1 "
                       f"({', '.join(NESTED_PARAMS)})")
    cache = _probe_cache_path(device)
    use_cache = os.environ.get("NKVM_KVM_PROBE_CACHE", "1") != "0"
    if use_cache:
        try:
            why = json.loads(cache.read_text())["why"]
            return why is None, why or ""
        except (OSError, ValueError, KeyError, TypeError):
            pass
    # A KVM that delivered the IDT events is retried if the NMI then
    # went missing: in the lab (TCG under L1's KVM) that was seen once in
    # many boots, and a wrong "no" there turns every KVM test into a skip.
    for attempt in range(1, KVM_PROBE_ATTEMPTS + 1):
        why, delivered = _probe_guest(device, timeout or KVM_PROBE_TIMEOUT)
        if why is None or not delivered:
            break
        print(f"# KVM probe, attempt {attempt}: {why}", flush=True)
    if use_cache:
        tmp = cache.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps({"device": device, "why": why}))
        tmp.replace(cache)
    return why is None, why or ""


NOBODY = 65534
OBSERVER_HELPER = (REPO / "build/standalone/scripts/observer-helper" /
                   "nested-kvm-observer-helper")


def unprivileged_wrapper():
    """Run QEMU as nobody, without capabilities, as under libvirt."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
            "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]


def start_observer_helper(directory, timeout=5.0, path=None, group=None):
    """nested-kvm-observer-helper (docs/libvirt.rst), as this process's
    user, on PATH (default DIRECTORY/observer-helper.sock), open to every
    user; with GROUP, root:GROUP mode 0660 instead, as its systemd socket
    unit sets it up for QEMU's group.  Its log is
    DIRECTORY/observer-helper.log, appended to, so that a helper started
    again keeps what the last one said.  Returns (process, socket path)."""
    path = Path(path or Path(directory) / "observer-helper.sock")
    # a helper killed before leaves its socket behind
    path.unlink(missing_ok=True)
    with open(Path(directory) / "observer-helper.log", "a",
              encoding="utf-8") as log:
        # pylint: disable-next=consider-using-with
        proc = subprocess.Popen([str(OBSERVER_HELPER), "--socket",
                                 str(path)], stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise NkvmError(f"{OBSERVER_HELPER} did not open {path} "
                            f"(status {proc.returncode})")
        time.sleep(0.05)
    if group is None:
        os.chmod(path, 0o666)
    else:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
        os.chmod(path, 0o660)
    return proc, path


class Lab:
    """A private temporary directory and every VM started in it.

    Use as a context manager: on exit all VMs still running are killed
    and the directory is removed (kept if NKVM_KEEP is set).
    """

    def __init__(self, prefix="nkvm-"):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.vms = []

    def vm(self, name, scenario, **kwargs):
        vm = GuestVM(self, name, scenario, **kwargs)
        self.vms.append(vm)
        return vm

    def close(self):
        for vm in self.vms:
            vm.close()
        if os.environ.get("NKVM_KEEP"):
            print(f"# logs kept in {self.dir}", flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GuestVM:
    """One QEMU process running the nkvm guest."""

    # Where an incoming migration listens (tests/lab/remote.py: the
    # other host's address on a lab pair's link).
    listen_host = LOOPBACK

    # pylint: disable=too-many-instance-attributes,too-many-arguments
    def __init__(self, lab, name, scenario, accel="tcg", memory_mb=64,
                 incoming=None, extra_args=(), wrapper=(), binary=None,
                 serial_input=False):
        self.lab = lab
        self.name = name
        self.scenario = scenario
        self.accel = accel
        self.memory_mb = memory_mb
        self.incoming = incoming
        self.extra_args = list(extra_args)
        # A command prefix, e.g. "ip netns exec HOST" to run on a test host.
        self.wrapper = list(wrapper)
        self.binary = binary or qemu_binary()
        self.serial_path = lab.dir / f"{name}.serial"
        self.stderr_path = lab.dir / f"{name}.stderr"
        self.qmp_path = lab.dir / f"{name}.qmp"
        # With serial_input, the guest's COM1 also reads from a FIFO that
        # serial_write() feeds (input-path of the file chardev).
        self.serial_input = serial_input
        self.serial_in_path = lab.dir / f"{name}.serial-in"
        self.serial_in_fd = None
        self.proc = None
        self.mon = None
        self.exitcode = None

    def command_line(self):
        args = [str(self.binary),
                "-L", str(firmware_dir()),
                "-M", "pc", "-nodefaults", "-display", "none",
                "-m", str(self.memory_mb),
                "-accel", self.accel,
                # A triple fault then ends QEMU with status 0 instead of
                # rebooting the guest in a loop.
                "-no-reboot",
                "-kernel", str(guest_image()),
                "-append", self.scenario,
                "-device", DEBUG_EXIT_DEVICE,
                "-chardev", f"file,id=serial0,path={self.serial_path}"
                + (f",input-path={self.serial_in_path}"
                   if self.serial_input else ""),
                "-serial", "chardev:serial0",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.incoming:
            args += ["-incoming", self.incoming]
        return self.wrapper + args + self.extra_args

    def launch(self, qmp_timeout=15.0):
        args = self.command_line()
        if self.serial_input:
            os.mkfifo(self.serial_in_path)
            # QEMU opens the FIFO read-only, which blocks until a writer
            # exists; holding it open read-write ourselves (Linux allows
            # that on a FIFO) lets QEMU start at once and never see EOF.
            self.serial_in_fd = os.open(self.serial_in_path,
                                        os.O_RDWR | os.O_NONBLOCK)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        # QEMU listens (server=on,wait=off creates the socket before the
        # guest starts); poll for it so that a QEMU that dies at startup
        # is noticed at once rather than after the whole timeout.
        deadline = time.monotonic() + qmp_timeout
        last_exc = None
        while True:
            if self.poll() is not None:
                self.fail("QEMU exited at startup "
                          f"({exit_status_name(self.exitcode)})")
            if self.qmp_path.exists():
                mon = QEMUMonitorProtocol(str(self.qmp_path),
                                          nickname=self.name)
                try:
                    mon.connect()
                    self.mon = mon
                    break
                except (QMPError, OSError) as exc:
                    last_exc = exc
                    mon.close()
            if time.monotonic() >= deadline:
                self.fail(NkvmTimeout(
                    f"{self.name}: QMP connection not established within "
                    f"{qmp_timeout} s ({last_exc!r})"))
            time.sleep(0.02)
        # Each QMP command gets the same bound as the connection.
        self.mon.settimeout(qmp_timeout)
        return self

    # ---- state -------------------------------------------------------

    def poll(self):
        if self.proc is not None and self.exitcode is None:
            self.exitcode = self.proc.poll()
        return self.exitcode

    def serial_log(self):
        try:
            return self.serial_path.read_text(errors="replace") \
                .replace("\r\n", "\n")
        except FileNotFoundError:
            return ""

    def serial_lines(self):
        return self.serial_log().splitlines()

    def stderr_log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def dump(self, out=sys.stdout):
        print(f"# ---- {self.name}: serial log ({self.serial_path}) ----",
              file=out)
        for line in self.serial_lines():
            print(f"# {line}", file=out)
        err = self.stderr_log().strip()
        if err:
            print(f"# ---- {self.name}: QEMU stderr ----", file=out)
            for line in err.splitlines():
                print(f"# {line}", file=out)
        print(f"# ---- {self.name}: {exit_status_name(self.poll())} ----",
              file=out, flush=True)

    def fail(self, why):
        """Dump logs, kill this VM and raise."""
        self.dump()
        self.kill()
        if isinstance(why, NkvmTimeout):
            raise why
        raise NkvmError(f"{self.name}: {why}")

    def open_fds(self):
        """How many file descriptors this QEMU has open."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self):
        """This QEMU's thread ids ([] once it is gone)."""
        try:
            return sorted(int(t) for t in
                          os.listdir(f"/proc/{self.proc.pid}/task"))
        except OSError:
            return []

    # ---- QMP ---------------------------------------------------------

    def qmp(self, cmd, **args):
        """Run a QMP command and return its result; raise on error."""
        if self.mon is None:
            raise NkvmError(f"{self.name}: not launched")
        try:
            return self.mon.cmd(cmd, **args)
        except QMPError as exc:
            raise NkvmError(f"{self.name}: QMP {cmd} failed: {exc}") from exc
        except TimeoutError as exc:
            raise NkvmTimeout(f"{self.name}: QMP {cmd} timed out") from exc

    def serial_write(self, data):
        """Send bytes to the guest's COM1 (needs serial_input=True)."""
        if self.serial_in_fd is None:
            raise NkvmError(f"{self.name}: launched without serial_input")
        os.write(self.serial_in_fd, data)

    # ---- bounded waits -----------------------------------------------

    def wait_migration(self, wanted=("completed", "failed", "cancelled"),
                       timeout=60.0, poll_interval=0.05):
        """Poll query-migrate until its status is one of wanted and
        return the result."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp("query-migrate")
            if info.get("status") in wanted:
                return info
            if self.poll() is not None:
                self.fail("exited during migration")
            if time.monotonic() >= deadline:
                raise NkvmTimeout(f"{self.name}: migration still "
                                  f"{info.get('status')}, wanted {wanted}")
            time.sleep(poll_interval)

    def wait_for_serial_line(self, pattern, timeout, fatal=True):
        """Wait until a whole serial line matches the regex pattern.

        Returns the match.  On timeout, or if QEMU exits first, dumps
        the logs, kills QEMU and raises NkvmTimeout (fatal=True) or
        returns None (fatal=False, QEMU left running).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial_log()
            # Only complete lines: the guest may be mid-line.
            for line in text.split("\n")[:-1]:
                m = regex.fullmatch(line)
                if m:
                    return m
            if self.poll() is not None:
                why = (f"QEMU exited ({exit_status_name(self.exitcode)}) "
                       f"before serial line /{pattern}/")
                if fatal:
                    self.fail(why)
                return None
            if time.monotonic() >= deadline:
                if fatal:
                    self.fail(NkvmTimeout(
                        f"{self.name}: no serial line /{pattern}/ "
                        f"within {timeout} s"))
                return None
            time.sleep(0.02)

    def wait_exit(self, timeout, fatal=True):
        """Wait for QEMU to exit; return its status (None if fatal=False
        and it is still running after timeout)."""
        try:
            self.exitcode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if fatal:
                self.fail(NkvmTimeout(f"{self.name}: QEMU still running "
                                      f"after {timeout} s"))
            return None
        return self.exitcode

    # ---- teardown ----------------------------------------------------

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.poll()

    def close(self):
        if self.mon is not None:
            try:
                self.mon.close()
            except Exception:  # pylint: disable=broad-except
                pass
            self.mon = None
        self.kill()
        if self.serial_in_fd is not None:
            os.close(self.serial_in_fd)
            self.serial_in_fd = None


def run_guest(name, scenario, timeout, cpu, accel="tcg"):
    """Run a scenario that ends by itself, under -cpu cpu; echo its serial
    lines as "#   name| ..." and return (exit status, serial lines).  A
    harness failure (no exit within timeout, QMP) gives (None, [why])."""
    with Lab() as lab:
        vm = lab.vm(name, scenario, accel=accel,
                    extra_args=["-cpu", cpu]).launch()
        try:
            status = vm.wait_exit(timeout)
        except NkvmError as exc:
            return None, [f"harness: {exc}"]
        lines = vm.serial_lines()
        for line in lines:
            print(f"#   {name}| {line}")
        return status, lines


def guest_result(lines):
    """Summarise the guest's TAP-like output: (ok, not_ok, plan, verdict)."""
    oks = [ln for ln in lines if re.match(r"ok \d+ - ", ln)]
    not_oks = [ln for ln in lines if re.match(r"not ok \d+ - ", ln)]
    plan = None
    verdict = None
    for ln in lines:
        m = re.fullmatch(r"1\.\.(\d+)", ln)
        if m:
            plan = int(m.group(1))
        if ln == "PASS" or ln.startswith("FAIL"):
            verdict = ln
    return oks, not_oks, plan, verdict


def wait_incoming_done(dst, deadline, poll_interval=0.02):
    """Wait until the destination has loaded the whole stream.

    The source reports completed once it has sent everything, while the
    destination may still be loading and then writing the vCPU state to
    the accelerator; an NMI injected in between is overwritten by that
    write and lost.  So nothing may touch the destination before this.
    """
    while True:
        status = dst.qmp("query-migrate").get("status")
        if status in ("completed", "failed"):
            return status
        if dst.poll() is not None:
            raise NkvmError(f"{dst.name}: exited while loading the stream "
                            f"({exit_status_name(dst.poll())})")
        if time.monotonic() >= deadline:
            raise NkvmTimeout(f"{dst.name}: incoming migration still "
                              f"{status}")
        time.sleep(poll_interval)


def migrate(src, dst, timeout=60.0, poll_interval=0.05, progress=None,
            started=None):
    """Live-migrate src to dst over TCP (loopback, or the link of a lab
    pair: dst.listen_host) and return the source's final query-migrate
    result.

    dst must have been launched with incoming="defer".  The destination
    listens on port 0 (the kernel picks a free port, no race) and the
    real port is read back from its query-migrate.  progress, if given,
    is called with each new (status, transferred bytes) of the source;
    started, if given, with src once the migration has been started.
    """
    host = dst.listen_host
    dst.qmp("migrate-incoming", uri=f"tcp:{host}:0")
    info = dst.qmp("query-migrate")
    addrs = info.get("socket-address") or []
    ports = [a["port"] for a in addrs
             if a.get("type") == "inet" and a.get("host") == host]
    if not ports:
        raise NkvmError(f"destination did not report its listening "
                        f"port: {info}")
    uri = f"tcp:{host}:{ports[0]}"
    if progress:
        progress(f"destination listening on {uri}")
    try:
        src.qmp("migrate", uri=uri)
    except NkvmError as exc:
        # Blocked before it started (as nested-kvm's strict mode blocks
        # one it could not watch): told as a migration that failed.
        if not isinstance(exc.__cause__, ExecuteError):
            raise
        return {"status": "failed", "error-desc": str(exc.__cause__),
                "blocked": True}
    if started:
        started(src)

    deadline = time.monotonic() + timeout
    last = None
    while True:
        info = src.qmp("query-migrate")
        status = info.get("status")
        ram = info.get("ram", {})
        now = (status, ram.get("transferred"))
        if progress and now != last:
            progress(f"status={status} transferred={ram.get('transferred')} "
                     f"remaining={ram.get('remaining')} "
                     f"total={ram.get('total')}")
            last = now
        if status in ("completed", "failed", "cancelled"):
            if status == "completed":
                wait_incoming_done(dst, deadline)
            return info
        if src.poll() is not None or dst.poll() is not None:
            raise NkvmError("a QEMU process exited during migration "
                            f"(src: {exit_status_name(src.poll())}, "
                            f"dst: {exit_status_name(dst.poll())})")
        if time.monotonic() >= deadline:
            try:
                src.qmp("migrate_cancel")
            except NkvmError:
                pass
            raise NkvmTimeout(f"migration not finished within {timeout} s "
                              f"(last status {status})")
        time.sleep(poll_interval)


def open_fds(vm):
    """How many file descriptors VM's QEMU has open."""
    return vm.open_fds()


def source_idle(vm, idle_fds, has_model, timeout=10.0, state="running"):
    """Why VM, the source of a migration that failed, is not back to its
    idle state (in run state STATE, no more than IDLE_FDS open, and with
    HAS_MODEL no restore plan pending), or None.  The migration's clean-up
    is asynchronous, so this waits up to TIMEOUT for it."""
    deadline = time.monotonic() + timeout
    while True:
        why = []
        run = vm.qmp("query-status")["status"]
        if run != state:
            why.append(f"source {run}")
        fds = open_fds(vm)
        if fds > idle_fds:
            why.append(f"{fds} fds open, {idle_fds} when idle")
        if has_model:
            why += [f"vCPU {cpu.get('cpu-index')}: restore plan pending"
                    for cpu in vm.qmp("x-query-nested-events")
                    if cpu.get("restore-pending")]
        if not why or time.monotonic() >= deadline:
            return "; ".join(why) or None
        time.sleep(0.1)


def poll(probe, want, timeout, interval=0.05):
    """Call probe() until want(value) holds or timeout seconds pass;
    return the last value, so that the caller judges a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if want(value) or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def save_to_file(lab, path, timeout=60.0):
    """Boot the migrate scenario, wait until it waits for its NMI, and
    save it to path.  Returns the source VM (paused, postmigrate)."""
    src = lab.vm("save", "migrate").launch()
    src.wait_for_serial_line(r"READY migrate", timeout)
    src.qmp("migrate", uri=f"file:{path}")
    info = src.wait_migration(timeout=timeout)
    if info.get("status") != "completed":
        src.fail(f"save to file ended {info}")
    return src
