"""Batch and ack format v1: round trips, the byte layout of docs/sync-protocol.md read back
by an independent parser written here, and each kind of malformed input."""

from __future__ import annotations

import uuid

import pytest
import zstandard

from edgekit.errors import BadInputError
from edgekit.sync import Record, WireFormatError, decode_ack, decode_batch, encode_ack, encode_batch, new_id
from edgekit.sync.wire import MAX_BODY_BYTES, dictionary_id, train_dictionary

NOW = 1_790_000_000_000


def sample_records():
    return [
        Record(new_id(NOW), "results", 2, NOW, None, b'{"top":"yes"}'),
        Record(new_id(NOW + 1), "captures", 3, NOW + 1, NOW + 86_400_001, bytes(range(256)) * 3),
        Record(new_id(NOW + 1), "events", 0, NOW - 5, NOW - 5, b""),  # created before its id's time
        Record(new_id(NOW + 2), "results", 1, NOW + 2, None, b"\x00" * 10),
    ]


COUNTERS = {"enqueued": {"results": 10, "events": 1}, "dropped_full": {"captures": 2 ** 40},
            "backlog": {"records": 3, "bytes": 900}}


# ---------------------------------------------------------------------- an independent reader of the layout


def read_uvarint(data: bytes, pos: int):
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def read_text(data: bytes, pos: int):
    n, pos = read_uvarint(data, pos)
    return data[pos:pos + n].decode(), pos + n


def test_batch_bytes_follow_the_documented_layout():
    recs = sample_records()
    data = encode_batch("dev-7", 300, recs, counters=COUNTERS)
    assert data[:4] == b"EKSB" and data[4] == 1 and data[5] == 0x02  # counters, no dictionary
    device, pos = read_text(data, 6)
    seq, pos = read_uvarint(data, pos)
    assert (device, seq) == ("dev-7", 300) and data[pos - 2:pos] == bytes([0xAC, 0x02])  # 300 as LEB128
    n, pos = read_uvarint(data, pos)
    counters = {}
    for _ in range(n):
        name, pos = read_text(data, pos)
        key, pos = read_text(data, pos)
        value, pos = read_uvarint(data, pos)
        counters.setdefault(name, {})[key] = value
    assert counters == COUNTERS
    size, pos = read_uvarint(data, pos)
    body = zstandard.ZstdDecompressor().decompress(data[pos:])
    assert len(body) == size
    assert zstandard.get_frame_parameters(data[pos:]).has_checksum
    ns, p = read_uvarint(body, 0)
    streams = []
    for _ in range(ns):
        s, p = read_text(body, p)
        streams.append(s)
    assert streams == ["results", "captures", "events"]  # in order of first use
    count, p = read_uvarint(body, p)
    ids = [body[p + 16 * i:p + 16 * i + 16] for i in range(count)]
    assert [str(uuid.UUID(bytes=i)) for i in ids] == [r.id for r in recs]
    p += 16 * count
    cols = []
    for _ in range(4):
        col = []
        for _ in range(count):
            v, p = read_uvarint(body, p)
            col.append(v)
        cols.append(col)
    tags, created, expiry, lengths = cols
    assert tags == [streams.index(r.stream) << 2 | r.priority for r in recs]
    zig = lambda d: d * 2 if d >= 0 else -d * 2 - 1
    assert created == [zig(r.created_ms - int.from_bytes(i[:6], "big")) for r, i in zip(recs, ids)]
    assert expiry == [0 if r.expires_ms is None else r.expires_ms - r.created_ms + 1 for r in recs]
    assert lengths == [len(r.payload) for r in recs]
    assert body[p:] == b"".join(r.payload for r in recs)


def test_batch_round_trip_with_and_without_counters_and_dictionary():
    recs = sample_records()
    b = decode_batch(encode_batch("dev-1", 0, recs))
    assert (b.device_id, b.seq, b.records, b.counters, b.dict_id) == ("dev-1", 0, recs, {}, 0)
    b = decode_batch(encode_batch("dev-1", 2 ** 64 - 1, recs, counters=COUNTERS))
    assert b.seq == 2 ** 64 - 1 and b.counters == COUNTERS
    samples = [f'{{"model":"kws","t":{NOW + i},"top":[["yes",0.{i % 97:02d}]]}}'.encode() for i in range(400)]
    zdict = train_dictionary(samples, 2048)
    did = dictionary_id(zdict)
    data = encode_batch("dev-1", 5, recs, zstd_dict=zdict)
    assert data[5] == 0x01
    b = decode_batch(data, zstd_dicts={did: zdict})
    assert b.records == recs and b.dict_id == did
    b = decode_batch(data, zstd_dicts={did: zstandard.ZstdCompressionDict(zdict)})
    assert b.records == recs
    assert decode_batch(encode_batch("d", 1, [])).records == []


