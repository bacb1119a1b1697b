"""Property tests of the TFLite writer: random IR graphs, built directly with
``edgekit.ir``, written with edgekit's writer and run in TFLite Micro and LiteRT.

* int8: TFLite Micro equals edgekit's ``Interpreter`` byte for byte; LiteRT's
  reference kernels equal it too, except FULLY_CONNECTED and MUL (LiteRT 2.3
  requantizes with single rounding) and MEAN (LiteRT rounds its int8 mean
  differently), which are within +-1; LiteRT's default path (XNNPACK) is within +-1.
* float32: TFLite Micro and LiteRT (reference and default) within 1e-5.
* hybrid (float activations, int8 weights): LiteRT's reference kernels within 1e-6.

Each example draws shapes, strides, dilations, pads (SAME, VALID and, where the
writer has to insert a PAD op, arbitrary explicit pads), fused activations, and
per-tensor or per-channel scales and zero points.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the property tests")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.support import tflite_oracle as orc  # noqa: E402
from edgekit.backends.tflite import tflite_bytes  # noqa: E402
from edgekit.frontends.tflite.flatbuffer import read_tflite  # noqa: E402
from edgekit.frontends.tflite.schema_enums import builtin_name  # noqa: E402
from edgekit.ir import DType, Graph, OpType, QuantParams, verify  # noqa: E402
from edgekit.ir.ops import normalize_attrs  # noqa: E402
from edgekit.ir.shapes import conv_output_hw, infer_op_shapes, same_pads  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

pytestmark = pytest.mark.skipif(not (orc.HAVE_TFLM and orc.HAVE_LITERT),
                                reason="tflite_micro and ai_edge_litert are needed")

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
F32 = np.float32


def profile(n: int):
    """Bounded, deterministic settings (the "ci" profile of tests/conftest.py derandomizes)."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------------------ graph building


class Builder:
    """Builds a small IR graph op by op; output shapes come from the IR's shape rules."""

    def __init__(self, name: str = "prop"):
        self.g = Graph(name)
        self.feeds: list[np.ndarray] = []
        self.k = 0

    def _name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def input(self, x: np.ndarray, quant: QuantParams | None = None) -> str:
        name = self._name("input")
        self.g.add_tensor(name, x.shape, DType.from_numpy(x.dtype), quant)
        self.g.inputs.append(name)
        self.feeds.append(x)
        return name

    def const(self, data: np.ndarray, quant: QuantParams | None = None) -> str:
        return self.g.add_const(self._name("const"), data, quant).name

    def op(self, op_type: OpType, inputs: list[str], attrs: dict | None = None,
           dtype: DType | None = None, quant: QuantParams | None = None) -> str:
        attrs = dict(attrs or {})
        shapes = [self.g.tensor(i).shape if i else None for i in inputs]
        shape = infer_op_shapes(op_type, shapes, normalize_attrs(op_type, attrs))[0]
        dtype = dtype or self.g.tensor(inputs[0]).dtype
        out = self._name(op_type.value.lower())
        self.g.add_tensor(out, shape, dtype, quant)
        self.g.add_op(op_type, inputs, [out], attrs)
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.tensor(name).shape

    def finish(self, *outputs: str) -> Graph:
        self.g.outputs = list(outputs)
        verify(self.g)
        return self.g


def rng_for(d) -> np.random.Generator:
    return np.random.default_rng(d(st.integers(0, 2**32 - 1)))


def f32(v) -> float:
    return float(np.float32(v))


def draw_scale(d, lo=-3.0, hi=0.0) -> float:
    return f32(10.0 ** d(st.floats(lo, hi, allow_nan=False)))


def draw_qp(d, lo=-2.5, hi=0.0) -> QuantParams:
    return QuantParams.per_tensor(draw_scale(d, lo, hi), d(st.integers(-128, 127)))


