"""Message types, error codes and payload layouts of the serial protocol, version 1
(docs/serial-protocol.md, sections 3 and 4). Pure data: no I/O here.

Parsers accept trailing bytes they do not know (section 7) and raise ``ValueError`` on
a payload shorter than its fixed fields.
"""

from __future__ import annotations

import re
import struct
from dataclasses import asdict, dataclass

# Requests (a successful response has type | 0x80).
HELLO = 0x01
INFO = 0x02
STATS = 0x03
UPLOAD_BEGIN = 0x10
UPLOAD_CHUNK = 0x11
UPLOAD_COMMIT = 0x12
UPLOAD_ABORT = 0x13
INFER = 0x20
# Chunked tensors (an input or output larger than a frame; HELLO capability CAP_CHUNKED_TENSORS)
INFER_BEGIN = 0x21
INFER_CHUNK = 0x22
INFER_RUN = 0x23
OUTPUT_READ = 0x24
# Per-op ticks of the last inference (profiling firmware; HELLO capability CAP_PROFILE)
PROFILE = 0x25
RESET = 0x30
RESPONSE = 0x80
ERROR = 0x7F
NAK = 0x7E
NAK_SEQ = 0xFFFF  # the seq a NAK carries; hosts never use it for a request

TYPE_NAMES = {HELLO: "HELLO", INFO: "INFO", STATS: "STATS", UPLOAD_BEGIN: "UPLOAD_BEGIN",
              UPLOAD_CHUNK: "UPLOAD_CHUNK", UPLOAD_COMMIT: "UPLOAD_COMMIT",
              UPLOAD_ABORT: "UPLOAD_ABORT", INFER: "INFER", INFER_BEGIN: "INFER_BEGIN",
              INFER_CHUNK: "INFER_CHUNK", INFER_RUN: "INFER_RUN", OUTPUT_READ: "OUTPUT_READ", PROFILE: "PROFILE",
              RESET: "RESET", ERROR: "ERROR", NAK: "NAK"}

# HELLO capabilities (a trailing field since firmware 0.2.0; absent: none)
CAP_CHUNKED_TENSORS = 0x1
CAP_PROFILE = 0x2  # PROFILE: firmware built with --profile (0.3.0 on)

E_VERSION, E_UNKNOWN, E_STATE, E_OFFSET, E_TOO_LARGE, E_CRC, E_HEADER, E_NO_MODEL, E_INFER, \
    E_BUSY, E_PAYLOAD = range(1, 12)
ERROR_NAMES = {E_VERSION: "E_VERSION", E_UNKNOWN: "E_UNKNOWN", E_STATE: "E_STATE",
               E_OFFSET: "E_OFFSET", E_TOO_LARGE: "E_TOO_LARGE", E_CRC: "E_CRC",
               E_HEADER: "E_HEADER", E_NO_MODEL: "E_NO_MODEL", E_INFER: "E_INFER",
               E_BUSY: "E_BUSY", E_PAYLOAD: "E_PAYLOAD"}

SLOT_STATES = {0: "empty", 1: "receiving", 2: "valid", 3: "active"}
NO_SLOT = 0xFF
NAME_SIZE = 24
HASH_SIZE = 8
ERROR_MESSAGE_MAX = 64

BANNER_PREFIX = b"edgekit-fw "
BANNER_RE = re.compile(
    r"edgekit-fw (?P<fw>\d+\.\d+\.\d+) proto (?P<proto>\d+) target (?P<target>\S+) board (?P<board>\S+)")


def type_name(t: int) -> str:
    if t in TYPE_NAMES:
        return TYPE_NAMES[t]
    if t & RESPONSE and (t & ~RESPONSE) in TYPE_NAMES:
        return TYPE_NAMES[t & ~RESPONSE] + "_RESP"
    return f"0x{t:02x}"


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def pad_name(name: str, size: int = NAME_SIZE) -> bytes:
    """UTF-8, cut to ``size`` bytes (never in the middle of a character), NUL-padded."""
    raw = name.encode("utf-8")[:size]
    while raw:
        try:
            raw.decode("utf-8")
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return raw.ljust(size, b"\0")


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) < n:
        raise ValueError(f"{what} response has {len(payload)} bytes, expected at least {n}")


# --------------------------------------------------------------------------- HELLO

_HELLO = struct.Struct("<BBBBHBBII16s16s")
_HELLO_TAIL = struct.Struct("<II")  # capabilities, tensor_bytes (firmware 0.2.0 on)


