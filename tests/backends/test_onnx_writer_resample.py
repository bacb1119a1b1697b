"""The ONNX writer's RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV against the
reference interpreter, in onnxruntime (graph optimizations off): float within 1e-5; int8
(QDQ, float arithmetic between DequantizeLinear and QuantizeLinear) within one
quantization step of TFLM's integer kernels; and the ONNX importer reads each float
one back into the same op computing the same values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgekit.backends.onnx import to_onnx  # noqa: E402
from edgekit.frontends.onnx_importer import load_onnx  # noqa: E402
from edgekit.ir import DType, Graph, OpType, QuantParams  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402

RNG = np.random.default_rng(5)


def graph(op_type, x_shape, y_shape, attrs, dtype=DType.FLOAT32, q=None, qy=None, consts=()):
    g = Graph("one")
    g.add_tensor("x", x_shape, dtype, q)
    ins = ["x"] + [g.add_const(n, d, cq, dt).name for n, d, cq, dt in consts]
    g.add_tensor("y", y_shape, dtype, qy or q)
    g.add_op(op_type, ins, ["y"], attrs, "op")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def check(g: Graph, x: np.ndarray):
    ref = Interpreter(g).run([x])["y"]
    got = exact_session(to_onnx(g, layout="ir").SerializeToString()).run(None, {"x": x})[0]
    assert got.shape == ref.shape
    if ref.dtype == np.int8:
        assert np.abs(got.astype(np.int32) - ref.astype(np.int32)).max() <= 1
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    if ref.dtype == np.float32:  # and back: the importer reads the written model into the same op
        g.metadata["io_layout"] = {"x": "NCHW", "y": "NCHW"}  # no Transposes at the edges
        back = load_onnx(to_onnx(g, layout="source"))
        assert [op.type for op in back.ops] == [g.ops[0].type]
        # nearest flags that pick the same pixels are interchangeable: compare what they compute
        np.testing.assert_array_equal(Interpreter(back).run([x])[back.outputs[0]], ref)


RESIZE_CASES = list(itertools.product(
    [OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR],
    [(False, False), (True, False), (False, True)],
    [(8, 10), (3, 7), (2, 2), (1, 5)]))


@pytest.mark.parametrize("op_type,flags,size", RESIZE_CASES)
def test_resize_float(op_type, flags, size):
    attrs = {"size": size, "align_corners": flags[0], "half_pixel_centers": flags[1]}
    g = graph(op_type, (2, 4, 5, 3), (2, *size, 3), attrs)
    check(g, RNG.standard_normal((2, 4, 5, 3)).astype(np.float32))


@pytest.mark.parametrize("op_type", [OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR])
def test_resize_int8(op_type):
    q = QuantParams.per_tensor(0.05, 3)
    for flags in ((False, False), (True, False), (False, True)):
        attrs = {"size": (7, 9), "align_corners": flags[0], "half_pixel_centers": flags[1]}
        g = graph(op_type, (1, 4, 5, 3), (1, 7, 9, 3), attrs, DType.INT8, q)
        check(g, RNG.integers(-128, 128, (1, 4, 5, 3)).astype(np.int8))


@pytest.mark.parametrize("strides,pads", [((2, 2), (1, 1, 0, 0)), ((2, 2), (0, 0, -1, -1)), ((1, 2), (0, 1, 2, 1)),
                                          ((3, 3), (1, 0, 1, -2))])
def test_transpose_conv_float_and_int8(strides, pads):
    xs, ws = (2, 4, 3, 3), (5, 3, 3, 3)
    oh = (xs[1] - 1) * strides[0] + 3 - pads[0] - pads[2]
    ow = (xs[2] - 1) * strides[1] + 3 - pads[1] - pads[3]
    attrs = {"output_shape": (2, oh, ow, 5), "strides": strides, "pads": pads, "activation": "RELU"}
    w = (RNG.standard_normal(ws) * 0.3).astype(np.float32)
    b = RNG.standard_normal(5).astype(np.float32)
    g = graph(OpType.TRANSPOSE_CONV, xs, (2, oh, ow, 5), attrs, consts=[("w", w, None, DType.FLOAT32),
                                                                      ("b", b, None, DType.FLOAT32)])
    check(g, RNG.standard_normal(xs).astype(np.float32))
    qx, qy = QuantParams.per_tensor(0.02, -5), QuantParams.per_tensor(0.05, -100)
    ws_scales = np.abs(w).reshape(5, -1).max(1) / 127
    qw = QuantParams.per_axis(ws_scales, [0] * 5, 0)
    wq = np.clip(np.round(w / ws_scales[:, None, None, None]), -127, 127).astype(np.int8)
    qb = QuantParams.per_axis(np.float32(0.02) * ws_scales.astype(np.float32), [0] * 5, 0)
    bq = np.round(b / (0.02 * ws_scales)).astype(np.int32)
    g8 = graph(OpType.TRANSPOSE_CONV, xs, (2, oh, ow, 5), attrs, DType.INT8, qx, qy,
               consts=[("w", wq, qw, DType.INT8), ("b", bq, qb, DType.INT32)])
    check(g8, RNG.integers(-128, 128, xs).astype(np.int8))
