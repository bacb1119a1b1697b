"""The ONNX writer on REDUCE_MAX, SUM, ARG_MAX/MIN, L2_NORMALIZATION and BATCH_MATMUL:
float graphs (4-D ones included) equal the reference interpreter through onnxruntime,
int8 graphs (QDQ) within one quantization step, the index outputs exactly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from edgekit.backends.onnx.writer import to_onnx  # noqa: E402
from edgekit.ir import DType, Graph, OpType, verify  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.backends.c.graphs_reduction import arg_graph, reduction_graph  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402


def _image_graph(rng=None) -> Graph:
    """The 4-D forms: reductions over NHWC axes, a 4-D batched product with adj_x."""
    g = Graph("image")
    for name, shape in [("x", (1, 4, 5, 3)), ("r", (1, 4, 1, 3)), ("s", (1, 5, 3)), ("mm", (1, 4, 3, 3)),
                        ("l", (1, 4, 3, 3)), ("y", (1, 4, 3, 3))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_op(OpType.REDUCE_MAX, ["x"], ["r"], {"axes": (2,), "keep_dims": True}, "rmax")
    g.add_op(OpType.SUM, ["x"], ["s"], {"axes": (1,)}, "sum")
    g.add_op(OpType.BATCH_MATMUL, ["x", "x"], ["mm"], {"adj_x": True}, "mm")
    g.add_op(OpType.L2_NORMALIZATION, ["mm"], ["l"], {}, "l2")
    g.add_op(OpType.ADD, ["l", "mm"], ["y"], name="add")
    g.inputs, g.outputs = ["x"], ["y", "s", "r"]
    verify(g)
    return g


def _run(g, x):
    sess = exact_session(to_onnx(g, layout="ir"))
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {g.inputs[0]: x})))


@pytest.mark.parametrize("make", [reduction_graph, arg_graph, _image_graph])
def test_float_graphs_match_the_interpreter(make):
    rng = np.random.default_rng(0)
    g = make(rng)
    x = rng.standard_normal(g.input_tensors()[0].shape).astype(np.float32)
    ref = Interpreter(g).run([x])
    got = _run(g, x)
    for name in g.outputs:
        if ref[name].dtype == np.int32:
            assert got[name].dtype == np.int32
            np.testing.assert_array_equal(got[name], ref[name])
        else:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [reduction_graph, arg_graph])
def test_int8_graphs_within_one_step(make):
    rng = np.random.default_rng(1)
    g = make(rng)
    shape = g.input_tensors()[0].shape
    q = quantize(g, rng.standard_normal((32,) + shape[1:]).astype(np.float32)).graph
    io = q.metadata["io_quant"][q.inputs[0]]
    x = np.clip(np.round(rng.standard_normal(shape) / io["scale"]) + io["zero_point"], -128, 127).astype(np.int8)
    ref = Interpreter(q).run([x])[q.outputs[0]]
    got = _run(q, x)[q.outputs[0]]
    if ref.dtype == np.int32:
        assert (got == ref).mean() >= 0.8  # an index may flip where two values are within one step
    else:
        assert np.abs(got.astype(np.int32) - ref.astype(np.int32)).max() <= 1