@dataclass(frozen=True)
class HelloInfo:
    protocol: int
    firmware: str
    max_payload: int
    window: int
    slot_count: int
    slot_size: int
    arena_size: int
    target: str
    board: str
    capabilities: int | None = None  # None: a firmware older than the field (0.1.x)
    tensor_bytes: int = 0  # the buffer chunked inputs and outputs share (tensor_footprint)

    @property
    def chunked_tensors(self) -> bool:
        return bool((self.capabilities or 0) & CAP_CHUNKED_TENSORS)

    @property
    def profiles_ops(self) -> bool:
        return bool((self.capabilities or 0) & CAP_PROFILE)

    def to_dict(self) -> dict:
        return asdict(self)


def pack_hello_response(h: HelloInfo) -> bytes:
    major, minor, patch = (int(p) for p in h.firmware.split("."))
    out = _HELLO.pack(h.protocol, major, minor, patch, h.max_payload, h.window, h.slot_count,
                      h.slot_size, h.arena_size, h.target.encode()[:16], h.board.encode()[:16])
    if h.capabilities is not None:
        out += _HELLO_TAIL.pack(h.capabilities, h.tensor_bytes)
    return out


def parse_hello(payload: bytes) -> HelloInfo:
    _need(payload, _HELLO.size, "HELLO")
    proto, ma, mi, pa, maxp, window, slots, slot_size, arena, target, board = _HELLO.unpack_from(payload)
    caps, tensor_bytes = None, 0
    if len(payload) >= _HELLO.size + _HELLO_TAIL.size:
        caps, tensor_bytes = _HELLO_TAIL.unpack_from(payload, _HELLO.size)
    return HelloInfo(proto, f"{ma}.{mi}.{pa}", maxp, window, slots, slot_size, arena, _cstr(target),
                     _cstr(board), caps, tensor_bytes)


# --------------------------------------------------------------------------- INFO

_SLOT = struct.Struct(f"<BII{NAME_SIZE}s{HASH_SIZE}s")
_INFO_TAIL = struct.Struct("<IIII")


@dataclass(frozen=True)
class SlotInfo:
    index: int
    state: str
    size: int
    crc: int
    name: str
    model_hash: str  # the model id: hex of the first 8 bytes of the package's model_hash (SHA-256)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DeviceInfo:
    active_slot: int | None
    slots: tuple[SlotInfo, ...]
    arena_size: int
    arena_used: int
    stack_size: int
    stack_high_water: int

    @property
    def active(self) -> SlotInfo | None:
        return None if self.active_slot is None else self.slots[self.active_slot]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slots"] = [s.to_dict() for s in self.slots]
        return d


def pack_info_response(info: DeviceInfo) -> bytes:
    out = bytearray([NO_SLOT if info.active_slot is None else info.active_slot, len(info.slots)])
    states = {v: k for k, v in SLOT_STATES.items()}
    for s in info.slots:
        out += _SLOT.pack(states[s.state], s.size, s.crc, pad_name(s.name),
                          bytes.fromhex(s.model_hash or "00" * HASH_SIZE))
    out += _INFO_TAIL.pack(info.arena_size, info.arena_used, info.stack_size, info.stack_high_water)
    return bytes(out)


def parse_info(payload: bytes) -> DeviceInfo:
    _need(payload, 2, "INFO")
    active, count = payload[0], payload[1]
    _need(payload, 2 + count * _SLOT.size + _INFO_TAIL.size, "INFO")
    slots = []
    for i in range(count):
        state, size, crc, name, h = _SLOT.unpack_from(payload, 2 + i * _SLOT.size)
        slots.append(SlotInfo(i, SLOT_STATES.get(state, f"state {state}"), size, crc, _cstr(name),
                              h.hex()))
    tail = _INFO_TAIL.unpack_from(payload, 2 + count * _SLOT.size)
    if active != NO_SLOT and active >= count:
        raise ValueError(f"INFO names active slot {active} of {count}")
    return DeviceInfo(None if active == NO_SLOT else active, tuple(slots), *tail)


# --------------------------------------------------------------------------- STATS

_STATS = struct.Struct("<8I")


@dataclass(frozen=True)
class DeviceStats:
    frames_ok: int
    frames_bad: int
    naks: int
    duplicates: int
    inferences: int
    last_ticks: int
    tick_hz: int
    uptime_ticks: int

    def to_dict(self) -> dict:
        return asdict(self)


def pack_stats_response(s: DeviceStats) -> bytes:
    return _STATS.pack(s.frames_ok, s.frames_bad, s.naks, s.duplicates, s.inferences, s.last_ticks,
                       s.tick_hz, s.uptime_ticks)