def test_ack_round_trip_and_layout():
    ids = [new_id(NOW + i) for i in range(300)]
    data = encode_ack("dev-1", 77, ids)
    assert data[:6] == b"EKSA\x01\x01"  # one device's ids compress: the zstd form
    assert len(data) < 300 * 4
    a = decode_ack(data)
    assert (a.device_id, a.seq, a.record_ids) == ("dev-1", 77, ids)
    one = encode_ack("dev-1", 3, ids[:1])
    assert one[:6] == b"EKSA\x01\x00"  # raw ids when zstd would not save bytes
    device, pos = read_text(one, 6)
    seq, pos = read_uvarint(one, pos)
    n, pos = read_uvarint(one, pos)
    assert (device, seq, n) == ("dev-1", 3, 1) and one[pos:] == uuid.UUID(ids[0]).bytes
    assert decode_ack(encode_ack("d", 0, [])).record_ids == []


def header(flags=0x00, tail=b"") -> bytes:
    return b"EKSB\x01" + bytes([flags]) + b"\x03dev" + b"\x05" + tail


def frame(body: bytes, **kw) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(body)


BODY_ONE = (b"\x01\x07results\x01" + uuid.UUID(new_id(NOW)).bytes + b"\x02\x00\x00\x02hi")


def _case_id(value):
    """Test ids from the expected message only: some cases hold fresh UUIDv7s, whose bytes
    differ between xdist workers, which must collect the same ids."""
    return value if isinstance(value, str) else "case"


@pytest.mark.parametrize("data, message", [
    (b"", "truncated at magic"),
    (b"EKSX\x01\x00", "bad magic"),
    (b"EKSB\x02\x00", "unsupported version 2"),
    (b"EKSB\x01\x80", "unknown flags 0x80"),
    (b"EKSB\x01\x00\x05de", "truncated at device id"),
    (b"EKSB\x01\x00\x03d/v\x01", "device id 'd/v'"),
    (b"EKSB\x01\x00\x02\xff\xfe\x01", "device id is not UTF-8"),
    (b"EKSB\x01\x00\x03dev" + b"\xff" * 11, "longer than 10 bytes"),
    (header(0x01, b""), "dictionary id"),
    (b"EKSB\x01\x01\x07\x03dev\x01\x00", "unknown dictionary id 7"),
    (b"EKSB\x01\x01\x00\x03dev\x01\x00", "dictionary id 0"),
    (header(0x02, b"\x01\x01a\x01b"), "truncated at counter a/b"),
    (header(0x02, b"\x02\x01a\x01b\x01\x01a\x01b\x02"), "counter a/b appears twice"),
    (header(0, b"\x05" + b"12345"), "not a zstd frame"),
    (header(0, b"\x80\x80\x80\x80\x01"), "decompressed size 268435456 is over the cap"),
    (header(0, b"\x80\x80\x80\x80\x80\x80\x01"), "body size 4398046511104 is over its limit"),
    (header(0, bytes([len(BODY_ONE) + 1])) + frame(BODY_ONE), "declares"),
    (header(0, bytes([len(BODY_ONE)])) + frame(BODY_ONE) + b"x", "bytes after the zstd frame"),
    (header(0, bytes([len(BODY_ONE)])) + frame(BODY_ONE)[:-3], "corrupt zstd body"),
    (header(0, bytes([len(BODY_ONE)])) + frame(BODY_ONE, write_content_size=False), "declares"),
    (header(0, bytes([len(BODY_ONE) + 1])) + frame(BODY_ONE + b"!"), "unexpected bytes after the end"),
    (header(0, bytes([len(BODY_ONE) - 1])) + frame(BODY_ONE[:-1]), "truncated at record 0 payload"),
    (header(0, b"\x0c") + frame(b"\x00\x01" + bytes(10)), "truncated at record ids"),
    (header(0, b"\x12") + frame(b"\x00\x01" + bytes(16)), "not a UUIDv7"),
    (header(0, bytes([len(BODY_ONE)])) + frame(BODY_ONE.replace(b"\x02\x00\x00\x02hi", b"\x06\x00\x00\x02hi")),
     "names stream 1, the table has 1"),
    (header(0, b"\x06") + frame(b"\x02\x01a\x01a\x00"), "appears twice in the stream table"),
], ids=_case_id)
def test_malformed_batches_raise_wire_format_error_naming_the_problem(data, message):
    with pytest.raises(WireFormatError, match=message) as e:
        decode_batch(data)
    assert e.value.exit_code == 2 and isinstance(e.value, BadInputError)


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    bomb_body = bytes(64 << 20)  # 64 MiB of zeros: a few kB compressed
    packed = frame(bomb_body, level=1)
    assert len(packed) < 100_000
    length = bytearray()
    v = len(bomb_body)
    while v >= 0x80:
        length.append(v & 0x7F | 0x80)
        v >>= 7
    length.append(v)
    cap = f"decompressed size {len(bomb_body)} is over the cap of {MAX_BODY_BYTES}"
    with pytest.raises(WireFormatError, match=cap):
        decode_batch(header(0, bytes(length)) + packed)
    small = encode_batch("dev", 1, sample_records())
    with pytest.raises(WireFormatError, match="over the cap of 100 bytes"):
        decode_batch(small, max_body_bytes=100)


