#!/usr/bin/env python3
"""
-accel nested-kvm,event-migration=strict|best-effort: what a migration
does when the in-flight observer (docs/hidden-window.rst) cannot watch
KVM's nested tracepoints.

- An unknown value is refused at startup, naming the value.
- On real KVM (the lab; skipped elsewhere):
  - as root the observer arms, and a strict migration completes;
  - with the privilege taken away (QEMU run as an unprivileged user, so
    tracefs and tracepoint samples are closed to it), a strict migration
    fails at setup, before the source stops, with an error that names
    the reason; the source keeps running and the guest passes there;
  - the same unprivileged QEMU with best-effort migrates, warning;
  - the same unprivileged QEMU with observer-helper= (the privileged
    helper, docs/libvirt.rst, running as root) arms and a strict
    migration completes, with QEMU still without any capability and
    perf_event_paranoid unchanged;
  - with the helper gone, a strict migration fails at setup naming the
    helper's socket, and the source runs on;
  - with a helper that dies in the middle of the arming (it answers
    'formats', then hangs up on 'open' without a reply), a strict
    migration fails at setup saying so, and the source runs on;
  - with the helper killed once the migration's setup opened the
    events, the migration completes: the final stop only enables them.
  All of these ask for the observer (state-source=observer), which a
  kernel with KVM_CAP_X86_NESTED_EVENT_STATE would otherwise make
  unnecessary.  Then, state-source=kernel:
  - where KVM offers the capability (scripts/lab --kvm patched), the
    same unprivileged QEMU with no helper at all says state-source
    kernel, and a strict migration completes;
  - elsewhere QEMU refuses to start, naming the capability.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import fcntl
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

TIMEOUT = 120
tap = nkvm.Tap()


def refused(accel_opts, want, name):
    """QEMU must refuse -accel nested-kvm,ACCEL_OPTS at startup."""
    args = [str(nkvm.qemu_binary()), "-L", str(nkvm.firmware_dir()),
            "-M", "pc", "-nodefaults", "-display", "none",
            "-accel", f"nested-kvm,{accel_opts}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60,
                          check=False)
    tap.check(proc.returncode == 1 and want in proc.stderr, name,
              f"status {proc.returncode}: {proc.stderr.strip()}")


def test_bad_value():
    refused("event-migration=sometimes",
            "Parameter 'event-migration' does not accept value 'sometimes'",
            "event-migration=sometimes is refused, naming the value")
    refused("x-unknown-verdicts=-1",
            "x-unknown-verdicts",
            "x-unknown-verdicts=-1 is refused, naming the option")
    refused("stop-settle-ms=10001",
            "stop-settle-ms=10001 is more than 10000",
            "stop-settle-ms=10001 is refused, naming the value and the "
            "limit")
    refused("state-source=tracepoints",
            "Parameter 'state-source' does not accept value 'tracepoints'",
            "state-source=tracepoints is refused, naming the value")


def lab_ready():
    """Why the KVM checks cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root, to take the privilege away from QEMU"
    if not Path("/sys/module/kvm_amd/parameters/nested").exists():
        return "no kvm_amd: the observer is for nested SVM (the lab)"
    usable, why = nkvm.kvm_probe(nested=True)
    return None if usable else f"no usable /dev/kvm: {why}"


def pair(lab, name, mode, wrapper=(), helper=None, source="observer"):
    accel = f"nested-kvm,event-migration={mode},state-source={source}"
    extra = ["-cpu", "host"]
    if helper:
        # The helper opens only threads named "CPU n/KVM".
        accel += f",observer-helper={helper}"
        extra += ["-name", f"{name},debug-threads=on"]
    src = lab.vm(f"{name}-src", "migrate", accel=accel, extra_args=extra,
                 wrapper=wrapper).launch()
    dst = lab.vm(f"{name}-dst", "migrate", accel=accel, extra_args=extra,
                 wrapper=wrapper, incoming="defer").launch()
    src.wait_for_serial_line(r"READY migrate", TIMEOUT)
    return src, dst


def finish(vm, name):
    vm.qmp("inject-nmi")
    status = vm.wait_exit(TIMEOUT)
    tap.check(status == nkvm.EXIT_PASS, name, nkvm.exit_status_name(status))


def destination_left(dst):
    """Why DST, the destination of a migration that strict refused, no
    longer waits for its stream, or None.  A refusal must come before the
    source connects: a connection closed without a stream makes the
    destination quit, and libvirt may then report that instead of the
    reason (docs/libvirt.rst).  It quits within milliseconds; a second
    is ample."""
    time.sleep(1.0)
    if dst.poll() is not None:
        return f"it exited ({nkvm.exit_status_name(dst.poll())}): " + \
            " | ".join(dst.stderr_log().strip().splitlines()[-2:])
    run = dst.qmp("query-status")["status"]
    return None if run == "inmigrate" else f"it is {run}"