def parse_stats(payload: bytes) -> DeviceStats:
    _need(payload, _STATS.size, "STATS")
    return DeviceStats(*_STATS.unpack_from(payload))


# --------------------------------------------------------------------------- upload

_BEGIN = struct.Struct(f"<II{NAME_SIZE}s")
_BEGIN_RESP = struct.Struct("<BI")


def pack_begin(size: int, crc: int, name: str) -> bytes:
    return _BEGIN.pack(size, crc, pad_name(name))


def parse_begin(payload: bytes) -> tuple[int, int, str]:
    _need(payload, _BEGIN.size, "UPLOAD_BEGIN request")
    size, crc, name = _BEGIN.unpack_from(payload)
    return size, crc, _cstr(name)


def pack_begin_response(slot: int, offset: int) -> bytes:
    return _BEGIN_RESP.pack(slot, offset)


def parse_begin_response(payload: bytes) -> tuple[int, int]:
    _need(payload, _BEGIN_RESP.size, "UPLOAD_BEGIN")
    return _BEGIN_RESP.unpack_from(payload)


_COMMIT = struct.Struct("<II")


def pack_commit(size: int, crc: int) -> bytes:
    """UPLOAD_COMMIT naming the package meant (size, CRC-32): the device refuses to commit
    another upload, and answers again, without doing anything, when that package is
    already active (so a COMMIT repeated after a lost answer is harmless)."""
    return _COMMIT.pack(size, crc)


def parse_commit(payload: bytes) -> tuple[int, int] | None:
    """(size, crc) of a COMMIT that names its package, None for an empty one."""
    return _COMMIT.unpack_from(payload) if len(payload) >= _COMMIT.size else None


def pack_chunk(offset: int, data: bytes) -> bytes:
    return struct.pack("<I", offset) + bytes(data)


def parse_u32(payload: bytes, what: str) -> int:
    _need(payload, 4, what)
    return struct.unpack_from("<I", payload)[0]


def pack_u32(v: int) -> bytes:
    return struct.pack("<I", v)


# --------------------------------------------------------------------------- INFER / ERROR

_INFER_RESP = struct.Struct("<BI")


def pack_infer_response(ticks: int, output: bytes, status: int = 0) -> bytes:
    return _INFER_RESP.pack(status, ticks) + bytes(output)


def parse_infer_response(payload: bytes) -> tuple[int, int, bytes]:
    _need(payload, _INFER_RESP.size, "INFER")
    status, ticks = _INFER_RESP.unpack_from(payload)
    return status, ticks, bytes(payload[_INFER_RESP.size:])


# --------------------------------------------------------------------------- chunked tensors

_INFER_BEGIN = struct.Struct("<II")
_INFER_RUN_RESP = struct.Struct("<BIII")
_OUTPUT_READ = struct.Struct("<II")


def tensor_footprint(input_bytes: int, output_bytes: int) -> int:
    """Bytes of the device's tensor buffer a model takes: the input, rounded up to 16, then
    the output. It must not exceed HELLO's ``tensor_bytes``."""
    return (input_bytes + 15) // 16 * 16 + output_bytes


def pack_infer_begin(size: int, crc: int) -> bytes:
    return _INFER_BEGIN.pack(size, crc)


def parse_infer_begin(payload: bytes) -> tuple[int, int]:
    _need(payload, _INFER_BEGIN.size, "INFER_BEGIN request")
    return _INFER_BEGIN.unpack_from(payload)


@dataclass(frozen=True)
class InferRun:
    status: int
    ticks: int
    output_bytes: int
    output_crc: int
    output: bytes  # the whole output when it fit in the response, else b""


def pack_infer_run_response(ticks: int, output: bytes, max_payload: int, status: int = 0) -> bytes:
    from edgekit.device.crc import crc32

    out = _INFER_RUN_RESP.pack(status, ticks, len(output), crc32(output))
    return out + bytes(output) if len(out) + len(output) <= max_payload else out


def parse_infer_run_response(payload: bytes) -> InferRun:
    _need(payload, _INFER_RUN_RESP.size, "INFER_RUN")
    status, ticks, nbytes, crc = _INFER_RUN_RESP.unpack_from(payload)
    inline = bytes(payload[_INFER_RUN_RESP.size:])
    return InferRun(status, ticks, nbytes, crc, inline if len(inline) == nbytes else b"")


def pack_output_read(offset: int, length: int) -> bytes:
    return _OUTPUT_READ.pack(offset, length)


def parse_output_read(payload: bytes) -> tuple[int, int]:
    _need(payload, _OUTPUT_READ.size, "OUTPUT_READ request")
    return _OUTPUT_READ.unpack_from(payload)