def rand_i8(rng, shape, lo=-128, hi=127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def weight_qp(d, n: int, per_channel: bool, axis: int) -> QuantParams:
    if per_channel and n > 1:
        return QuantParams.per_axis([draw_scale(d, -3.0, -1.0) for _ in range(n)], [0] * n, axis)
    return QuantParams.per_tensor(draw_scale(d, -3.0, -1.0), 0)


def bias_qp(x_qp: QuantParams, w_qp: QuantParams) -> QuantParams:
    scales = [f32(np.float32(x_qp.scale[0]) * np.float32(s)) for s in w_qp.scale]
    if len(scales) > 1:
        return QuantParams.per_axis(scales, [0] * len(scales), 0)
    return QuantParams.per_tensor(scales[0], 0)


def out_qp(d, x_qp: QuantParams, w_qp: QuantParams, taps: int) -> QuantParams:
    """An output scale that keeps a random weighted sum of ``taps`` mostly in range."""
    s = x_qp.scale[0] * float(np.mean(w_qp.scale)) * np.sqrt(taps) * 128 * 10 ** d(st.floats(-1.5, 0.5))
    return QuantParams.per_tensor(f32(s), d(st.integers(-128, 127)))


def window(d, h: int, w: int, max_k: int = 3, dilation: bool = True, explicit: bool = True):
    """Kernel, strides, dilations and pads: SAME, VALID or (when allowed) arbitrary explicit pads."""
    k = (d(st.integers(1, max_k)), d(st.integers(1, max_k)))
    s = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    dil = (d(st.integers(1, 2)), d(st.integers(1, 2))) if dilation else (1, 1)
    mode = d(st.sampled_from(["SAME", "VALID", "EXPLICIT"] if explicit else ["SAME", "VALID"]))
    if mode == "SAME":
        pads = same_pads((h, w), k, s, dil)
    elif mode == "VALID":
        pads = (0, 0, 0, 0)
    else:
        # Convs: up to one past the dilated window. Pools (dilation 1): smaller than the
        # window, so no window lies wholly in the padding (ONNX's rule too).
        hi = [(kk - 1) * dd + 1 if dilation else kk - 1 for kk, dd in zip(k + k, dil + dil)]
        pads = tuple(d(st.integers(0, v)) for v in hi)
        pads = (pads[0], pads[1], pads[2], pads[3])
    top, left, bottom, right = pads
    assume(h + top + bottom >= (k[0] - 1) * dil[0] + 1 and w + left + right >= (k[1] - 1) * dil[1] + 1)
    conv_output_hw((h, w), k, s, dil, pads)
    return k, s, dil, pads


# ------------------------------------------------------------------------------ checking


def op_names(model: bytes) -> list[str]:
    fb = read_tflite(model)
    return [builtin_name(fb.operator_codes[o.opcode_index].builtin_code) for o in fb.subgraphs[0].operators]


def litert(model: bytes, feeds, resolver: str) -> np.ndarray:
    return orc.run_litert(model, feeds, resolver)[0]


def assert_exact(want: np.ndarray, got: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{what}: {got.shape}/{got.dtype} vs {want.shape}/{want.dtype}"
    bad = int((got != want).sum())
    assert bad == 0, f"{what}: {bad} of {want.size} bytes differ"


def assert_within(want: np.ndarray, got: np.ndarray, steps: int, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max(initial=0) <= steps, f"{what}: off by up to {diff.max()} (allowed {steps})"


def assert_close(want: np.ndarray, got: np.ndarray, what: str, tol: float = 1e-5) -> None:
    assert got.shape == want.shape and got.dtype == np.float32, f"{what}: {got.shape}/{got.dtype}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max(initial=0))),
                               err_msg=what)


def check_int8(g: Graph, feeds, *, ref_steps: int = 0, litert_ok: bool = True) -> bytes:
    """TFLM == Interpreter byte for byte; LiteRT reference within ``ref_steps``; XNNPACK within +-1."""
    model = tflite_bytes(g)
    want = Interpreter(g).run(feeds)[g.outputs[0]]
    assert_exact(want, orc.run_tflm(model, feeds)[0], "TFLite Micro")
    if litert_ok:
        got = litert(model, feeds, "BUILTIN_REF")
        if ref_steps:
            assert_within(want, got, ref_steps, "LiteRT reference kernels")
        else:
            assert_exact(want, got, "LiteRT reference kernels")
        assert_within(want, litert(model, feeds, "AUTO"), max(1, ref_steps), "LiteRT default (XNNPACK)")
    return model


def check_float(g: Graph, feeds, *, tflm: bool = True, litert_ok: bool = True) -> bytes:
    model = tflite_bytes(g)
    want = Interpreter(g).run(feeds)[g.outputs[0]]
    if tflm:
        assert_close(want, orc.run_tflm(model, feeds)[0], "TFLite Micro")
    if litert_ok:
        assert_close(want, litert(model, feeds, "BUILTIN_REF"), "LiteRT reference kernels")
        assert_close(want, litert(model, feeds, "AUTO"), "LiteRT default")
    return model


def check(g: Graph, feeds, int8: bool, **kw) -> bytes:
    if int8:
        return check_int8(g, feeds, **kw)
    kw.pop("ref_steps", None)
    return check_float(g, feeds, **kw)


# ------------------------------------------------------------------------------ conv / depthwise / fc


def _conv_graph(d, depthwise: bool, int8: bool):
    rng = rng_for(d)
    n, h, w, cin = d(st.integers(1, 2)), d(st.integers(1, 8)), d(st.integers(1, 8)), d(st.integers(1, 4))
    m = d(st.integers(1, 3)) if depthwise else 1
    cout = cin * m if depthwise else d(st.integers(1, 5))
    k, s, dil, pads = window(d, h, w)
    act = d(st.sampled_from(ACTS))
    attrs = {"strides": s, "dilations": dil, "pads": pads, "activation": act}
    if depthwise:
        attrs["depth_multiplier"] = m
    wshape = (1, k[0], k[1], cout) if depthwise else (cout, k[0], k[1], cin)
    b = Builder()
    if int8:
        qi = draw_qp(d)
        qw = weight_qp(d, cout, d(st.booleans()), 3 if depthwise else 0)
        qo = out_qp(d, qi, qw, k[0] * k[1] * (1 if depthwise else cin))
        x = b.input(rand_i8(rng, (n, h, w, cin)), qi)
        wt = b.const(rand_i8(rng, wshape, -127, 127), qw)
        bias = b.const(rng.integers(-(2**13), 2**13, size=cout).astype(np.int32), bias_qp(qi, qw))
    else:
        qo = None
        x = b.input(rng.normal(size=(n, h, w, cin)).astype(F32))
        wt = b.const((rng.normal(size=wshape) * 0.5).astype(F32))
        bias = b.const(rng.normal(size=cout).astype(F32))
    y = b.op(OpType.DEPTHWISE_CONV_2D if depthwise else OpType.CONV_2D, [x, wt, bias], attrs, quant=qo)
    return b.finish(y), b.feeds, pads, (h, w), k, s, dil


@profile(200)
@given(st.data(), st.booleans(), st.booleans())
def test_conv2d_and_depthwise(data, depthwise, int8):
    g, feeds, pads, hw, k, s, dil = _conv_graph(data.draw, depthwise, int8)
    model = check(g, feeds, int8)
    names = op_names(model)
    implicit = tuple(pads) in ((0, 0, 0, 0), tuple(same_pads(hw, k, s, dil)))
    assert names == (["PAD"] if not implicit else []) + [("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D")]


@profile(15)
@given(st.data())
def test_conv2d_without_bias_int8(data):
    """No bias: the writer leaves input 2 out (-1). TFLM accepts that; LiteRT does not."""
    d = data.draw
    rng = rng_for(d)
    h, w, cin, cout = d(st.integers(3, 7)), d(st.integers(3, 7)), d(st.integers(1, 3)), d(st.integers(1, 4))
    b = Builder()
    qi, qw = draw_qp(d), weight_qp(d, cout, True, 0)
    x = b.input(rand_i8(rng, (1, h, w, cin)), qi)
    wt = b.const(rand_i8(rng, (cout, 3, 3, cin), -127, 127), qw)
    y = b.op(OpType.CONV_2D, [x, wt], {"pads": same_pads((h, w), (3, 3), (1, 1))},
             quant=out_qp(d, qi, qw, 9 * cin))
    check_int8(b.finish(y), b.feeds, litert_ok=False)


@profile(120)
@given(st.data(), st.booleans())
def test_fully_connected(data, int8):
    d = data.draw
    rng = rng_for(d)
    kdim, cout = d(st.integers(1, 24)), d(st.integers(1, 8))
    per_channel = int8 and d(st.booleans()) and cout > 1
    keep = d(st.booleans())
    lead = [d(st.integers(1, 3))]
    if d(st.booleans()) and not (keep and per_channel):
        lead.append(d(st.integers(1, 3)))  # TFLM's per-channel kernel assumes a 2-D output
    has_bias = d(st.booleans())
    act = d(st.sampled_from(ACTS))
    b = Builder()
    if int8:
        qi = draw_qp(d)
        qw = weight_qp(d, cout, per_channel, 0)
        x = b.input(rand_i8(rng, tuple(lead) + (kdim,)), qi)
        wt = b.const(rand_i8(rng, (cout, kdim), -127, 127), qw)
        ins = [x, wt] + ([b.const(rng.integers(-(2**13), 2**13, size=cout).astype(np.int32), bias_qp(qi, qw))]
                         if has_bias else [])
        qo = out_qp(d, qi, qw, kdim)
    else:
        x = b.input(rng.normal(size=tuple(lead) + (kdim,)).astype(F32))
        wt = b.const((rng.normal(size=(cout, kdim)) * 0.5).astype(F32))
        ins = [x, wt] + ([b.const(rng.normal(size=cout).astype(F32))] if has_bias else [])
        qo = None
    y = b.op(OpType.FULLY_CONNECTED, ins, {"activation": act, "keep_num_dims": keep}, quant=qo)
    # LiteRT 2.3 requantizes FULLY_CONNECTED with single rounding (TFLM: double): +-1.
    check(b.finish(y), b.feeds, int8, ref_steps=1)


@profile(45)
@given(st.data(), st.sampled_from(["conv", "fc", "dw"]))
def test_hybrid_ops_in_litert(data, kind):
    """Float activations with int8 weights are written as they are; LiteRT runs them hybrid."""
    d = data.draw
    rng = rng_for(d)
    b = Builder()
    act = d(st.sampled_from(ACTS))
    if kind == "fc":
        kdim, cout = d(st.integers(1, 30)), d(st.integers(1, 8))
        qw = weight_qp(d, cout, False, 0)  # the IR's hybrid FC is per-tensor (symmetric inputs)
        x = b.input(rng.normal(size=(d(st.integers(1, 3)), kdim)).astype(F32))
        wt = b.const(rand_i8(rng, (cout, kdim), -127, 127), qw)
        y = b.op(OpType.FULLY_CONNECTED, [x, wt, b.const(rng.normal(size=cout).astype(F32))], {"activation": act})
    else:
        h, w, cin = d(st.integers(2, 7)), d(st.integers(2, 7)), d(st.integers(1, 3))
        cout = cin if kind == "dw" else d(st.integers(1, 4))
        k, s, dil, pads = window(d, h, w)
        qw = weight_qp(d, cout, d(st.booleans()), 3 if kind == "dw" else 0)
        x = b.input(rng.normal(size=(1, h, w, cin)).astype(F32))
        shape = (1, k[0], k[1], cout) if kind == "dw" else (cout, k[0], k[1], cin)
        wt = b.const(rand_i8(rng, shape, -127, 127), qw)
        attrs = {"strides": s, "dilations": dil, "pads": pads, "activation": act}
        y = b.op(OpType.DEPTHWISE_CONV_2D if kind == "dw" else OpType.CONV_2D,
                 [x, wt, b.const(rng.normal(size=cout).astype(F32))], attrs)
    g = b.finish(y)
    model = tflite_bytes(g)
    want = Interpreter(g).run(b.feeds)[g.outputs[0]]
    got = litert(model, b.feeds, "BUILTIN_REF")
    if kind != "dw":
        assert_close(want, got, "LiteRT reference (hybrid)", tol=1e-6)
        return
    # LiteRT's hybrid depthwise also quantizes the input (symmetric, per batch item),
    # which edgekit's reference does not model: each tap is then off by at most half an
    # input step times |weight|. (That it runs at all needs the per-channel scales the
    # writer spells out; with one scale LiteRT reads past the scale array.)
    wq = g.tensor(wt).quant
    w_real = g.tensor(wt).data.astype(np.float64) * np.asarray(wq.scale)
    step = np.abs(b.feeds[0]).max() / 127
    bound = np.abs(w_real).sum(axis=(0, 1, 2)) * step / 2 + 1e-5
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound), \
        "LiteRT hybrid depthwise off by more than input quantization explains"


# ------------------------------------------------------------------------------ pooling


@profile(150)
@given(st.data(), st.sampled_from([OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D]), st.booleans())
def test_pooling(data, op_type, int8):
    d = data.draw
    rng = rng_for(d)
    n, h, w, c = d(st.integers(1, 2)), d(st.integers(1, 8)), d(st.integers(1, 8)), d(st.integers(1, 4))
    # Explicit pads only for MAX_POOL_2D: the writer pads with the lowest value (PADV2).
    k, s, _, pads = window(d, h, w, max_k=4, dilation=False, explicit=op_type is OpType.MAX_POOL_2D)
    b = Builder()
    q = draw_qp(d) if int8 else None
    x = b.input(rand_i8(rng, (n, h, w, c)) if int8 else rng.normal(size=(n, h, w, c)).astype(F32), q)
    y = b.op(op_type, [x], {"kernel": k, "strides": s, "pads": pads, "activation": d(st.sampled_from(ACTS))},
             quant=q)
    model = check(b.finish(y), b.feeds, int8)
    implicit = tuple(pads) in ((0, 0, 0, 0), tuple(same_pads((h, w), k, s)))
    assert op_names(model) == ([] if implicit else ["PADV2"]) + [op_type.value]


# ------------------------------------------------------------------------------ elementwise


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


@profile(150)
@given(st.data(), st.sampled_from([OpType.ADD, OpType.SUB, OpType.MUL]), st.booleans())
def test_binary(data, op_type, int8):
    d = data.draw
    rng = rng_for(d)
    s1, s2 = _broadcast_shapes(d)
    act = d(st.sampled_from(ACTS))
    b = Builder()
    if int8:
        q1, q2 = draw_qp(d), draw_qp(d)
        if op_type is OpType.MUL:
            so = q1.scale[0] * q2.scale[0] * 128
        else:
            so = 2 * max(q1.scale[0], q2.scale[0])
        qo = QuantParams.per_tensor(f32(so * 10 ** d(st.floats(-0.7, 0.7))), d(st.integers(-128, 127)))
        a_, b_ = b.input(rand_i8(rng, s1), q1), b.input(rand_i8(rng, s2), q2)
    else:
        qo = None
        a_, b_ = b.input(rng.normal(size=s1).astype(F32)), b.input(rng.normal(size=s2).astype(F32))
    if d(st.booleans()):  # a constant operand, as in a bias add or a scale
        g_in = b.g.inputs.pop()
        data_b = b.feeds.pop()
        del b.g.tensors[g_in]
        b_ = b.const(data_b, q2 if int8 else None)
    y = b.op(op_type, [a_, b_], {"activation": act}, quant=qo)
    # LiteRT 2.3 requantizes int8 MUL with single rounding (TFLM: double): +-1.
    check(b.finish(y), b.feeds, int8, ref_steps=1 if op_type is OpType.MUL else 0)


@profile(150)
@given(st.data(), st.sampled_from([OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH, OpType.SOFTMAX]),
       st.booleans())
def test_activations(data, op_type, int8):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)),) + tuple(d(st.integers(1, 5)) for _ in range(d(st.integers(0, 2)))) \
        + (d(st.integers(2, 12)),)
    b = Builder()
    attrs = {}
    if op_type is OpType.SOFTMAX:
        attrs["beta"] = f32(d(st.sampled_from([1.0, 0.5, 2.0, 0.1, 1.7])))
    if int8:
        qi = draw_qp(d, -2.7, -1.2) if op_type is OpType.SOFTMAX else draw_qp(d, -2.5, -1.0)
        qo = {OpType.SOFTMAX: QuantParams.per_tensor(1 / 256, -128),
              OpType.LOGISTIC: QuantParams.per_tensor(1 / 256, -128),
              OpType.TANH: QuantParams.per_tensor(1 / 128, 0),
              OpType.RELU6: qi}.get(op_type)
        if qo is None:  # RELU may requantize
            qo = qi if d(st.booleans()) else QuantParams.per_tensor(
                qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))), d(st.integers(-128, 127)))
        x = b.input(rand_i8(rng, shape), qi)
    else:
        qo = None
        x = b.input((rng.normal(size=shape) * 3).astype(F32))
    y = b.op(op_type, [x], attrs, quant=qo)
    check(b.finish(y), b.feeds, int8)


