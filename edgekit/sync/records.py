"""The unit the sync queue stores and the batches carry: a Record, and its UUIDv7 id.

Ids follow RFC 9562 UUIDv7: 48 bits of unix milliseconds, the version (7), a 12-bit
counter (``rand_a``), the variant bits and 62 bits (``rand_b``) drawn at random once per
process. The counter makes ids monotonic within a process even when many fall in one
millisecond or the clock steps back (RFC 9562 section 6.2, method 1); the fixed
``rand_b`` is the per-process node value of section 6.4, and it makes the ids of one
device compress to a few bytes each in a batch, where fresh random bits would cost nine.
Two processes collide only if they draw the same 62 bits and the same millisecond.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import threading
import time
import uuid
from typing import Optional

from edgekit.errors import BadInputError

PRIORITIES = (0, 1, 2, 3)  # 0 most urgent
_STREAM_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


@dataclasses.dataclass(frozen=True)
class Record:
    """One queued item. ``id`` is the canonical 36-character UUIDv7 string."""

    id: str
    stream: str
    priority: int
    created_ms: int
    expires_ms: Optional[int]
    payload: bytes


def check_stream(stream) -> str:
    """A stream name: 1-64 characters of letters, digits and ``_ . : -``."""
    if not isinstance(stream, str) or not _STREAM_RE.match(stream):
        raise BadInputError(f"stream name {stream!r} is not 1-64 characters of letters, digits and _ . : -")
    return stream


def check_priority(priority) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise BadInputError(f"priority {priority!r} is not one of 0 (most urgent), 1, 2, 3")
    return priority


class _IdGenerator:
    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._node = 0
        self._last_ms = -1
        self._counter = 0

    def next(self, now_ms: Optional[int] = None) -> bytes:
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if self._pid != os.getpid():  # a forked child draws its own node value
                self._pid = os.getpid()
                self._node = secrets.randbits(62)
                self._last_ms, self._counter = -1, 0
            if now_ms > self._last_ms:
                self._last_ms, self._counter = now_ms, 0
            else:  # same millisecond or the clock stepped back: count on from the last id
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                    self._last_ms, self._counter = self._last_ms + 1, 0
            ms, counter, node = self._last_ms, self._counter, self._node
        if not 0 <= ms < 1 << 48:
            raise BadInputError(f"time {ms} ms is outside the 48 bits of a UUIDv7")
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | node
        return value.to_bytes(16, "big")


_GENERATOR = _IdGenerator()


def new_id(now_ms: Optional[int] = None) -> str:
    """A new UUIDv7 (canonical string), later than every id this process made before."""
    return id_from_bytes(_GENERATOR.next(now_ms))


def new_id_bytes(now_ms: Optional[int] = None) -> bytes:
    """new_id() as its 16 raw bytes."""
    return _GENERATOR.next(now_ms)


def id_to_bytes(record_id) -> bytes:
    """The 16 bytes of a UUIDv7 given as a string or uuid.UUID; BadInputError otherwise."""
    try:
        u = record_id if isinstance(record_id, uuid.UUID) else uuid.UUID(record_id)
    except (TypeError, ValueError, AttributeError):
        raise BadInputError(f"record id {record_id!r} is not a UUID") from None
    if u.version != 7 or u.variant != uuid.RFC_4122:
        raise BadInputError(f"record id {record_id!r} is not a UUIDv7")
    return u.bytes


def id_from_bytes(raw: bytes) -> str:
    """The canonical string of 16 raw id bytes (no version check: see is_uuid7)."""
    h = bytes(raw).hex()
    if len(h) != 32:
        raise BadInputError(f"a record id has 16 bytes, not {len(h) // 2}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid7(raw: bytes) -> bool:
    return len(raw) == 16 and raw[6] >> 4 == 7 and raw[8] >> 6 == 0b10


def id_time_ms(record_id: str) -> int:
    """The unix milliseconds in a UUIDv7."""
    return int.from_bytes(id_to_bytes(record_id)[:6], "big")
