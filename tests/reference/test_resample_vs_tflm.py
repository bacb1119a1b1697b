"""RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV: edgekit's reference
kernels against TFLite Micro (int8, byte for byte) and LiteRT's reference kernels
(float32, within 1e-5), through one-op models written by edgekit's own .tflite writer
and read back by its importer (the round trip keeps every attribute)."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import needs_tflm, needs_litert, profile  # noqa: E402
from edgekit.backends.tflite import tflite_bytes  # noqa: E402
from edgekit.backends.tflite.resample import tflite_pad_top_left  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.frontends.tflite.importer import load_tflite  # noqa: E402
from edgekit.ir import DType, Graph, OpType, QuantParams  # noqa: E402
from edgekit.reference import resample_kernels as rk  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def f32(v) -> float:
    return float(np.float32(v))


def qp(d) -> QuantParams:
    return QuantParams.per_tensor(f32(10 ** d(st.floats(-3, 0))), d(st.integers(-128, 127)))


def one_op_graph(op_type, x_shape, out_shape, attrs, dtype, x_qp=None, out_qp=None, consts=()):
    g = Graph("one_op")
    g.add_tensor("x", x_shape, dtype, x_qp)
    names = ["x"]
    for name, data, q, dt in consts:
        names.append(g.add_const(name, data, q, dt).name)
    g.add_tensor("y", out_shape, dtype, out_qp)
    g.add_op(op_type, names, ["y"], attrs, "op")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def run_both(g: Graph, x: np.ndarray):
    """(edgekit's output, the model as written and imported back)."""
    model = tflite_bytes(g)
    back = load_tflite(model)
    op = next(o for o in back.ops if o.type is g.ops[0].type)
    for k, v in g.ops[0].attrs.items():
        assert tuple(np.atleast_1d(op.attrs[k])) == tuple(np.atleast_1d(v)), (k, op.attrs[k], v)
    return Interpreter(g).run([x])["y"], model


def resize_case(d, rng):
    n, h, w, c = d(st.integers(1, 2)), d(st.integers(1, 7)), d(st.integers(1, 7)), d(st.integers(1, 4))
    oh, ow = d(st.integers(1, 15)), d(st.integers(1, 15))
    mode = d(st.sampled_from(["none", "align", "half"]))
    return (n, h, w, c), (oh, ow), {"size": (oh, ow), "align_corners": mode == "align",
                                    "half_pixel_centers": mode == "half"}


@needs_tflm
@profile(60)
@given(st.data(), st.sampled_from([OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR]))
def test_resize_int8_matches_tflm(data, op_type):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    shape, (oh, ow), attrs = resize_case(d, rng)
    q = qp(d)
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    g = one_op_graph(op_type, shape, (shape[0], oh, ow, shape[3]), attrs, DType.INT8, q, q)
    ours, model = run_both(g, x)
    theirs = orc.run_tflm(model, [x])[0]
    np.testing.assert_array_equal(ours, theirs)


@needs_litert
@profile(60)
@given(st.data(), st.sampled_from([OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR]))
def test_resize_float_matches_litert_reference(data, op_type):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    shape, (oh, ow), attrs = resize_case(d, rng)
    x = rng.normal(size=shape).astype(np.float32)
    g = one_op_graph(op_type, shape, (shape[0], oh, ow, shape[3]), attrs, DType.FLOAT32)
    ours, model = run_both(g, x)
    np.testing.assert_allclose(ours, orc.run_litert(model, [x])[0], rtol=1e-5, atol=1e-5)


def tconv_case(d):
    n, h, w, cin, cout = (d(st.integers(1, 2)), d(st.integers(1, 6)), d(st.integers(1, 6)),
                          d(st.integers(1, 4)), d(st.integers(1, 4)))
    kh, kw, sh, sw = d(st.integers(1, 4)), d(st.integers(1, 4)), d(st.integers(1, 3)), d(st.integers(1, 3))
    padding = d(st.sampled_from(["SAME", "VALID"]))
    # The output sizes LiteRT accepts: SAME, ceil(out / s) == in; VALID, (out - k + s) // s == in
    # (up to s - 1 rows past the full result, which hold the bias alone).
    if padding == "SAME":
        oh, ow = h * sh - d(st.integers(0, sh - 1)), w * sw - d(st.integers(0, sw - 1))
    else:
        oh, ow = (h - 1) * sh + kh + d(st.integers(0, sh - 1)), (w - 1) * sw + kw + d(st.integers(0, sw - 1))
    top, left = tflite_pad_top_left(padding, (oh, ow), (kh, kw), (sh, sw))
    pads = (top, left, (h - 1) * sh + kh - top - oh, (w - 1) * sw + kw - left - ow)
    return (n, h, w, cin), (cout, kh, kw, cin), (n, oh, ow, cout), (sh, sw), pads


@needs_tflm
@profile(80)
@given(st.data())
def test_transpose_conv_int8_matches_tflm(data):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    xs, ws, ys, strides, pads = tconv_case(d)
    cout = ws[0]
    act = d(st.sampled_from(ACTS))
    q_in = qp(d)
    per_channel = d(st.booleans()) and cout > 1
    scales = [f32(10 ** d(st.floats(-3, -1))) for _ in range(cout if per_channel else 1)]
    q_w = (QuantParams.per_axis(scales, [0] * cout, 0) if per_channel else QuantParams.per_tensor(scales[0], 0))
    depth = ws[1] * ws[2] * ws[3]
    q_out = QuantParams.per_tensor(
        f32(q_in.scale[0] * float(np.mean(scales)) * np.sqrt(depth) * 128 * 10 ** d(st.floats(-1.5, 0.5))),
        d(st.integers(-128, 127)))
    x = rng.integers(-128, 128, size=xs).astype(np.int8)
    wt = rng.integers(-127, 128, size=ws).astype(np.int8)
    consts = [("w", wt, q_w, DType.INT8)]
    if d(st.booleans()):
        bs = [f32(np.float32(q_in.scale[0]) * np.float32(s)) for s in (scales if per_channel else scales * cout)]
        q_b = QuantParams.per_axis(bs, [0] * cout, 0) if per_channel else QuantParams.per_tensor(bs[0], 0)
        consts.append(("b", rng.integers(-(2**14), 2**14, size=cout).astype(np.int32), q_b, DType.INT32))
    attrs = {"output_shape": ys, "strides": strides, "pads": pads, "activation": act}
    g = one_op_graph(OpType.TRANSPOSE_CONV, xs, ys, attrs, DType.INT8, q_in, q_out, consts)
    ours, model = run_both(g, x)
    np.testing.assert_array_equal(ours, orc.run_tflm(model, [x])[0])


@needs_litert
@profile(60)
@given(st.data())
def test_transpose_conv_float_matches_litert_reference(data):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    xs, ws, ys, strides, pads = tconv_case(d)
    x = rng.normal(size=xs).astype(np.float32)
    consts = [("w", rng.normal(size=ws).astype(np.float32), None, DType.FLOAT32)]
    if d(st.booleans()):
        consts.append(("b", rng.normal(size=ws[0]).astype(np.float32), None, DType.FLOAT32))
    act = d(st.sampled_from(ACTS))
    attrs = {"output_shape": ys, "strides": strides, "pads": pads, "activation": act}
    g = one_op_graph(OpType.TRANSPOSE_CONV, xs, ys, attrs, DType.FLOAT32, consts=consts)
    ours, model = run_both(g, x)
    np.testing.assert_allclose(ours, orc.run_litert(model, [x])[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ fixed cases


def test_nearest_indices_known_values():
    # 2 -> 5 rows: floor(y * 0.4); align_corners: round(y * 0.25); half pixel: floor((y + .5) * .4)
    assert rk.nearest_indices(2, 5, False, False).tolist() == [0, 0, 0, 1, 1]
    assert rk.nearest_indices(2, 5, True, False).tolist() == [0, 0, 1, 1, 1]
    assert rk.nearest_indices(2, 5, False, True).tolist() == [0, 0, 1, 1, 1]
    # 2x upsampling repeats each row twice
    assert rk.nearest_indices(3, 6, False, False).tolist() == [0, 0, 1, 1, 2, 2]


def test_bilinear_int8_rounds_half_away_from_zero():
    # two pixels -1 and 0 upsampled 1 -> 4 columns: -0.5 rounds to -1 (TFLM's C division with the sign)
    x = np.array([-1, 0], np.int8).reshape(1, 1, 2, 1)
    out = rk.resize_bilinear_int8(x, (1, 4))
    assert out.reshape(-1).tolist() == [-1, -1, 0, 0]


def test_resize_rejects_both_flags_and_different_int8_params():
    x = np.zeros((1, 2, 2, 1), np.int8)
    with pytest.raises(BadInputError, match="cannot both be set"):
        rk.resize_nearest_neighbor(x, (4, 4), align_corners=True, half_pixel_centers=True)
    with pytest.raises(BadInputError, match="share quantization"):
        rk.resize_bilinear_int8(x, (4, 4), QuantParams.per_tensor(0.1, 0), QuantParams.per_tensor(0.2, 0))


def test_transpose_conv_output_padding_rows_hold_the_bias():
    # ONNX output_padding: bottom/right pads of -1 add a row and a column with no taps
    x = np.ones((1, 2, 2, 1), np.float32)
    w = np.ones((1, 3, 3, 1), np.float32)
    out = rk.transpose_conv(x, w, np.array([5.0], np.float32), strides=(2, 2), pads=(1, 1, 0, 0))
    assert out.shape == (1, 4, 4, 1)
    # full result is 5x5; cropping one row/column at the top/left leaves 4x4, whose last row/column
    # is the full result's last one (not bias-only here): check against the direct sum
    full = rk.transpose_conv(x, w, np.array([5.0], np.float32), strides=(2, 2), pads=(0, 0, 0, 0))
    np.testing.assert_array_equal(out, full[:, 1:5, 1:5])
    extra = rk.transpose_conv(x, w, np.array([5.0], np.float32), strides=(2, 2), pads=(0, 0, -1, -1))
    assert extra.shape == (1, 6, 6, 1)
    np.testing.assert_array_equal(extra[0, 5, :, 0], np.full(6, 5.0, np.float32))
    np.testing.assert_array_equal(extra[:, :5, :5], full)


@needs_tflm
@pytest.mark.parametrize("pads,out_hw", [((1, 1, 0, 0), (8, 8)), ((2, 0, 1, -1), (6, 10)), ((1, 2, -1, 1), (9, 6))])
def test_pads_tflite_cannot_express_are_written_with_a_slice(pads, out_hw):
    # e.g. torch's ConvTranspose2d(k=3, s=2, p=1, output_padding=1): top pad 1, TFLite's SAME gives 0
    rng = np.random.default_rng(sum(pads))
    q_in, q_out = QuantParams.per_tensor(0.03, 4), QuantParams.per_tensor(0.2, -9)
    q_w = QuantParams.per_axis([0.01, 0.02, 0.015], [0, 0, 0], 0)
    ys = (1, *out_hw, 3)
    w = rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8)
    g = one_op_graph(OpType.TRANSPOSE_CONV, (1, 4, 4, 2), ys,
                     {"output_shape": ys, "strides": (2, 2), "pads": pads, "activation": "RELU"}, DType.INT8,
                     q_in, q_out, consts=[("w", w, q_w, DType.INT8)])
    x = rng.integers(-128, 128, (1, 4, 4, 2)).astype(np.int8)
    model = tflite_bytes(g)
    assert [op.type for op in load_tflite(model).ops] == [OpType.TRANSPOSE_CONV, OpType.SLICE]
    np.testing.assert_array_equal(Interpreter(g).run([x])["y"], orc.run_tflm(model, [x])[0])


def test_writer_refuses_too_many_bias_only_rows():
    g = one_op_graph(OpType.TRANSPOSE_CONV, (1, 4, 4, 2), (1, 12, 9, 3),
                     {"output_shape": (1, 12, 9, 3), "strides": (2, 2), "pads": (1, 0, -4, 0)}, DType.FLOAT32,
                     consts=[("w", np.ones((3, 3, 3, 2), np.float32), None, DType.FLOAT32)])
    with pytest.raises(BadInputError, match="bias-only rows"):
        tflite_bytes(g)
