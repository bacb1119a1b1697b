"""The firmware's chunked tensor transfer (docs/serial-protocol.md, INFER_BEGIN .. OUTPUT_READ),
checked on the host build command by command: offsets, duplicates and gaps as in an
upload, the input's CRC, resume, the output read in pieces, and the tensor-buffer limit
a package must fit at commit. Outputs are compared with the reference interpreter."""

from __future__ import annotations

import zlib

from edgekit.bundle import pack_model
from edgekit.device import protocol as P
from edgekit.hil import prepare_inputs
from tests.device import models
from tests.firmware.support import Stream, reference_output, run_host

E_PAYLOAD = 11
HOST_TENSOR_BYTES = 64 * 1024  # ek_tensor.h's default; the host board sets none


def _image_case():
    g, x = models.image(32, features_out=True)  # 3,072 B in, 2,048 B out
    feeds = prepare_inputs(g, x[:2])
    xs = [feeds[g.inputs[0]][i] for i in range(2)]
    return g, pack_model(g, "cortex-m4", name="image32"), xs


def test_hello_announces_chunked_tensors(host_fw):
    s = Stream()
    hello = s.add(P.HELLO, b"\x01")
    h = P.parse_hello(run_host(host_fw, bytes(s)).payload(hello, P.HELLO))
    assert h.capabilities == P.CAP_CHUNKED_TENSORS and h.chunked_tensors
    assert h.tensor_bytes == HOST_TENSOR_BYTES


def test_chunked_inference_command_by_command(host_fw):
    g, pkg, (x0, x1) = _image_case()
    a, b = x0.tobytes(), x1.tobytes()
    want0, want1 = reference_output(g, x0), reference_output(g, x1)
    assert len(a) == 3072 and len(want0) == 2048
    s = Stream()
    early_begin = s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, 0))
    s.upload(pkg)
    chunk_first = s.add(P.INFER_CHUNK, P.pack_chunk(0, a[:1000]))
    run_first = s.add(P.INFER_RUN)
    read_first = s.add(P.OUTPUT_READ, P.pack_output_read(0, 10))
    short = s.add(P.INFER_BEGIN, b"\x00\x0c")
    wrong_size = s.add(P.INFER_BEGIN, P.pack_infer_begin(3071, zlib.crc32(a[:3071])))
    begin = s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, zlib.crc32(a)))
    c0 = s.add(P.INFER_CHUNK, P.pack_chunk(0, a[:1000]))
    gap = s.add(P.INFER_CHUNK, P.pack_chunk(2000, a[2000:3000]))
    dup = s.add(P.INFER_CHUNK, P.pack_chunk(0, a[:1000]))
    differs = s.add(P.INFER_CHUNK, P.pack_chunk(500, bytes(500)))
    c1 = s.add(P.INFER_CHUNK, P.pack_chunk(500, a[500:1500]))  # overlaps what is held: appended
    c1b = s.add(P.INFER_CHUNK, P.pack_chunk(1500, a[1500:2000]))
    early_run = s.add(P.INFER_RUN)
    past_end = s.add(P.INFER_CHUNK, P.pack_chunk(2500, a[2500:] + b"!"))
    s.add(P.INFER_CHUNK, P.pack_chunk(2000, a[2000:2900]))
    c2 = s.add(P.INFER_CHUNK, P.pack_chunk(2900, a[2900:]))
    resume = s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, zlib.crc32(a)))
    run = s.add(P.INFER_RUN)
    reads = [s.add(P.OUTPUT_READ, P.pack_output_read(0, 1020)),
             s.add(P.OUTPUT_READ, P.pack_output_read(1020, 5000)),  # capped at a frame
             s.add(P.OUTPUT_READ, P.pack_output_read(2040, 100))]   # capped at the output's end
    past_output = s.add(P.OUTPUT_READ, P.pack_output_read(2049, 1))
    # another input, sent whole, then a damaged one: its CRC is refused at INFER_RUN
    begin_b = s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, zlib.crc32(b)))
    for off in range(0, 3072, 1020):
        s.add(P.INFER_CHUNK, P.pack_chunk(off, b[off:off + 1020]))
    run_b = s.add(P.INFER_RUN)
    read_b = s.add(P.OUTPUT_READ, P.pack_output_read(1000, 48))
    bad = s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, zlib.crc32(a) ^ 1))  # a CRC that does not match
    for off in range(0, 3072, 1020):
        s.add(P.INFER_CHUNK, P.pack_chunk(off, a[off:off + 1020]))
    run_bad = s.add(P.INFER_RUN)
    chunk_after_bad = s.add(P.INFER_CHUNK, P.pack_chunk(0, a[:10]))
    stats = s.add(P.STATS)
    r = run_host(host_fw, bytes(s))

    assert r.error(early_begin)[0] == P.E_NO_MODEL
    assert r.error(chunk_first)[0] == P.E_STATE and r.error(run_first)[0] == P.E_STATE
    assert r.error(read_first)[0] == P.E_STATE
    assert r.error(short)[:2] == (E_PAYLOAD, 2)
    assert r.error(wrong_size)[:2] == (P.E_TOO_LARGE, 3072)
    assert P.parse_u32(r.payload(begin, P.INFER_BEGIN), "b") == 0
    assert P.parse_u32(r.payload(c0, P.INFER_CHUNK), "c") == 1000
    assert r.error(gap)[:2] == (P.E_OFFSET, 1000)
    assert P.parse_u32(r.payload(dup, P.INFER_CHUNK), "c") == 1000
    assert r.error(differs)[:2] == (P.E_OFFSET, 1000)
    assert P.parse_u32(r.payload(c1, P.INFER_CHUNK), "c") == 1500
    assert P.parse_u32(r.payload(c1b, P.INFER_CHUNK), "c") == 2000
    assert r.error(early_run)[:2] == (P.E_OFFSET, 2000)
    assert r.error(past_end)[:2] == (P.E_TOO_LARGE, 3072)
    assert P.parse_u32(r.payload(c2, P.INFER_CHUNK), "c") == 3072
    assert P.parse_u32(r.payload(resume, P.INFER_BEGIN), "b") == 3072  # the same input: held

    res = P.parse_infer_run_response(r.payload(run, P.INFER_RUN))
    assert (res.status, res.output_bytes, res.output) == (0, 2048, b"")  # too large to carry inline
    assert res.output_crc == zlib.crc32(want0) and res.ticks > 0
    pieces = [r.payload(q, P.OUTPUT_READ) for q in reads]
    assert [P.parse_u32(p, "r") for p in pieces] == [0, 1020, 2040]
    assert [len(p) - 4 for p in pieces] == [1020, 1020, 8]
    assert b"".join(p[4:] for p in pieces) == want0
    assert r.error(past_output)[:2] == (P.E_OFFSET, 2048)

    assert P.parse_u32(r.payload(begin_b, P.INFER_BEGIN), "b") == 0  # another input: over
    assert P.parse_infer_run_response(r.payload(run_b, P.INFER_RUN)).output_crc == zlib.crc32(want1)
    assert r.payload(read_b, P.OUTPUT_READ)[4:] == want1[1000:1048]
    assert P.parse_u32(r.payload(bad, P.INFER_BEGIN), "b") == 0
    code, detail, _ = r.error(run_bad)
    assert code == P.E_CRC and detail == zlib.crc32(a)
    assert r.error(chunk_after_bad)[0] == P.E_STATE  # the damaged input was dropped
    st = P.parse_stats(r.payload(stats, P.STATS))
    assert st.inferences == 2 and st.duplicates >= 2


