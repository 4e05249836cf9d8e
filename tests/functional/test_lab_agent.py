#!/usr/bin/env python3
"""
The lab pair's agent (tests/lab/lab-agent.py) and its client
(tests/lab/remote.py), on this machine's loopback under TCG, without
the lab:

- a connection from an address other than --allow gets no answer and
  is closed;
- bad requests get an error naming what was wrong, and the agent keeps
  serving;
- a VM started through the agent is a destination that nkvm.migrate()
  migrates to, and the guest passes there; the source is a local VM;
- "shutdown" ends the agent with status 0.

The agent listens on 127.0.0.1 and serves 127.0.0.2 only; the test
connects from each.  Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import remote  # noqa: E402

AGENT = Path(__file__).resolve().parents[1] / "lab" / "lab-agent.py"
ALLOWED = "127.0.0.2"
TIMEOUT = 60
tap = nkvm.Tap()


def free_port():
    with socket.socket() as s:
        s.bind((nkvm.LOOPBACK, 0))
        return s.getsockname()[1]


def connect_from(source, port):
    """A socket to the agent whose source address is SOURCE."""
    deadline = time.monotonic() + 15
    while True:
        s = socket.socket()
        s.bind((source, 0))
        try:
            s.connect((nkvm.LOOPBACK, port))
            return s
        except OSError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def test_refusal(port):
    with connect_from(nkvm.LOOPBACK, port) as s:
        s.settimeout(10)
        try:
            s.sendall(b'{"op": "ping"}\n')
            answer = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
    tap.check(answer == b"", "a connection from another address gets no "
              "answer", f"answer {answer!r}")


def request(sock_file, line):
    rfile, wfile = sock_file
    wfile.write(line + "\n")
    wfile.flush()
    return json.loads(rfile.readline())


def test_bad_requests(port):
    with connect_from(ALLOWED, port) as s:
        files = (s.makefile("r"), s.makefile("w"))
        cases = [
            ("not JSON", "{oops", "not JSON"),
            ("no op", '{"name": "x"}', "op"),
            ("unknown op", '{"op": "format-disk"}', "'format-disk'"),
            ("bad VM name", '{"op": "vm.launch", "name": "../x", '
             '"scenario": "smoke"}', "'../x'"),
            ("unknown launch key", '{"op": "vm.launch", "name": "v", '
             '"scenario": "smoke", "binary": "/bin/sh"}', "binary"),
            ("bad QMP timeout", '{"op": "vm.launch", "name": "v", '
             '"scenario": "smoke", "qmp_timeout": "soon"}', "'soon'"),
            ("unknown VM", '{"op": "vm.qmp", "name": "nope", '
             '"cmd": "query-status"}', "'nope'"),
            ("run argv not a list", '{"op": "run", "argv": "uname"}',
             "'uname'"),
            ("tracer before open", '{"op": "tracer.analyse"}',
             "tracer.open"),
        ]
        for what, line, names in cases:
            reply = request(files, line)
            tap.check("error" in reply and names in reply["error"],
                      f"bad request ({what}): an error that names it",
                      json.dumps(reply))
        reply = request(files, '{"op": "ping"}')
        tap.check("return" in reply and reply["return"].get("kernel"),
                  "after the bad requests the agent still answers",
                  json.dumps(reply))


def test_migration(port):
    agent = remote.AgentClient(nkvm.LOOPBACK, port, timeout=15,
                               source=ALLOWED)
    with nkvm.Lab() as lab:
        src = lab.vm("agent-src", "migrate").launch()
        dst = remote.RemoteVM(agent, lab, "agent-dst", "migrate",
                              incoming="defer")
        lab.vms.append(dst)
        dst.launch()
        src.wait_for_serial_line(r"READY migrate", TIMEOUT)
        info = nkvm.migrate(src, dst, timeout=TIMEOUT)
        tap.check(info.get("status") == "completed",
                  "migration to a VM started through the agent completes",
                  str(info.get("status")))
        dst.qmp("inject-nmi")
        status = dst.wait_exit(TIMEOUT, fatal=False)
        tap.check(status == nkvm.EXIT_PASS,
                  "the guest passes on the agent's side",
                  nkvm.exit_status_name(status))
    agent.close(shutdown=True)


def main():
    tap_env = nkvm.check_environment(tap)
    if not tap_env:
        return tap.finish()
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(AGENT), "--listen",
                             f"{nkvm.LOOPBACK}:{port}", "--allow", ALLOWED],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        test_refusal(port)
        test_bad_requests(port)
        test_migration(port)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        tap.check(rc == 0, "shutdown ends the agent with status 0",
                  f"status {rc}")
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1]
        for line in err.splitlines()[-12:]:
            print(f"# agent: {line}")
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
