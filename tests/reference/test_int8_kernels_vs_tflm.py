"""edgekit's int8 reference kernels against the TFLite Micro interpreter (0 mismatching
bytes), and against LiteRT's reference kernels where LiteRT computes the same thing.

Each example builds a one-operator .tflite model in memory with random shapes,
quantization parameters, weights and attributes, runs it in ``tflite_micro`` and
compares every output byte with the numpy kernel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.support import tflite_oracle as orc  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.ir.dtypes import QuantParams  # noqa: E402
from edgekit.reference import int8_kernels as K  # noqa: E402
from edgekit.reference.float_kernels import output_hw, same_pads  # noqa: E402

needs_tflm = pytest.mark.skipif(not orc.HAVE_TFLM,
                                reason="tflite_micro (the TFLite Micro Python interpreter) is not installed")

S = orc.schema
OPS = S.BuiltinOperator if S is not None else None
OPTS = S.BuiltinOptions if S is not None else None
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def profile(n: int):
    """Deterministic, bounded hypothesis settings for the oracle tests."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------------------------- helpers


def f32(v) -> float:
    return float(np.float32(v))


def draw_scale(d, lo=-3.0, hi=0.0) -> float:
    return f32(10.0 ** d(st.floats(lo, hi, allow_nan=False)))


def draw_qp(d, lo=-3.0, hi=0.0) -> QuantParams:
    return QuantParams.per_tensor(draw_scale(d, lo, hi), d(st.integers(-128, 127)))


def rng_for(d) -> np.random.Generator:
    return np.random.default_rng(d(st.integers(0, 2**32 - 1)))


def rand_i8(rng, shape, lo=-128, hi=127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def spec(shape, dtype=np.int8, quant=None, data=None):
    s = {"shape": tuple(int(v) for v in shape), "dtype": dtype, "quant": quant}
    if data is not None:
        s["data"] = data
    return s


def assert_same(expected, got, what):
    expected = np.asarray(expected)
    got = np.asarray(got)
    assert expected.shape == got.shape, f"{what}: shape {expected.shape} != {got.shape}"
    bad = np.flatnonzero(expected.ravel() != got.ravel())
    assert bad.size == 0, (
        f"{what}: {bad.size} of {expected.size} values differ; first at {bad[0]}: "
        f"edgekit {expected.ravel()[bad[0]]} vs {got.ravel()[bad[0]]}"
    )


def check(model: bytes, inputs, expected, *, litert: bool = True):
    assert_same(expected, orc.run_tflm(model, inputs)[0], "TFLite Micro")
    if litert and orc.HAVE_LITERT:
        assert_same(expected, orc.run_litert(model, inputs)[0], "LiteRT reference")


def bias_qp(s_in: float, fscales, per_channel: bool) -> QuantParams:
    bs = [f32(np.float32(s_in) * np.float32(s)) for s in fscales]
    if per_channel:
        return QuantParams.per_axis(bs, [0] * len(bs), 0)
    return QuantParams.per_tensor(bs[0], 0)


def weight_qp(d, n: int, per_channel: bool, axis: int) -> QuantParams:
    if per_channel and n > 1:
        scales = [draw_scale(d, -3.0, -1.0) for _ in range(n)]
        return QuantParams.per_axis(scales, [0] * n, axis)
    return QuantParams.per_tensor(draw_scale(d, -3.0, -1.0), 0)


def window_geometry(d, h, w, max_k=3, dilation=True):
    kh, kw = d(st.integers(1, max_k)), d(st.integers(1, max_k))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    dh, dw = (d(st.integers(1, 2)), d(st.integers(1, 2))) if dilation else (1, 1)
    padding = d(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        assume(h >= (kh - 1) * dh + 1 and w >= (kw - 1) * dw + 1)
        pads = (0, 0, 0, 0)
    else:
        pads = same_pads((h, w), (kh, kw), (sh, sw), (dh, dw))
    oh, ow = output_hw((h, w), (kh, kw), (sh, sw), (dh, dw), pads)
    return (kh, kw), (sh, sw), (dh, dw), padding, pads, (oh, ow)


# ---------------------------------------------------------------------------------- conv


@needs_tflm
@profile(200)
@given(st.data())
def test_conv2d(data):
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, cout = (d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)),
                          d(st.integers(1, 4)), d(st.integers(1, 5)))
    (kh, kw), stride, dil, padding, pads, (oh, ow) = window_geometry(d, h, w)
    act = d(st.sampled_from(ACTS))
    per_channel = d(st.booleans())
    qi = draw_qp(d, -2.5, 0.0)
    qw = weight_qp(d, cout, per_channel, 0)
    depth = kh * kw * cin
    qo = QuantParams.per_tensor(
        f32(qi.scale[0] * float(np.mean(qw.scale)) * np.sqrt(depth) * 128 * 10 ** d(st.floats(-1.5, 0.5))),
        d(st.integers(-128, 127)))
    x = rand_i8(rng, (n, h, w, cin))
    wt = rand_i8(rng, (cout, kh, kw, cin), -127, 127)
    bias = rng.integers(-(2**14), 2**14, size=cout).astype(np.int32)
    fs = list(qw.scale) if len(qw.scale) > 1 else [qw.scale[0]] * cout
    opt = S.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.dilationHFactor, opt.dilationWFactor = dil
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(
        OPS.CONV_2D,
        [spec(x.shape, quant=qi), spec(wt.shape, quant=qw, data=wt),
         spec((cout,), np.int32, bias_qp(qi.scale[0], fs, per_channel and cout > 1), bias)],
        [spec((n, oh, ow, cout), quant=qo)], OPTS.Conv2DOptions, opt)
    got = K.conv2d(x, wt, bias, qi, qw, qo, stride=stride, pads=pads, dilation=dil, activation=act)
    check(model, [x], got)


