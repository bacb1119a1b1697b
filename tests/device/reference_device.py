"""A protocol test double: the device side of docs/serial-protocol.md in Python.

It tests the host's protocol logic (framing, retransmission, pipelining, resume, commit
checks), not the firmware. It listens on a loopback TCP port like QEMU's serial does
(``socket://127.0.0.1:PORT``); one host connection at a time, a new one replaces the
old. Slots live in "flash" (they survive ``reboot()`` and ``power_cut()``); the upload
session, the duplicate-detection state and the counters live in "RAM" (lost).

Packages use a toy format (``make_package``): ``EKTP`` magic, format version, target,
input/output/arena sizes, then a body; ``INFER`` (and the chunked INFER_BEGIN .. OUTPUT_READ,
``chunked=True``: firmware 0.2.0) answers a deterministic function of the input and the
body (``expected_output``), so tests can check which model served. ``chunked=False`` is a
0.1.x firmware: no HELLO capabilities, tensors in one frame only.
"""

from __future__ import annotations

import hashlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from edgekit.device import protocol as P
from edgekit.device.crc import crc32
from edgekit.device.frames import BadFrame, FrameDecoder, encode

MAGIC = b"EKTP"
_PKG = struct.Struct("<4sI16sIII")  # magic, version, target, input, output, arena


def make_package(input_size: int = 16, output_size: int = 4, body: int = 3000, target: str = "cortex-m4",
                 seed: int = 0, arena: int = 1024, version: int = 1, magic: bytes = MAGIC) -> bytes:
    body_bytes = bytes((seed * 31 + i * 7 + (i >> 8)) & 0xFF for i in range(body))
    return _PKG.pack(magic, version, target.encode(), input_size, output_size, arena) + body_bytes


def package_io(pkg: bytes) -> tuple[int, int]:
    _, _, _, i, o, _ = _PKG.unpack_from(pkg)
    return i, o


def expected_output(pkg: bytes, x: bytes) -> bytes:
    _, _, _, _, out, _ = _PKG.unpack_from(pkg)
    body = pkg[_PKG.size:] or b"\0"
    s = sum(x)
    return bytes((s + body[i % len(body)] + i) & 0xFF for i in range(out))


def expected_ticks(x: bytes) -> int:
    return 1000 + 3 * len(x)


@dataclass
class Slot:
    state: int = 0  # 0 empty, 1 receiving, 2 valid, 3 active
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    crc: int = 0
    name: str = ""

    def model_hash(self) -> str:
        return hashlib.sha256(bytes(self.data)).digest()[:8].hex() if self.state >= 2 else "00" * 8


@dataclass
class Upload:
    slot: int
    size: int
    crc: int


@dataclass
class TensorInput:
    """The chunked input being received (INFER_BEGIN), and the output of its INFER_RUN."""
    size: int
    crc: int
    data: bytearray = field(default_factory=bytearray)
    output: bytes | None = None