# ------------------------------------------------------------------------------ data movement / reduce


@profile(80)
@given(st.data(), st.booleans())
def test_reshape_transpose_pad(data, int8):
    d = data.draw
    rng = rng_for(d)
    shape = tuple(d(st.integers(1, 4)) for _ in range(4))
    b = Builder()
    q = draw_qp(d) if int8 else None
    x = b.input(rand_i8(rng, shape) if int8 else rng.normal(size=shape).astype(F32), q)
    pads = [0, 0] + [d(st.integers(0, 2)) for _ in range(6)]
    value = 0.0
    if d(st.booleans()):  # PADV2
        value = float(q.scale[0] * d(st.integers(-60, 60))) if int8 else f32(d(st.floats(-3, 3)))
    y = b.op(OpType.PAD, [x], {"pads": pads, "value": value}, quant=q)
    perm = tuple(int(p) for p in rng.permutation(4))
    y = b.op(OpType.TRANSPOSE, [y], {"perm": perm}, quant=q)
    total = int(np.prod(b.shape(y)))
    target = d(st.sampled_from([(total,), (1, total), (-1, b.shape(y)[-1]), b.shape(y)[::-1]]))
    y = b.op(OpType.RESHAPE, [y], {"shape": target}, quant=q)
    model = check(b.finish(y), b.feeds, int8)
    if int8:  # the int8 kernel pads with the quantized value: PADV2 unless that is the zero point
        z = q.zero_point[0]
        padv2 = int(np.clip(np.round(value / q.scale[0]) + z, -128, 127)) != z
    else:
        padv2 = value != 0.0
    assert op_names(model) == ["PADV2" if padv2 else "PAD", "TRANSPOSE", "RESHAPE"]