@needs_tflm
@profile(30)
@given(st.data())
def test_conv2d_without_bias(data):
    """TFLM accepts CONV_2D with no bias (LiteRT does not)."""
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, cout = 2, d(st.integers(3, 7)), d(st.integers(3, 7)), d(st.integers(1, 3)), d(st.integers(1, 4))
    pads = same_pads((h, w), (3, 3), (1, 1))
    qi, qw = draw_qp(d, -2.5, 0.0), weight_qp(d, cout, True, 0)
    qo = QuantParams.per_tensor(f32(qi.scale[0] * float(np.mean(qw.scale)) * 200), d(st.integers(-128, 127)))
    x, wt = rand_i8(rng, (n, h, w, cin)), rand_i8(rng, (cout, 3, 3, cin), -127, 127)
    opt = S.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING["SAME"], 1, 1
    model = orc.single_op_model(OPS.CONV_2D, [spec(x.shape, quant=qi), spec(wt.shape, quant=qw, data=wt), None],
                                [spec((n, h, w, cout), quant=qo)], OPTS.Conv2DOptions, opt)
    check(model, [x], K.conv2d(x, wt, None, qi, qw, qo, pads=pads), litert=False)


@needs_tflm
@profile(150)
@given(st.data())
def test_depthwise_conv2d(data):
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, m = (d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)),
                       d(st.integers(1, 4)), d(st.integers(1, 3)))
    cout = cin * m
    (kh, kw), stride, dil, padding, pads, (oh, ow) = window_geometry(d, h, w)
    act = d(st.sampled_from(ACTS))
    per_channel = d(st.booleans())
    qi = draw_qp(d, -2.5, 0.0)
    qw = weight_qp(d, cout, per_channel, 3)
    qo = QuantParams.per_tensor(
        f32(qi.scale[0] * float(np.mean(qw.scale)) * np.sqrt(kh * kw) * 128 * 10 ** d(st.floats(-1.5, 0.5))),
        d(st.integers(-128, 127)))
    x = rand_i8(rng, (n, h, w, cin))
    wt = rand_i8(rng, (1, kh, kw, cout), -127, 127)
    bias = rng.integers(-(2**12), 2**12, size=cout).astype(np.int32)
    fs = list(qw.scale) if len(qw.scale) > 1 else [qw.scale[0]] * cout
    opt = S.DepthwiseConv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.dilationHFactor, opt.dilationWFactor = dil
    opt.depthMultiplier = m
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(
        OPS.DEPTHWISE_CONV_2D,
        [spec(x.shape, quant=qi), spec(wt.shape, quant=qw, data=wt),
         spec((cout,), np.int32, bias_qp(qi.scale[0], fs, per_channel and cout > 1), bias)],
        [spec((n, oh, ow, cout), quant=qo)], OPTS.DepthwiseConv2DOptions, opt)
    got = K.depthwise_conv2d(x, wt, bias, qi, qw, qo, stride=stride, pads=pads, dilation=dil,
                             depth_multiplier=m, activation=act)
    check(model, [x], got)


