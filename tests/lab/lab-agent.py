#!/usr/bin/python3
"""
The agent on host B of a lab pair (scripts/lab pair, docs/lab.rst): it
lets the command on host A start and drive test VMs and commands on B
over the pair's link, so that one test can migrate between two hosts.

  lab-agent.py --listen ADDR:PORT --allow PEER

One connection at a time, from PEER only (host A's fixed address on the
link); anything else is closed unanswered.  When a connection ends, the
agent closes every VM it started for it and waits for the next.  The
protocol is JSON lines: a request {"op": OP, ...} gets {"return": VALUE}
or {"error": TEXT}.

  ping                      -> {"kernel": uname -r, "addr": ADDR,
                                "series": LAB_KERNEL}
  run argv=[...] timeout=S  -> {"status": N, "output": TEXT}
  vm.launch name=N scenario=S accel=A memory_mb=M incoming=I
            extra_args=[...] serial_input=B [qmp_timeout=S]
  vm.qmp name=N cmd=C args={...}
  vm.poll | vm.serial_log | vm.stderr_log | vm.open_fds | vm.kill |
  vm.close  name=N
  vm.serial_write name=N data=TEXT (latin-1)
  vm.threads name=N         -> the QEMU's thread ids
  tracer.open               -> {"ok": B, "why": TEXT}: torture.py's Tracer
                               on this host's KVM tracepoints
  tracer.start tids=[...]   -> trace those threads from an empty buffer
  tracer.analyse            -> {"res": [in_flight, seen, windows] or null,
                                "events": [[how, exitintinfo], ...],
                                "tail": the buffer's last lines}
  shutdown                  -> closes every VM and ends the agent

VMs are tests/functional/nkvm.py GuestVMs, in a private folder per
connection.  After "shutdown" the agent ends and host B powers off;
otherwise scripts/lab pair stops B when A's command has finished.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import torture  # noqa: E402

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
MAX_OUTPUT = 1 << 20
LAUNCH_KEYS = ("scenario", "accel", "memory_mb", "incoming", "extra_args",
               "serial_input")


def log(msg):
    print(f"lab-agent: {msg}", file=sys.stderr, flush=True)


class AgentError(Exception):
    """A request the agent refuses; the text goes back to the caller."""


class Agent:
    def __init__(self, addr):
        self.addr = addr
        self.lab = nkvm.Lab(prefix="nkvm-agent-")
        self.vms = {}
        self.tracer = None

    def reset(self):
        """Close everything the last connection started."""
        self.close()
        self.lab = nkvm.Lab(prefix="nkvm-agent-")

    def close(self):
        self.lab.close()
        self.vms.clear()
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None

    def vm(self, req):
        name = req.get("name")
        if name not in self.vms:
            raise AgentError(f"no VM named {name!r}")
        return self.vms[name]

    def op_ping(self, _req):
        return {"kernel": os.uname().release, "addr": self.addr,
                "series": os.environ.get("LAB_KERNEL")}

    @staticmethod
    def op_run(req):
        argv = req.get("argv")
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, str) for a in argv)):
            raise AgentError(f"run: argv must be a list of strings, "
                             f"got {argv!r}")
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT,
                                  timeout=float(req.get("timeout", 60)),
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AgentError(f"run {argv[0]}: {exc}") from exc
        return {"status": proc.returncode,
                "output": proc.stdout[-MAX_OUTPUT:].decode(errors="replace")}

    def op_vm_launch(self, req):
        name = req.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise AgentError(f"vm.launch: name must match "
                             f"{NAME_RE.pattern}, got {name!r}")
        if name in self.vms:
            raise AgentError(f"vm.launch: {name!r} exists")
        unknown = set(req) - set(LAUNCH_KEYS) - {"op", "name", "qmp_timeout"}
        if unknown:
            raise AgentError(f"vm.launch: unknown keys {sorted(unknown)}")
        qmp_timeout = req.get("qmp_timeout", 15.0)
        if not isinstance(qmp_timeout, (int, float)) or \
                not 0 < qmp_timeout <= 600:
            raise AgentError(f"vm.launch: qmp_timeout must be a number of "
                             f"seconds in (0, 600], got {qmp_timeout!r}")
        kwargs = {k: req[k] for k in LAUNCH_KEYS if k in req}
        vm = self.lab.vm(name, **kwargs)
        self.vms[name] = vm
        vm.launch(qmp_timeout=float(qmp_timeout))
        return None

    def op_vm_qmp(self, req):
        args = req.get("args") or {}
        if not isinstance(args, dict):
            raise AgentError(f"vm.qmp: args must be an object, got {args!r}")
        return self.vm(req).qmp(req.get("cmd"), **args)

    def op_vm_poll(self, req):
        return self.vm(req).poll()

    def op_vm_serial_log(self, req):
        return self.vm(req).serial_log()

    def op_vm_stderr_log(self, req):
        return self.vm(req).stderr_log()

    def op_vm_open_fds(self, req):
        return self.vm(req).open_fds()

    def op_vm_threads(self, req):
        return self.vm(req).threads()

    def op_tracer_open(self, _req):
        if self.tracer is None:
            self.tracer = torture.Tracer()
        return {"ok": self.tracer.ok, "why": self.tracer.why}

    def op_tracer_start(self, req):
        tids = req.get("tids")
        if (self.tracer is None or not isinstance(tids, list)
                or not all(isinstance(t, int) for t in tids)):
            raise AgentError("tracer.start: needs tracer.open and tids, "
                             f"a list of thread ids, got {tids!r}")
        self.tracer.start(tids)

    def op_tracer_analyse(self, _req):
        if self.tracer is None:
            raise AgentError("tracer.analyse: no tracer.open")
        res = self.tracer.analyse()
        return {"res": res, "events": self.tracer.in_flight_events,
                "tail": "\n".join(self.tracer.last_text
                                  .splitlines()[-60:])}

    def op_vm_serial_write(self, req):
        self.vm(req).serial_write(str(req.get("data", "")).encode("latin-1"))

    def op_vm_kill(self, req):
        self.vm(req).kill()
        return self.vm(req).poll()

    def op_vm_close(self, req):
        vm = self.vm(req)
        vm.close()
        del self.vms[req["name"]]
        return vm.poll()

    def handle(self, req):
        """Answer one request; (reply, stop)."""
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            return {"error": f"a request is an object with an op: {req!r}"}, \
                False
        if req["op"] == "shutdown":
            return {"return": None}, True
        fn = getattr(self, "op_" + req["op"].replace(".", "_"), None)
        if fn is None:
            return {"error": f"unknown op {req['op']!r}"}, False
        try:
            return {"return": fn(req)}, False
        except (AgentError, nkvm.NkvmError, TypeError, ValueError) as exc:
            return {"error": f"{req['op']}: {exc}"}, False


def serve(conn, agent):
    """Answer requests until shutdown or EOF; True on shutdown."""
    rfile = conn.makefile("r", encoding="utf-8")
    wfile = conn.makefile("w", encoding="utf-8")
    for line in rfile:
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            reply, stop = {"error": f"not JSON: {exc}"}, False
        else:
            reply, stop = agent.handle(req)
        wfile.write(json.dumps(reply) + "\n")
        wfile.flush()
        if stop:
            return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="ADDR:PORT")
    parser.add_argument("--allow", required=True,
                        help="the only peer address served")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen takes ADDR:PORT, got {args.listen!r}")

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(1)
    log(f"listening on {host}:{port} for {args.allow}")
    agent = Agent(host)
    try:
        while True:
            conn, peer = srv.accept()
            if peer[0] != args.allow:
                log(f"refused a connection from {peer[0]} "
                    f"(only {args.allow} is served)")
                conn.close()
                continue
            log(f"serving {peer[0]}:{peer[1]}")
            with conn:
                stop = serve(conn, agent)
            if stop:
                log("shutdown requested")
                return 0
            log("peer disconnected; its VMs are closed")
            agent.reset()
    finally:
        agent.close()
        srv.close()


if __name__ == "__main__":
    sys.exit(main())
