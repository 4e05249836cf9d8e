"""
nested_stream: build the cpu/nested-events migration subsection by hand
and splice it into a saved migration stream, to test how a destination
treats crafted or hostile in-flight event state.

The field order and widths follow vmstate_nested_events in
target-i386/mirror/nested-mirror-vmstate.c; the wire format of a subsection
(QEMU_VM_SUBSECTION, name, version, fields) and of section headers and
footers is QEMU's migration/savevm.c.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import contextlib
import socket
import struct
import threading

QEMU_VM_SECTION_FULL = 0x04
QEMU_VM_SUBSECTION = 0x05
QEMU_VM_SECTION_FOOTER = 0x7E
SUBSECTION_NAME = b"cpu/nested-events"
SUBSECTION_VERSION = 1

# Event types (VMX numbering) and origins of the model.
EXT_INTR, NMI, HW_EXCEPTION, SOFT_INTR = 0, 2, 3, 4
PRIV_SOFT_EXCEPTION, SOFT_EXCEPTION = 5, 6
ORIGIN_L0, ORIGIN_L1 = 0, 1
VENDOR_SVM = 1


# The wire layout, field by field: (path in the model, struct format).
# A path is also how the destination's error names the field.
EVENT_FIELDS = (("valid", "?"), ("type", "B"), ("vector", "B"),
                ("origin", "B"), ("has_error_code", "?"),
                ("error_code", "I"), ("insn_len", "B"), ("old_rip", "Q"),
                ("next_rip", "Q"), ("cs_base", "Q"))
EXCEPTION_FIELDS = (("pending", "?"), ("vector", "B"),
                    ("has_error_code", "?"), ("error_code", "I"),
                    ("has_payload", "?"), ("payload", "Q"))
LEVEL_TAIL_FIELDS = (("nmi_pending", "B"), ("nmi_masked", "?"),
                     ("interrupt_shadow", "B"))
HEAD_FIELDS = (("vendor", "B"), ("guest_mode", "?"),
               ("nested_run_pending", "?"), ("gif", "?"),
               ("triple_fault_pending", "?"), ("sipi_vector_valid", "?"),
               ("sipi_vector", "I"), ("smi.smm", "?"), ("smi.pending", "?"),
               ("smi.smm_inside_nmi", "?"), ("smi.latched_init", "?"))
# The VMState description that loads each part, for QEMU's
# "Failed to load <vmsd>:<field>".
VMSD_EVENT = "cpu/nested-events/event"
VMSD_EXCEPTION = "cpu/nested-events/exception"
VMSD_LEVEL = "cpu/nested-events/level"
VMSD_STATE = "cpu/nested-events/state"


def _level_fields(prefix):
    return ([(f"{prefix}.injected.{n}", f, VMSD_EVENT, n)
             for n, f in EVENT_FIELDS] +
            [(f"{prefix}.exception.{n}", f, VMSD_EXCEPTION, n)
             for n, f in EXCEPTION_FIELDS] +
            [(f"{prefix}.{n}", f, VMSD_LEVEL, n)
             for n, f in LEVEL_TAIL_FIELDS])


# (path, format, vmsd, VMState field name), in stream order.
MODEL_FIELDS = tuple([(n, f, VMSD_STATE, n) for n, f in HEAD_FIELDS] +
                     _level_fields("l1") + _level_fields("l2"))
MODEL_DEFAULTS = {"vendor": 1, "gif": True}


def encode(values):
    """The payload for a model given as {path: value}; paths not named
    take MODEL_DEFAULTS or 0."""
    unknown = set(values) - {path for path, _, _, _ in MODEL_FIELDS}
    if unknown:
        raise KeyError(f"no such field: {sorted(unknown)}")
    return b"".join(struct.pack(">" + fmt,
                                values.get(path, MODEL_DEFAULTS.get(path, 0)))
                    for path, fmt, _, _ in MODEL_FIELDS)


def event(valid=False, type_=0, vector=0, origin=ORIGIN_L0,
          has_error_code=False, error_code=0, insn_len=0,
          old_rip=0, next_rip=0, cs_base=0):
    return struct.pack(">" + "".join(f for _, f in EVENT_FIELDS),
                       valid, type_, vector, origin, has_error_code,
                       error_code, insn_len, old_rip, next_rip, cs_base)


def pending_exception(pending=False, vector=0, has_error_code=False,
                      error_code=0, has_payload=False, payload=0):
    return struct.pack(">" + "".join(f for _, f in EXCEPTION_FIELDS),
                       pending, vector, has_error_code, error_code,
                       has_payload, payload)


def level(injected=None, exception=None, nmi_pending=0, nmi_masked=False,
          interrupt_shadow=0):
    return (injected or event()) + (exception or pending_exception()) + \
        struct.pack(">" + "".join(f for _, f in LEVEL_TAIL_FIELDS),
                    nmi_pending, nmi_masked, interrupt_shadow)


def model(vendor=VENDOR_SVM, guest_mode=False, nested_run_pending=False,
          gif=True, triple_fault_pending=False, l1=None, l2=None):
    head = struct.pack(">" + "".join(f for _, f in HEAD_FIELDS), vendor,
                       guest_mode, nested_run_pending, gif,
                       triple_fault_pending, False, 0, False, False, False,
                       False)
    return head + (l1 or level()) + (l2 or level())


def subsection_header_len(name=SUBSECTION_NAME):
    """Bytes before the payload: type, name length, name, version."""
    return 2 + len(name) + 4


def subsection(payload, version=SUBSECTION_VERSION, name=SUBSECTION_NAME):
    return bytes([QEMU_VM_SUBSECTION, len(name)]) + name + \
        struct.pack(">I", version) + payload


def _cpu_section_bounds(stream, instance):
    """Return (header end, footer offset) of the cpu section INSTANCE."""
    idstr = b"cpu"
    needle = bytes([len(idstr)]) + idstr + struct.pack(">I", instance)
    pos = 0
    while True:
        pos = stream.find(needle, pos)
        if pos < 0:
            raise ValueError(f"no cpu section for instance {instance}")
        start = pos - 5
        if start >= 0 and stream[start] == QEMU_VM_SECTION_FULL:
            break
        pos += 1
    section_id = stream[start + 1:start + 5]
    body = pos + len(needle) + 4            # skip version_id
    footer = bytes([QEMU_VM_SECTION_FOOTER]) + section_id
    end = body
    while True:
        end = stream.find(footer, end)
        if end < 0:
            raise ValueError("cpu section has no footer")
        nxt = end + len(footer)
        # A footer is followed by the next section's type byte or EOF.
        if nxt >= len(stream) or stream[nxt] in range(0x01, 0x09):
            return body, end
        end += 1


def splice(stream, sub, instance=0):
    """Insert the subsection bytes SUB at the end of cpu INSTANCE."""
    _, footer = _cpu_section_bounds(stream, instance)
    return stream[:footer] + sub + stream[footer:]


def pump(src, dst, shutdown):
    """Copy SRC to DST until either side ends; with SHUTDOWN, then end
    both connections too."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst) if shutdown else ():
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def migrate_spliced(src, dst, sub, host="127.0.0.1"):
    """Start a live migration of src to dst (launched with
    incoming="defer") through a SplicingProxy that adds SUB.  Returns the
    proxy; the caller closes it."""
    dst.qmp("migrate-incoming", uri=f"tcp:{host}:0")
    port = dst.qmp("query-migrate")["socket-address"][0]["port"]
    proxy = SplicingProxy(sub, int(port))
    try:
        src.qmp("migrate", uri=f"tcp:{host}:{proxy.port}")
    except BaseException:
        proxy.close()
        raise
    return proxy