def test_strict_root(lab):
    src, dst = pair(lab, "root", "strict")
    reasons = src.qmp("query-migrate").get("blocked-reasons", [])
    tap.check(not reasons, "strict, as root: query-migrate lists no "
              "blocked reason", "; ".join(reasons))
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    tap.check(info.get("status") == "completed",
              "strict, as root: the observer arms and the migration "
              "completes", str(info.get("error-desc", "")))
    finish(dst, "strict, as root: the guest passes on the destination")
    src.kill()


def test_strict_unprivileged(lab):
    src, dst = pair(lab, "strict", "strict", nkvm.unprivileged_wrapper())
    # What libvirt reads before it starts a migration (docs/libvirt.rst)
    reasons = src.qmp("query-migrate").get("blocked-reasons", [])
    tap.check(any("event-migration=strict refuses to migrate" in r and
                  "tracefs" in r for r in reasons),
              "strict, unprivileged: query-migrate's blocked-reasons "
              "names the missing tracefs access", "; ".join(reasons))
    start = time.monotonic()
    try:
        info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    except nkvm.NkvmError as exc:
        info = {"status": f"harness: {exc}"}
    err = info.get("error-desc", "")
    run = src.qmp("query-status")
    tap.check(info.get("status") == "failed" and
              "event-migration=strict refuses to migrate" in err and
              "tracefs" in err,
              "strict, unprivileged: the migration fails, naming the "
              "missing tracefs access", f"{info.get('status')}: {err}")
    tap.check(run["status"] == "running",
              "strict, unprivileged: the source never stopped and runs on",
              f"source {run['status']} after "
              f"{time.monotonic() - start:.1f} s")
    left = destination_left(dst)
    tap.check(left is None and info.get("blocked"), "strict, "
              "unprivileged: blocked before it started, the destination "
              "still waits for a stream",
              left or f"blocked={info.get('blocked')}")
    dst.kill()
    finish(src, "strict, unprivileged: the guest passes on the source")


def test_best_effort_unprivileged(lab):
    src, dst = pair(lab, "best", "best-effort", nkvm.unprivileged_wrapper())
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    warned = "event-migration=best-effort" in src.stderr_log()
    tap.check(info.get("status") == "completed" and warned,
              "best-effort, unprivileged: migrates, with a warning",
              f"{info.get('status')}, warned={warned}")
    finish(dst, "best-effort, unprivileged: the guest passes on the "
           "destination")
    src.kill()


def cap_eff(vm):
    """QEMU's effective capabilities, from /proc/PID/status."""
    status = Path(f"/proc/{vm.proc.pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines()
                    if ln.startswith("CapEff:")), 16)


def paranoid():
    return Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()


def test_strict_helper(lab):
    before = paranoid()
    helper, path = nkvm.start_observer_helper(lab.dir)
    try:
        src, dst = pair(lab, "helper", "strict", nkvm.unprivileged_wrapper(), path)
        caps = cap_eff(src)
        info = nkvm.migrate(src, dst, timeout=TIMEOUT)
        tap.check(info.get("status") == "completed",
                  "strict, unprivileged, with the observer helper: the "
                  "observer arms and the migration completes",
                  f"{info.get('status')}: {info.get('error-desc', '')}")
        tap.check(caps == 0 and paranoid() == before,
                  "strict, unprivileged, with the observer helper: QEMU has "
                  "no capability and perf_event_paranoid is unchanged",
                  f"CapEff {caps:#x}, paranoid {before} -> {paranoid()}")
        finish(dst, "strict, unprivileged, with the observer helper: the "
               "guest passes on the destination")
        src.kill()
    finally:
        helper.kill()
        helper.wait()
    # The same, with the helper gone: refused at setup, naming it.
    src, dst = pair(lab, "nohelper", "strict", nkvm.unprivileged_wrapper(), path)
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    err = info.get("error-desc", "")
    run = src.qmp("query-status")
    tap.check(info.get("status") == "failed" and
              f"observer helper at {path}" in err and
              run["status"] == "running",
              "strict, the observer helper gone: the migration fails "
              "naming its socket, and the source runs on",
              f"{info.get('status')}: {err}; source {run['status']}")
    dst.kill()
    finish(src, "strict, the observer helper gone: the guest passes on the "
           "source")


def kernel_offers_event_state():
    """KVM_CHECK_EXTENSION(KVM_CAP_X86_NESTED_EVENT_STATE = 1000) has
    the SOFT and SVM bits (docs/hidden-window.rst, "From the kernel")."""
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(fd, 0xAE03, 1000) & 3 == 3
    finally:
        os.close(fd)


def test_kernel_source(lab):
    if not kernel_offers_event_state():
        refused("state-source=kernel", "KVM_CAP_X86_NESTED_EVENT_STATE",
                "state-source=kernel, on a KVM without the capability: "
                "QEMU refuses to start, naming it")
        return
    src, dst = pair(lab, "kernel", "strict", nkvm.unprivileged_wrapper(),
                    source="kernel")
    sources = {m["state-source"] for m in src.qmp("x-query-nested-events")}
    caps = cap_eff(src)
    info = nkvm.migrate(src, dst, timeout=TIMEOUT)
    tap.check(info.get("status") == "completed" and sources == {"kernel"}
              and caps == 0,
              "strict, unprivileged, state-source=kernel with no helper: "
              "the migration completes",
              f"{info.get('status')}: {info.get('error-desc', '')}; "
              f"state-source {sorted(sources)}, CapEff {caps:#x}")
    finish(dst, "strict, unprivileged, state-source=kernel: the guest "
           "passes on the destination")
    src.kill()


