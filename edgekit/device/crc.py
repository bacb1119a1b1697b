"""CRC-32 as the serial protocol uses it (IEEE 802.3: reflected, polynomial 0xEDB88320,
initial value 0xFFFFFFFF, final xor 0xFFFFFFFF; check value of b"123456789" is
0xCBF43926).

``crc32`` is the fast path (zlib computes exactly this CRC in C). ``crc32_bitwise`` and
``crc32_table`` spell the algorithm out the way a firmware does it; the tests hold all
three equal.
"""

from __future__ import annotations

import zlib

POLY = 0xEDB88320
CHECK_VALUE = 0xCBF43926  # crc32(b"123456789")


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32 of ``data``; pass a previous result as ``crc`` to continue over more data."""
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def crc32_bitwise(data: bytes, crc: int = 0) -> int:
    """One bit at a time: the smallest implementation (no table), as on a tiny MCU."""
    c = crc ^ 0xFFFFFFFF
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = (c >> 1) ^ (POLY if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (POLY if c & 1 else 0)
        table.append(c)
    return tuple(table)


TABLE = _make_table()


def crc32_table(data: bytes, crc: int = 0) -> int:
    """One byte at a time with a 256-entry table (1 KiB of flash on a device)."""
    c = crc ^ 0xFFFFFFFF
    for byte in data:
        c = TABLE[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
