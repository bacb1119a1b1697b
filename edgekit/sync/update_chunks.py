"""Update chunks over MQTT, version 1 (docs/sync-protocol.md, "Update chunks over MQTT").

The device asks on ``edgekit/v1/<device>/chunks/req`` for chunks it lacks; the hub answers
each one on ``edgekit/v1/<device>/chunks`` (QoS 1). Both messages are small binary
formats; every malformed input raises ChunkFormatError (fuzzed).

Request::

    b"EKCQ" | version u8 = 1 | update id: 16 bytes | count u16 BE (1..MAX_REQUEST_CHUNKS) | count x sha256 (32 bytes)

Response::

    b"EKCR" | version u8 = 1 | status u8 (0 chunk, 1 refused) | update id: 16 bytes | sha256: 32 bytes
    | length u32 BE | length bytes (status 0: the chunk; status 1: the UTF-8 reason)

Standard library only: this runs on the device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct

from edgekit.errors import BadInputError

REQUEST_MAGIC = b"EKCQ"
RESPONSE_MAGIC = b"EKCR"
VERSION = 1
MAX_REQUEST_CHUNKS = 64
MAX_CHUNK_BYTES = 16 << 20   # the update manifest's largest chunk_size
MAX_REASON_BYTES = 1024
STATUS_CHUNK = 0
STATUS_REFUSED = 1

_REQ_HEAD = struct.Struct(">4sB16sH")
_RESP_HEAD = struct.Struct(">4sBB16s32sI")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ChunkFormatError(BadInputError):
    """A chunk request or response that is not format 1."""


@dataclasses.dataclass(frozen=True)
class ChunkRequest:
    update_id: str           # 32 hex digits
    sha256s: tuple           # 64 hex digits each


@dataclasses.dataclass(frozen=True)
class ChunkResponse:
    update_id: str
    sha256: str
    data: bytes | None       # the chunk; None when refused
    reason: str = ""         # why it was refused


def _hex_bytes(value: str, pattern, n: int, what: str) -> bytes:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ChunkFormatError(f"{what} {value!r}: expected {2 * n} lowercase hex digits")
    return bytes.fromhex(value)


def encode_request(update_id: str, sha256s) -> bytes:
    sha256s = list(sha256s)
    if not 1 <= len(sha256s) <= MAX_REQUEST_CHUNKS:
        raise ChunkFormatError(f"a chunk request names 1 to {MAX_REQUEST_CHUNKS} chunks, not {len(sha256s)}")
    body = b"".join(_hex_bytes(s, _HEX64, 32, "chunk sha256") for s in sha256s)
    return _REQ_HEAD.pack(REQUEST_MAGIC, VERSION, _hex_bytes(update_id, _HEX32, 16, "update id"), len(sha256s)) + body


def decode_request(data: bytes) -> ChunkRequest:
    data = bytes(data)
    if len(data) < _REQ_HEAD.size:
        raise ChunkFormatError(f"chunk request of {len(data)} bytes is shorter than its {_REQ_HEAD.size}-byte header")
    magic, version, uid, count = _REQ_HEAD.unpack_from(data)
    if magic != REQUEST_MAGIC:
        raise ChunkFormatError(f"not a chunk request (magic {magic!r}, expected {REQUEST_MAGIC!r})")
    if version != VERSION:
        raise ChunkFormatError(f"chunk request version {version}: this reader knows {VERSION}")
    if not 1 <= count <= MAX_REQUEST_CHUNKS:
        raise ChunkFormatError(f"chunk request names {count} chunks: expected 1 to {MAX_REQUEST_CHUNKS}")
    if len(data) != _REQ_HEAD.size + 32 * count:
        raise ChunkFormatError(f"chunk request of {len(data)} bytes: {count} chunks need "
                               f"{_REQ_HEAD.size + 32 * count}")
    shas = tuple(data[i:i + 32].hex() for i in range(_REQ_HEAD.size, len(data), 32))
    return ChunkRequest(uid.hex(), shas)


def encode_response(update_id: str, sha256: str, data: bytes | None = None, *, refused: str | None = None) -> bytes:
    if (data is None) == (refused is None):
        raise ValueError("a chunk response carries either the chunk or a refusal")
    uid = _hex_bytes(update_id, _HEX32, 16, "update id")
    sha = _hex_bytes(sha256, _HEX64, 32, "chunk sha256")
    if data is not None:
        if len(data) > MAX_CHUNK_BYTES:
            raise ChunkFormatError(f"chunk of {len(data)} bytes is over {MAX_CHUNK_BYTES}")
        return _RESP_HEAD.pack(RESPONSE_MAGIC, VERSION, STATUS_CHUNK, uid, sha, len(data)) + bytes(data)
    reason = refused.encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return _RESP_HEAD.pack(RESPONSE_MAGIC, VERSION, STATUS_REFUSED, uid, sha, len(reason)) + reason


def decode_response(data: bytes) -> ChunkResponse:
    """Decodes and checks a response; a chunk whose bytes do not hash to the sha256 in its
    header raises ChunkFormatError (a corrupt or forged chunk is never handed on)."""
    data = bytes(data)
    if len(data) < _RESP_HEAD.size:
        raise ChunkFormatError(f"chunk response of {len(data)} bytes is shorter than its "
                               f"{_RESP_HEAD.size}-byte header")
    magic, version, status, uid, sha, length = _RESP_HEAD.unpack_from(data)
    if magic != RESPONSE_MAGIC:
        raise ChunkFormatError(f"not a chunk response (magic {magic!r}, expected {RESPONSE_MAGIC!r})")
    if version != VERSION:
        raise ChunkFormatError(f"chunk response version {version}: this reader knows {VERSION}")
    body = data[_RESP_HEAD.size:]
    if len(body) != length:
        raise ChunkFormatError(f"chunk response says {length} bytes but carries {len(body)}")
    if status == STATUS_CHUNK:
        if length > MAX_CHUNK_BYTES:
            raise ChunkFormatError(f"chunk of {length} bytes is over {MAX_CHUNK_BYTES}")
        if hashlib.sha256(body).digest() != sha:
            raise ChunkFormatError(f"chunk {sha.hex()}: its bytes hash to {hashlib.sha256(body).hexdigest()}")
        return ChunkResponse(uid.hex(), sha.hex(), body)
    if status == STATUS_REFUSED:
        if length > MAX_REASON_BYTES:
            raise ChunkFormatError(f"refusal reason of {length} bytes is over {MAX_REASON_BYTES}")
        try:
            reason = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ChunkFormatError("refusal reason is not UTF-8") from None
        return ChunkResponse(uid.hex(), sha.hex(), None, reason)
    raise ChunkFormatError(f"chunk response status {status}: expected 0 (chunk) or 1 (refused)")
