"""Model packages with the resampling kinds (29 RESIZE_NEAREST_NEIGHBOR, 30 RESIZE_BILINEAR,
31 TRANSPOSE_CONV): checked and run bit-exact by the (sanitized) host build of the
firmware."""

from __future__ import annotations

import numpy as np

from edgekit.bundle import pack_model, read_package_header
from edgekit.device import protocol as P
from tests.backends.c.graphs import random_inputs
from tests.backends.c.graphs_resample import resample_cases
from tests.firmware.support import Stream, reference_output, run_host


def _upload_and_infer(host_fw, pkg, name, xs):
    s = Stream()
    up = s.upload(pkg, name)
    seqs = [s.add(P.INFER, np.ascontiguousarray(x).tobytes()) for x in xs]
    run = run_host(host_fw, bytes(s))
    return run.payload(up["commit"], P.UPLOAD_COMMIT), [run.payload(q, P.INFER) for q in seqs]


def test_resample_kinds_run_bit_exact_on_the_host_build(host_fw):
    kinds = set()
    for g in resample_cases(np.random.default_rng(3)).values():  # the second runs in place
        pkg = pack_model(g, "cortex-m4")
        kinds |= set(read_package_header(pkg).op_kinds)
        xs = random_inputs(g, np.random.default_rng(4), 5)
        status, outs = _upload_and_infer(host_fw, pkg, g.name, xs)
        assert status == b"\x00"
        for x, out in zip(xs, outs):
            assert out[0] == 0
            assert out[5:] == reference_output(g, x[None]), g.name
    assert {"ek_resize_nearest_s8", "ek_resize_bilinear_s8", "ek_transpose_conv_s8"} <= kinds
