#!/usr/bin/env python3
"""
The loopback proxy that breaks migrations at a chosen phase
(HoldingProxy in tests/functional/nested_stream.py), with plain sockets
for source and destination:

- at device, a source that has more to write after the cpu section
  finishes writing it (the proxy reads and drops it), and the
  destination gets the stream up to the cpu section and nothing more.
  QEMU writes that state with the BQL held, so a source blocked there
  blocks every QMP command (a lab torture timed out in query-status for
  60 s that way, CI of 2026-12-02);
- cut() still resets the source's connection while the proxy drains;
- at live, the source stays blocked mid-stream, the destination having
  exactly LIVE_BYTES.

The cpu section header is QEMU's (migration/savevm.c,
save_section_header()): QEMU_VM_SECTION_FULL, a 32-bit section id, the
idstr as a length byte and "cpu", the 32-bit instance id, the 32-bit
version.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import socket
import struct
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
# pylint: disable=wrong-import-position
import nkvm  # noqa: E402
import nested_stream as ns  # noqa: E402

tap = nkvm.Tap("holding-proxy: ")

# More than any loopback socket buffers hold: Linux caps autotuning at
# tcp_wmem[2] (4 MiB) plus tcp_rmem[2] (6 MiB) by default.
AFTER_CPU = 32 << 20
RAM = bytes(range(256)) * 1024
CPU_HEADER = (bytes([ns.QEMU_VM_SECTION_FULL]) + struct.pack(">I", 7) +
              bytes([3]) + b"cpu" + struct.pack(">I", 0) +
              struct.pack(">I", 17))


class Destination:
    """A listener that keeps whatever reaches it."""

    def __init__(self):
        self.listener = socket.create_server((ns.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.got = bytearray()
        self.conn = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.conn, _ = self.listener.accept()
        while True:
            try:
                data = self.conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.got += data

    def close(self):
        """Stop reading; what arrived until now is in got."""
        if self.conn:
            self.conn.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.listener.close()
        if self.conn:
            self.conn.close()


class Source:
    """A client that writes STREAM through the proxy in its own thread."""

    def __init__(self, port, stream):
        self.sock = socket.create_connection((ns.LOOPBACK, port), 10)
        self.sock.settimeout(None)
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(stream,),
                                       daemon=True)
        self.thread.start()

    def _run(self, stream):
        try:
            self.sock.sendall(stream)
        except OSError as exc:
            self.error = exc

    def finished(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def reset_seen(self):
        """Whether the connection ends in a reset (within 5 s)."""
        self.sock.settimeout(5)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except OSError:
            return False
        return False


def device_phase():
    dst = Destination()
    proxy = ns.HoldingProxy(dst.port, "device")
    src = Source(proxy.port, RAM + CPU_HEADER + bytes(AFTER_CPU))
    held = proxy.held.wait(10)
    done = src.finished(20)
    tap.check(held and done and src.error is None,
              "device: the source writes all its state after the cpu "
              "section", f"held={held} finished={done} error={src.error}")
    want = len(CPU_HEADER) + AFTER_CPU
    dropped = nkvm.poll(lambda: proxy.discarded, lambda n: n == want, 10)
    tap.check(dropped == want, "device: the proxy read and dropped all of it",
              f"{dropped} of {want} bytes")
    proxy.cut()
    tap.check(src.reset_seen(),
              "device: cut() resets the source's connection while the "
              "proxy drains")
    dst.close()
    proxy.close()
    tap.check(bytes(dst.got) == RAM,
              "device: the destination has the stream up to the cpu "
              "section and nothing after it",
              f"{len(dst.got)} bytes, want {len(RAM)}")


def live_phase():
    dst = Destination()
    proxy = ns.HoldingProxy(dst.port, "live")
    src = Source(proxy.port, RAM + bytes(AFTER_CPU))
    held = proxy.held.wait(10)
    blocked = not src.finished(1)
    tap.check(held and blocked,
              "live: the source stays blocked mid-stream",
              f"held={held} blocked={blocked}")
    proxy.cut()
    src.finished(10)
    dst.close()
    proxy.close()
    tap.check(len(dst.got) == ns.LIVE_BYTES,
              "live: the destination has exactly LIVE_BYTES",
              f"{len(dst.got)} bytes, want {ns.LIVE_BYTES}")


def main():
    device_phase()
    live_phase()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
