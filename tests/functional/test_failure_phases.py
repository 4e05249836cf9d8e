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
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

TIMEOUT = 60
LIVE_BYTES = 1 << 20
PHASES = ("setup", "live", "device")
ACTIONS = ("kill-dst", "cancel", "cut")
tap = nkvm.Tap()


def cpu_section_start(buf):
    """Offset of the first cpu section's header in BUF, or -1."""
    needle = bytes([3]) + b"cpu" + struct.pack(">I", 0)
    pos = buf.find(needle)
    while pos >= 0:
        if pos >= 5 and buf[pos - 5] == ns.QEMU_VM_SECTION_FULL:
            return pos - 5
        pos = buf.find(needle, pos + 1)
    return -1


class HoldingProxy:
    """Forward a migration stream to TARGET_PORT on loopback, but only up
    to the point PHASE names; then hold it until cut() or close()."""

    def __init__(self, target_port, phase):
        self.target_port = target_port
        self.phase = phase
        self.listener = socket.socket()
        self.listener.bind((nkvm.LOOPBACK, 0))
        self.listener.listen(1)
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _limit(self, buf, forwarded):
        """How many more bytes of BUF may pass, or None for all."""
        if self.phase == "setup":
            return 0
        if self.phase == "live":
            return max(0, LIVE_BYTES - forwarded)
        # Keep a few bytes back so a header split across reads is seen.
        start = cpu_section_start(buf)
        return start if start >= 0 else max(0, len(buf) - 16)

    def _run(self):
        try:
            client, _ = self.listener.accept()
            server = socket.create_connection((nkvm.LOOPBACK,
                                               self.target_port), TIMEOUT)
        except OSError:
            return
        self.socks = [client, server]
        back = threading.Thread(target=self._pump, args=(server, client),
                                daemon=True)
        back.start()
        buf = b""
        forwarded = 0
        try:
            while True:
                if self._limit(buf, forwarded) == 0 and (
                        self.phase != "device" or
                        cpu_section_start(buf) >= 0):
                    self.held.set()
                    return
                data = client.recv(65536)
                if not data:
                    return
                buf += data
                n = self._limit(buf, forwarded)
                server.sendall(buf[:n])
                forwarded += n
                buf = buf[n:]
        except OSError:
            return

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass

    def cut(self):
        """Reset both connections, as a link that goes away would."""
        for s in self.socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(5)


