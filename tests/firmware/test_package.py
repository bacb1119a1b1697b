"""Model packages: the packer's format (docs/model-package.md), and packages of the
shared MLPerf Tiny models and of small graphs using every op, run by the firmware's
package executor (host build, sanitized) and compared byte for byte with edgekit's
reference interpreter."""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np
import pytest

from edgekit.bundle import FORMAT_MAJOR, pack_model, read_package_header, verify_package
from edgekit.bundle.micro_package_reader import HEADER_BYTES, OP_KINDS, header_crc
from edgekit.device import protocol as P
from edgekit.errors import BadInputError, ModelFormatError
from tests.firmware import support
from tests.firmware.support import Stream, reference_output, run_host


def test_header_fields_of_the_kws_package():
    g = support.kws_graph()
    data = pack_model(g, "cortex-m4")
    h = read_package_header(data)
    assert data[:4] == b"EKMP" and h.format_major == FORMAT_MAJOR
    assert h.total_size == len(data) and h.header_size == HEADER_BYTES
    assert h.target == "cortex-m4" and h.name == "kws_ref_model_int8"
    # format 2.1: a 160-byte header holding the body's whole SHA-256 at bytes 56..87
    assert HEADER_BYTES == 160 and struct.unpack_from("<HHI", data, 4) == (2, 1, 160)
    assert h.model_hash == data[56:88] == hashlib.sha256(data[160:]).digest()
    assert h.model_id == h.model_hash[:8].hex()
    # CRC-32 of the header with its own field (bytes 128..131) zero, computed by hand
    hdr = bytearray(data[:HEADER_BYTES])
    hdr[128:132] = bytes(4)
    assert struct.unpack_from("<I", data, 128)[0] == zlib.crc32(bytes(hdr))
    # ...so the whole-package CRC (the upload's resume key) sees the header: the same
    # model under another name is another upload.
    assert zlib.crc32(pack_model(g, "cortex-m4", name="renamed")) != zlib.crc32(data)
    assert h.arena_size > 0 and h.alignment == 16
    (x,), (y,) = h.inputs, h.outputs
    assert (x.nbytes, x.shape, x.dtype, x.zero_point) == (490, (1, 49, 10, 1), "int8", 83)
    assert (y.nbytes, y.shape, y.zero_point) == (12, (1, 12), -128)
    assert abs(y.scale - 1 / 256) < 1e-9
    assert h.op_kinds.count("ek_conv2d_s8") == 5 and "ek_softmax_s8" in h.op_kinds
    assert h.macs == 2_656_768
    # deterministic, and smaller than the .tflite it came from
    assert pack_model(g, "cortex-m4") == data
    assert len(data) < 53_936


def test_name_target_and_hash():
    g = support.kws_graph()
    a = pack_model(g, "cortex-m4", name="kws-v2")
    b = pack_model(g, "cortex-m7")
    ha, hb = read_package_header(a), read_package_header(b)
    assert ha.name == "kws-v2" and hb.target == "cortex-m7"
    assert ha.model_hash == hb.model_hash  # the hash covers the body, not the header
    long = read_package_header(pack_model(g, "cortex-m4", name="x" * 40))
    assert long.name == "x" * 24


def test_reader_refuses_damaged_packages():
    data = pack_model(support.kws_graph(), "cortex-m4")
    with pytest.raises(ModelFormatError, match="magic"):
        read_package_header(b"XXXX" + data[4:])
    with pytest.raises(ModelFormatError, match="CRC"):
        read_package_header(data[:20] + b"\x01" + data[21:])
    with pytest.raises(ModelFormatError, match="truncated"):
        read_package_header(data[:-1])
    with pytest.raises(ModelFormatError, match="too short"):
        read_package_header(data[:40])
    bumped = bytearray(data)
    bumped[4] = FORMAT_MAJOR + 1
    bumped[128:132] = struct.pack("<I", header_crc(bytes(bumped)))
    with pytest.raises(ModelFormatError, match="format"):
        read_package_header(bytes(bumped))


def test_reader_refuses_format_1_and_checks_all_32_bytes_of_the_hash():
    old = support.FORMAT1_PACKAGE.read_bytes()
    assert old[:8] == b"EKMP\x01\x00\x00\x00"  # a real format 1.0 file
    for read in (read_package_header, verify_package):
        with pytest.raises(ModelFormatError, match=r"format 1\.0; this edgekit reads format 2\.x"):
            read(old)
    data = pack_model(support.kws_graph(), "cortex-m4")
    assert verify_package(data).model_hash == hashlib.sha256(data[160:]).digest()
    last = bytearray(data)
    last[87] ^= 0x01  # the digest's last byte; header CRC brought up to date
    with pytest.raises(ModelFormatError, match="altered or corrupt"):
        verify_package(support.restamp_crc(last))