def test_a_batch_made_with_a_dictionary_needs_that_dictionary():
    samples = [f"sample {i} {'x' * (i % 17)}".encode() for i in range(500)]
    d1, d2 = train_dictionary(samples, 1024), train_dictionary(samples[::-1] + [b"other"] * 50, 1024)
    data = encode_batch("dev", 1, sample_records(), zstd_dict=d1)
    with pytest.raises(WireFormatError, match=f"unknown dictionary id {dictionary_id(d1)}"):
        decode_batch(data)
    if dictionary_id(d2) != dictionary_id(d1):
        with pytest.raises(WireFormatError, match="unknown dictionary id"):
            decode_batch(data, zstd_dicts={dictionary_id(d2): d2})
    with pytest.raises(WireFormatError, match="corrupt zstd body|not a zstd dictionary"):
        decode_batch(data, zstd_dicts={dictionary_id(d1): d2})  # the right id, the wrong content


@pytest.mark.parametrize("data, message", [
    (b"EKSB\x01\x00", "bad magic"),
    (b"EKSA\x09\x00", "unsupported version 9"),
    (b"EKSA\x01\x02\x01d\x00\x00", "unknown flags"),
    (b"EKSA\x01\x00\x01d\x00\x02" + bytes(16), "truncated at record ids"),
    (b"EKSA\x01\x00\x01d\x00\x01" + bytes(16), "id 0 .* is not a UUIDv7"),
    (b"EKSA\x01\x00\x01d\x00\x00x", "unexpected bytes"),
    (b"EKSA\x01\x00\x01d\x00\xff\xff\xff\x7f", "id count .* over its limit"),
    (b"EKSA\x01\x01\x01d\x00\x01" + frame(uuid.UUID(new_id()).bytes + b"!"), "declares"),
], ids=_case_id)
def test_malformed_acks_raise_wire_format_error(data, message):
    with pytest.raises(WireFormatError, match=message):
        decode_ack(data)


@pytest.mark.parametrize("call, message", [
    (lambda: encode_batch("dev/1", 0, []), "device id"),
    (lambda: encode_batch("", 0, []), "device id"),
    (lambda: encode_batch("d", -1, []), "sequence number"),
    (lambda: encode_batch("d", 2 ** 64, []), "sequence number"),
    (lambda: encode_batch("d", 0, [sample_records()[0]] * 2), "appears twice"),
    (lambda: encode_batch("d", 0, ["not a record"]), "not a Record"),
    (lambda: encode_batch("d", 0, [Record("x", "s", 0, 1, None, b"")]), "not a UUID"),
    (lambda: encode_batch("d", 0, [Record(new_id(), "s", 5, 1, None, b"")]), "priority"),
    (lambda: encode_batch("d", 0, [Record(new_id(), "s", 0, 10, 9, b"")]), "expires_ms"),
    (lambda: encode_batch("d", 0, [Record(new_id(), "s s", 0, 10, None, b"")]), "stream name"),
    (lambda: encode_batch("d", 0, [], counters={"a": {"b": -1}}), "counter a/b"),
    (lambda: encode_batch("d", 0, [], counters={"a b": {}}), "counter 'a b'"),
    (lambda: encode_ack("d", 0, ["nope"]), "not a UUID"),
    (lambda: encode_ack("d", 0, [str(uuid.uuid4())]), "not a UUIDv7"),
])
def test_encoders_refuse_what_they_cannot_write(call, message):
    with pytest.raises(WireFormatError, match=message):
        call()
