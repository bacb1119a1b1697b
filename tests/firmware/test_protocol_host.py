"""The firmware's side of docs/serial-protocol.md, checked on the host build: framing
checks and NAK, the duplicate-request cache, every command's responses and errors,
resumable and go-back-N uploads, and A/B activation."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgekit.bundle import pack_model, read_package_header
from edgekit.device import cobs
from edgekit.device import frames as F
from edgekit.device import protocol as P
from tests.firmware import support
from tests.firmware.support import Stream, reference_output, run_host

E_PAYLOAD = 11


def _kws_package() -> bytes:
    return pack_model(support.kws_graph(), "cortex-m4")


def test_hello_info_stats_and_banner(host_fw):
    s = Stream()
    hello, info, stats = s.add(P.HELLO, b"\x01"), s.add(P.INFO), s.add(P.STATS)
    newer = s.add(P.HELLO, b"\x07")  # a newer host: the device answers in version 1
    run = run_host(host_fw, bytes(s))
    assert run.raw.startswith(b"edgekit-fw 0.3.0 proto 1 target cortex-m4 board host\n\x00")
    h = P.parse_hello(run.payload(hello, P.HELLO))
    assert (h.protocol, h.firmware, h.max_payload, h.window) == (1, "0.3.0", 1024, 4)
    assert (h.slot_count, h.target, h.board) == (2, "cortex-m4", "host")
    assert h.slot_size == 1024 * 1024 - 64 and h.arena_size == 256 * 1024
    i = P.parse_info(run.payload(info, P.INFO))
    assert i.active_slot is None and [x.state for x in i.slots] == ["empty", "empty"]
    st = run.payload(stats, P.STATS)
    assert len(st) == 36  # the 8 fields of v1 + uart_dropped
    st = P.parse_stats(st)
    assert st.frames_ok == 3 and st.frames_bad == 0 and st.tick_hz == 1_000_000
    assert P.parse_hello(run.payload(newer, P.HELLO)).protocol == 1


def test_request_errors(host_fw):
    s = Stream()
    old = s.add(P.HELLO, b"\x00")
    empty_hello = s.add(P.HELLO)
    unknown = s.add(0x55)
    response_type = s.add(P.INFO | P.RESPONSE)
    short_begin = s.add(P.UPLOAD_BEGIN, b"\x01\x02")
    short_chunk = s.add(P.UPLOAD_CHUNK, b"\x01")
    chunk = s.add(P.UPLOAD_CHUNK, P.pack_chunk(0, b"abc"))
    commit = s.add(P.UPLOAD_COMMIT)
    abort = s.add(P.UPLOAD_ABORT)
    infer = s.add(P.INFER, b"\x00" * 490)
    too_big = s.add(P.UPLOAD_BEGIN, P.pack_begin(1 << 30, 0, "big"))
    too_small = s.add(P.UPLOAD_BEGIN, P.pack_begin(100, 0, "small"))
    run = run_host(host_fw, bytes(s))
    assert run.error(old)[0] == P.E_VERSION
    assert run.error(empty_hello)[:2] == (E_PAYLOAD, 0)
    assert run.error(unknown)[:2] == (P.E_UNKNOWN, 0x55)
    assert run.error(response_type)[0] == P.E_UNKNOWN
    assert run.error(short_begin)[:2] == (E_PAYLOAD, 2)
    assert run.error(short_chunk)[0] == E_PAYLOAD
    assert run.error(chunk)[0] == P.E_STATE
    assert run.error(commit)[0] == P.E_STATE
    assert run.payload(abort, P.UPLOAD_ABORT) == b""  # nothing to abort is fine
    assert run.error(infer)[0] == P.E_NO_MODEL
    code, detail, _ = run.error(too_big)
    assert code == P.E_TOO_LARGE and detail == 1024 * 1024 - 64
    assert run.error(too_small)[0] == P.E_HEADER


def _raw_frame(version=1, type_=P.INFO, seq=9, payload=b"", length=None, crc_xor=0) -> bytes:
    length = len(payload) if length is None else length
    body = struct.pack("<BBHH", version, type_, seq, length) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body) ^ crc_xor)) + b"\x00"


def test_bad_frames_are_counted_and_nakked(host_fw):
    s = Stream(seq=100)
    s.raw(b"\x00\x00\x00")                                 # empty runs: ignored
    s.raw(_raw_frame(crc_xor=1))                           # bad CRC
    s.raw(_raw_frame(version=2))                           # unknown version
    s.raw(_raw_frame(payload=b"xy", length=5))             # length mismatch
    s.raw(_raw_frame(payload=b"x" * 1025))                 # over max_payload
    s.raw(b"\x05\x01\x02\x00")                             # COBS block past the end
    s.raw(b"\x07" * 3000 + b"\x00")                        # no delimiter for 3000 bytes
    s.raw(b"\x03ab\x00")                                   # shorter than a frame
    stats = s.add(P.STATS)
    run = run_host(host_fw, bytes(s))
    naks = [f for f in run.frames if f.type == P.NAK]
    assert len(naks) == 7 and all(f.seq == 0xFFFF and f.payload == b"" for f in naks)
    st = P.parse_stats(run.payload(stats, P.STATS))
    assert st.frames_bad == 7 and st.naks == 7 and st.frames_ok == 1


def test_first_frame_without_a_leading_delimiter_is_answered(host_fw):
    run = run_host(host_fw, F.encode(P.HELLO, 1, b"\x01"))
    assert P.parse_hello(run.payload(1, P.HELLO)).board == "host"
    run = run_host(host_fw, b"\x00" + F.encode(P.HELLO, 1, b"\x01"))
    assert P.parse_hello(run.payload(1, P.HELLO)).board == "host"


def test_duplicate_request_is_answered_from_the_cache(host_fw):
    pkg = _kws_package()
    x = support.kws_inputs(1)[0].tobytes()
    s = Stream()
    s.upload(pkg)
    infer = s.add(P.INFER, x)
    s.raw(F.encode(P.INFER, infer, x))                     # retransmission: same seq, same bytes
    stats = s.add(P.STATS)
    s.raw(F.encode(P.STATS, stats + 1, b""))               # a new request
    s.raw(F.encode(P.INFER, stats + 1, x))                 # same seq, other bytes: a new request
    final = s.seq = stats + 2
    s.add(P.STATS)
    run = run_host(host_fw, bytes(s))
    first, again = run.by_seq(infer)
    assert first == again  # byte for byte the stored response
    st = P.parse_stats(run.payload(stats, P.STATS))
    assert st.inferences == 1 and st.duplicates == 1
    assert [f.type for f in run.by_seq(stats + 1)] == [P.STATS | P.RESPONSE, P.INFER | P.RESPONSE]
    assert P.parse_stats(run.payload(final, P.STATS)).inferences == 2


def test_pipelined_go_back_and_resumed_upload(host_fw):
    pkg = _kws_package()
    n = len(pkg)
    s = Stream()
    begin = s.add(P.UPLOAD_BEGIN, P.pack_begin(n, zlib.crc32(pkg), "kws"))
    a = s.add(P.UPLOAD_CHUNK, P.pack_chunk(0, pkg[:1000]))
    gap = s.add(P.UPLOAD_CHUNK, P.pack_chunk(2000, pkg[2000:3000]))     # 1000..2000 lost
    b = s.add(P.UPLOAD_CHUNK, P.pack_chunk(1000, pkg[1000:2000]))       # go back
    dup = s.add(P.UPLOAD_CHUNK, P.pack_chunk(500, pkg[500:1500]))       # duplicate: acked
    wrong = s.add(P.UPLOAD_CHUNK, P.pack_chunk(500, b"\x00" * 100))     # differs: refused
    over = s.add(P.UPLOAD_CHUNK, P.pack_chunk(1500, pkg[1500:2400]))    # overlaps, extends
    early = s.add(P.UPLOAD_COMMIT)                                      # incomplete
    resume = s.add(P.UPLOAD_BEGIN, P.pack_begin(n, zlib.crc32(pkg), "kws"))
    info = s.add(P.INFO)
    rest = [s.add(P.UPLOAD_CHUNK, P.pack_chunk(off, pkg[off:off + 777]))
            for off in range(2400, n, 777)]
    past = s.add(P.UPLOAD_CHUNK, P.pack_chunk(n - 4, b"12345678"))
    commit = s.add(P.UPLOAD_COMMIT)
    run = run_host(host_fw, bytes(s))
    assert P.parse_begin_response(run.payload(begin, P.UPLOAD_BEGIN)) == (0, 0)
    assert P.parse_u32(run.payload(a, P.UPLOAD_CHUNK), "") == 1000
    assert run.error(gap)[:2] == (P.E_OFFSET, 1000)
    assert P.parse_u32(run.payload(b, P.UPLOAD_CHUNK), "") == 2000
    assert P.parse_u32(run.payload(dup, P.UPLOAD_CHUNK), "") == 2000
    assert run.error(wrong)[:2] == (P.E_OFFSET, 2000)
    assert P.parse_u32(run.payload(over, P.UPLOAD_CHUNK), "") == 2400
    assert run.error(early)[:2] == (P.E_OFFSET, 2400)
    assert P.parse_begin_response(run.payload(resume, P.UPLOAD_BEGIN)) == (0, 2400)
    slot = P.parse_info(run.payload(info, P.INFO)).slots[0]
    assert (slot.state, slot.size, slot.crc, slot.name) == ("receiving", n, zlib.crc32(pkg), "kws")
    assert P.parse_u32(run.payload(rest[-1], P.UPLOAD_CHUNK), "") == n
    assert run.error(past)[0] == P.E_TOO_LARGE
    assert run.payload(commit, P.UPLOAD_COMMIT) == b"\x00"


def test_ab_slots_abort_and_reset(host_fw):
    kws = _kws_package()
    ad_g = support.ad_graph()
    ad = pack_model(ad_g, "cortex-m4")
    xk = support.kws_inputs(1)[0]
    xa = support.ad_inputs(1)[0]
    s = Stream()
    s.upload(kws, "kws")
    i1 = s.add(P.INFO)
    partial = s.upload(ad, "ad", commit=False)
    abort = s.add(P.UPLOAD_ABORT)
    i2 = s.add(P.INFO)
    ad_up = s.upload(ad, "ad")
    i3 = s.add(P.INFO)
    inf_ad = s.add(P.INFER, xa.tobytes())
    kws2 = s.upload(kws, "kws-again")        # goes to slot 0, the inactive one
    i4 = s.add(P.INFO)
    half = s.upload(ad[:5000] + b"\x00" * (len(ad) - 5000), "half", crc=zlib.crc32(ad), commit=False)
    reset = s.add(P.RESET)
    i5 = s.add(P.INFO)
    inf_k = s.add(P.INFER, xk.tobytes())
    run = run_host(host_fw, bytes(s))
    states = lambda seq: [(x.state, x.name) for x in P.parse_info(run.payload(seq, P.INFO)).slots]
    assert states(i1) == [("active", "kws"), ("empty", "")]
    assert P.parse_begin_response(run.payload(partial["begin"], P.UPLOAD_BEGIN))[0] == 1
    assert run.payload(abort, P.UPLOAD_ABORT) == b""
    assert states(i2)[0] == ("active", "kws") and states(i2)[1][0] == "empty"
    assert run.payload(ad_up["commit"], P.UPLOAD_COMMIT) == b"\x01"
    assert states(i3) == [("valid", "kws"), ("active", "ad")]
    assert run.payload(inf_ad, P.INFER)[5:] == reference_output(ad_g, xa)
    assert run.payload(kws2["commit"], P.UPLOAD_COMMIT) == b"\x00"
    assert states(i4) == [("active", "kws-again"), ("valid", "ad")]
    assert P.parse_begin_response(run.payload(half["begin"], P.UPLOAD_BEGIN))[0] == 1
    # RESET: answered, banner again; the partial upload is gone, the slots' records
    # bring back the active model and the other valid one.
    assert run.payload(reset, P.RESET) == b""
    assert run.banners == 2
    assert states(i5) == [("active", "kws-again"), ("empty", "")]
    assert run.payload(inf_k, P.INFER)[5:] == reference_output(support.kws_graph(), xk)


def test_infer_input_size_and_ticks(host_fw):
    g = support.kws_graph()
    h = read_package_header(pack_model(g, "cortex-m4"))
    s = Stream()
    s.upload(pack_model(g, "cortex-m4"))
    short = s.add(P.INFER, b"\x01" * (h.input_bytes - 1))
    ok = s.add(P.INFER, np.zeros(h.input_bytes, np.int8).tobytes())
    stats = s.add(P.STATS)
    run = run_host(host_fw, bytes(s))
    assert run.error(short)[:2] == (P.E_TOO_LARGE, h.input_bytes)
    status, ticks, out = P.parse_infer_response(run.payload(ok, P.INFER))
    assert status == 0 and ticks > 0 and len(out) == h.output_bytes
    st = P.parse_stats(run.payload(stats, P.STATS))
    assert st.inferences == 1 and st.last_ticks == ticks
