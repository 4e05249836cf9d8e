"""
nested_stream: build the cpu/nested-events migration subsection by hand
and splice it into a saved migration stream, to test how a destination
treats crafted or hostile in-flight event state.

Version 2 of the subsection carries only the compact form of
target-i386/nested-wire.h: the fields below, each on the wire only when
the flag that announces it is set in what came before (the _TEST fields
of vmstate_nested_event_wire in target-i386/mirror/nested-mirror-vmstate.c).
The destination rebuilds the rest of the model from the CPU fields of
the same stream.  The wire format of a subsection (QEMU_VM_SUBSECTION,
name, version, fields) and of section headers and footers is QEMU's
migration/savevm.c.  model_v1() still builds the version 1 layout (the
whole model, 120 bytes), which destinations now refuse by version.

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
SUBSECTION_VERSION = 2

# Event types (VMX numbering) and origins of the model.
EXT_INTR, NMI, HW_EXCEPTION, SOFT_INTR = 0, 2, 3, 4
PRIV_SOFT_EXCEPTION, SOFT_EXCEPTION, OTHER = 5, 6, 7
ORIGIN_L0, ORIGIN_L1 = 0, 1
VENDOR_SVM = 1
# kvm_vcpu_events.interrupt.shadow
SHADOW_MOV_SS, SHADOW_STI = 1, 2

# The bits of the wire's flags, event and exc_info bytes (nested-wire.h).
FLAG_EVENT = 0x01
FLAG_EXCEPTION = 0x02
FLAG_TRIPLE_FAULT = 0x04
FLAG_SMI_PENDING = 0x08
FLAG_SMI_LATCHED_INIT = 0x10
FLAGS_ALL = 0x1F
EVENT_TYPE = 0x07
EVENT_L1 = 0x08
EVENT_ERROR_CODE = 0x10
EVENT_ALL = 0x1F
EXC_ERROR_CODE = 0x01
EXC_PAYLOAD = 0x02
EXC_ALL = 0x03

# The VMState descriptions that load the subsection: QEMU names them in
# "Failed to load <vmsd>:<field>".  The wire's fields live in a
# VMSTATE_WITH_TMP, whose own field is called "tmp".
VMSD_TOP = "cpu/nested-events"
VMSD_WIRE = "cpu/nested-events/wire"
TMP_FIELD = "tmp"


def always(_w):
    return True


def _has_event(w):
    return bool(w["flags"] & FLAG_EVENT)


def _has_exception(w):
    return bool(w["flags"] & FLAG_EXCEPTION)


# The wire layout, in stream order: (name, struct format, on the wire
# when).  The VMState field is "wire.<name>".
WIRE_FIELDS = (
    ("flags", "B", always),
    ("shadow", "B", always),
    ("event", "B", _has_event),
    ("vector", "B", _has_event),
    ("error_code", "I",
     lambda w: _has_event(w) and bool(w["event"] & EVENT_ERROR_CODE)),
    ("exc_vector", "B", _has_exception),
    ("exc_info", "B", _has_exception),
    ("exc_error_code", "I",
     lambda w: _has_exception(w) and bool(w["exc_info"] & EXC_ERROR_CODE)),
    ("exc_payload", "Q",
     lambda w: _has_exception(w) and bool(w["exc_info"] & EXC_PAYLOAD)),
)
WIRE_NAMES = tuple(name for name, _, _ in WIRE_FIELDS)
# Framing (type, name length, name, version) and the fields' extremes:
# nested-wire.h's NESTED_WIRE_FRAMING, _MIN_SIZE and _MAX_SIZE.
FRAMING = 2 + len(SUBSECTION_NAME) + 4
WIRE_MIN_SIZE = 2
WIRE_MAX_SIZE = 22


def wire_values(values):
    """All nine wire fields, those not in VALUES 0."""
    unknown = set(values) - set(WIRE_NAMES)
    if unknown:
        raise KeyError(f"no such field: {sorted(unknown)}")
    return {name: values.get(name, 0) for name in WIRE_NAMES}


def layout(values):
    """[(name, format, offset)] of the fields that go on the wire for
    VALUES, as the destination will read them."""
    w = wire_values(values)
    out, pos = [], 0
    for name, fmt, present in WIRE_FIELDS:
        if present(w):
            out.append((name, fmt, pos))
            pos += struct.calcsize(">" + fmt)
    return out


def encode(values):
    """The payload for wire fields given as {name: value}; a field whose
    flag is clear is left off, whatever VALUES says, as the sender's
    VMState does."""
    w = wire_values(values)
    return b"".join(struct.pack(">" + fmt, w[name])
                    for name, fmt, _ in layout(w))


def decode(payload):
    """Inverse of encode(): ({name: value}, bytes read); raises
    ValueError where PAYLOAD ends inside a field."""
    w = wire_values({})
    pos = 0
    for name, fmt, present in WIRE_FIELDS:
        if not present(w):
            continue
        size = struct.calcsize(">" + fmt)
        if pos + size > len(payload):
            raise ValueError(f"payload ends inside {name} at byte {pos}")
        (w[name],) = struct.unpack(">" + fmt, payload[pos:pos + size])
        pos += size
    return w, pos


def event(type_, vector, origin=ORIGIN_L0, error_code=None):
    """The wire fields of an injected event of the current level."""
    out = {"event": (type_ & EVENT_TYPE) |
           (EVENT_L1 if origin == ORIGIN_L1 else 0), "vector": vector}
    if error_code is not None:
        out["event"] |= EVENT_ERROR_CODE
        out["error_code"] = error_code
    return out


def pending_exception(vector, error_code=None, payload=None):
    """The wire fields of the current level's pending exception."""
    out = {"exc_vector": vector, "exc_info": 0}
    if error_code is not None:
        out["exc_info"] |= EXC_ERROR_CODE
        out["exc_error_code"] = error_code
    if payload is not None:
        out["exc_info"] |= EXC_PAYLOAD
        out["exc_payload"] = payload
    return out


