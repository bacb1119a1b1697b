"""The MQTT chunk request and response formats: any bytes give a valid message or
ChunkFormatError, never another exception; valid messages survive a round trip, and a
response whose bytes do not hash to its header's sha256 is refused."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.sync.update_chunks import (
    MAX_REQUEST_CHUNKS,
    ChunkFormatError,
    ChunkRequest,
    ChunkResponse,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
UID = st.binary(min_size=16, max_size=16).map(bytes.hex)
SHA = st.binary(min_size=32, max_size=32).map(bytes.hex)


def _mutate(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf)


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes_decode_or_raise_the_formats_error(data):
    for decode in (decode_request, decode_response):
        try:
            decode(data)
        except ChunkFormatError:
            pass


@FUZZ
@given(UID, st.lists(SHA, min_size=1, max_size=MAX_REQUEST_CHUNKS),
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4), st.integers(0, 40))
def test_requests_round_trip_and_mutations_never_crash(uid, shas, edits, cut):
    data = encode_request(uid, shas)
    assert len(data) == 4 + 1 + 16 + 2 + 32 * len(shas)
    assert decode_request(data) == ChunkRequest(uid, tuple(shas))
    for variant in (_mutate(data, edits), data[:-cut] if cut else data + b"x"):
        try:
            decode_request(variant)
        except ChunkFormatError:
            pass


@FUZZ
@given(UID, st.binary(max_size=2000), st.text(max_size=200),
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4))
def test_responses_round_trip_and_any_flip_of_a_chunk_is_refused(uid, chunk, reason, edits):
    sha = hashlib.sha256(chunk).hexdigest()
    data = encode_response(uid, sha, chunk)
    assert decode_response(data) == ChunkResponse(uid, sha, chunk)
    refusal = decode_response(encode_response(uid, sha, refused=reason))
    assert refusal.data is None and refusal.reason == reason.encode("utf-8")[:1024].decode("utf-8", "ignore")
    mutated = _mutate(data, edits)
    try:
        got = decode_response(mutated)
    except ChunkFormatError:
        return
    # whatever still decodes is self-consistent: its bytes hash to the sha256 it names
    assert got.data is None or hashlib.sha256(got.data).hexdigest() == got.sha256


def test_known_bytes_and_errors_name_the_problem():
    uid, sha = "ab" * 16, "cd" * 32
    assert encode_request(uid, [sha]) == b"EKCQ\x01" + bytes.fromhex(uid) + b"\x00\x01" + bytes.fromhex(sha)
    chunk = b"hello"
    digest = hashlib.sha256(chunk).digest()
    assert encode_response(uid, digest.hex(), chunk) == (b"EKCR\x01\x00" + bytes.fromhex(uid) + digest
                                                          + struct.pack(">I", 5) + chunk)
    with pytest.raises(ChunkFormatError, match="hash to"):
        decode_response(b"EKCR\x01\x00" + bytes.fromhex(uid) + bytes.fromhex(sha) + struct.pack(">I", 5) + chunk)
    with pytest.raises(ChunkFormatError, match="1 to 64"):
        encode_request(uid, [])
    with pytest.raises(ChunkFormatError, match="names 0 chunks"):
        decode_request(b"EKCQ\x01" + bytes(16) + b"\x00\x00")
    with pytest.raises(ChunkFormatError, match="version 2"):
        decode_request(b"EKCQ\x02" + bytes(16) + b"\x00\x01" + bytes(32))
    with pytest.raises(ChunkFormatError, match="status 7"):
        decode_response(b"EKCR\x01\x07" + bytes(48) + bytes(4))
