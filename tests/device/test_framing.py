"""CRC-32, COBS and frames: known values, round trips, every check of the decoder, and a
stream decoder that resynchronises on garbage."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from edgekit.device import cobs
from edgekit.device.crc import CHECK_VALUE, crc32, crc32_bitwise, crc32_table
from edgekit.device.frames import (BadFrame, Frame, FrameDecoder, FrameError, decode_frame, encode,
                                   frame_bytes, max_encoded_frame)


def test_crc32_check_value_and_zlib():
    assert crc32(b"123456789") == crc32_bitwise(b"123456789") == crc32_table(b"123456789") == CHECK_VALUE
    rng = random.Random(5)
    for n in (0, 1, 3, 255, 1024, 5000):
        data = bytes(rng.randrange(256) for _ in range(n))
        ref = zlib.crc32(data)
        assert crc32(data) == crc32_table(data) == ref
        assert crc32_bitwise(data[:300]) == zlib.crc32(data[:300])
        # continuing over a split gives the CRC of the whole
        assert crc32(data[n // 2:], crc32(data[:n // 2])) == ref
        assert crc32_table(data[n // 2:], crc32_table(data[:n // 2])) == ref


# (decoded, encoded) pairs from the COBS paper's rules, written out by hand.
KNOWN = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("decoded,encoded", KNOWN, ids=range(len(KNOWN)))
def test_cobs_known_vectors(decoded, encoded):
    assert cobs.encode(decoded) == encoded
    assert cobs.decode(encoded) == decoded


def test_cobs_round_trip_and_size_bound():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.choice([rng.randrange(0, 20), rng.randrange(240, 800), 254, 508, 1034])
        zero_rate = rng.choice([0.0, 0.01, 0.3, 1.0])
        data = bytes(0 if rng.random() < zero_rate else rng.randrange(1, 256) for _ in range(n))
        enc = cobs.encode(data)
        assert 0 not in enc
        assert len(enc) <= cobs.max_encoded_size(n)
        assert cobs.decode(enc) == data


def test_cobs_accepts_a_trailing_empty_group():
    # Some encoders end a full 254-byte group with an empty 0x01 group: same data.
    data = bytes(range(1, 255))
    assert cobs.decode(b"\xff" + data + b"\x01") == data


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x03\x11\x00", b"\x05\x11\x22\x33"])
def test_cobs_rejects_invalid_blocks(bad):
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


def test_frame_layout_is_the_spec():
    raw = frame_bytes(0x11, 0x1234, b"\xaa\xbb")
    assert raw[:6] == bytes([1, 0x11, 0x34, 0x12, 2, 0])
    assert raw[6:8] == b"\xaa\xbb"
    assert struct.unpack("<I", raw[8:])[0] == zlib.crc32(raw[:8])
    wire = encode(0x11, 0x1234, b"\xaa\xbb")
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert decode_frame(wire[:-1]) == Frame(0x11, 0x1234, b"\xaa\xbb")


def _enc(raw: bytes) -> bytes:
    return cobs.encode(raw)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("block,reason", [
    (b"\x05\x11\x22\x33\x44", "short frame"),
    (_enc(_with_crc(bytes([2, 1, 0, 0, 0, 0]))), "protocol version 2"),
    (_enc(_with_crc(bytes([1, 1, 0, 0, 3, 0]) + b"ab")), "length field 3 but 2"),
    (_enc(_with_crc(bytes([1, 1, 0, 0, 20, 0]) + bytes(20))), "over max_payload 16"),
    (_enc(frame_bytes(1, 0, b"abc")[:-1] + b"\x00"), "CRC mismatch"),
    (b"\x03\x11", "bad COBS"),
])
def test_decode_frame_checks_in_spec_order(block, reason):
    with pytest.raises(FrameError, match=reason):
        decode_frame(block, max_payload=16)


def test_stream_decoder_any_split():
    rng = random.Random(2)
    frames = [Frame(rng.randrange(256), rng.randrange(0xFFFF),
                    bytes(rng.choice([0, 1, 7, 255]) for _ in range(rng.randrange(0, 600))))
              for _ in range(30)]
    stream = b"".join(encode(f.type, f.seq, f.payload) for f in frames)
    for trial in range(20):
        dec = FrameDecoder(max_payload=1024)
        got = []
        i = 0
        while i < len(stream):
            n = rng.randrange(1, 700) if trial else 1
            got += dec.feed(stream[i:i + n])
            i += n
        assert got == frames
        assert dec.stats.frames == 30 and dec.stats.bad == 0


def test_stream_decoder_resynchronises_and_reports_the_banner():
    dec = FrameDecoder(max_payload=64)
    banner = b"edgekit-fw 1.2.3 proto 1 target cortex-m4 board mps2-an386\n\x00"
    good = encode(0x81, 7, b"ok")
    corrupt = bytearray(encode(0x81, 8, b"xyz"))
    corrupt[3] ^= 0x10
    out = dec.feed(banner + b"\x00\x00" + bytes(corrupt) + good)
    assert isinstance(out[0], BadFrame) and out[0].raw.startswith(b"edgekit-fw 1.2.3")
    assert isinstance(out[1], BadFrame)  # the corrupt frame
    assert out[2] == Frame(0x81, 7, b"ok")
    assert dec.stats.empty == 2


def test_stream_decoder_drops_oversize_runs_without_waiting_for_a_delimiter():
    dec = FrameDecoder(max_payload=32)
    limit = max_encoded_frame(32) - 1
    out = dec.feed(b"\x01" * (limit + 1))
    assert [o.reason for o in out] == ["oversize run"]
    assert dec.feed(b"\x01" * 10000) == []  # still discarding, memory stays bounded
    assert len(dec._buf) == 0
    assert dec.feed(b"\x00" + encode(0x82, 1, b"a")) == [Frame(0x82, 1, b"a")]


def test_largest_frame_fits_the_decoder_limit():
    # The worst COBS case (no zeros) of a max_payload frame is accepted.
    payload = bytes([1]) * 64
    wire = encode(0x20, 1, payload)
    assert len(wire) <= max_encoded_frame(64)
    assert FrameDecoder(max_payload=64).feed(wire) == [Frame(0x20, 1, payload)]


def test_skip_first_ignores_bytes_before_the_first_delimiter():
    dec = FrameDecoder(skip_first=True)
    out = dec.feed(b"\x13\x37partial\x00" + encode(1, 2, b""))
    assert [type(o) for o in out] == [BadFrame, Frame]
    assert out[0].reason == "before first delimiter"


def test_decoder_never_raises_on_garbage():
    rng = random.Random(3)
    dec = FrameDecoder(max_payload=128)
    for _ in range(500):
        data = bytes(rng.choice([0, 0, rng.randrange(256)]) for _ in range(rng.randrange(1, 300)))
        for ev in dec.feed(data):
            assert isinstance(ev, (Frame, BadFrame))