@profile(80)
@given(st.data(), st.booleans())
def test_concatenation(data, int8):
    d = data.draw
    rng = rng_for(d)
    rank = d(st.integers(1, 4))
    base = [d(st.integers(1, 4)) for _ in range(rank)]
    axis = d(st.integers(-rank, rank - 1))
    b = Builder()
    q = draw_qp(d) if int8 else None
    ins = []
    for _ in range(d(st.integers(1, 3))):
        s = list(base)
        s[axis] = d(st.integers(1, 4))
        ins.append(b.input(rand_i8(rng, s) if int8 else rng.normal(size=s).astype(F32), q))
    act = "NONE" if int8 else d(st.sampled_from(ACTS))
    y = b.op(OpType.CONCATENATION, ins, {"axis": axis, "activation": act}, quant=q)
    # TFLM's and LiteRT's CONCATENATION take no fused activation: it becomes its own op
    # (TFLM has no RELU_N1_TO_1 kernel: that one is checked in LiteRT only).
    model = check(b.finish(y), b.feeds, int8, **({} if int8 else {"tflm": act != "RELU_N1_TO_1"}))
    assert op_names(model) == ["CONCATENATION"] + ([act] if act != "NONE" else [])


@profile(80)
@given(st.data(), st.booleans())
def test_mean(data, int8):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 7)), d(st.integers(1, 7)), d(st.integers(1, 5)))
    axes = d(st.sampled_from([(1, 2), (2, 1), (1,), (2,), (3,), (1, 3), (-1,), (-3, -2)]))
    keep = d(st.booleans())
    b = Builder()
    if int8:
        qi = draw_qp(d)
        qo = qi if d(st.booleans()) else QuantParams.per_tensor(qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))),
                                                                 d(st.integers(-128, 127)))
        x = b.input(rand_i8(rng, shape), qi)
    else:
        qo = None
        x = b.input(rng.normal(size=shape).astype(F32))
    y = b.op(OpType.MEAN, [x], {"axes": axes, "keep_dims": keep}, quant=qo)
    g = b.finish(y)
    if int8:
        # LiteRT rounds its int8 MEAN differently from TFLM: exact against TFLM only,
        # the LiteRT paths within one step.
        check_int8(g, b.feeds, ref_steps=1)
    else:
        check_float(g, b.feeds)


