"""Model packages with the recurrent kernels (op kinds 38 ek_lstm_s8, 39 ek_svdf_s8): run by
the firmware's package executor (host build, sanitized), bytes equal to the reference
interpreter; parameter blocks the firmware must refuse."""

from __future__ import annotations

import struct

import numpy as np

from edgekit.bundle import pack_model, read_package_header
from edgekit.device import protocol as P
from tests.backends.c.graphs_recurrent import recurrent_cases
from tests.firmware.support import Stream, reference_output, run_host


def _run(host_fw, graph, xs, pkg=None):
    pkg = pack_model(graph, "cortex-m4") if pkg is None else pkg
    s = Stream()
    up = s.upload(pkg, graph.name)
    seqs = [s.add(P.INFER, np.ascontiguousarray(x).tobytes()) for x in xs]
    run = run_host(host_fw, bytes(s))
    return run.payload(up["commit"], P.UPLOAD_COMMIT), [run.payload(q, P.INFER) for q in seqs]


def test_lstm_and_svdf_packages_bit_exact_on_the_host_build(host_fw):
    rng = np.random.default_rng(3)
    for name, g in recurrent_cases(rng).items():
        shape = g.tensor(g.inputs[0]).shape
        xs = rng.integers(-128, 128, (5,) + tuple(shape)).astype(np.int8)
        pkg = pack_model(g, "cortex-m4")
        kinds = set(read_package_header(pkg).op_kinds)
        assert {"ek_lstm_s8", "ek_svdf_s8"} & kinds
        commit, outs = _run(host_fw, g, xs, pkg)
        assert commit == b"\x00"
        for x, out in zip(xs, outs):
            assert out[0] == 0 and out[5:] == reference_output(g, x[None]), name


def test_firmware_refuses_an_lstm_with_bad_shifts_or_a_huge_hidden_size(host_fw):
    import hashlib

    from edgekit.backends.c import lower_op
    from edgekit.bundle.micro_package_reader import HEADER_BYTES, stamp_header_crc

    rng = np.random.default_rng(4)
    g = recurrent_cases(rng)["lstm"]
    pkg = pack_model(g, "cortex-m4")
    op = next(o for o in g.ops if o.type.value == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    v = lower_op(g, op).args[0].values
    head = struct.pack("<8i", *(v[k] for k in ("batches", "steps", "input_size", "hidden", "time_major",
                                                  "input_offset", "hidden_offset", "output_offset")))
    params = pkg.index(head)
    assert pkg.count(head) == 1
    for word, value in ((12, 40), (3, 5000)):  # a gate shift of 40; a hidden size of 5000
        bad = bytearray(pkg)
        struct.pack_into("<i", bad, params + 4 * word, value)
        bad[56:88] = hashlib.sha256(bytes(bad[HEADER_BYTES:])).digest()
        bad[:HEADER_BYTES] = stamp_header_crc(bytes(bad[:HEADER_BYTES]))
        st = Stream()
        up = st.upload(bytes(bad), g.name)
        code, _, message = run_host(host_fw, bytes(st)).error(up["commit"])
        assert message == {12: "lstm: gate shifts out of range", 3: "lstm: dimensions invalid"}[word], message


def test_mutated_lstm_and_svdf_parameter_blocks_never_crash_the_firmware(host_fw):
    """Every parameter word of an LSTM and an SVDF op set to extreme values, each in a
    correctly hashed package: the sanitized executor refuses it or runs it, never reads
    or writes out of bounds (run_host fails on any sanitizer report)."""
    import hashlib

    from edgekit.backends.c import lower_op
    from edgekit.bundle.micro_package_reader import HEADER_BYTES, stamp_header_crc
    from edgekit.bundle.micro_package_writer import _struct_words

    rng = np.random.default_rng(6)
    cases = recurrent_cases(rng)
    st = Stream()
    expect_runs = 0
    for name, n_words in (("lstm", 39), ("svdf", 15)):
        g = cases[name]
        pkg = pack_model(g, "cortex-m4")
        op = next(o for o in g.ops if o.type.value in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF"))
        head = struct.pack(f"<{min(8, n_words)}i", *_struct_words(lower_op(g, op).args[0])[:8])
        params = pkg.index(head)
        x = rng.integers(-128, 128, g.tensor(g.inputs[0]).shape).astype(np.int8)
        for word in range(n_words):
            for value in (0, -1, 2**31 - 1, -(2**31), 1 << 20):
                bad = bytearray(pkg)
                struct.pack_into("<i", bad, params + 4 * word, value)
                bad[56:88] = hashlib.sha256(bytes(bad[HEADER_BYTES:])).digest()
                bad[:HEADER_BYTES] = stamp_header_crc(bytes(bad[:HEADER_BYTES]))
                st.upload(bytes(bad), name)
                st.add(P.INFER, x.tobytes())
                expect_runs += 1
    run = run_host(host_fw, bytes(st))
    assert run.returncode == 0 and expect_runs == 5 * (39 + 15)