@needs_tflm
@profile(200)
@given(st.data())
def test_fully_connected(data):
    d = data.draw
    rng = rng_for(d)
    kdim, cout = d(st.integers(1, 24)), d(st.integers(1, 8))
    per_channel = d(st.booleans()) and cout > 1
    keep = d(st.booleans())
    lead = [d(st.integers(1, 3))]
    if d(st.booleans()) and not (keep and per_channel):
        lead.append(d(st.integers(1, 3)))  # TFLM's per-channel kernel assumes a 2-D output
    x_shape = tuple(lead) + (kdim,)
    act = d(st.sampled_from(ACTS))
    has_bias = d(st.booleans())
    qi = draw_qp(d, -2.5, 0.0)
    qw = weight_qp(d, cout, per_channel, 0)
    qo = QuantParams.per_tensor(
        f32(qi.scale[0] * float(np.mean(qw.scale)) * np.sqrt(kdim) * 128 * 10 ** d(st.floats(-1.5, 0.5))),
        d(st.integers(-128, 127)))
    x = rand_i8(rng, x_shape)
    wt = rand_i8(rng, (cout, kdim), -127, 127)
    bias = rng.integers(-(2**14), 2**14, size=cout).astype(np.int32) if has_bias else None
    fs = list(qw.scale) if len(qw.scale) > 1 else [qw.scale[0]] * cout
    out_shape = x_shape[:-1] + (cout,) if keep else (int(np.prod(x_shape[:-1])), cout)
    opt = S.FullyConnectedOptionsT()
    opt.fusedActivationFunction = orc.ACT[act]
    opt.keepNumDims = keep
    bias_spec = spec((cout,), np.int32, bias_qp(qi.scale[0], fs, per_channel), bias) if has_bias else None
    model = orc.single_op_model(
        OPS.FULLY_CONNECTED,
        [spec(x.shape, quant=qi), spec(wt.shape, quant=qw, data=wt), bias_spec],
        [spec(out_shape, quant=qo)], OPTS.FullyConnectedOptions, opt)
    got = K.fully_connected(x, wt, bias, qi, qw, qo, activation=act, keep_num_dims=keep)
    # LiteRT 2.3's reference FULLY_CONNECTED (per-tensor and per-channel) requantizes with
    # single rounding (+-1 in a few outputs); TFLM and edgekit use double rounding.
    check(model, [x], got, litert=False)


# ---------------------------------------------------------------------------------- pooling


def _pool_case(d, op):
    rng = rng_for(d)
    n, h, w, c = d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)), d(st.integers(1, 4))
    (kh, kw), stride, _, padding, pads, (oh, ow) = window_geometry(d, h, w, max_k=4, dilation=False)
    act = d(st.sampled_from(ACTS))
    q = draw_qp(d, -2.5, 0.0)
    x = rand_i8(rng, (n, h, w, c))
    opt = S.Pool2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.filterHeight, opt.filterWidth = kh, kw
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(op, [spec(x.shape, quant=q)], [spec((n, oh, ow, c), quant=q)],
                                OPTS.Pool2DOptions, opt)
    return model, x, q, (kh, kw), stride, pads, act


@needs_tflm
@profile(100)
@given(st.data())
def test_average_pool2d(data):
    model, x, q, pool, stride, pads, act = _pool_case(data.draw, OPS.AVERAGE_POOL_2D)
    check(model, [x], K.average_pool2d(x, q, q, pool=pool, stride=stride, pads=pads, activation=act))


@needs_tflm
@profile(60)
@given(st.data())
def test_max_pool2d(data):
    model, x, q, pool, stride, pads, act = _pool_case(data.draw, OPS.MAX_POOL_2D)
    check(model, [x], K.max_pool2d(x, q, q, pool=pool, stride=stride, pads=pads, activation=act))


# ---------------------------------------------------------------------------------- binary


def _broadcast_shapes(d):
    rank = d(st.integers(1, 4))
    base = [d(st.integers(1, 4)) for _ in range(rank)]
    kind = d(st.sampled_from(["same", "ones", "short"]))
    if kind == "same":
        other = list(base)
    elif kind == "ones":
        other = [1 if d(st.booleans()) else v for v in base]
    else:
        other = base[d(st.integers(0, rank - 1)):]
    if d(st.booleans()):
        base, other = other, base
    return tuple(base), tuple(other)