@profile(80)
@given(st.data(), st.sampled_from(["quantize", "requantize", "dequantize"]))
def test_quantize_dequantize(data, kind):
    d = data.draw
    rng = rng_for(d)
    shape = (d(st.integers(1, 3)), d(st.integers(1, 30)))
    b = Builder()
    qo = draw_qp(d)
    if kind == "quantize":
        s = qo.scale[0]
        halves = (rng.integers(-300, 300, size=shape) + 0.5) * np.float32(s)
        x = b.input(np.where(rng.random(shape) < 0.5, halves, rng.normal(0, 100 * s, size=shape)).astype(F32))
        y = b.op(OpType.QUANTIZE, [x], dtype=DType.INT8, quant=qo)
        check_int8(b.finish(y), b.feeds)
    elif kind == "requantize":
        qi = draw_qp(d)
        qo = QuantParams.per_tensor(qi.scale[0] * f32(10 ** d(st.floats(-0.5, 0.5))), d(st.integers(-128, 127)))
        x = b.input(rand_i8(rng, shape), qi)
        y = b.op(OpType.QUANTIZE, [x], dtype=DType.INT8, quant=qo)
        check_int8(b.finish(y), b.feeds)
    else:
        x = b.input(rand_i8(rng, shape), qo)
        y = b.op(OpType.DEQUANTIZE, [x], dtype=DType.FLOAT32)
        g = b.finish(y)
        model = tflite_bytes(g)
        want = Interpreter(g).run(b.feeds)[g.outputs[0]]
        assert_exact(want, orc.run_tflm(model, b.feeds)[0], "TFLite Micro")
        assert_exact(want, litert(model, b.feeds, "BUILTIN_REF"), "LiteRT reference kernels")


