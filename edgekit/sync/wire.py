"""The sync wire formats, version 1: a batch of records (device -> hub) and an ack
(hub -> device). Byte by byte in docs/sync-protocol.md.

Every transport (MQTT, HTTP, files) carries these same bytes. Decoders treat their input
as hostile: anything malformed raises WireFormatError naming the field, and the zstd body
is decompressed only up to a hard size cap, so a small "zip bomb" cannot take the memory.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional

import zstandard

from edgekit.errors import BadInputError
from edgekit.sync.records import PRIORITIES, Record, id_from_bytes, id_to_bytes, is_uuid7

BATCH_MAGIC = b"EKSB"
ACK_MAGIC = b"EKSA"
VERSION = 1
BATCH_FLAG_DICT = 0x01      # a dictionary id follows; the body was compressed with that dictionary
BATCH_FLAG_COUNTERS = 0x02  # a counters section follows
ACK_FLAG_ZSTD = 0x01        # the ids are one zstd frame instead of raw bytes
MAX_BODY_BYTES = 16 << 20   # default cap on a decompressed batch body
MAX_RECORDS = 100_000       # per batch, and ids per ack
MAX_COUNTERS = 4096
DEFAULT_LEVEL = 19          # zstd level: batches are small, so even 19 costs milliseconds
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


class WireFormatError(BadInputError):
    """Bytes that are not a valid batch or ack of a version this edgekit reads."""


@dataclasses.dataclass(frozen=True)
class Batch:
    device_id: str
    seq: int
    records: List[Record]
    counters: Dict[str, Dict[str, int]]  # {} when the batch carried none
    dict_id: int                         # 0: no dictionary


@dataclasses.dataclass(frozen=True)
class Ack:
    device_id: str
    seq: int
    record_ids: List[str]


def check_device_id(device_id) -> str:
    """A device id: 1-128 characters, letters, digits and ``_ . : -``, starting with a
    letter or digit (it goes into MQTT topics and file names)."""
    if not isinstance(device_id, str) or not _DEVICE_RE.match(device_id):
        raise WireFormatError(f"device id {device_id!r} is not 1-128 characters of letters, digits and _ . : - "
                              "starting with a letter or digit")
    return device_id


# ---------------------------------------------------------------------- primitives


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _uvarint(len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data = data
        self.pos = 0
        self.what = what

    def fail(self, message: str):
        raise WireFormatError(f"{self.what}: {message}")

    def take(self, n: int, field: str) -> bytes:
        if n > len(self.data) - self.pos:
            self.fail(f"truncated at {field} (needs {n} bytes at offset {self.pos}, {len(self.data) - self.pos} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uvarint(self, field: str, limit: int = (1 << 64) - 1) -> int:
        value = shift = 0
        for _ in range(10):
            if self.pos >= len(self.data):
                self.fail(f"truncated at {field} (varint at offset {self.pos})")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if value > limit:
                    self.fail(f"{field} {value} is over its limit {limit}")
                return value
        self.fail(f"{field}: varint longer than 10 bytes at offset {self.pos - 10}")

    def zigzag(self, field: str) -> int:
        v = self.uvarint(field)
        return v >> 1 if not v & 1 else -((v + 1) >> 1)

    def name(self, field: str, pattern=_NAME_RE) -> str:
        raw = self.take(self.uvarint(f"{field} length", 256), field)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{field} is not UTF-8")
        if not pattern.match(text):
            self.fail(f"{field} {text!r} has characters or a length not allowed")
        return text

    def end(self) -> None:
        if self.pos != len(self.data):
            self.fail(f"{len(self.data) - self.pos} unexpected bytes after the end at offset {self.pos}")


def _header(data, magic: bytes, what: str) -> _Reader:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireFormatError(f"{what}: expected bytes, got {type(data).__name__}")
    r = _Reader(bytes(data), what)
    got = r.take(4, "magic")
    if got != magic:
        r.fail(f"bad magic {got!r} (expected {magic!r})")
    version = r.take(1, "version")[0]
    if version != VERSION:
        r.fail(f"unsupported version {version} (this edgekit reads version {VERSION})")
    return r


def _decompress(r: _Reader, frame: bytes, size: int, cap: int, dctx: zstandard.ZstdDecompressor,
                expect_dict_id: int) -> bytes:
    """Exactly ``size`` bytes out of one zstd frame, refusing anything over ``cap``."""
    if size > cap:
        r.fail(f"decompressed size {size} is over the cap of {cap} bytes")
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as e:
        r.fail(f"body is not a zstd frame ({e})")
    if params.content_size != size:
        r.fail(f"zstd frame declares {params.content_size} bytes, the header {size}")
    if params.dict_id != expect_dict_id:
        r.fail(f"zstd frame was made with dictionary id {params.dict_id}, the header says {expect_dict_id}")
    try:
        # The frame declares its size (checked against the cap above), and zstd refuses
        # output beyond the declared size: the allocation is bounded by the cap.
        out = dctx.decompress(frame, max_output_size=cap)
        # decompress() stops after one frame: a second pass tells whether bytes follow it.
        obj = dctx.decompressobj()
        obj.decompress(frame)
        trailing = len(obj.unused_data) if obj.eof else -1
    except zstandard.ZstdError as e:
        r.fail(f"corrupt zstd body ({e})")
    if len(out) != size:
        r.fail(f"body decompressed to {len(out)} bytes, the header says {size}")
    if trailing:
        r.fail("bytes after the zstd frame" if trailing > 0 else "zstd frame does not end")
    return out


# ---------------------------------------------------------------------- batch


def _check_counters(counters) -> Dict[str, Dict[str, int]]:
    if counters is None:
        return {}
    if not isinstance(counters, dict):
        raise WireFormatError(f"counters must be a dict of dicts, not {type(counters).__name__}")
    total = 0
    for name, per_key in counters.items():
        if not isinstance(name, str) or not _NAME_RE.match(name) or not isinstance(per_key, dict):
            raise WireFormatError(f"counter {name!r} must be a name (1-64 of letters, digits, _ . : -) "
                                  "mapping to a dict")
        for key, value in per_key.items():
            total += 1
            if not isinstance(key, str) or not _NAME_RE.match(key):
                raise WireFormatError(f"counter key {key!r} under {name!r} is not 1-64 of letters, digits, _ . : -")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise WireFormatError(f"counter {name}/{key} = {value!r} is not an integer in 0 .. 2**64-1")
    if total > MAX_COUNTERS:
        raise WireFormatError(f"{total} counters: at most {MAX_COUNTERS} fit in a batch")
    return counters


def _dict_data(zstd_dict) -> Optional[zstandard.ZstdCompressionDict]:
    if zstd_dict is None or isinstance(zstd_dict, zstandard.ZstdCompressionDict):
        return zstd_dict
    if isinstance(zstd_dict, (bytes, bytearray, memoryview)):
        return zstandard.ZstdCompressionDict(bytes(zstd_dict))
    raise WireFormatError(f"zstd_dict must be bytes or a zstandard.ZstdCompressionDict, not {type(zstd_dict).__name__}")


def _encode_body(records) -> bytes:
    # Column by column (all ids, then all tags, ... then all payloads): like fields side by
    # side compress far better than record after record (docs/sync-protocol.md).
    streams: Dict[str, int] = {}
    ids, tags, created_deltas, expiries, lengths, payloads = [], [], [], [], [], []
    seen = set()
    for rec in records:
        if not isinstance(rec, Record):
            raise WireFormatError(f"cannot encode batch: {type(rec).__name__} is not a Record")
        try:
            raw_id = id_to_bytes(rec.id)
        except BadInputError as e:
            raise WireFormatError(f"cannot encode batch: {e}") from None
        if raw_id in seen:
            raise WireFormatError(f"cannot encode batch: record {rec.id} appears twice")
        seen.add(raw_id)
        if not isinstance(rec.stream, str) or not _NAME_RE.match(rec.stream):
            raise WireFormatError(f"cannot encode batch: record {rec.id} has a bad stream name {rec.stream!r}")
        if rec.priority not in PRIORITIES or isinstance(rec.priority, bool):
            raise WireFormatError(f"cannot encode batch: record {rec.id} has priority {rec.priority!r}")
        created = rec.created_ms
        if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < 1 << 63:
            raise WireFormatError(f"cannot encode batch: record {rec.id} has created_ms {created!r}")
        if rec.expires_ms is None:
            expiry = 0
        elif isinstance(rec.expires_ms, int) and not isinstance(rec.expires_ms, bool) \
                and created <= rec.expires_ms < 1 << 63:
            expiry = rec.expires_ms - created + 1
        else:
            raise WireFormatError(f"cannot encode batch: record {rec.id} has expires_ms {rec.expires_ms!r} "
                                  "(None, or not before created_ms)")
        if not isinstance(rec.payload, (bytes, bytearray)):
            raise WireFormatError(f"cannot encode batch: record {rec.id} payload is not bytes")
        ids.append(raw_id)
        tags.append(_uvarint(streams.setdefault(rec.stream, len(streams)) << 2 | rec.priority))
        created_deltas.append(_uvarint(_zigzag(created - int.from_bytes(raw_id[:6], "big"))))
        expiries.append(_uvarint(expiry))
        lengths.append(_uvarint(len(rec.payload)))
        payloads.append(bytes(rec.payload))
    if len(ids) > MAX_RECORDS:
        raise WireFormatError(f"cannot encode batch: {len(ids)} records, at most {MAX_RECORDS}")
    head = _uvarint(len(streams)) + b"".join(_text(s) for s in streams) + _uvarint(len(ids))
    return head + b"".join(ids + tags + created_deltas + expiries + lengths + payloads)


def encode_batch(device_id: str, seq: int, records: list, *, counters: Optional[dict] = None, zstd_dict=None,
                 level: int = DEFAULT_LEVEL) -> bytes:
    """One batch (format v1) of ``records`` from ``device_id``, number ``seq`` in its
    sequence. ``counters``: {name: {key: int}} reported upstream (SyncQueue.upstream_counters()).
    ``zstd_dict``: a trained dictionary (bytes or ZstdCompressionDict); the hub must know it by id."""
    check_device_id(device_id)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 64:
        raise WireFormatError(f"batch sequence number {seq!r} is not an integer in 0 .. 2**64-1")
    counters = _check_counters(counters)
    zdict = _dict_data(zstd_dict)
    body = _encode_body(records)
    if len(body) > MAX_BODY_BYTES:
        raise WireFormatError(f"cannot encode batch: body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    flags = 0
    head = bytearray()
    dict_id = zdict.dict_id() if zdict is not None else 0
    if dict_id:
        flags |= BATCH_FLAG_DICT
        head += _uvarint(dict_id)
    head += _text(device_id) + _uvarint(seq)
    if counters:
        flags |= BATCH_FLAG_COUNTERS
        items = [(n, k, v) for n, per in counters.items() for k, v in per.items()]
        head += _uvarint(len(items))
        for name, key, value in items:
            head += _text(name) + _text(key) + _uvarint(value)
    head += _uvarint(len(body))
    cctx = zstandard.ZstdCompressor(level=level, dict_data=zdict, write_checksum=True, write_content_size=True,
                                    write_dict_id=True)
    return BATCH_MAGIC + bytes([VERSION, flags]) + bytes(head) + cctx.compress(body)


def decode_batch(data: bytes, *, zstd_dicts: Optional[dict] = None, max_body_bytes: int = MAX_BODY_BYTES) -> Batch:
    """The Batch in ``data``; WireFormatError for anything malformed. ``zstd_dicts``:
    {dict id: dictionary bytes or ZstdCompressionDict} the hub knows."""
    r = _header(data, BATCH_MAGIC, "batch")
    flags = r.take(1, "flags")[0]
    if flags & ~(BATCH_FLAG_DICT | BATCH_FLAG_COUNTERS):
        r.fail(f"unknown flags 0x{flags:02x}")
    dict_id = 0
    zdict = None
    if flags & BATCH_FLAG_DICT:
        dict_id = r.uvarint("dictionary id", 0xFFFFFFFF)
        if dict_id == 0:
            r.fail("dictionary flag set with dictionary id 0")
        known = zstd_dicts or {}
        if dict_id not in known:
            r.fail(f"unknown dictionary id {dict_id} (known: {sorted(known) or 'none'})")
        try:
            zdict = _dict_data(known[dict_id])
        except WireFormatError as e:
            r.fail(str(e))
    device_id = r.name("device id", _DEVICE_RE)
    seq = r.uvarint("sequence number")
    counters: Dict[str, Dict[str, int]] = {}
    if flags & BATCH_FLAG_COUNTERS:
        n = r.uvarint("counter count", MAX_COUNTERS)
        for i in range(n):
            name = r.name(f"counter {i} name")
            key = r.name(f"counter {i} key")
            value = r.uvarint(f"counter {name}/{key}")
            if key in counters.setdefault(name, {}):
                r.fail(f"counter {name}/{key} appears twice")
            counters[name][key] = value
    size = r.uvarint("body size", 1 << 40)
    frame = r.data[r.pos:]
    try:
        dctx = zstandard.ZstdDecompressor(dict_data=zdict)
    except zstandard.ZstdError as e:
        r.fail(f"dictionary {dict_id} is not a zstd dictionary ({e})")
    body = _decompress(r, frame, size, max_body_bytes, dctx, dict_id)
    records = _decode_body(_Reader(body, f"batch {device_id}#{seq} body"))
    return Batch(device_id, seq, records, counters, dict_id)


def _decode_body(r: _Reader) -> List[Record]:
    streams = [r.name(f"stream {i}") for i in range(r.uvarint("stream count", 1 << 16))]
    if len(set(streams)) != len(streams):
        r.fail("a stream name appears twice in the stream table")
    count = r.uvarint("record count", MAX_RECORDS)
    raw_ids = r.take(16 * count, "record ids")
    ids = []
    for i in range(count):
        raw_id = raw_ids[16 * i:16 * i + 16]
        if not is_uuid7(raw_id):
            r.fail(f"record {i} id {raw_id.hex()} is not a UUIDv7")
        ids.append(raw_id)
    if len(set(ids)) != count:
        r.fail("a record id appears twice")
    tags = [r.uvarint(f"record {i} stream/priority") for i in range(count)]
    for i, tag in enumerate(tags):
        if tag >> 2 >= len(streams):
            r.fail(f"record {i} names stream {tag >> 2}, the table has {len(streams)}")
    created = [int.from_bytes(ids[i][:6], "big") + r.zigzag(f"record {i} created_ms") for i in range(count)]
    expiries = [r.uvarint(f"record {i} expiry") for i in range(count)]
    lengths = [r.uvarint(f"record {i} payload length") for i in range(count)]
    records = []
    for i in range(count):
        if not 0 <= created[i] < 1 << 63:
            r.fail(f"record {i} created_ms {created[i]} is out of range")
        expires = None if expiries[i] == 0 else created[i] + expiries[i] - 1
        if expires is not None and expires >= 1 << 63:
            r.fail(f"record {i} expires_ms {expires} is out of range")
        payload = r.take(lengths[i], f"record {i} payload")
        records.append(Record(id_from_bytes(ids[i]), streams[tags[i] >> 2], tags[i] & 3, created[i], expires,
                              payload))
    r.end()
    return records


# ---------------------------------------------------------------------- ack


def encode_ack(device_id: str, seq: int, record_ids: list) -> bytes:
    """The hub's ack of batch ``seq``: the ids of the records it has stored (custody taken)."""
    check_device_id(device_id)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 64:
        raise WireFormatError(f"ack sequence number {seq!r} is not an integer in 0 .. 2**64-1")
    try:
        raw = b"".join(id_to_bytes(i) for i in record_ids)
    except BadInputError as e:
        raise WireFormatError(f"cannot encode ack: {e}") from None
    count = len(raw) // 16
    if count > MAX_RECORDS:
        raise WireFormatError(f"cannot encode ack: {count} ids, at most {MAX_RECORDS}")
    flags = 0
    packed = zstandard.ZstdCompressor(level=DEFAULT_LEVEL, write_checksum=True, write_content_size=True).compress(raw)
    if len(packed) < len(raw):  # ids of one device share most of their bytes
        flags, raw = ACK_FLAG_ZSTD, packed
    return ACK_MAGIC + bytes([VERSION, flags]) + _text(device_id) + _uvarint(seq) + _uvarint(count) + raw