class SplicingProxy:
    """A loopback TCP proxy that forwards a live migration stream and
    splices SUB into it once the cpu section has passed, so that a
    destination receives a hostile stream from an unmodified source.
    The return path (destination to source) is forwarded unchanged."""

    def __init__(self, sub, target_port):
        self.sub = sub
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.spliced = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _pump(src, dst):
        pump(src, dst, shutdown=True)

    def _forward_spliced(self, src, dst):
        # Hold back only what may still be part of the cpu section, so
        # that a large RAM stream passes through without being rescanned.
        keep = 64 * 1024
        buf = b""
        try:
            while not self.spliced:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                try:
                    _, footer = _cpu_section_bounds(buf, 0)
                except ValueError:
                    if b"\x03cpu" not in buf and len(buf) > keep:
                        dst.sendall(buf[:-keep])
                        buf = buf[-keep:]
                    continue
                buf = buf[:footer] + self.sub + buf[footer:]
                self.spliced = True
            dst.sendall(buf)
        except OSError:
            return
        self._pump(src, dst)

    def _run(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1",
                                                 self.target_port), 30)
        back = threading.Thread(target=self._pump,
                                      args=(server, client), daemon=True)
        back.start()
        self._forward_spliced(client, server)
        back.join(30)

    def close(self):
        self.listener.close()
        self.thread.join(5)


def cpu_section_start(buf):
    """Offset of the first cpu section's header in BUF, or -1."""
    needle = bytes([3]) + b"cpu" + struct.pack(">I", 0)
    pos = buf.find(needle)
    while pos >= 0:
        if pos >= 5 and buf[pos - 5] == QEMU_VM_SECTION_FULL:
            return pos - 5
        pos = buf.find(needle, pos + 1)
    return -1


