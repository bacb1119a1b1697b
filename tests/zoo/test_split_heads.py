"""The zoo's multi-head split model end to end on the host: imported from torch (float equal
to torch's output), quantized by edgekit (close to float), int8 bit-exact with TFLite Micro
(every op is a TFLM builtin: SPLIT, STRIDED_SLICE, PACK, GATHER, SLICE, ...), compiled for
cortex-m7 with the C backend, and the generated C on the host bit-exact with the reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import split_heads as sh  # noqa: E402

MOVEMENT = {OpType.SPLIT, OpType.STRIDED_SLICE, OpType.SLICE, OpType.PACK, OpType.GATHER}


@pytest.fixture(scope="module")
def float_graph():
    return sh.float_graph()


@pytest.fixture(scope="module")
def int8_graph():
    return sh.int8_graph()


def test_float_graph_matches_torch(float_graph):
    x = sh.inputs(8)
    ours = Interpreter(float_graph).run([x], layout="source")[float_graph.outputs[0]]
    with torch.no_grad():
        ref = np.concatenate([sh.torch_module()(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))])
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    assert MOVEMENT <= {op.type for op in float_graph.ops}


def test_int8_is_close_to_float(float_graph):
    x = sh.inputs(64 + 32)
    ref, ours = checks.float_and_fake_quantized(float_graph, x[:64], x[64:])
    ref, ours = ref[float_graph.outputs[0]], ours[float_graph.outputs[0]]
    assert np.abs(ours - ref).max() < 0.05
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    assert MOVEMENT <= {op.type for op in int8_graph.ops}
    checks.check_bit_exact_with_tflm(int8_graph, checks.int8_inputs(int8_graph, sh.inputs(8)))


def test_compiles_for_cortex_m7_and_runs_bit_exact_on_the_host(int8_graph, tmp_path):
    from edgekit.backends.c import compile_model
    from tests.backends.c.support import host_exe, host_run

    _, kernels = checks.compile_for_cortex_m7(int8_graph, tmp_path / "split_heads_m7")
    assert {"split", "slice", "gather", "concatenation"} <= kernels
    out = tmp_path / "split_heads"  # the host runs the portable kernels
    compile_model(int8_graph, "cortex-m7", out, variant="portable", measure=False)
    x = checks.int8_inputs(int8_graph, sh.inputs(16))
    t = int8_graph.output_tensors()[0]
    ours = host_run(host_exe(out), x, t.dtype.np, t.shape)
    ref = Interpreter(int8_graph).run([x])[int8_graph.outputs[0]]
    assert np.array_equal(ours, ref)