class ReferenceDevice:
    """Device side of the protocol on a loopback TCP port; ``url`` is its port."""

    def __init__(self, *, max_payload: int = 1024, window: int = 4, slot_size: int = 64 * 1024,
                 slot_count: int = 2, target: str = "cortex-m4", board: str = "ref-double",
                 protocol: int = 1, firmware: str = "0.9.0", arena_size: int = 64 * 1024,
                 banner: bool = True, nak: bool = True, power_cut_after_chunks: int | None = None,
                 chunk_delay: float = 0.0, chunked: bool = True, tensor_bytes: int = 64 * 1024,
                 keeps_fallback: bool = True):
        self.max_payload = max_payload
        self.window = window
        self.slot_size = slot_size
        self.target = target
        self.board = board
        self.protocol = protocol
        self.firmware = firmware
        self.arena_size = arena_size
        self.send_banner = banner
        self.nak = nak
        self.power_cut_after_chunks = power_cut_after_chunks
        self.chunk_delay = chunk_delay
        self.chunked = chunked
        self.tensor_bytes = tensor_bytes
        # False: firmware 0.1.x, whose BEGIN for the active package erased the other slot and
        # whose COMMIT named nothing (the host alone must then keep the fallback model).
        self.keeps_fallback = keeps_fallback
        self.slots = [Slot() for _ in range(slot_count)]
        self.active: int | None = None
        self.executed: dict[str, int] = {}  # request type name -> times executed (not deduplicated)
        self.boots = 0
        self.lock = threading.RLock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._conn: socket.socket | None = None
        self._stop = threading.Event()
        self._boot()
        self._thread = threading.Thread(target=self._serve, name="reference-device", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ life cycle
    def _boot(self) -> None:
        """RAM state after a reset; the banner goes to the current or next connection."""
        self.upload: Upload | None = None
        self.begin_was_active = False
        self.tensor: TensorInput | None = None
        self.last_request: tuple | None = None
        self.last_response: bytes | None = None
        self.counters = dict(frames_ok=0, frames_bad=0, naks=0, duplicates=0, inferences=0,
                             last_ticks=0)
        self.decoder = FrameDecoder(self.max_payload, skip_first=True)
        self.chunks_seen = 0
        self.boots += 1
        self._banner_pending = self.send_banner

    def reboot(self) -> None:
        with self.lock:
            self._boot()

    def power_cut(self) -> None:
        """Drop the connection and reboot (like QEMU killed and started again)."""
        with self.lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except OSError:
                    pass  # the peer already went away
                self._conn = None
            self._boot()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> ReferenceDevice:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O loop
    def _serve(self) -> None:
        """One thread: accept (a new host connection replaces the old one, like a serial
        port reopened) and handle the current connection's bytes in order."""
        while not self._stop.is_set():
            with self.lock:
                conn = self._conn
                if conn is not None and self._banner_pending:
                    self._banner_pending = False
                    self._write(conn, f"edgekit-fw {self.firmware} proto {self.protocol} target "
                                      f"{self.target} board {self.board}\n".encode() + b"\x00")
            watch = [self._listener] + ([conn] if conn is not None else [])
            try:
                ready, _, _ = select.select(watch, [], [], 0.05)
            except (OSError, ValueError):
                ready = []
                if self._stop.is_set():
                    return
            if self._listener in ready:
                try:
                    new, _ = self._listener.accept()
                except OSError:
                    continue
                with self.lock:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = new
                    self.decoder.reset()
                continue
            if conn is None or conn not in ready:
                continue
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            with self.lock:
                if conn is not self._conn:
                    continue
                if not data:
                    conn.close()
                    self._conn = None
                    continue
                for ev in self.decoder.feed(data):
                    if conn is not self._conn:
                        break
                    self._handle(conn, ev)

    def _write(self, conn: socket.socket, data: bytes) -> None:
        try:
            conn.sendall(data)
        except OSError:
            pass  # the peer already went away

    # ------------------------------------------------------------------ frames
    def _handle(self, conn, ev) -> None:
        if isinstance(ev, BadFrame):
            if ev.reason == "before first delimiter":
                return
            self.counters["frames_bad"] += 1
            if self.nak:
                self.counters["naks"] += 1
                self._write(conn, encode(P.NAK, P.NAK_SEQ))
            return
        self.counters["frames_ok"] += 1
        key = (ev.seq, ev.type, ev.payload)
        if key == self.last_request and self.last_response is not None:
            self.counters["duplicates"] += 1
            self._write(conn, self.last_response)
            return
        name = P.type_name(ev.type)
        self.executed[name] = self.executed.get(name, 0) + 1
        after = None
        try:
            rtype, payload, after = self._execute(ev.type, ev.payload)
        except _Err as e:
            rtype, payload = P.ERROR, P.pack_error(e.code, e.detail, e.msg)
        response = encode(rtype, ev.seq, payload)
        self.last_request, self.last_response = key, response
        self._write(conn, response)
        if after:
            after()

    def _execute(self, t: int, p: bytes):
        handler = {P.HELLO: self._hello, P.INFO: self._info, P.STATS: self._stats,
                   P.UPLOAD_BEGIN: self._begin, P.UPLOAD_CHUNK: self._chunk,
                   P.UPLOAD_COMMIT: self._commit, P.UPLOAD_ABORT: self._abort, P.INFER: self._infer,
                   P.RESET: self._reset}.get(t)
        if self.chunked and handler is None:
            handler = {P.INFER_BEGIN: self._infer_begin, P.INFER_CHUNK: self._infer_chunk,
                       P.INFER_RUN: self._infer_run, P.OUTPUT_READ: self._output_read}.get(t)
        if handler is None:
            raise _Err(P.E_UNKNOWN, t, "unknown type")
        result = handler(p)
        payload, after = result if isinstance(result, tuple) else (result, None)
        return t | P.RESPONSE, payload, after

    def _hello(self, p: bytes) -> bytes:
        if not p or p[0] < 1:
            raise _Err(P.E_VERSION, 1, "this device speaks protocol 1")
        return P.pack_hello_response(P.HelloInfo(self.protocol, self.firmware, self.max_payload,
                                                 self.window, len(self.slots), self.slot_size,
                                                 self.arena_size, self.target, self.board,
                                                 P.CAP_CHUNKED_TENSORS if self.chunked else None,
                                                 self.tensor_bytes if self.chunked else 0))

    def _info(self, p: bytes) -> bytes:
        slots = tuple(P.SlotInfo(i, P.SLOT_STATES[s.state], s.size, s.crc, s.name, s.model_hash())
                      for i, s in enumerate(self.slots))
        used = 0
        if self.active is not None:
            used = _PKG.unpack_from(self.slots[self.active].data)[5]
        return P.pack_info_response(P.DeviceInfo(self.active, slots, self.arena_size, used, 8192, 1234))

    def _stats(self, p: bytes) -> bytes:
        c = self.counters
        return P.pack_stats_response(P.DeviceStats(c["frames_ok"], c["frames_bad"], c["naks"],
                                                   c["duplicates"], c["inferences"], c["last_ticks"],
                                                   25_000_000, int(time.monotonic() * 1000)))

    def _begin(self, p: bytes) -> bytes:
        try:
            size, crc, name = P.parse_begin(p)
        except ValueError:
            raise _Err(P.E_STATE, 0, "short UPLOAD_BEGIN") from None
        if size > self.slot_size:
            raise _Err(P.E_TOO_LARGE, self.slot_size, "package larger than a slot")
        up = self.upload
        self.begin_was_active = False
        if self.keeps_fallback and not (up and (up.size, up.crc) == (size, crc)) and self._active_holds(size, crc):
            self.upload = None  # already active: erase nothing, COMMIT answers at once
            self.begin_was_active = True
            return P.pack_begin_response(self.active, size)
        idx = self._free_slot()
        slot = self.slots[idx]
        if slot.state == 1 and slot.size == size and slot.crc == crc:
            offset = len(slot.data)
        else:
            self.slots[idx] = slot = Slot(1, bytearray(), size, crc, name)
            offset = 0
        self.upload = Upload(idx, size, crc)
        return P.pack_begin_response(idx, offset)

    def _free_slot(self) -> int:
        for i in range(len(self.slots)):
            if i != self.active:
                return i
        raise _Err(P.E_BUSY, 0, "no free slot")

    def _chunk(self, p: bytes):
        if self.chunk_delay:
            time.sleep(self.chunk_delay)
        if self.upload is None:
            raise _Err(P.E_STATE, 0, "no upload in progress")
        if len(p) < 4:
            raise _Err(P.E_OFFSET, 0, "short chunk")
        offset = struct.unpack_from("<I", p)[0]
        data = p[4:]
        slot = self.slots[self.upload.slot]
        expected = len(slot.data)
        if offset + len(data) > self.upload.size:
            raise _Err(P.E_TOO_LARGE, self.upload.size, "chunk past the package end")
        if offset > expected:
            raise _Err(P.E_OFFSET, expected, "gap")
        if offset < expected:
            overlap = min(len(data), expected - offset)
            if bytes(slot.data[offset:offset + overlap]) != data[:overlap]:
                raise _Err(P.E_OFFSET, expected, "differs from stored bytes")
            self.counters["duplicates"] += 1
            data = data[overlap:]
        slot.data += data
        self.chunks_seen += 1
        after = None
        if self.power_cut_after_chunks is not None and self.chunks_seen == self.power_cut_after_chunks:
            self.power_cut_after_chunks = None
            after = self.power_cut  # the response is lost with the connection... or not: sent first
        return P.pack_u32(len(slot.data)), after

    def _active_holds(self, size: int, crc: int) -> bool:
        return self.active is not None and (self.slots[self.active].size, self.slots[self.active].crc) == (size, crc)

    def _commit(self, p: bytes) -> bytes:
        named = P.parse_commit(p) if self.keeps_fallback else None
        if self.upload is None:
            if (self._active_holds(*named) if named else self.begin_was_active and self.keeps_fallback):
                return bytes([self.active])  # idempotent
            raise _Err(P.E_STATE, 0, "no upload in progress")
        up = self.upload
        if named and named != (up.size, up.crc):
            raise _Err(P.E_STATE, up.size, "COMMIT names another package than the upload")
        slot = self.slots[up.slot]
        if len(slot.data) < up.size:
            raise _Err(P.E_OFFSET, len(slot.data), "package incomplete")
        self.upload = None
        if crc32(slot.data) != up.crc:
            self.slots[up.slot] = Slot()
            raise _Err(P.E_CRC, crc32(slot.data), "package CRC mismatch")
        problem = self._check_header(bytes(slot.data))
        if problem:
            self.slots[up.slot] = Slot()
            raise _Err(P.E_HEADER, 0, problem)
        if self.active is not None:
            self.slots[self.active].state = 2
        slot.state = 3
        self.active = up.slot
        return bytes([up.slot])

    def _check_header(self, pkg: bytes) -> str:
        if len(pkg) < _PKG.size:
            return "short header"
        magic, version, target, i, o, arena = _PKG.unpack_from(pkg)
        if magic != MAGIC:
            return "bad magic"
        if version != 1:
            return f"format version {version}"
        if target.rstrip(b"\0").decode() != self.target:
            return "built for another target"
        if arena > self.arena_size:
            return "sizes do not fit"
        if self.chunked and P.tensor_footprint(i, o) > self.tensor_bytes:
            return "inputs and outputs exceed the tensor buffer"
        if not self.chunked and (i > self.max_payload or o + 5 > self.max_payload):
            return "input or output larger than a frame carries"
        return ""

    def _abort(self, p: bytes) -> bytes:
        if self.upload is not None:
            self.slots[self.upload.slot] = Slot()
            self.upload = None
        return b""

    def _infer(self, p: bytes) -> bytes:
        if self.active is None:
            raise _Err(P.E_NO_MODEL, 0, "no active model")
        pkg = bytes(self.slots[self.active].data)
        i, o = package_io(pkg)
        if len(p) != i:
            raise _Err(P.E_TOO_LARGE, i, "input size")
        if o + 5 > self.max_payload:
            raise _Err(P.E_INFER, o, "output larger than a frame: use INFER_RUN")
        ticks = expected_ticks(p)
        self.counters["inferences"] += 1
        self.counters["last_ticks"] = ticks
        return P.pack_infer_response(ticks, expected_output(pkg, p))

    # ------------------------------------------------------------------ chunked tensors
    def _infer_begin(self, p: bytes) -> bytes:
        if self.active is None:
            raise _Err(P.E_NO_MODEL, 0, "no active model")
        size, crc = P.parse_infer_begin(p)
        i, o = package_io(bytes(self.slots[self.active].data))
        if size != i:
            raise _Err(P.E_TOO_LARGE, i, "input size differs from the model's")
        t = self.tensor
        if t is None or (t.size, t.crc) != (size, crc):
            self.tensor = t = TensorInput(size, crc)  # another input: start over
        return P.pack_u32(len(t.data))

    def _infer_chunk(self, p: bytes) -> bytes:
        t = self.tensor
        if t is None:
            raise _Err(P.E_STATE, 0, "INFER_CHUNK without INFER_BEGIN")
        offset, data = struct.unpack_from("<I", p)[0], p[4:]
        held = len(t.data)
        if offset + len(data) > t.size:
            raise _Err(P.E_TOO_LARGE, t.size, "chunk runs past the input's size")
        if offset > held:
            raise _Err(P.E_OFFSET, held, "gap")
        if offset < held:
            overlap = min(len(data), held - offset)
            if bytes(t.data[offset:offset + overlap]) != data[:overlap]:
                raise _Err(P.E_OFFSET, held, "differs from the bytes held")
            self.counters["duplicates"] += 1
            data = data[overlap:]
        t.data += data
        return P.pack_u32(len(t.data))

    def _infer_run(self, p: bytes) -> bytes:
        t = self.tensor
        if t is None:
            raise _Err(P.E_STATE, 0, "INFER_RUN without INFER_BEGIN")
        if len(t.data) < t.size:
            raise _Err(P.E_OFFSET, len(t.data), "input incomplete")
        if crc32(t.data) != t.crc:
            self.tensor = None
            raise _Err(P.E_CRC, crc32(t.data), "input CRC mismatch")
        pkg = bytes(self.slots[self.active].data)
        x = bytes(t.data)
        t.output = expected_output(pkg, x)
        ticks = expected_ticks(x)
        self.counters["inferences"] += 1
        self.counters["last_ticks"] = ticks
        return P.pack_infer_run_response(ticks, t.output, self.max_payload)

    def _output_read(self, p: bytes) -> bytes:
        t = self.tensor
        if t is None or t.output is None:
            raise _Err(P.E_STATE, 0, "no output: INFER_RUN first")
        offset, length = P.parse_output_read(p)
        if offset > len(t.output):
            raise _Err(P.E_OFFSET, len(t.output), "offset past the output")
        n = min(length, len(t.output) - offset, self.max_payload - 4)
        return P.pack_u32(offset) + t.output[offset:offset + n]

    def _reset(self, p: bytes):
        return b"", self.reboot


class _Err(Exception):
    def __init__(self, code: int, detail: int = 0, msg: str = ""):
        self.code, self.detail, self.msg = code, detail, msg
