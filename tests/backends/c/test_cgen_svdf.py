"""The C kernel of SVDF (ek_svdf_s8) on the host: generated C compiled with -Werror, bytes
equal to the reference interpreter (itself bit-exact with TFLM,
tests/reference/test_svdf_vs_tflm.py) for quantized SVDF graphs."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import compile_model
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.backends.c.support import host_exe, host_run
from tests.reference.recurrent_graphs import svdf_graph


@pytest.mark.parametrize("seed,batch,n_in,features,memory,rank,act", [
    (1, 1, 8, 12, 5, 3, "NONE"), (2, 1, 5, 4, 1, 1, "RELU"), (3, 1, 16, 8, 10, 2, "NONE")])
def test_svdf_kernel_equals_reference(tmp_path, seed, batch, n_in, features, memory, rank, act):
    rng = np.random.default_rng(seed)
    g = svdf_graph(rng, batch, n_in, features, memory, rank, int8=False, act=act)
    q = quantize(g, rng.normal(size=(128, n_in)).astype(np.float32)).graph
    xi = rng.integers(-128, 128, (32, n_in)).astype(np.int8)
    out = tmp_path / "svdf"
    compile_model(q, "cortex-m4", out, variant="portable", measure=False)
    got = host_run(host_exe(out), xi, np.int8, q.tensor(q.outputs[0]).shape)
    np.testing.assert_array_equal(got, Interpreter(q).run([xi])[q.outputs[0]])
