"""Fuzzing the batch and ack loaders: any bytes give a valid Batch/Ack or WireFormatError,
never another exception; valid batches and acks survive a round trip unchanged."""

from __future__ import annotations

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.sync import Record, WireFormatError, decode_ack, decode_batch, encode_ack, encode_batch
from edgekit.sync.records import id_from_bytes
from edgekit.sync.wire import Ack, Batch

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
NAME = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=12)
DEVICE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)


@st.composite
def uuid7s(draw):
    ms = draw(st.integers(0, (1 << 48) - 1))
    rand_a = draw(st.integers(0, 0xFFF))
    rand_b = draw(st.integers(0, (1 << 62) - 1))
    return id_from_bytes(((ms << 80) | (7 << 76) | (rand_a << 64) | (2 << 62) | rand_b).to_bytes(16, "big"))


@st.composite
def records(draw):
    rid = draw(uuid7s())
    created = draw(st.integers(0, (1 << 63) - 1))
    expires = draw(st.none() | st.integers(created, (1 << 63) - 1))
    return Record(rid, draw(NAME), draw(st.integers(0, 3)), created, expires, draw(st.binary(max_size=300)))


record_lists = st.lists(records(), max_size=25, unique_by=lambda r: r.id)
counters = st.dictionaries(NAME, st.dictionaries(NAME, st.integers(0, (1 << 64) - 1), max_size=4), max_size=4)


def mutate(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            buf.append(value)
            continue
        i = pos % len(buf)
        if kind == 0:
            buf[i] = value
        elif kind == 1:
            del buf[i:i + 1 + value % 8]
        elif kind == 2:
            buf[i:i] = bytes([value]) * (1 + value % 5)
        else:
            del buf[i:]
    return bytes(buf)


edit_lists = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1,
                      max_size=6)


def decodes_or_refuses(loader, data):
    try:
        result = loader(data)
    except WireFormatError:
        return None
    assert isinstance(result, (Batch, Ack))
    return result


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_are_a_batch_or_a_wire_format_error(data):
    decodes_or_refuses(decode_batch, data)
    decodes_or_refuses(decode_batch, b"EKSB\x01" + data)  # past the magic and version
    decodes_or_refuses(decode_ack, data)
    decodes_or_refuses(decode_ack, b"EKSA\x01" + data)


@FUZZ
@given(DEVICE, st.integers(0, (1 << 64) - 1), record_lists, counters, edit_lists)
def test_damaged_batches_are_refused_or_still_valid(device, seq, recs, ctrs, edits):
    decodes_or_refuses(decode_batch, mutate(encode_batch(device, seq, recs, counters=ctrs, level=1), edits))


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 1 << 20), st.integers(0, 255))
def test_well_framed_headers_with_any_body_are_refused_or_valid(body, declared, flags):
    # a genuine zstd frame of random content behind a plausible header reaches the body parser
    frame = zstandard.ZstdCompressor(level=1).compress(body)
    size = uvarint(declared if flags & 1 else len(body))
    decodes_or_refuses(decode_batch, b"EKSB\x01\x00\x03dev\x01" + size + frame)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


@FUZZ
@given(record_lists, edit_lists)
def test_damaged_bodies_in_sound_frames_are_refused_or_valid(recs, edits):
    # The zstd checksum stops damage to the compressed bytes early; here the damage is
    # done to the body itself, re-framed soundly, so it reaches the column parser.
    data = encode_batch("dev", 1, recs, level=1)
    head = b"EKSB\x01\x00\x03dev\x01"
    assert data.startswith(head)
    rest = data[len(head):]
    size, pos = 0, 0
    while True:
        size |= (rest[pos] & 0x7F) << (7 * pos)
        pos += 1
        if rest[pos - 1] < 0x80:
            break
    body = mutate(zstandard.ZstdDecompressor().decompress(rest[pos:]), edits)
    assert len(zstandard.ZstdDecompressor().decompress(rest[pos:])) == size
    decodes_or_refuses(decode_batch, head + uvarint(len(body)) + zstandard.ZstdCompressor(level=1).compress(body))


@FUZZ
@given(DEVICE, st.integers(0, (1 << 64) - 1), record_lists, counters)
def test_valid_batches_survive_a_round_trip(device, seq, recs, ctrs):
    batch = decode_batch(encode_batch(device, seq, recs, counters=ctrs, level=1))
    kept = {k: v for k, v in ctrs.items() if v}  # a counter name with no entries carries nothing
    assert (batch.device_id, batch.seq, batch.records, batch.counters, batch.dict_id) == (device, seq, recs, kept, 0)


@FUZZ
@given(DEVICE, st.integers(0, (1 << 64) - 1), st.lists(uuid7s(), max_size=40), edit_lists)
def test_acks_round_trip_and_damaged_acks_are_refused_or_valid(device, seq, ids, edits):
    data = encode_ack(device, seq, ids)
    ack = decode_ack(data)
    assert (ack.device_id, ack.seq, ack.record_ids) == (device, seq, ids)
    decodes_or_refuses(decode_ack, mutate(data, edits))