def _binary_case(d, op, opt_cls, opt_type, fn, out_scale_fn):
    rng = rng_for(d)
    s1, s2 = _broadcast_shapes(d)
    q1, q2 = draw_qp(d, -2.5, 0.0), draw_qp(d, -2.5, 0.0)
    qo = QuantParams.per_tensor(out_scale_fn(q1.scale[0], q2.scale[0]) * f32(10 ** d(st.floats(-0.7, 0.7))),
                                d(st.integers(-128, 127)))
    act = d(st.sampled_from(ACTS))
    a, b = rand_i8(rng, s1), rand_i8(rng, s2)
    out_shape = np.broadcast_shapes(s1, s2)
    opt = opt_cls()
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(op, [spec(s1, quant=q1), spec(s2, quant=q2)], [spec(out_shape, quant=qo)],
                                opt_type, opt)
    got = fn(a, b, q1, q2, qo, activation=act)
    return model, [a, b], got


@needs_tflm
@profile(120)
@given(st.data())
def test_add(data):
    model, ins, got = _binary_case(data.draw, OPS.ADD, S.AddOptionsT, OPTS.AddOptions, K.add,
                                   lambda s1, s2: f32(2 * max(s1, s2)))
    check(model, ins, got)


@needs_tflm
@profile(120)
@given(st.data())
def test_sub(data):
    model, ins, got = _binary_case(data.draw, OPS.SUB, S.SubOptionsT, OPTS.SubOptions, K.sub,
                                   lambda s1, s2: f32(2 * max(s1, s2)))
    check(model, ins, got)


@needs_tflm
@profile(120)
@given(st.data())
def test_mul(data):
    model, ins, got = _binary_case(data.draw, OPS.MUL, S.MulOptionsT, OPTS.MulOptions, K.mul,
                                   lambda s1, s2: f32(s1 * s2 * 128))
    # LiteRT 2.3 requantizes int8 MUL with single rounding (TFLM: double): +-1 apart.
    check(model, ins, got, litert=False)


# ---------------------------------------------------------------------------------- activations


@needs_tflm
@profile(120)
@given(st.data())
def test_softmax(data):
    d = data.draw
    rng = rng_for(d)
    shape = tuple(d(st.integers(1, 4)) for _ in range(d(st.integers(0, 2)))) + (d(st.integers(2, 16)),)
    shape = (d(st.integers(1, 3)),) + shape
    qi = draw_qp(d, -2.7, -1.2)
    qo = QuantParams.per_tensor(1.0 / 256, -128)
    beta = f32(d(st.sampled_from([1.0, 0.5, 2.0, 0.1, 1.7])))
    x = rand_i8(rng, shape)
    opt = S.SoftmaxOptionsT()
    opt.beta = beta
    model = orc.single_op_model(OPS.SOFTMAX, [spec(shape, quant=qi)], [spec(shape, quant=qo)],
                                OPTS.SoftmaxOptions, opt)
    check(model, [x], K.softmax(x, qi, qo, beta=beta))


@needs_tflm
@profile(60)
@given(st.data())
def test_logistic(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 40)))
    qi = draw_qp(d, -2.5, -1.0)
    qo = QuantParams.per_tensor(1.0 / 256, -128)
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.LOGISTIC, [spec(shape, quant=qi)], [spec(shape, quant=qo)])
    check(model, [x], K.logistic(x, qi, qo))


@needs_tflm
@profile(60)
@given(st.data())
def test_tanh(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 40)))
    qi = draw_qp(d, -2.5, -1.3)
    qo = QuantParams.per_tensor(1.0 / 128, 0)
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.TANH, [spec(shape, quant=qi)], [spec(shape, quant=qo)])
    check(model, [x], K.tanh(x, qi, qo))


@needs_tflm
def test_logistic_tanh_full_input_range():
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    for scale, zp in [(0.1, 0), (0.0235, -17), (0.5, 100), (0.004, -128)]:
        qi = QuantParams.per_tensor(scale, zp)
        for op, qo, fn in [(OPS.LOGISTIC, QuantParams.per_tensor(1 / 256, -128), K.logistic),
                           (OPS.TANH, QuantParams.per_tensor(1 / 128, 0), K.tanh)]:
            model = orc.single_op_model(op, [spec(x.shape, quant=qi)], [spec(x.shape, quant=qo)])
            check(model, [x], fn(x, qi, qo))