def test_packer_refuses_what_the_firmware_cannot_run():
    from edgekit.frontends.tflite import load_tflite
    from tests.support.shared import shared_file

    with pytest.raises(BadInputError, match="float model"):
        pack_model(load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite")),
                   "cortex-m4")
    with pytest.raises(BadInputError, match="microcontrollers"):
        pack_model(support.kws_graph(), "rpi4")


def _upload_and_infer(host_fw, graph, xs, target="cortex-m4"):
    pkg = pack_model(graph, target)
    s = Stream()
    up = s.upload(pkg, graph.name)
    seqs = [s.add(P.INFER, np.ascontiguousarray(x).tobytes()) for x in xs]
    info = s.add(P.INFO)
    run = run_host(host_fw, bytes(s))
    assert run.payload(up["commit"], P.UPLOAD_COMMIT) == b"\x00"
    outs = [run.payload(q, P.INFER) for q in seqs]
    return pkg, outs, P.parse_info(run.payload(info, P.INFO))


def test_every_op_kind_runs_bit_exact_on_the_host_build(host_fw):
    from tests.backends.c.graphs import cases, random_inputs

    rng = np.random.default_rng(5)
    kinds = set()
    for name, g in cases().items():
        xs = random_inputs(g, rng, 6)
        pkg, outs, _ = _upload_and_infer(host_fw, g, xs)
        kinds |= set(read_package_header(pkg).op_kinds)
        for x, out in zip(xs, outs):
            assert out[0] == 0
            assert out[5:] == reference_output(g, x[None]), name
    assert kinds == set(OP_KINDS) - {"copy"}


def test_kws_and_ad_packages_bit_exact_on_the_host_build(host_fw):
    g = support.kws_graph()
    xs = support.kws_inputs(40)
    pkg, outs, info = _upload_and_infer(host_fw, g, xs)
    for x, out in zip(xs, outs):
        assert out[5:] == reference_output(g, x)
    h = read_package_header(pkg)
    assert info.active.name == g.name and info.active.model_hash == h.model_id
    assert info.arena_used == h.arena_size
    g = support.ad_graph()
    xs = support.ad_inputs(12)
    _, outs, _ = _upload_and_infer(host_fw, g, xs)
    for x, out in zip(xs, outs):
        assert out[5:] == reference_output(g, x)


def _reheader(data: bytearray) -> bytes:
    data[128:132] = struct.pack("<I", header_crc(bytes(data)))
    return bytes(data)


def test_firmware_refuses_bad_packages_and_keeps_the_old_model(host_fw):
    """Each damaged package (with a matching upload CRC, so only the header and
    parameter checks can catch it) is refused with E_HEADER and the reason; the model
    uploaded before keeps answering."""
    g = support.kws_graph()
    good = pack_model(g, "cortex-m4")
    x = support.kws_inputs(1)[0]
    expected = reference_output(g, x)
    h = read_package_header(good)

    def variant(offset: int, value: bytes, header_crc: bool = True) -> bytes:
        d = bytearray(good)
        d[offset:offset + len(value)] = value
        return _reheader(d) if header_crc else bytes(d)

    op_table = struct.unpack_from("<I", good, 112)[0]
    first_params = struct.unpack_from("<I", good, op_table + 4)[0]
    bad = {
        2: b"EKMQ" + good[4:],                                  # magic
        3: variant(4, struct.pack("<H", 3)),                    # format major
        4: variant(40, b"!", header_crc=False),                 # header CRC
        5: variant(16, b"cortex-m0plus\0\0\0"),                 # target
        6: variant(88, struct.pack("<I", 1 << 30)),             # arena larger than the firmware's
        7: variant(104, struct.pack("<I", len(good))),          # IO table out of bounds
        8: variant(108, struct.pack("<I", 5000)),               # op count past the table
        9: variant(op_table, struct.pack("<H", 99)),            # unknown op kind
        10: variant(first_params + 4 * 22, struct.pack("<I", 1 << 24)),  # conv input ref
    }
    s = Stream()
    s.upload(good, "good")
    checks = []
    for reason, pkg in bad.items():
        seqs = s.upload(pkg, f"bad{reason}")
        checks.append((reason, seqs["commit"], s.add(P.INFER, x.tobytes()), s.add(P.INFO)))
    truncated = s.upload(good[:-10], "short")  # its own CRC matches: fails the header size check
    crc = s.upload(good, "crc", crc=zlib.crc32(good) ^ 1)
    after = s.add(P.INFER, x.tobytes())
    run = run_host(host_fw, bytes(s))
    for reason, commit, infer, info in checks:
        code, detail, message = run.error(commit)
        assert code == P.E_HEADER and detail & 0xFFFF == reason, (reason, detail, message)
        assert run.payload(infer, P.INFER)[5:] == expected
        inf = P.parse_info(run.payload(info, P.INFO))
        assert inf.active.name == "good" and inf.active.model_hash == h.model_id
        assert [s.state for s in inf.slots].count("empty") == 1
    assert run.error(truncated["commit"])[0] == P.E_HEADER
    assert run.error(crc["commit"])[0] == P.E_CRC
    assert run.payload(after, P.INFER)[5:] == expected