def open_fds(vm):
    return len(os.listdir(f"/proc/{vm.proc.pid}/fd"))


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
        caps = [{"capability": "return-path", "state": True}]
        self.src.qmp("migrate-set-capabilities", capabilities=caps)
        self.idle_fds = open_fds(self.src)

    def destination(self):
        self.n += 1
        dst = self.vm(f"dst{self.n}", incoming="defer").launch()
        caps = [{"capability": "return-path", "state": True}]
        dst.qmp("migrate-set-capabilities", capabilities=caps)
        dst.qmp("migrate-incoming", uri=f"tcp:{nkvm.LOOPBACK}:0")
        port = dst.qmp("query-migrate")["socket-address"][0]["port"]
        return dst, int(port)

    def source_idle(self):
        """Why the source is not back to its idle, running state, or
        None; waits for the migration's clean-up, which is async."""
        deadline = time.monotonic() + 10
        while True:
            why = []
            run = self.src.qmp("query-status")["status"]
            if run != "running":
                why.append(f"source {run}")
            fds = open_fds(self.src)
            if fds != self.idle_fds:
                why.append(f"{fds} fds open, {self.idle_fds} when idle")
            if self.has_model:
                for cpu in self.src.qmp("x-query-nested-events"):
                    if cpu.get("restore-pending"):
                        why.append(f"vCPU {cpu.get('cpu-index')}: restore "
                                   "plan pending")
            if not why or time.monotonic() >= deadline:
                return "; ".join(why) or None
            time.sleep(0.1)

    def fail_at(self, phase, action):
        dst, port = self.destination()
        proxy = HoldingProxy(port, phase)
        name = f"{phase}, {action}"
        try:
            if phase == "live":
                # Slow enough that RAM is still streaming when held.
                self.src.qmp("migrate-set-parameters",
                             **{"max-bandwidth": 8 << 20})
            self.src.qmp("migrate", uri=f"tcp:{nkvm.LOOPBACK}:{proxy.port}")
            if not proxy.held.wait(TIMEOUT):
                tap.check(False, f"{name}: the stream is held at {phase}",
                          self.src.qmp("query-migrate").get("status"))
                return
            run = self.src.qmp("query-status")["status"]
            want = "running" if phase != "device" else "finish-migrate"
            if action == "kill-dst":
                dst.kill()
                proxy.cut()
            elif action == "cancel":
                self.src.qmp("migrate_cancel")
            else:
                proxy.cut()
            info = self.src.wait_migration(("failed", "cancelled",
                                            "completed"), TIMEOUT)
            # A cancel while the stream is stuck in a socket write can
            # end "failed": the return-path thread sees the socket shut
            # and records an error before the clean-up reads CANCELLING.
            expect = ("cancelled", "failed") if action == "cancel" \
                else ("failed",)
            why = self.source_idle()
            tap.check(run == want and info["status"] in expect and not why,
                      f"{name}: source ends {' or '.join(expect)}, running "
                      "and idle",
                      f"at hold: {run} (want {want}); migrate="
                      f"{info['status']}; {why}")
        finally:
            proxy.close()
            dst.kill()
            self.src.qmp("migrate-set-parameters",
                         **{"max-bandwidth": 1 << 40})

    def refused(self):
        """The destination refuses a subsection that fails validation."""
        self.n += 1
        dst = self.vm(f"dst{self.n}", incoming="defer").launch()
        dst.qmp("migrate-set-capabilities",
                capabilities=[{"capability": "return-path", "state": True}])
        bad = ns.model(guest_mode=True,
                       l2=ns.level(injected=ns.event(True, ns.NMI, 5,
                                                     ns.ORIGIN_L1)))
        proxy = ns.migrate_spliced(self.src, dst, ns.subsection(bad),
                                   nkvm.LOOPBACK)
        try:
            info = self.src.wait_migration(timeout=TIMEOUT)
            status = dst.wait_exit(TIMEOUT, fatal=False)
            why = self.source_idle()
            tap.check(proxy.spliced and info["status"] == "failed" and
                      status == 1 and "l2.injected.vector=5" in
                      dst.stderr_log() and not why,
                      "refused: a destination refuses a bad "
                      "cpu/nested-events; the source ends failed, running "
                      "and idle",
                      f"spliced={proxy.spliced} migrate={info['status']} "
                      f"dst_exit={status}; {why}")
        finally:
            proxy.close()
            dst.kill()

    def retry(self):
        dst, port = self.destination()
        self.src.qmp("migrate", uri=f"tcp:{nkvm.LOOPBACK}:{port}")
        info = self.src.wait_migration(timeout=TIMEOUT)
        ok = info["status"] == "completed"
        if ok:
            nkvm.wait_incoming_done(dst, time.monotonic() + TIMEOUT)
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
        return self.args.rounds * (len(PHASES) * len(ACTIONS) + 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accel", default="tcg",
                        choices=("tcg", "nested-kvm"))
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not nkvm.check_environment(tap):
        return tap.finish()
    if args.accel != "tcg":
        usable, why = nkvm.kvm_probe()
        if not usable:
            tap.skip(f"failure phases under {args.accel}",
                     f"no usable /dev/kvm: {why}")
            return tap.finish()
    with nkvm.Lab("nkvm-fail-") as lab:
        run = Run(lab, args)
        run.start_source()
        for _ in range(args.rounds):
            for phase in PHASES:
                for action in ACTIONS:
                    run.fail_at(phase, action)
            run.refused()
        run.retry()
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - failure phases: {exc}")
        sys.exit(1)