@needs_tflm
@profile(60)
@given(st.data())
def test_relu(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 5)), d(st.integers(1, 7)))
    qi = draw_qp(d, -2.5, 0.0)
    qo = qi if d(st.booleans()) else QuantParams.per_tensor(qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))),
                                                             d(st.integers(-128, 127)))
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.RELU, [spec(shape, quant=qi)], [spec(shape, quant=qo)])
    check(model, [x], K.relu(x, qi, qo))


@needs_tflm
@profile(40)
@given(st.data())
def test_relu6(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 5)), d(st.integers(1, 7)))
    qi = draw_qp(d, -2.0, 0.0)
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.RELU6, [spec(shape, quant=qi)], [spec(shape, quant=qi)])
    check(model, [x], K.relu6(x, qi, qi))


# ---------------------------------------------------------------------------------- reduce / data movement


@needs_tflm
@profile(120)
@given(st.data())
def test_mean(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 7)), d(st.integers(1, 7)), d(st.integers(1, 5)))
    axes = d(st.sampled_from([(1, 2), (2, 1), (1,), (2,), (3,), (1, 3), (-1,), (-3, -2)]))
    keep = d(st.booleans())
    qi = draw_qp(d, -2.5, 0.0)
    qo = qi if d(st.booleans()) else QuantParams.per_tensor(
        qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))), d(st.integers(-128, 127)))
    x = rand_i8(rng, shape)
    ax = sorted({a % 4 for a in axes})
    out_shape = tuple(1 if i in ax else s for i, s in enumerate(shape)) if keep else \
        tuple(s for i, s in enumerate(shape) if i not in ax)
    opt = S.ReducerOptionsT()
    opt.keepDims = keep
    axes_arr = np.asarray(axes, np.int32)
    model = orc.single_op_model(OPS.MEAN, [spec(shape, quant=qi), spec(axes_arr.shape, np.int32, data=axes_arr)],
                                [spec(out_shape, quant=qo)], OPTS.ReducerOptions, opt)
    got = K.mean(x, qi, qo, axes=axes, keep_dims=keep)
    # LiteRT's int8 MEAN rounds differently from TFLM's: compare with TFLM only.
    check(model, [x], got, litert=False)


@needs_tflm
@profile(40)
@given(st.data())
def test_pad(data):
    d = data.draw
    rng = rng_for(d)
    shape = tuple(d(st.integers(1, 4)) for _ in range(4))
    paddings = [(0, 0)] + [(d(st.integers(0, 2)), d(st.integers(0, 2))) for _ in range(3)]
    q = draw_qp(d)
    x = rand_i8(rng, shape)
    out_shape = tuple(s + a + b for s, (a, b) in zip(shape, paddings))
    pads_arr = np.asarray(paddings, np.int32)
    model = orc.single_op_model(OPS.PAD, [spec(shape, quant=q), spec(pads_arr.shape, np.int32, data=pads_arr)],
                                [spec(out_shape, quant=q)], OPTS.PadOptions, S.PadOptionsT())
    check(model, [x], K.pad(x, q, q, paddings))


@needs_tflm
@profile(40)
@given(st.data())
def test_concatenation(data):
    d = data.draw
    rng = rng_for(d)
    rank = d(st.integers(1, 4))
    base = [d(st.integers(1, 4)) for _ in range(rank)]
    axis = d(st.integers(-rank, rank - 1))
    k = d(st.integers(1, 3))
    shapes = []
    for _ in range(k):
        s = list(base)
        s[axis] = d(st.integers(1, 4))
        shapes.append(tuple(s))
    q = draw_qp(d)
    xs = [rand_i8(rng, s) for s in shapes]
    out_shape = list(base)
    out_shape[axis] = sum(s[axis] for s in shapes)
    opt = S.ConcatenationOptionsT()
    opt.axis = axis
    model = orc.single_op_model(OPS.CONCATENATION, [spec(s, quant=q) for s in shapes],
                                [spec(out_shape, quant=q)], OPTS.ConcatenationOptions, opt)
    check(model, xs, K.concatenation(xs, [q] * k, q, axis=axis))


