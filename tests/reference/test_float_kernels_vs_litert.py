"""edgekit's float32 and hybrid reference kernels against LiteRT's reference kernels
(``OpResolverType.BUILTIN_REF``): within 1e-5 relative, or 1e-5 absolute for tiny
values; the hybrid kernels, whose accumulation is integer, within 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.support import tflite_oracle as orc  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.ir.dtypes import QuantParams  # noqa: E402
from edgekit.reference import float_kernels as F  # noqa: E402

needs_litert = pytest.mark.skipif(not orc.HAVE_LITERT, reason="ai_edge_litert (LiteRT) is not installed")

S = orc.schema
OPS = S.BuiltinOperator if S is not None else None
OPTS = S.BuiltinOptions if S is not None else None
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
F32 = np.float32


def profile(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def rng_for(d) -> np.random.Generator:
    return np.random.default_rng(d(st.integers(0, 2**32 - 1)))


def spec(shape, dtype=np.float32, quant=None, data=None):
    s = {"shape": tuple(int(v) for v in shape), "dtype": dtype, "quant": quant}
    if data is not None:
        s["data"] = data
    return s


def close(got, ref, rtol=1e-5, atol=1e-5, what="LiteRT"):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert got.dtype == np.float32, got.dtype
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def run(model, inputs, got, **tol):
    close(got, orc.run_litert(model, inputs)[0], **tol)


def window(d, h, w, max_k=3, dilation=True):
    kh, kw = d(st.integers(1, max_k)), d(st.integers(1, max_k))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    dh, dw = (d(st.integers(1, 2)), d(st.integers(1, 2))) if dilation else (1, 1)
    padding = d(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        assume(h >= (kh - 1) * dh + 1 and w >= (kw - 1) * dw + 1)
    pads = F.same_pads((h, w), (kh, kw), (sh, sw), (dh, dw)) if padding == "SAME" else (0, 0, 0, 0)
    return (kh, kw), (sh, sw), (dh, dw), padding, pads, F.output_hw((h, w), (kh, kw), (sh, sw), (dh, dw), pads)


# ---------------------------------------------------------------------------------- geometry


@profile(200)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3))
def test_same_pads_match_tflite_definition(n, k, s, dil):
    top, left, bottom, right = F.same_pads((n, n), (k, k), (s, s), (dil, dil))
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * dil + 1 - n, 0)
    assert (top, bottom) == (total // 2, total - total // 2) == (left, right)
    assert F.output_hw((n, n), (k, k), (s, s), (dil, dil), (top, left, bottom, right)) == (out, out)
    assert F.output_hw((n, n), (k, k), (s, s), (dil, dil), "SAME") == (out, out)


# ---------------------------------------------------------------------------------- convolutions


@needs_litert
@profile(100)
@given(st.data())
def test_conv2d(data):
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, cout = (d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)),
                          d(st.integers(1, 5)), d(st.integers(1, 5)))
    (kh, kw), stride, dil, padding, pads, (oh, ow) = window(d, h, w)
    act = d(st.sampled_from(ACTS))
    x = rng.normal(size=(n, h, w, cin)).astype(F32)
    wt = (rng.normal(size=(cout, kh, kw, cin)) / np.sqrt(kh * kw * cin)).astype(F32)
    b = rng.normal(size=cout).astype(F32)
    opt = S.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.dilationHFactor, opt.dilationWFactor = dil
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(OPS.CONV_2D, [spec(x.shape), spec(wt.shape, data=wt), spec((cout,), data=b)],
                                [spec((n, oh, ow, cout))], OPTS.Conv2DOptions, opt)
    run(model, [x], F.conv2d(x, wt, b, stride=stride, pads=pads, dilation=dil, activation=act))


@needs_litert
@profile(100)
@given(st.data())
def test_depthwise_conv2d(data):
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, m = (d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)),
                       d(st.integers(1, 4)), d(st.integers(1, 3)))
    (kh, kw), stride, dil, padding, pads, (oh, ow) = window(d, h, w)
    act = d(st.sampled_from(ACTS))
    x = rng.normal(size=(n, h, w, cin)).astype(F32)
    wt = (rng.normal(size=(1, kh, kw, cin * m)) / np.sqrt(kh * kw)).astype(F32)
    b = rng.normal(size=cin * m).astype(F32)
    opt = S.DepthwiseConv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.dilationHFactor, opt.dilationWFactor = dil
    opt.depthMultiplier = m
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(OPS.DEPTHWISE_CONV_2D,
                                [spec(x.shape), spec(wt.shape, data=wt), spec((cin * m,), data=b)],
                                [spec((n, oh, ow, cin * m))], OPTS.DepthwiseConv2DOptions, opt)
    run(model, [x], F.depthwise_conv2d(x, wt, b, stride=stride, pads=pads, dilation=dil,
                                       depth_multiplier=m, activation=act))


@needs_litert
@profile(100)
@given(st.data())
def test_fully_connected(data):
    d = data.draw
    rng = rng_for(d)
    k, cout = d(st.integers(1, 40)), d(st.integers(1, 8))
    keep = d(st.booleans())
    x_shape = (d(st.integers(1, 3)),) + ((d(st.integers(1, 3)),) if d(st.booleans()) else ()) + (k,)
    act = d(st.sampled_from(ACTS))
    has_bias = d(st.booleans())
    x = rng.normal(size=x_shape).astype(F32)
    wt = (rng.normal(size=(cout, k)) / np.sqrt(k)).astype(F32)
    b = rng.normal(size=cout).astype(F32) if has_bias else None
    out_shape = x_shape[:-1] + (cout,) if keep else (int(np.prod(x_shape[:-1])), cout)
    opt = S.FullyConnectedOptionsT()
    opt.fusedActivationFunction = orc.ACT[act]
    opt.keepNumDims = keep
    model = orc.single_op_model(OPS.FULLY_CONNECTED,
                                [spec(x_shape), spec(wt.shape, data=wt), spec((cout,), data=b) if has_bias else None],
                                [spec(out_shape)], OPTS.FullyConnectedOptions, opt)
    run(model, [x], F.fully_connected(x, wt, b, activation=act, keep_num_dims=keep))


# ---------------------------------------------------------------------------------- pools


def _pool(d, op):
    rng = rng_for(d)
    n, h, w, c = d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9)), d(st.integers(1, 4))
    (kh, kw), stride, _, padding, pads, (oh, ow) = window(d, h, w, max_k=4, dilation=False)
    act = d(st.sampled_from(ACTS))
    x = (rng.normal(size=(n, h, w, c)) * 3).astype(F32)
    opt = S.Pool2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.filterHeight, opt.filterWidth = kh, kw
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(op, [spec(x.shape)], [spec((n, oh, ow, c))], OPTS.Pool2DOptions, opt)
    return model, x, dict(pool=(kh, kw), stride=stride, pads=pads, activation=act)


@needs_litert
@profile(60)
@given(st.data())
def test_average_pool2d(data):
    model, x, kw = _pool(data.draw, OPS.AVERAGE_POOL_2D)
    run(model, [x], F.average_pool2d(x, **kw))


@needs_litert
@profile(40)
@given(st.data())
def test_max_pool2d(data):
    model, x, kw = _pool(data.draw, OPS.MAX_POOL_2D)
    run(model, [x], F.max_pool2d(x, **kw), rtol=0, atol=0)


# ---------------------------------------------------------------------------------- elementwise


@needs_litert
@profile(100)
@given(st.data(), st.sampled_from(["add", "sub", "mul"]))
def test_binary(data, which):
    d = data.draw
    rng = rng_for(d)
    rank = d(st.integers(1, 4))
    s1 = tuple(d(st.integers(1, 4)) for _ in range(rank))
    s2 = tuple(1 if d(st.booleans()) else v for v in s1)[d(st.integers(0, rank - 1)):]
    if d(st.booleans()):
        s1, s2 = s2, s1
    act = d(st.sampled_from(ACTS))
    a, b = rng.normal(size=s1).astype(F32) * 4, rng.normal(size=s2).astype(F32) * 4
    op, ot, oc, fn = {"add": (OPS.ADD, OPTS.AddOptions, S.AddOptionsT, F.add),
                      "sub": (OPS.SUB, OPTS.SubOptions, S.SubOptionsT, F.sub),
                      "mul": (OPS.MUL, OPTS.MulOptions, S.MulOptionsT, F.mul)}[which]
    opt = oc()
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(op, [spec(s1), spec(s2)], [spec(np.broadcast_shapes(s1, s2))], ot, opt)
    run(model, [a, b], fn(a, b, activation=act), rtol=0, atol=0)


@needs_litert
@profile(60)
@given(st.data())
def test_softmax(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)),) + tuple(d(st.integers(1, 4)) for _ in range(d(st.integers(0, 2)))) \
        + (d(st.integers(1, 20)),)
    beta = float(F32(d(st.sampled_from([1.0, 0.5, 2.0, 0.1]))))
    x = (rng.normal(size=shape) * 5).astype(F32)
    opt = S.SoftmaxOptionsT()
    opt.beta = beta
    model = orc.single_op_model(OPS.SOFTMAX, [spec(shape)], [spec(shape)], OPTS.SoftmaxOptions, opt)
    run(model, [x], F.softmax(x, beta=beta), rtol=1e-5, atol=1e-7)


@needs_litert
@profile(60)
@given(st.data(), st.sampled_from(["LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1"]))
def test_unary(data, which):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 50)))
    x = (rng.normal(size=shape) * 8).astype(F32)
    x.flat[0] = -30.0
    x.flat[-1] = 20.0
    fn = {"LOGISTIC": F.logistic, "TANH": F.tanh, "RELU": F.relu, "RELU6": F.relu6,
          "RELU_N1_TO_1": F.relu_n1_to_1}[which]
    model = orc.single_op_model(getattr(OPS, which), [spec(shape)], [spec(shape)])
    run(model, [x], fn(x), rtol=2e-6, atol=1e-7)


@needs_litert
@profile(60)
@given(st.data())
def test_mean(data):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 7)), d(st.integers(1, 7)), d(st.integers(1, 5)))
    axes = d(st.sampled_from([(1, 2), (2, 1), (1,), (3,), (-1,), (1, 3), (0,)]))
    keep = d(st.booleans())
    x = rng.normal(size=shape).astype(F32)
    ax = sorted({a % 4 for a in axes})
    out_shape = tuple(1 if i in ax else s for i, s in enumerate(shape)) if keep else \
        tuple(s for i, s in enumerate(shape) if i not in ax)
    opt = S.ReducerOptionsT()
    opt.keepDims = keep
    axes_arr = np.asarray(axes, np.int32)
    model = orc.single_op_model(OPS.MEAN, [spec(shape), spec(axes_arr.shape, np.int32, data=axes_arr)],
                                [spec(out_shape)], OPTS.ReducerOptions, opt)
    run(model, [x], F.mean(x, axes=axes, keep_dims=keep))


@needs_litert
@profile(30)
@given(st.data())
def test_pad_concat_transpose_reshape(data):
    d = data.draw
    rng = rng_for(d)
    shape = tuple(d(st.integers(1, 4)) for _ in range(4))
    x = rng.normal(size=shape).astype(F32)
    paddings = [(d(st.integers(0, 2)), d(st.integers(0, 2))) for _ in range(4)]
    pads_arr = np.asarray(paddings, np.int32)
    out_shape = tuple(s + a + b for s, (a, b) in zip(shape, paddings))
    model = orc.single_op_model(OPS.PAD, [spec(shape), spec((4, 2), np.int32, data=pads_arr)],
                                [spec(out_shape)], OPTS.PadOptions, S.PadOptionsT())
    run(model, [x], F.pad(x, paddings), rtol=0, atol=0)

    perm = list(d(st.permutations(range(4))))
    perm_arr = np.asarray(perm, np.int32)
    t_shape = tuple(shape[p] for p in perm)
    model = orc.single_op_model(OPS.TRANSPOSE, [spec(shape), spec((4,), np.int32, data=perm_arr)],
                                [spec(t_shape)], OPTS.TransposeOptions, S.TransposeOptionsT())
    run(model, [x], F.transpose(x, perm), rtol=0, atol=0)

    axis = d(st.integers(-4, 3))
    y_shape = list(shape)
    y_shape[axis] = d(st.integers(1, 3))
    y = rng.normal(size=y_shape).astype(F32)
    c_shape = list(shape)
    c_shape[axis] += y_shape[axis]
    opt = S.ConcatenationOptionsT()
    opt.axis = axis
    model = orc.single_op_model(OPS.CONCATENATION, [spec(shape), spec(y_shape)], [spec(c_shape)],
                                OPTS.ConcatenationOptions, opt)
    run(model, [x, y], F.concatenation([x, y], axis=axis), rtol=0, atol=0)

    new_shape = np.asarray([shape[0], -1], np.int32)
    r_shape = (shape[0], int(np.prod(shape[1:])))
    opt = S.ReshapeOptionsT()
    opt.newShape = [int(v) for v in new_shape]
    model = orc.single_op_model(OPS.RESHAPE, [spec(shape), spec((2,), np.int32, data=new_shape)],
                                [spec(r_shape)], OPTS.ReshapeOptions, opt)
    run(model, [x], F.reshape(x, new_shape), rtol=0, atol=0)


def test_batch_norm_matches_formula():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 5, 6)).astype(F32)
    mean, var = rng.normal(size=6), rng.uniform(0.1, 2, size=6)
    g, b = rng.normal(size=6), rng.normal(size=6)
    got = F.batch_norm(x, mean, var, g, b, epsilon=1e-3)
    want = (x.astype(np.float64) - mean) / np.sqrt(var + 1e-3) * g + b
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- hybrid


@needs_litert
@profile(100)
@given(st.data())
def test_conv2d_hybrid(data):
    d = data.draw
    rng = rng_for(d)
    n, h, w, cin, cout = (d(st.integers(1, 3)), d(st.integers(1, 8)), d(st.integers(1, 8)),
                          d(st.integers(1, 4)), d(st.integers(1, 5)))
    (kh, kw), stride, dil, padding, pads, (oh, ow) = window(d, h, w)
    act = d(st.sampled_from(ACTS))
    per_channel = d(st.booleans()) and cout > 1
    x = rng.normal(size=(n, h, w, cin)).astype(F32)
    if d(st.booleans()):
        x[0] = 0.0  # an all-zero batch item takes TFLite's range == 0 branch
    wt = rng.integers(-127, 128, size=(cout, kh, kw, cin)).astype(np.int8)
    if per_channel:
        qw = QuantParams.per_axis([float(10 ** rng.uniform(-3, -1)) for _ in range(cout)], [0] * cout, 0)
    else:
        qw = QuantParams.per_tensor(float(10 ** rng.uniform(-3, -1)), 0)
    b = rng.normal(size=cout).astype(F32)
    opt = S.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = orc.PADDING[padding], stride[0], stride[1]
    opt.dilationHFactor, opt.dilationWFactor = dil
    opt.fusedActivationFunction = orc.ACT[act]
    model = orc.single_op_model(OPS.CONV_2D,
                                [spec(x.shape), spec(wt.shape, np.int8, quant=qw, data=wt), spec((cout,), data=b)],
                                [spec((n, oh, ow, cout))], OPTS.Conv2DOptions, opt)
    got = F.conv2d_hybrid(x, wt, qw, b, stride=stride, pads=pads, dilation=dil, activation=act)
    run(model, [x], got, rtol=1e-6, atol=1e-6)


@needs_litert
@profile(100)
@given(st.data())
def test_fully_connected_hybrid(data):
    d = data.draw
    rng = rng_for(d)
    k, cout = d(st.integers(1, 40)), d(st.integers(1, 8))
    rows = d(st.integers(1, 4))
    asym = d(st.booleans())
    per_channel = asym and d(st.booleans()) and cout > 1
    act = d(st.sampled_from(ACTS))
    x = (rng.normal(size=(rows, k)) + (d(st.floats(-2, 2)) if asym else 0)).astype(F32)
    if d(st.booleans()):
        x[0] = 0.0
    wt = rng.integers(-127, 128, size=(cout, k)).astype(np.int8)
    if per_channel:
        qw = QuantParams.per_axis([float(10 ** rng.uniform(-3, -1)) for _ in range(cout)], [0] * cout, 0)
    else:
        qw = QuantParams.per_tensor(float(10 ** rng.uniform(-3, -1)), 0)
    b = rng.normal(size=cout).astype(F32)
    opt = S.FullyConnectedOptionsT()
    opt.fusedActivationFunction = orc.ACT[act]
    opt.asymmetricQuantizeInputs = asym
    model = orc.single_op_model(OPS.FULLY_CONNECTED,
                                [spec(x.shape), spec(wt.shape, np.int8, quant=qw, data=wt), spec((cout,), data=b)],
                                [spec((rows, cout))], OPTS.FullyConnectedOptions, opt)
    got = F.fully_connected_hybrid(x, wt, qw, b, activation=act, asymmetric_quantize_inputs=asym)
    run(model, [x], got, rtol=1e-6, atol=1e-6)


def test_hybrid_quantizers():
    rows = np.array([[0.0, 0.0], [-1.0, 0.5], [2.54, -0.005]], F32)
    q, f = F.symmetric_quantize_rows(rows)
    assert q.tolist() == [[0, 0], [-127, 64], [127, 0]]
    assert f[0] == 1 and f[1] == F32(1.0) / F32(127)
    q, f, off = F.asymmetric_quantize_rows(np.array([[0.0, 0.0], [0.0, 2.55]], F32))
    assert off.tolist() == [0, -128] and q.tolist() == [[0, 0], [-128, 127]]
    with pytest.raises(BadInputError):
        F.fully_connected_hybrid(rows, np.zeros((3, 2), np.int8), QuantParams.per_axis([0.1, 0.2, 0.3], [0] * 3, 0))
