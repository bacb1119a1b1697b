"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999).

``encode`` removes every 0x00 from a block: the output is a sequence of groups, each a
code byte ``n`` (1..255) followed by ``n - 1`` non-zero bytes; a group with ``n < 255``
stands for its bytes followed by a zero, except at the very end, where the implied zero
is dropped. A 255 group carries 254 bytes and no zero. The encoded block is at most
``len(data) + max(1, ceil(len(data) / 254))`` bytes long and never contains 0x00, so a
single 0x00 after it delimits it on the wire (the framing adds that delimiter, not this
module).
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def max_encoded_size(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes (without the delimiter)."""
    return n + max(1, -(-n // 254))


def encode(data: bytes | bytearray | memoryview) -> bytes:
    data = bytes(data)
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        zero = data.find(0, start, start + 254)
        if zero >= 0:
            out.append(zero - start + 1)
            out += data[start:zero]
            start = zero + 1
            continue
        end = min(start + 254, n)
        block = data[start:end]
        if len(block) == 254:
            out.append(255)
            out += block
            start = end
            if start == n:  # a full block at the very end: no implied zero to encode
                break
            continue
        out.append(len(block) + 1)
        out += block
        break
    return bytes(out)


def decode(data: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS block (without its delimiter). Raises CobsError if it holds a
    zero byte or a group runs past the end."""
    data = bytes(data)
    if not data:
        raise CobsError("empty block")
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte at {i}")
        end = i + code
        if end > n:
            raise CobsError(f"group at {i} (code {code}) runs past the end ({n} bytes)")
        group = data[i + 1:end]
        if 0 in group:
            raise CobsError(f"zero byte inside the group at {i}")
        out += group
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)