def test_concatenation_rejects_different_quantization():
    a = np.zeros((1, 2), np.int8)
    q1, q2 = QuantParams.per_tensor(0.1, 0), QuantParams.per_tensor(0.2, 0)
    with pytest.raises(BadInputError):
        K.concatenation([a, a], [q1, q2], q1, axis=1)


# ---------------------------------------------------------------------------------- quantize


@needs_tflm
@profile(80)
@given(st.data())
def test_quantize_float(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 30)))
    qo = draw_qp(d, -2.5, 0.0)
    s = qo.scale[0]
    # many values on exact .5 boundaries, plus random values and out-of-range ones
    halves = (rng.integers(-300, 300, size=shape) + 0.5) * np.float32(s)
    rand = rng.normal(0, 100 * s, size=shape)
    x = np.where(rng.random(shape) < 0.5, halves, rand).astype(np.float32)
    model = orc.single_op_model(OPS.QUANTIZE, [spec(shape, np.float32)], [spec(shape, quant=qo)],
                                OPTS.QuantizeOptions, S.QuantizeOptionsT())
    check(model, [x], K.quantize(x, qo))


@needs_tflm
@profile(80)
@given(st.data())
def test_requantize(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 30)))
    qi = draw_qp(d, -2.5, 0.0)
    qo = draw_qp(d, -2.5, 0.0) if d(st.booleans()) else QuantParams.per_tensor(
        qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))), d(st.integers(-128, 127)))
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.QUANTIZE, [spec(shape, quant=qi)], [spec(shape, quant=qo)],
                                OPTS.QuantizeOptions, S.QuantizeOptionsT())
    check(model, [x], K.quantize(x, qo, qi))


@needs_tflm
@profile(40)
@given(st.data())
def test_dequantize(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 30)))
    qi = draw_qp(d, -3.0, 1.0)
    x = rand_i8(rng, shape)
    model = orc.single_op_model(OPS.DEQUANTIZE, [spec(shape, quant=qi)], [spec(shape, np.float32)],
                                OPTS.DequantizeOptions, S.DequantizeOptionsT())
    check(model, [x], K.dequantize(x, qi))


def test_per_axis_quantize_dequantize():
    w = np.array([[0.5, -0.25, 0.126], [1.0, -2.0, 0.0]], np.float32)
    qp = QuantParams.per_axis([0.25, 0.5], [0, 1], 0)
    q = K.quantize(w, qp)
    assert q.tolist() == [[2, -1, 1], [3, -3, 1]]
    assert K.dequantize(q, qp).tolist() == [[0.5, -0.25, 0.25], [1.0, -2.0, 0.0]]
    # TfLiteRound: halves away from zero
    assert K.quantize(np.array([-0.375, 0.375], np.float32), QuantParams.per_tensor(0.25, 0)).tolist() == [-2, 2]


def test_reshape_keeps_bytes():
    x = np.arange(-12, 12, dtype=np.int8).reshape(2, 3, 4)
    y = K.reshape(x, (2, -1))
    assert y.shape == (2, 12) and y.dtype == np.int8 and (y.ravel() == x.ravel()).all()


def test_contract_violations_raise():
    q = QuantParams.per_tensor(0.1, 0)
    x = np.zeros((1, 4), np.int8)
    with pytest.raises(BadInputError):
        K.softmax(x, q, q)
    with pytest.raises(BadInputError):
        K.logistic(x, q, q)
    with pytest.raises(BadInputError):
        K.relu6(x, q, QuantParams.per_tensor(0.2, 0))
    with pytest.raises(BadInputError):
        K.add(x.astype(np.float32), x, q, q, q)


# ---------------------------------------------------------------------------------- end to end

_SHARED = Path(__file__).resolve().parents[2].parent / "shared"
_KWS = _SHARED / "models" / "mlperf-tiny" / "kws_ref_model_int8.tflite"
_KWS_DATA = _SHARED / "data" / "kws01" / "kws01_test1000.npz"

_PADDING_NAMES = {0: "SAME", 1: "VALID"}
_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


def _qp_from_details(det) -> QuantParams:
    qp = det["quantization_parameters"]
    scales, zps = list(qp["scales"]), list(qp["zero_points"])
    if len(scales) == 1:
        return QuantParams.per_tensor(float(scales[0]), int(zps[0]))
    if len(zps) == 1:  # TFLite files may store one zero point for all channels
        zps = zps * len(scales)
    return QuantParams.per_axis(scales, zps, int(qp["quantized_dimension"]))


