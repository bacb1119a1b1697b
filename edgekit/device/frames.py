"""Frames of the serial protocol (docs/serial-protocol.md, section 1).

A frame is ``version u8, type u8, seq u16, length u16, payload, crc u32`` (little-endian;
the CRC covers every byte before it), COBS-encoded and followed by one 0x00.

``FrameDecoder`` turns a byte stream into frames: it cuts the stream at each 0x00,
checks each piece in the order the spec gives, and hands back a ``Frame`` or a
``BadFrame`` saying why the piece was dropped. A run longer than the largest legal
frame is discarded without waiting for its delimiter (the decoder resynchronises at the
next 0x00). Text lines such as the boot banner come out as ``BadFrame`` with the raw
bytes, so a caller can recognise them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from edgekit.device import cobs
from edgekit.device.crc import crc32

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHH")
HEADER_SIZE = HEADER.size  # 6
OVERHEAD = HEADER_SIZE + 4  # header + crc = 10
MAX_PAYLOAD_LIMIT = 0xFFFF  # what a u16 length can say
DELIMITER = 0


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION

    def __repr__(self) -> str:
        from edgekit.device.protocol import type_name

        shown = self.payload[:16].hex() + ("..." if len(self.payload) > 16 else "")
        return f"Frame({type_name(self.type)}, seq={self.seq}, {len(self.payload)} B {shown})"


@dataclass(frozen=True)
class BadFrame:
    """A piece of the stream that is not a frame: ``reason`` says which check failed,
    ``raw`` holds the bytes as received (without the delimiter, cut to 256 bytes)."""

    reason: str
    raw: bytes = b""


class FrameError(ValueError):
    pass


def max_encoded_frame(max_payload: int) -> int:
    """Largest frame on the wire, delimiter included."""
    n = max_payload + OVERHEAD
    return cobs.max_encoded_size(n) + 1


def frame_bytes(type_: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """The unencoded frame: header, payload, CRC."""
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} out of range")
    if len(payload) > MAX_PAYLOAD_LIMIT:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    body = HEADER.pack(version, type_, seq, len(payload)) + bytes(payload)
    return body + struct.pack("<I", crc32(body))


def encode_frame(frame: Frame) -> bytes:
    """COBS-encoded frame followed by the 0x00 delimiter: the bytes to write."""
    return cobs.encode(frame_bytes(frame.type, frame.seq, frame.payload, frame.version)) + b"\x00"


def encode(type_: int, seq: int, payload: bytes = b"") -> bytes:
    return cobs.encode(frame_bytes(type_, seq, payload)) + b"\x00"


def decode_frame(block: bytes, max_payload: int = MAX_PAYLOAD_LIMIT) -> Frame:
    """Decode one block (the bytes between two delimiters). Raises FrameError naming
    the first failed check, in the order of the spec."""
    try:
        raw = cobs.decode(block)
    except cobs.CobsError as exc:
        raise FrameError(f"bad COBS: {exc}") from None
    if len(raw) < OVERHEAD:
        raise FrameError(f"short frame: {len(raw)} bytes")
    version, type_, seq, length = HEADER.unpack_from(raw)
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version}")
    if length != len(raw) - OVERHEAD:
        raise FrameError(f"length field {length} but {len(raw) - OVERHEAD} payload bytes")
    if length > max_payload:
        raise FrameError(f"payload of {length} bytes is over max_payload {max_payload}")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if crc != crc32(raw[:-4]):
        raise FrameError("CRC mismatch")
    return Frame(type_, seq, bytes(raw[HEADER_SIZE:-4]), version)


@dataclass
class DecoderStats:
    frames: int = 0
    bad: int = 0
    oversize: int = 0
    empty: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class FrameDecoder:
    """Streaming decoder. ``feed(data)`` returns the frames and bad pieces completed by
    ``data``, in stream order. Empty pieces (two delimiters in a row) are skipped."""

    def __init__(self, max_payload: int = MAX_PAYLOAD_LIMIT, skip_first: bool = False):
        self.max_payload = max_payload
        self.max_run = max_encoded_frame(max_payload) - 1  # without the delimiter
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._discarding = False
        self._skip = skip_first

    def set_max_payload(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self.max_run = max_encoded_frame(max_payload) - 1

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        out: list[Frame | BadFrame] = []
        start = 0
        n = len(data)
        while start < n:
            zero = data.find(0, start)
            end = n if zero < 0 else zero
            if not self._discarding:
                self._buf += data[start:end]
                if len(self._buf) > self.max_run:
                    self._discarding = True
                    self.stats.oversize += 1
                    self._count_bad("oversize run")
                    out.append(BadFrame("oversize run", bytes(self._buf[:256])))
                    self._buf.clear()
            if zero < 0:
                break
            start = zero + 1
            if self._discarding:
                self._discarding = False
                continue
            block = bytes(self._buf)
            self._buf.clear()
            if self._skip:  # bytes before the first delimiter after a reset
                self._skip = False
                if block:
                    out.append(BadFrame("before first delimiter", block[:256]))
                continue
            if not block:
                self.stats.empty += 1
                continue
            try:
                frame = decode_frame(block, self.max_payload)
            except FrameError as exc:
                reason = str(exc)
                self._count_bad(reason.split(":")[0])
                out.append(BadFrame(reason, block[:256]))
                continue
            self.stats.frames += 1
            out.append(frame)
        return out

    def _count_bad(self, reason: str) -> None:
        self.stats.bad += 1
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
