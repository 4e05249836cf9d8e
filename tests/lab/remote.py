"""
Host B of a lab pair, seen from host A (docs/lab.rst, "Two hosts"): a
client of tests/lab/lab-agent.py, and RemoteVM, a test VM on B that a
test on A drives like a local nkvm.GuestVM (QMP, serial log, waits), so
that nkvm.migrate() can move a VM between the hosts.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402


def pair_env():
    """(own address, peer address, agent port) inside a pair's host, or
    None outside one (scripts/lab pair exports them)."""
    addr = os.environ.get("LAB_ADDR")
    peer = os.environ.get("LAB_PEER")
    port = os.environ.get("LAB_AGENT_PORT")
    if not (addr and peer and port):
        return None
    return addr, peer, int(port)


class AgentClient:
    """One connection to the agent; call() raises NkvmError on its
    errors."""

    def __init__(self, host, port, timeout=300.0, progress=None,
                 source=None):
        # Host B boots after A and starts its agent last: retry until then.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(
                    (host, port), timeout=5,
                    source_address=(source, 0) if source else None)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise nkvm.NkvmTimeout(
                        f"agent {host}:{port} not reachable within "
                        f"{timeout} s ({exc})") from exc
                if progress:
                    progress(f"waiting for the agent on {host}:{port} "
                             f"({exc.strerror or exc})")
                time.sleep(2)
        self.sock.settimeout(None)
        self.host = host
        self.rfile = self.sock.makefile("r", encoding="utf-8")
        self.wfile = self.sock.makefile("w", encoding="utf-8")

    def call(self, op, timeout=120.0, **args):
        self.sock.settimeout(timeout)
        try:
            self.wfile.write(json.dumps({"op": op, **args}) + "\n")
            self.wfile.flush()
            line = self.rfile.readline()
        except (OSError, socket.timeout) as exc:
            raise nkvm.NkvmError(f"agent {self.host}: {op}: {exc}") from exc
        if not line:
            raise nkvm.NkvmError(f"agent {self.host}: connection closed "
                                 f"during {op}")
        reply = json.loads(line)
        if "error" in reply:
            raise nkvm.NkvmError(f"agent {self.host}: {reply['error']}")
        return reply.get("return")

    def close(self, shutdown=False):
        """Disconnect; with shutdown, the agent ends and B powers off."""
        if shutdown:
            try:
                self.call("shutdown", timeout=30)
            except nkvm.NkvmError:
                pass
        self.sock.close()


class RemoteVM(nkvm.GuestVM):
    """A GuestVM that runs on the agent's host.  Only the primitives go
    over the link; the bounded waits of GuestVM work unchanged on top."""

    # pylint: disable=too-many-arguments
    def __init__(self, agent, lab, name, scenario, accel="tcg",
                 memory_mb=64, incoming=None, extra_args=(),
                 serial_input=False):
        super().__init__(lab, name, scenario, accel=accel,
                         memory_mb=memory_mb, incoming=incoming,
                         extra_args=extra_args, serial_input=serial_input)
        self.agent = agent
        # nkvm.migrate() has the destination listen here.
        self.listen_host = agent.host
        self.launched = False

    def launch(self, qmp_timeout=15.0):
        self.agent.call("vm.launch", name=self.name, scenario=self.scenario,
                        accel=self.accel, memory_mb=self.memory_mb,
                        incoming=self.incoming, extra_args=self.extra_args,
                        serial_input=self.serial_input,
                        qmp_timeout=qmp_timeout, timeout=qmp_timeout + 30)
        self.launched = True
        return self

    def poll(self):
        if self.launched and self.exitcode is None:
            self.exitcode = self.agent.call("vm.poll", name=self.name)
        return self.exitcode

    def serial_log(self):
        if not self.launched:
            return ""
        return self.agent.call("vm.serial_log", name=self.name) \
            .replace("\r\n", "\n")

    def stderr_log(self):
        if not self.launched:
            return ""
        return self.agent.call("vm.stderr_log", name=self.name)

    def qmp(self, cmd, **args):
        if not self.launched:
            raise nkvm.NkvmError(f"{self.name}: not launched")
        return self.agent.call("vm.qmp", name=self.name, cmd=cmd, args=args)

    def open_fds(self):
        return self.agent.call("vm.open_fds", name=self.name)

    def threads(self):
        return self.agent.call("vm.threads", name=self.name)

    def serial_write(self, data):
        self.agent.call("vm.serial_write", name=self.name,
                        data=data.decode("latin-1"))

    def wait_exit(self, timeout, fatal=True):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                if fatal:
                    self.fail(nkvm.NkvmTimeout(
                        f"{self.name}: QEMU still running after {timeout} s"))
                return None
            time.sleep(0.2)
        return self.exitcode

    def kill(self):
        if self.launched and self.exitcode is None:
            self.exitcode = self.agent.call("vm.kill", name=self.name)

    def close(self):
        if self.launched:
            try:
                self.exitcode = self.agent.call("vm.close", name=self.name)
            except nkvm.NkvmError:
                pass
            self.launched = False