# --------------------------------------------------------------------------- PROFILE

_PROFILE_RESP = struct.Struct("<III")


@dataclass(frozen=True)
class ProfilePage:
    ops: int             # ops timed in the last inference
    first: int           # the op index of ticks[0]
    ticks: tuple[int, ...]


def pack_profile_request(first: int = 0) -> bytes:
    return struct.pack("<I", first)


def pack_profile_response(ops: int, first: int, ticks) -> bytes:
    ticks = list(ticks)
    return _PROFILE_RESP.pack(ops, first, len(ticks)) + struct.pack(f"<{len(ticks)}I", *ticks)


def parse_profile_response(payload: bytes) -> ProfilePage:
    _need(payload, _PROFILE_RESP.size, "PROFILE")
    ops, first, count = _PROFILE_RESP.unpack_from(payload)
    _need(payload, _PROFILE_RESP.size + 4 * count, "PROFILE")
    if first + count > ops:
        raise ValueError(f"PROFILE names ops {first}..{first + count - 1} of {ops}")
    return ProfilePage(ops, first, struct.unpack_from(f"<{count}I", payload, _PROFILE_RESP.size))


_ERROR = struct.Struct("<BI")


def pack_error(code: int, detail: int = 0, message: str = "") -> bytes:
    return _ERROR.pack(code, detail) + message.encode("utf-8")[:ERROR_MESSAGE_MAX]


def parse_error(payload: bytes) -> tuple[int, int, str]:
    if len(payload) < _ERROR.size:  # be lenient: an ERROR is already a failure
        return (payload[0] if payload else 0), 0, ""
    code, detail = _ERROR.unpack_from(payload)
    msg = payload[_ERROR.size:_ERROR.size + ERROR_MESSAGE_MAX].split(b"\0", 1)[0]
    return code, detail, msg.decode("utf-8", "replace")


# Why the firmware refused a package: the low 16 bits of an E_HEADER detail
# (docs/model-package.md, "What the firmware checks"); the high 16 bits are the op index.
HEADER_REASONS = {
    1: "size: shorter than a header, total_size differs from the upload, or header_size out of range",
    2: "magic: not an edgekit model package",
    3: "format_major: a package format this firmware does not run",  # op field: formats (below)
    4: "header_crc: the header is corrupt",
    5: "target: packed for another target than the firmware's",
    6: "arena_size: needs a larger arena than the firmware has",
    7: "input/output table: out of bounds, or tensors larger than the device carries",
    8: "op table or data region outside the package",
    9: "an op kind this firmware does not know",
    10: "op parameters out of range",
    11: "model_hash: the SHA-256 of the package body differs from its header (altered or corrupt)",
}
NO_OP = 0xFFFF


def describe_error(type_: int, code: int, detail: int) -> str:
    """What an ERROR's ``detail`` means for this request and code, in words."""
    if code == E_HEADER:
        reason, op = detail & 0xFFFF, detail >> 16
        text = f"check {reason}, " + HEADER_REASONS.get(reason, "a check this host does not know")
        if reason == 3 and op != NO_OP:
            # firmware 0.3.0 on: the package's format_major (low byte) and the firmware's (high)
            return text + f" (the package is format {op & 0xFF}.x, this firmware runs format {op >> 8}.x)"
        return text + (f", at op {op}" if op != NO_OP else "")
    if code == E_OFFSET:
        return f"the device expects offset {detail:,}" if type_ != UPLOAD_COMMIT else \
            f"the device holds {detail:,} bytes"
    if code == E_TOO_LARGE:
        what = "input size" if type_ == INFER else "limit"
        return f"the device's {what} is {detail:,} bytes"
    if code == E_CRC:
        return f"the device computed CRC-32 0x{detail:08x}"
    if code == E_PAYLOAD:
        return f"the request payload was {detail} bytes"
    if code == E_UNKNOWN:
        return f"message type 0x{detail:02x}"
    if code == E_VERSION:
        return f"the device speaks protocol version {detail}"
    if code == E_INFER and detail:
        return f"detail {detail}"
    if code == E_STATE and type_ == UPLOAD_COMMIT and detail:
        return f"the upload in progress is {detail:,} bytes"
    return ""


def parse_banner(line: bytes) -> dict | None:
    """``{"fw", "proto", "target", "board"}`` from a boot banner, or None."""
    i = line.find(BANNER_PREFIX)
    if i < 0:
        return None
    m = BANNER_RE.search(line[i:].decode("ascii", "replace"))
    return m.groupdict() if m else {"fw": "?", "proto": "?", "target": "?", "board": "?"}