def test_small_output_comes_inline_and_single_frame_infer_still_works(host_fw):
    g, x = models.image(32)  # 3,072 B in, 2 B out
    x0 = prepare_inputs(g, x[:1])[g.inputs[0]][0]
    a, want = x0.tobytes(), reference_output(g, x0)
    s = Stream()
    s.upload(pack_model(g, "cortex-m4"))
    s.add(P.INFER_BEGIN, P.pack_infer_begin(3072, zlib.crc32(a)))
    for off in range(0, 3072, 1020):
        s.add(P.INFER_CHUNK, P.pack_chunk(off, a[off:off + 1020]))
    run = s.add(P.INFER_RUN)
    r = run_host(host_fw, bytes(s))
    res = P.parse_infer_run_response(r.payload(run, P.INFER_RUN))
    assert res.output == want and res.output_crc == zlib.crc32(want)


def test_package_whose_tensors_exceed_the_buffer_is_refused_at_commit(host_fw):
    from edgekit.bundle import read_package_header

    g, _ = models.image(128, features_out=True)  # 49,152 B in + 32,768 B out > 64 KiB
    pkg = pack_model(g, "cortex-m4")
    h = read_package_header(pkg)
    assert P.tensor_footprint(h.input_bytes, h.output_bytes) > HOST_TENSOR_BYTES
    s = Stream()
    seqs = s.upload(pkg)
    info = s.add(P.INFO)
    r = run_host(host_fw, bytes(s))
    code, detail, msg = r.error(seqs["commit"])
    assert code == P.E_HEADER and detail & 0xFFFF == 7 and "tensor buffer" in msg  # EK_PKG_E_IO
    assert P.parse_info(r.payload(info, P.INFO)).active_slot is None