# nested-helper-proto.h: magic, op, tid, reserved; ops
HELPER_REQUEST = struct.Struct("=IIiI")
HELPER_OP_FORMATS = 1


class CrashingHelper(threading.Thread):
    """A helper that dies in the middle of QEMU's arming: it forwards
    'formats' to the real helper at REAL, and hangs up on the first
    'open', without a reply, as a crashed helper's socket does."""

    def __init__(self, path, real):
        super().__init__(daemon=True)
        self.real = str(real)
        self.hung_up = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.listen(4)

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return          # closed by stop()
            with conn:
                req = conn.recv(HELPER_REQUEST.size)
                op = HELPER_REQUEST.unpack_from(req)[1] \
                    if len(req) == HELPER_REQUEST.size else None
                if op != HELPER_OP_FORMATS:
                    self.hung_up += 1
                    continue
                with socket.socket(socket.AF_UNIX,
                                   socket.SOCK_SEQPACKET) as real:
                    real.connect(self.real)
                    real.send(req)
                    conn.send(real.recv(1 << 16))

    def stop(self):
        self.sock.close()


def test_helper_crash(lab):
    helper, real = nkvm.start_observer_helper(lab.dir)
    path = lab.dir / "crashing-helper.sock"
    crashing = CrashingHelper(path, real)
    crashing.start()
    try:
        src, dst = pair(lab, "crash", "strict", nkvm.unprivileged_wrapper(),
                        path)
        info = nkvm.migrate(src, dst, timeout=TIMEOUT)
        err = info.get("error-desc", "")
        run = src.qmp("query-status")
        tap.check(info.get("status") == "failed" and crashing.hung_up and
                  f"observer helper at {path}" in err and
                  "hung up without a reply" in err and
                  run["status"] == "running",
                  "strict, the helper dies in the middle of the arming: "
                  "the migration fails saying so, and the source runs on",
                  f"{info.get('status')}: {err}; source {run['status']}, "
                  f"{crashing.hung_up} hang-ups")
        print(f"# the helper died mid-arming: {err}", flush=True)
        dst.kill()
        finish(src, "strict, the helper died mid-arming: the guest passes "
               "on the source")
    finally:
        crashing.stop()
        helper.kill()
        helper.wait()


def test_helper_gone_midway(lab):
    helper, path = nkvm.start_observer_helper(lab.dir)
    src, dst = pair(lab, "midway", "strict", nkvm.unprivileged_wrapper(),
                    path)
    # Slow enough to be still copying once the helper is gone.
    src.qmp("migrate-set-parameters", **{"max-bandwidth": 256 << 10})

    def kill_helper(vm):
        deadline = time.monotonic() + TIMEOUT
        while vm.qmp("query-migrate").get("status") not in \
                ("active", "completed", "failed"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        helper.kill()
        helper.wait()
        vm.qmp("migrate-set-parameters", **{"max-bandwidth": 10 << 30})

    info = nkvm.migrate(src, dst, timeout=TIMEOUT, started=kill_helper)
    tap.check(info.get("status") == "completed",
              "strict, the helper gone after the migration's setup: the "
              "migration completes",
              f"{info.get('status')}: {info.get('error-desc', '')}")
    finish(dst, "strict, the helper gone after setup: the guest passes on "
           "the destination")
    src.kill()


def main():
    if not nkvm.check_environment(tap):
        return tap.finish()
    test_bad_value()
    why = lab_ready()
    names = ("strict as root (3 checks)",
             "strict unprivileged (5 checks)",
             "best-effort unprivileged (2 checks)",
             "strict unprivileged with the observer helper (5 checks)",
             "strict unprivileged, the helper dies mid-arming (2 checks)",
             "strict unprivileged, the helper gone after setup (2 checks)",
             "state-source=kernel (1 or 2 checks)")
    if why:
        for name in names:
            tap.skip(name, why)
        return tap.finish()
    # The lab's L1 is a throwaway VM: let nobody open its /dev/kvm.
    os.chmod("/dev/kvm", 0o666)
    with nkvm.Lab(prefix="nkvm-evmig-") as lab:
        # QEMU as nobody must reach its sockets and logs.
        os.chmod(lab.dir, 0o777)
        for test in (test_strict_root, test_strict_unprivileged,
                     test_best_effort_unprivileged, test_strict_helper,
                     test_helper_crash, test_helper_gone_midway,
                     test_kernel_source):
            try:
                test(lab)
            except nkvm.NkvmError as exc:
                tap.check(False, test.__name__, str(exc))
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