# Where HoldingProxy holds a stream: nothing delivered yet; the RAM
# iteration under way (LIVE_BYTES delivered); RAM done and the source
# stopped, right before the cpu section.  And how a test then breaks it.
PHASES = ("setup", "live", "device")
ACTIONS = ("kill-dst", "cancel", "cut")
# Inside the first RAM pass for certain: even an all-zero 32 MiB guest
# takes about 72 KiB of zero-page records, and a migration cannot
# converge (and stop the source) before its first pass is through.
LIVE_BYTES = 32 << 10
LOOPBACK = "127.0.0.1"


class HoldingProxy:
    """Forward a migration stream to TARGET_PORT on loopback, but only up
    to the point PHASE names; then hold it until cut() or close()."""

    def __init__(self, target_port, phase):
        self.target_port = target_port
        self.phase = phase
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(1)
        self.listener.settimeout(60)
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
            server = socket.create_connection((LOOPBACK,
                                               self.target_port), 60)
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
        pump(src, dst, shutdown=False)

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


@contextlib.contextmanager
def return_path(src, dst):
    """The return-path capability on for one migration of SRC to DST: a
    source learns only over it that its destination failed after the
    whole stream was written (otherwise it ends "completed", paused)."""
    def has(vm):
        return any(c["capability"] == "return-path" and c["state"]
                   for c in vm.qmp("query-migrate-capabilities"))

    def put(vm, state):
        vm.qmp("migrate-set-capabilities", capabilities=[
            {"capability": "return-path", "state": state}])

    had = has(src)
    put(src, True)
    put(dst, True)
    try:
        yield
    finally:
        put(src, had)


def break_migration(src, dst, phase, action, timeout=60.0):
    """Migrate SRC to DST (launched with incoming="defer") through a
    HoldingProxy; once the stream is held at PHASE, break it by ACTION.
    Returns (the source's run state while held, or None if the stream
    was never held, and its final query-migrate status)."""
    with return_path(src, dst):
        return _break_migration(src, dst, phase, action, timeout)


def _break_migration(src, dst, phase, action, timeout):
    dst.qmp("migrate-incoming", uri=f"tcp:{LOOPBACK}:0")
    port = dst.qmp("query-migrate")["socket-address"][0]["port"]
    proxy = HoldingProxy(int(port), phase)
    try:
        if phase == "live":
            # Slow enough that RAM is still streaming when held.
            src.qmp("migrate-set-parameters", **{"max-bandwidth": 8 << 20})
        src.qmp("migrate", uri=f"tcp:{LOOPBACK}:{proxy.port}")
        if not proxy.held.wait(timeout):
            src.qmp("migrate_cancel")
            return None, src.wait_migration(timeout=timeout)["status"]
        held = src.qmp("query-status")["status"]
        if action == "kill-dst":
            dst.kill()
            proxy.cut()
        elif action == "cancel":
            src.qmp("migrate_cancel")
        else:
            proxy.cut()
        return held, src.wait_migration(timeout=timeout)["status"]
    finally:
        proxy.close()
        dst.kill()
        src.qmp("migrate-set-parameters", **{"max-bandwidth": 1 << 40})


def broken_as_expected(phase, action, held, status):
    """Why a break_migration() result is wrong, or None."""
    want = "finish-migrate" if phase == "device" else "running"
    # A cancel while the stream is stuck in a socket write can end
    # "failed": the return-path thread sees the socket shut and records
    # an error before the clean-up reads CANCELLING.
    expect = ("cancelled", "failed") if action == "cancel" else ("failed",)
    if held is None:
        return f"the stream was never held at {phase} (migrate={status})"
    if held != want or status not in expect:
        return (f"source {held} while held (want {want}); migrate={status} "
                f"(want {' or '.join(expect)})")
    return None


# A model every destination refuses: an NMI on vector 5.
REFUSED_MODEL = model(guest_mode=True,
                      l2=level(injected=event(True, NMI, 5, ORIGIN_L1)))
REFUSED_TEXT = "l2.injected.vector=5"


def refuse_migration(src, dst, timeout=60.0):
    """Migrate SRC to DST (incoming="defer") with REFUSED_MODEL spliced
    in; the destination must exit 1 naming the field and the source
    must end failed.  Returns why not, or None."""
    with return_path(src, dst):
        return _refuse_migration(src, dst, timeout)


def _refuse_migration(src, dst, timeout):
    proxy = migrate_spliced(src, dst, subsection(REFUSED_MODEL), LOOPBACK)
    try:
        status = src.wait_migration(timeout=timeout)["status"]
        dst_exit = dst.wait_exit(timeout, fatal=False)
        if not proxy.spliced or status != "failed" or dst_exit != 1 or \
                REFUSED_TEXT not in dst.stderr_log():
            return (f"spliced={proxy.spliced} migrate={status} "
                    f"dst_exit={dst_exit}, want a failed migration and "
                    f"{REFUSED_TEXT!r} from the destination")
        return None
    finally:
        proxy.close()
        dst.kill()
