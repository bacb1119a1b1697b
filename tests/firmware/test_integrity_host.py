"""Integrity and the A/B guarantee on the firmware's host build: a package whose body
differs from its model_hash is refused at COMMIT even when its upload CRC matches; a
BEGIN for the package that is already active erases nothing (the previous model stays
in the other slot); COMMIT is idempotent and refuses to commit another package than the
one it names."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgekit.bundle import pack_model, read_package_header
from edgekit.device import protocol as P
from tests.firmware.support import FORMAT1_PACKAGE, Stream, reference_output, restamp, restamp_crc, run_host

HASH_REASON = 11  # docs/model-package.md, "What the firmware checks"


def _models():
    from tests.backends.c.graphs import cases

    graphs = cases()
    a, b = graphs["handmade"], graphs["convs"]
    return (a, pack_model(a, "cortex-m4", name="a")), (b, pack_model(b, "cortex-m4", name="b"))


def _zeros(graph) -> bytes:
    t = graph.input_tensors()[0]
    return np.zeros(t.shape, t.dtype.np).tobytes()


def _states(run, seq):
    return [(s.state, s.name, s.model_hash) for s in P.parse_info(run.payload(seq, P.INFO)).slots]


def test_altered_weights_are_refused_and_the_previous_model_serves(host_fw):
    (ga, a), (gb, b) = _models()
    h = read_package_header(b)
    weights = gb.tensor("wf").data.tobytes()             # the fully connected layer's weights
    at = b.index(weights) + len(weights) // 2
    altered = bytearray(b)
    altered[at] ^= 0x01  # one weight; the header untouched
    assert read_package_header(bytes(altered)).model_hash == h.model_hash  # the header still agrees
    s = Stream()
    s.upload(a, "a")
    bad = s.upload(bytes(altered), "altered")  # its own CRC: arrives intact
    info = s.add(P.INFO)
    infer = s.add(P.INFER, _zeros(ga))
    # the same bytes with model_hash (and the header CRC) brought up to date are accepted:
    # the check compares the hash, it does not refuse every change
    good = s.upload(restamp(altered), "fixed")
    run = run_host(host_fw, bytes(s))
    code, detail, message = run.error(bad["commit"])
    assert (code, detail & 0xFFFF, detail >> 16) == (P.E_HEADER, HASH_REASON, 0xFFFF)
    assert "SHA-256" in message
    slots = _states(run, info)
    assert slots[0] == ("active", "a", read_package_header(a).model_id)
    assert slots[1][0] == "empty"
    assert run.payload(infer, P.INFER)[5:] == reference_output(ga, np.zeros(ga.input_tensors()[0].shape,
                                                                             np.int8))
    assert run.payload(good["commit"], P.UPLOAD_COMMIT) == b"\x01"


def test_begin_of_the_active_package_keeps_the_previous_model(host_fw):
    (ga, a), (gb, b) = _models()
    crc_a, crc_b = zlib.crc32(a), zlib.crc32(b)
    s = Stream()
    s.upload(a, "a")
    s.upload(b, "b")                                     # b active in slot 1, a valid in slot 0
    again = s.add(P.UPLOAD_BEGIN, P.pack_begin(len(b), crc_b, "b"))
    i1 = s.add(P.INFO)
    plain = s.add(P.UPLOAD_COMMIT)                       # a host that names nothing
    named = s.add(P.UPLOAD_COMMIT, struct.pack("<II", len(b), crc_b))  # a new seq: run again
    other = s.add(P.UPLOAD_COMMIT, struct.pack("<II", len(a), crc_a))  # a is not active
    reset = s.add(P.RESET)
    i2 = s.add(P.INFO)
    infer = s.add(P.INFER, _zeros(gb))
    run = run_host(host_fw, bytes(s))
    assert P.parse_begin_response(run.payload(again, P.UPLOAD_BEGIN)) == (1, len(b))
    want = [("valid", "a", read_package_header(a).model_id),
            ("active", "b", read_package_header(b).model_id)]
    assert _states(run, i1) == want
    assert run.payload(plain, P.UPLOAD_COMMIT) == b"\x01"
    assert run.payload(named, P.UPLOAD_COMMIT) == b"\x01"
    assert run.error(other)[0] == P.E_STATE
    assert run.payload(reset, P.RESET) == b""
    assert _states(run, i2) == want                      # both records survive a reset
    x = np.zeros(gb.input_tensors()[0].shape, gb.input_tensors()[0].dtype.np)
    assert run.payload(infer, P.INFER)[5:] == reference_output(gb, x)


def test_commit_naming_another_package_is_refused(host_fw):
    (_, a), (_, b) = _models()
    s = Stream()
    up = s.upload(a, "a", commit=False)
    wrong = s.add(P.UPLOAD_COMMIT, struct.pack("<II", len(b), zlib.crc32(b)))
    right = s.add(P.UPLOAD_COMMIT, struct.pack("<II", len(a), zlib.crc32(a)))
    run = run_host(host_fw, bytes(s))
    assert P.parse_u32(run.payload(up["chunks"][-1], P.UPLOAD_CHUNK), "") == len(a)
    assert run.error(wrong)[:2] == (P.E_STATE, len(a))
    assert run.payload(right, P.UPLOAD_COMMIT) == b"\x00"


def test_full_digest_and_format_are_checked_at_commit(host_fw):
    """A stored digest wrong in its last byte (a firmware comparing 8 bytes took it) and a
    package of format 1.0 are refused; the untouched package is accepted."""
    (ga, a), _ = _models()
    last = bytearray(a)
    last[87] ^= 0x80  # the last byte of model_hash (bytes 56..87)
    s = Stream()
    bad = s.upload(restamp_crc(last), "last-byte")
    old = s.upload(FORMAT1_PACKAGE.read_bytes(), "format1")
    info = s.add(P.INFO)
    good = s.upload(a, "a")
    infer = s.add(P.INFER, _zeros(ga))
    run = run_host(host_fw, bytes(s))
    code, detail, _ = run.error(bad["commit"])
    assert (code, detail & 0xFFFF) == (P.E_HEADER, HASH_REASON)
    code, detail, _ = run.error(old["commit"])
    # reason 3; the op field names the package's format (1) and the firmware's (2)
    assert (code, detail) == (P.E_HEADER, 3 | ((1 | 2 << 8) << 16))
    assert P.describe_error(P.UPLOAD_COMMIT, code, detail).endswith(
        "(the package is format 1.x, this firmware runs format 2.x)")
    assert [st[0] for st in _states(run, info)] == ["empty", "empty"]
    assert run.payload(good["commit"], P.UPLOAD_COMMIT) == b"\x00"
    x = np.zeros(ga.input_tensors()[0].shape, np.int8)
    assert run.payload(infer, P.INFER)[5:] == reference_output(ga, x)