def decode_ack(data: bytes) -> Ack:
    """The Ack in ``data``; WireFormatError for anything malformed."""
    r = _header(data, ACK_MAGIC, "ack")
    flags = r.take(1, "flags")[0]
    if flags & ~ACK_FLAG_ZSTD:
        r.fail(f"unknown flags 0x{flags:02x}")
    device_id = r.name("device id", _DEVICE_RE)
    seq = r.uvarint("sequence number")
    count = r.uvarint("id count", MAX_RECORDS)
    if flags & ACK_FLAG_ZSTD:
        raw = _decompress(r, r.data[r.pos:], count * 16, MAX_RECORDS * 16, zstandard.ZstdDecompressor(), 0)
    else:
        raw = r.take(count * 16, "record ids")
        r.end()
    ids = []
    for i in range(count):
        one = raw[16 * i:16 * i + 16]
        if not is_uuid7(one):
            r.fail(f"id {i} ({one.hex()}) is not a UUIDv7")
        ids.append(id_from_bytes(one))
    return Ack(device_id, seq, ids)


# ---------------------------------------------------------------------- dictionaries


def train_dictionary(payloads: list, size: int = 8192) -> bytes:
    """A zstd dictionary trained on sample record payloads (a few hundred or more).
    Device and hub must both hold it; batches name it by its id (dictionary_id)."""
    try:
        return zstandard.train_dictionary(size, [bytes(p) for p in payloads]).as_bytes()
    except zstandard.ZstdError as e:
        raise BadInputError(f"cannot train a zstd dictionary on {len(payloads)} samples: {e} "
                            "(give more and more varied samples)") from None


def dictionary_id(dict_bytes: bytes) -> int:
    """The id a batch made with this dictionary carries (0: a raw-content dictionary)."""
    return zstandard.ZstdCompressionDict(bytes(dict_bytes)).dict_id()