def fields(injected=None, exception=None, shadow=0, triple_fault=False,
           smi_pending=False, smi_latched_init=False):
    """{name: value} of the wire fields for a model of the current level
    (L2's in guest mode, L1's otherwise: the stream's hflags decide)."""
    w = {"flags": 0, "shadow": shadow}
    if injected:
        w["flags"] |= FLAG_EVENT
        w.update(injected)
    if exception:
        w["flags"] |= FLAG_EXCEPTION
        w.update(exception)
    for on, bit in ((triple_fault, FLAG_TRIPLE_FAULT),
                    (smi_pending, FLAG_SMI_PENDING),
                    (smi_latched_init, FLAG_SMI_LATCHED_INIT)):
        if on:
            w["flags"] |= bit
    return wire_values(w)


def model(**kwargs):
    """The payload of fields(**kwargs)."""
    return encode(fields(**kwargs))


# Version 1: the whole model, struct by struct (kept only to check that
# it is refused).  Head, then an L1 and an L2 level of event, exception
# and NMI/shadow tail.
_V1_HEAD = ">B?????I????"
_V1_EVENT = ">?BBB?IBQQQ"
_V1_EXCEPTION = ">?B?I?Q"
_V1_TAIL = ">B?B"


def model_v1(guest_mode=False, injected=None):
    """A version 1 payload; INJECTED is (type, vector, origin, insn_len,
    old_rip, next_rip) for the current level, or None."""
    def level(ev):
        if ev:
            type_, vector, origin, insn_len, old_rip, next_rip = ev
            evb = struct.pack(_V1_EVENT, True, type_, vector, origin,
                              False, 0, insn_len, old_rip, next_rip, 0)
        else:
            evb = struct.pack(_V1_EVENT, *([0] * 10))
        return evb + struct.pack(_V1_EXCEPTION, *([0] * 6)) + \
            struct.pack(_V1_TAIL, 0, False, 0)
    head = struct.pack(_V1_HEAD, VENDOR_SVM, guest_mode, False, True,
                       False, False, 0, False, False, False, False)
    return head + level(None if guest_mode else injected) + \
        level(injected if guest_mode else None)


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
# The source's rate while held at setup or live.  Loopback's socket
# buffers can take a whole first pass of a small guest (about 144 KiB
# for 64 MiB), so at full speed a source "held" at setup can reach its
# final stop before the test asks for its run state: once in the
# clean-clone make check of 2026-12-03, with four labs on two cores, a
# source held at setup was found in finish-migrate.  At 32 KiB/s the
# first pass takes seconds, the hold at live comes about 1 s in.
HOLD_BANDWIDTH = 32 << 10
LOOPBACK = "127.0.0.1"


class HoldingProxy:
    """Forward a migration stream to TARGET_PORT on loopback, but only up
    to the point PHASE names; then hold it until cut() or close().  At
    setup and live the source is held by the stream it cannot write, once
    the socket buffers are full, and slowed (HOLD_BANDWIDTH) so that it
    cannot end its first pass before they are; at device the rest is read
    and dropped, so only the destination waits."""

    def __init__(self, target_port, phase):
        self.target_port = target_port
        self.phase = phase
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self.closing = threading.Event()
        self.discarded = 0
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
                    if self.phase == "device":
                        self._discard(client, len(buf))
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

    def _discard(self, client, already):
        """Read and drop the rest of the source's stream.  The source
        writes its device state with the BQL held
        (migration_completion_precopy()), so a proxy that stopped
        reading would block it there, and every QMP command with it,
        whenever the state after the cpu section outgrew the socket
        buffers.  Only the destination must not get it: the source then
        waits for its reply on the return path, stopped, without the
        BQL.  The short timeout lets cut() stop this loop before it
        closes the socket, which a recv() in progress would keep open."""
        self.discarded = already
        client.settimeout(0.05)
        while not self.closing.is_set():
            try:
                data = client.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.discarded += len(data)

    @staticmethod
    def _pump(src, dst):
        pump(src, dst, shutdown=False)

    def cut(self):
        """Reset both connections, as a link that goes away would."""
        self.closing.set()
        self.thread.join(5)
        for s in self.socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def close(self):
        self.closing.set()
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
        if phase in ("setup", "live"):
            # RAM still streaming when held, and long after.
            src.qmp("migrate-set-parameters",
                    **{"max-bandwidth": HOLD_BANDWIDTH})
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


# A model every destination refuses, in or out of guest mode (the stream
# decides which level it lands in): an NMI on vector 5.
REFUSED_MODEL = model(injected=event(NMI, 5))
REFUSED_TEXT = "injected.vector=5: NMI must use vector 2"


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