# ------------------------------------------------------------------------------ multi-op chains


def _conv_layer(b: Builder, d, rng, x: str, cout: int, int8: bool, depthwise: bool = False,
                pads_mode: str = "SAME", stride=(1, 1)) -> str:
    n, h, w, cin = b.shape(x)
    k = (3, 3)
    if pads_mode == "SAME":
        pads = same_pads((h, w), k, stride)
    elif pads_mode == "VALID":
        pads = (0, 0, 0, 0)
    elif pads_mode == "SHIFTED":  # the size SAME gives, but not SAME's split (needs a PAD op)
        top, left = d(st.integers(0, 2)), d(st.integers(0, 2))
        pads = (top, left, 2 - top, 2 - left)
    else:
        pads = tuple(d(st.integers(0, 2)) for _ in range(4))
    cout = cin if depthwise else cout
    wshape = (1, 3, 3, cout) if depthwise else (cout, 3, 3, cin)
    attrs = {"strides": stride, "pads": pads, "activation": d(st.sampled_from(["RELU", "RELU6", "NONE"]))}
    if depthwise:
        attrs["depth_multiplier"] = 1
    if int8:
        qi = b.g.tensor(x).quant
        qw = weight_qp(d, cout, d(st.booleans()), 3 if depthwise else 0)
        wt = b.const(rand_i8(rng, wshape, -127, 127), qw)
        bias = b.const(rng.integers(-(2**12), 2**12, size=cout).astype(np.int32), bias_qp(qi, qw))
        qo = out_qp(d, qi, qw, 9 * (1 if depthwise else cin))
    else:
        wt = b.const((rng.normal(size=wshape) * 0.4).astype(F32))
        bias = b.const((rng.normal(size=cout) * 0.1).astype(F32))
        qo = None
    return b.op(OpType.DEPTHWISE_CONV_2D if depthwise else OpType.CONV_2D, [x, wt, bias], attrs, quant=qo)


