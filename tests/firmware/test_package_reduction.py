"""Model packages with the reduction / matrix-product kinds (40 REDUCE_MAX, 41
ARG_MAX/ARG_MIN, 42 L2_NORMALIZATION, 43 BATCH_MATMUL; SUM as 12 MEAN): checked and run
bit-exact by the (sanitized) host build of the firmware; a BATCH_MATMUL whose shapes
disagree is refused at commit."""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from edgekit.backends.c import lower_op
from edgekit.bundle import pack_model, read_package_header
from edgekit.bundle.micro_package_reader import HEADER_BYTES, stamp_header_crc
from edgekit.device import protocol as P
from tests.backends.c.graphs import random_inputs
from tests.backends.c.graphs_reduction import reduction_cases
from tests.firmware.support import Stream, reference_output, run_host


def _upload_and_infer(host_fw, pkg, name, xs):
    s = Stream()
    up = s.upload(pkg, name)
    seqs = [s.add(P.INFER, np.ascontiguousarray(x).tobytes()) for x in xs]
    run = run_host(host_fw, bytes(s))
    return run.payload(up["commit"], P.UPLOAD_COMMIT), [run.payload(q, P.INFER) for q in seqs]


def test_reduction_kinds_run_bit_exact_on_the_host_build(host_fw):
    kinds = set()
    for name, g in reduction_cases(np.random.default_rng(5)).items():
        pkg = pack_model(g, "cortex-m4")
        kinds |= set(read_package_header(pkg).op_kinds)
        xs = random_inputs(g, np.random.default_rng(6), 4)
        status, outs = _upload_and_infer(host_fw, pkg, g.name, xs)
        assert status == b"\x00", name
        for x, out in zip(xs, outs):
            assert out[0] == 0 and out[5:] == reference_output(g, x[None]), name
    assert {"ek_reduce_max_s8", "ek_arg_min_max_s8", "ek_l2_normalization_s8", "ek_batch_matmul_s8",
            "ek_mean_s8"} <= kinds


def test_firmware_refuses_a_batch_matmul_with_disagreeing_shapes(host_fw):
    g = reduction_cases(np.random.default_rng(5))["reductions"]
    pkg = pack_model(g, "cortex-m4")
    op = next(o for o in g.ops if o.type.value == "BATCH_MATMUL")
    v = lower_op(g, op).args[0].values
    head = struct.pack("<7i", *(v[k] for k in ("lhs_offset", "rhs_offset", "output_offset", "multiplier", "shift",
                                               "adj_x", "adj_y")))
    params = pkg.index(head)
    for word, value, message in ((10, 9, "batch_matmul: shapes do not agree"),  # lhs depth 8 -> 9
                                 (5, 2, "batch_matmul: parameters invalid")):    # adj_x = 2
        bad = bytearray(pkg)
        struct.pack_into("<i", bad, params + 4 * word, value)
        bad[56:88] = hashlib.sha256(bytes(bad[HEADER_BYTES:])).digest()
        bad[:HEADER_BYTES] = stamp_header_crc(bytes(bad[:HEADER_BYTES]))
        st = Stream()
        up = st.upload(bytes(bad), g.name)
        _, _, got = run_host(host_fw, bytes(st)).error(up["commit"])
        assert got == message
