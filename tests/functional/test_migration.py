#!/usr/bin/env python3
"""
Live-migration behaviour an operator relies on, under TCG:

- a cancelled migration leaves the source running, and the guest then
  passes on the source;
- a migration between two test hosts (network namespaces this test
  creates, joined by a veth pair) completes and the guest passes on the
  destination host.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# pylint: disable=wrong-import-position
import nkvm  # noqa: E402

TIMEOUT = 60
tap = nkvm.Tap()
# The test hosts' own addresses, reachable only inside their namespaces.
HOSTS = {"a": "10.231.0.1", "b": "10.231.0.2"}
NETNS_PREFIX = f"nkvm{os.getpid()}"


def finish_on(vm, name):
    vm.qmp("inject-nmi")
    status = vm.wait_exit(TIMEOUT)
    tap.check(status == nkvm.EXIT_PASS, name, nkvm.exit_status_name(status))


def test_cancel(lab):
    src = lab.vm("cancel-src", "migrate").launch()
    dst = lab.vm("cancel-dst", "migrate", incoming="defer").launch()
    src.wait_for_serial_line(r"READY migrate", TIMEOUT)
    # Slow enough that the migration is still active when cancelled.
    src.qmp("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
    dst.qmp("migrate-incoming", uri=f"tcp:{nkvm.LOOPBACK}:0")
    port = dst.qmp("query-migrate")["socket-address"][0]["port"]
    src.qmp("migrate", uri=f"tcp:{nkvm.LOOPBACK}:{port}")
    active = src.wait_migration(("active",), TIMEOUT)
    src.qmp("migrate_cancel")
    info = src.wait_migration(("cancelled", "failed", "completed"),
                              TIMEOUT)
    run = src.qmp("query-status")
    tap.check(active["status"] == "active" and
              info["status"] == "cancelled" and run["status"] == "running",
              "cancelled migration: source ends cancelled and running",
              f"migrate={info['status']} source={run['status']}")
    dst.kill()
    finish_on(src, "cancelled migration: guest passes on the source")


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=30)


def make_hosts():
    """Create namespaces <prefix>a and <prefix>b joined by veth; return
    None on success, or why it could not be done."""
    for h, addr in HOSTS.items():
        r = sh("ip", "netns", "add", NETNS_PREFIX + h)
        if r.returncode:
            return r.stderr.strip() or "ip netns add failed"
    r = sh("ip", "link", "add", f"{NETNS_PREFIX}va", "type", "veth",
           "peer", "name", f"{NETNS_PREFIX}vb")
    if r.returncode:
        return r.stderr.strip()
    for h, addr in HOSTS.items():
        ns = NETNS_PREFIX + h
        dev = f"{NETNS_PREFIX}v{h}"
        for cmd in (("ip", "link", "set", dev, "netns", ns),
                    ("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev),
                    ("ip", "-n", ns, "link", "set", dev, "up"),
                    ("ip", "-n", ns, "link", "set", "lo", "up")):
            r = sh(*cmd)
            if r.returncode:
                return f"{' '.join(cmd)}: {r.stderr.strip()}"
    return None


def remove_hosts():
    for h in HOSTS:
        sh("ip", "netns", "del", NETNS_PREFIX + h)


def test_two_hosts(lab):
    name = "migration between two test hosts completes, guest passes"
    why = make_hosts()
    if why:
        tap.skip(name, f"cannot create network namespaces: {why}")
        remove_hosts()
        return
    try:
        src = lab.vm("host-a", "migrate",
                     wrapper=("ip", "netns", "exec", NETNS_PREFIX + "a"))
        dst = lab.vm("host-b", "migrate", incoming="defer",
                     wrapper=("ip", "netns", "exec", NETNS_PREFIX + "b"))
        src.launch()
        dst.launch()
        src.wait_for_serial_line(r"READY migrate", TIMEOUT)
        dst.qmp("migrate-incoming", uri=f"tcp:{HOSTS['b']}:4444")
        src.qmp("migrate", uri=f"tcp:{HOSTS['b']}:4444")
        info = src.wait_migration(timeout=TIMEOUT)
        if info["status"] == "completed":
            nkvm.wait_incoming_done(dst, time.monotonic() + TIMEOUT)
        tap.check(info["status"] == "completed",
                  "migration from host a to host b completes",
                  info.get("error-desc", info["status"]))
        finish_on(dst, "guest passes on host b")
    finally:
        remove_hosts()


def main():
    with nkvm.Lab("nkvm-migration-") as lab:
        test_cancel(lab)
        test_two_hosts(lab)
    return tap.finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nkvm.NkvmError as exc:
        print(f"not ok - migration: {exc}")
        remove_hosts()
        sys.exit(1)