def _fc_layer(b: Builder, d, rng, x: str, cout: int, int8: bool) -> str:
    kdim = b.shape(x)[-1]
    if int8:
        qi = b.g.tensor(x).quant
        qw = weight_qp(d, cout, False, 0)
        wt = b.const(rand_i8(rng, (cout, kdim), -127, 127), qw)
        bias = b.const(rng.integers(-(2**12), 2**12, size=cout).astype(np.int32), bias_qp(qi, qw))
        return b.op(OpType.FULLY_CONNECTED, [x, wt, bias], {}, quant=out_qp(d, qi, qw, kdim))
    wt = b.const((rng.normal(size=(cout, kdim)) * 0.3).astype(F32))
    return b.op(OpType.FULLY_CONNECTED, [x, wt, b.const(rng.normal(size=cout).astype(F32))], {})


@profile(40)
@given(st.data(), st.booleans())
def test_chain_conv_dw_pool_reshape_fc_softmax(data, int8):
    d = data.draw
    rng = rng_for(d)
    h, w = d(st.integers(6, 12)), d(st.integers(4, 10))
    b = Builder("chain")
    qi = draw_qp(d) if int8 else None
    x = b.input(rand_i8(rng, (1, h, w, d(st.integers(1, 3)))) if int8
                else rng.normal(size=(1, h, w, d(st.integers(1, 3)))).astype(F32), qi)
    y = _conv_layer(b, d, rng, x, d(st.integers(2, 6)), int8, stride=(2, 2))
    y = _conv_layer(b, d, rng, y, 0, int8, depthwise=True, pads_mode=d(st.sampled_from(["SAME", "EXPLICIT"])))
    _, ph, pw, c = b.shape(y)
    y = b.op(OpType.AVERAGE_POOL_2D, [y], {"kernel": (ph, pw), "strides": (ph, pw)}, quant=b.g.tensor(y).quant)
    y = b.op(OpType.RESHAPE, [y], {"shape": (1, -1)}, quant=b.g.tensor(y).quant)
    y = _fc_layer(b, d, rng, y, d(st.integers(2, 10)), int8)
    y = b.op(OpType.SOFTMAX, [y], {}, quant=QuantParams.per_tensor(1 / 256, -128) if int8 else None)
    check(b.finish(y), b.feeds, int8, ref_steps=1)