def _run_layer_by_layer(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Evaluate every operator of the model with edgekit's int8 kernels (test-only
    model walking: weights and quantization from LiteRT, options from the flatbuffer)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    m = S.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    sg = m.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    const = {}
    for i, t in enumerate(sg.tensors):
        buf = m.buffers[t.buffer]
        if t.buffer > 0 and buf.data is not None and len(buf.data):
            const[i] = interp.get_tensor(i)
    values = {sg.inputs[0]: x}
    q = {i: _qp_from_details(details[i]) for i in details if len(details[i]["quantization_parameters"]["scales"])}

    def val(i):
        return const[i] if i in const else values[i]

    for op in sg.operators:
        code = codes[op.opcodeIndex]
        ins, out = list(op.inputs), op.outputs[0]
        o = op.builtinOptions
        out_shape = details[out]["shape"]
        if code == OPS.CONV_2D:
            xin, w = val(ins[0]), val(ins[1])
            stride, dil = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
            pads = same_pads(xin.shape[1:3], w.shape[1:3], stride, dil) if o.padding == 0 else (0, 0, 0, 0)
            y = K.conv2d(xin, w, val(ins[2]), q[ins[0]], q[ins[1]], q[out], stride=stride, pads=pads,
                         dilation=dil, activation=_ACT_NAMES[o.fusedActivationFunction])
        elif code == OPS.DEPTHWISE_CONV_2D:
            xin, w = val(ins[0]), val(ins[1])
            stride, dil = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
            pads = same_pads(xin.shape[1:3], w.shape[1:3], stride, dil) if o.padding == 0 else (0, 0, 0, 0)
            y = K.depthwise_conv2d(xin, w, val(ins[2]), q[ins[0]], q[ins[1]], q[out], stride=stride, pads=pads,
                                   dilation=dil, depth_multiplier=w.shape[3] // xin.shape[3],
                                   activation=_ACT_NAMES[o.fusedActivationFunction])
        elif code == OPS.AVERAGE_POOL_2D:
            xin = val(ins[0])
            pool, stride = (o.filterHeight, o.filterWidth), (o.strideH, o.strideW)
            pads = same_pads(xin.shape[1:3], pool, stride) if o.padding == 0 else (0, 0, 0, 0)
            y = K.average_pool2d(xin, q[ins[0]], q[out], pool=pool, stride=stride, pads=pads,
                                 activation=_ACT_NAMES[o.fusedActivationFunction])
        elif code == OPS.RESHAPE:
            xin = val(ins[0])
            y = K.reshape(xin, (xin.shape[0],) + tuple(int(s) for s in out_shape[1:]))
        elif code == OPS.FULLY_CONNECTED:
            bias = val(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            y = K.fully_connected(val(ins[0]), val(ins[1]), bias, q[ins[0]], q[ins[1]], q[out],
                                  activation=_ACT_NAMES[o.fusedActivationFunction],
                                  keep_num_dims=bool(o.keepNumDims))
        elif code == OPS.SOFTMAX:
            y = K.softmax(val(ins[0]), q[ins[0]], q[out], beta=o.beta)
        else:  # pragma: no cover - the KWS model uses only the operators above
            raise AssertionError(f"operator {code} not handled by the test walker")
        values[out] = y
    return values[sg.outputs[0]]


@pytest.mark.skipif(not (_KWS.exists() and _KWS_DATA.exists()), reason=f"shared KWS model/data absent under {_SHARED}")
@needs_tflm
@pytest.mark.skipif(not orc.HAVE_LITERT, reason="ai_edge_litert is not installed")
def test_kws_end_to_end_matches_tflm():
    model_bytes = _KWS.read_bytes()
    xs = np.load(_KWS_DATA)["x_int8"][:50]
    ours = _run_layer_by_layer(model_bytes, xs)
    interp = orc.tflm_runtime.Interpreter.from_bytes(model_bytes)
    ref = []
    for i in range(xs.shape[0]):
        interp.set_input(xs[i:i + 1], 0)
        interp.invoke()
        ref.append(np.array(interp.get_output(0)))
    ref = np.concatenate(ref, axis=0)
    assert_same(ours, ref, "KWS DS-CNN vs TFLite Micro")