@profile(40)
@given(st.data(), st.booleans())
def test_chain_add_concat_branches(data, int8):
    """Two conv branches from one input, added, concatenated with one branch, then
    relu, max pool with explicit pads, mean and a dense layer."""
    d = data.draw
    rng = rng_for(d)
    h, w, c = d(st.integers(3, 8)), d(st.integers(3, 8)), d(st.integers(1, 3))
    b = Builder("branches")
    qi = draw_qp(d) if int8 else None
    x = b.input(rand_i8(rng, (2, h, w, c)) if int8 else rng.normal(size=(2, h, w, c)).astype(F32), qi)
    cout = d(st.integers(1, 4))
    left = _conv_layer(b, d, rng, x, cout, int8)
    right = _conv_layer(b, d, rng, x, cout, int8, pads_mode="SHIFTED")
    ql = b.g.tensor(left).quant
    s = b.op(OpType.ADD, [left, right], {"activation": "NONE"}, quant=ql)  # concat needs equal quant
    cat = b.op(OpType.CONCATENATION, [s, left], {"axis": 3}, quant=ql)
    cat = b.op(OpType.RELU, [cat], {}, quant=ql)
    mp = b.op(OpType.MAX_POOL_2D, [cat], {"kernel": (2, 2), "strides": (1, 1), "pads": (1, 0, 0, 1)}, quant=ql)
    m = b.op(OpType.MEAN, [mp], {"axes": (1, 2)}, quant=ql)
    y = _fc_layer(b, d, rng, m, d(st.integers(1, 5)), int8)
    model = check(b.finish(y), b.feeds, int8, ref_steps=1)
    names = op_names(model)
    right_pads = tuple(b.g.ops[1].attrs["pads"])  # ops[1]: the right branch's conv
    assert names.count("PADV2") == 1  # the max pool
    assert names.count("PAD") == (0 if right_pads == same_pads((h, w), (3, 3), (1, 1)) else 1)


@profile(30)
@given(st.data())
def test_chain_quantize_conv_dequantize(data):
    """float in -> QUANTIZE -> int8 conv (explicit pads) -> max pool -> TRANSPOSE -> DEQUANTIZE."""
    d = data.draw
    rng = rng_for(d)
    h, w, c = d(st.integers(3, 8)), d(st.integers(3, 8)), d(st.integers(1, 3))
    b = Builder("qdq")
    x = b.input(rng.normal(size=(1, h, w, c)).astype(F32))
    qx = QuantParams.per_tensor(f32(4 / 255), d(st.integers(-20, 20)))
    q = b.op(OpType.QUANTIZE, [x], dtype=DType.INT8, quant=qx)
    y = _conv_layer(b, d, rng, q, d(st.integers(1, 4)), True, pads_mode="EXPLICIT")
    pool = {"kernel": (2, 2), "strides": (2, 2), "pads": same_pads(b.shape(y)[1:3], (2, 2), (2, 2))}
    y = b.op(OpType.MAX_POOL_2D, [y], pool, quant=b.g.tensor(y).quant)
    y = b.op(OpType.TRANSPOSE, [y], {"perm": (0, 3, 1, 2)}, quant=b.g.tensor(y).quant)
    y = b.op(OpType.DEQUANTIZE, [y], dtype=DType.FLOAT32)
    g = b.finish(y)
    model = tflite_bytes(g)
    want = Interpreter(g).run(b.feeds)[g.outputs[0]]
    assert_exact(want, orc.run_tflm(model, b.feeds)[0], "TFLite Micro")
    assert_exact(want, litert(model, b.feeds, "BUILTIN_REF"), "LiteRT reference kernels")
