"""The quantizer: the TFLite int8 rules checked on the structure of the int8 graph,
bias correction, and accuracy on the bundled digits CNN and the MLPerf Tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.ir import DType, Graph, OpType, verify
from edgekit.quantize import Range, quantize
from edgekit.quantize.bias_correction import bias_corrections
from edgekit.quantize.scheme import representable_range
from edgekit.reference import int8_kernels as ik
from edgekit.reference.interpreter import Interpreter
from tests.support.shared import shared_file

rng = np.random.default_rng(0)
DIGITS = "edgekit/data/digits_cnn.onnx"


def _w(*shape, scale=0.3):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def many_ops_graph() -> Graph:
    """Every rule in one graph:

    x -RELU6-> x6 -CONV(RELU)-> c1 -DW(x2)-> d1 -MAXPOOL-> p1 -PAD-> pd -AVGPOOL-> a1
    a1 -LOGISTIC-> s1;  CONCAT(a1, s1) -> cat
    cat -RESHAPE-> flat -FC-> logits -SOFTMAX-> probs                              (output 1)
    cat -TRANSPOSE-> tr -MEAN-> m -RELU-> mr -ADD(const)-> ad -MUL(ad, ad)-> mu -TANH-> th  (output 2)
    """
    g = Graph("many_ops")
    t = g.add_tensor
    t("x", (1, 8, 8, 3), DType.FLOAT32)
    for name, shape in [("x6", (1, 8, 8, 3)), ("c1", (1, 8, 8, 4)), ("d1", (1, 8, 8, 8)), ("p1", (1, 4, 4, 8)),
                        ("pd", (1, 6, 6, 8)), ("a1", (1, 3, 3, 8)), ("s1", (1, 3, 3, 8)), ("cat", (1, 3, 3, 16)),
                        ("tr", (1, 16, 3, 3)), ("flat", (1, 144)), ("logits", (1, 10)), ("probs", (1, 10)),
                        ("m", (1, 16)), ("mr", (1, 16)), ("ad", (1, 16)), ("mu", (1, 16)), ("th", (1, 16))]:
        t(name, shape, DType.FLOAT32)
    g.add_const("conv_w", _w(4, 3, 3, 3))
    g.add_const("conv_b", _w(4, scale=0.1))
    g.add_const("dw_w", _w(1, 3, 3, 8))
    g.add_const("dw_b", _w(8, scale=0.1))
    g.add_const("fc_w", _w(10, 144, scale=0.1))
    g.add_const("fc_b", _w(10, scale=0.1))
    g.add_const("add_c", np.linspace(-0.5, 0.5, 16).astype(np.float32))
    op = g.add_op
    op(OpType.RELU6, ["x"], ["x6"], name="relu6")
    op(OpType.CONV_2D, ["x6", "conv_w", "conv_b"], ["c1"], {"pads": (1, 1, 1, 1), "activation": "RELU"}, "conv")
    op(OpType.DEPTHWISE_CONV_2D, ["c1", "dw_w", "dw_b"], ["d1"], {"pads": (1, 1, 1, 1), "depth_multiplier": 2}, "dw")
    op(OpType.MAX_POOL_2D, ["d1"], ["p1"], {"kernel": (2, 2), "strides": (2, 2)}, "maxpool")
    op(OpType.PAD, ["p1"], ["pd"], {"pads": (0, 0, 1, 1, 1, 1, 0, 0)}, "pad")
    op(OpType.AVERAGE_POOL_2D, ["pd"], ["a1"], {"kernel": (2, 2), "strides": (2, 2)}, "avgpool")
    op(OpType.LOGISTIC, ["a1"], ["s1"], name="sigmoid")
    op(OpType.CONCATENATION, ["a1", "s1"], ["cat"], {"axis": 3}, "concat")
    op(OpType.TRANSPOSE, ["cat"], ["tr"], {"perm": (0, 3, 1, 2)}, "transpose")
    op(OpType.RESHAPE, ["cat"], ["flat"], {"shape": (1, 144)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "fc_w", "fc_b"], ["logits"], name="fc")
    op(OpType.SOFTMAX, ["logits"], ["probs"], name="softmax")
    op(OpType.MEAN, ["tr"], ["m"], {"axes": (2, 3)}, "mean")
    op(OpType.RELU, ["m"], ["mr"], name="relu")
    op(OpType.ADD, ["mr", "add_c"], ["ad"], name="add")
    op(OpType.MUL, ["ad", "ad"], ["mu"], name="mul")
    op(OpType.TANH, ["mu"], ["th"], name="tanh")
    g.inputs, g.outputs = ["x"], ["probs", "th"]
    verify(g)
    return g


@pytest.fixture(scope="module")
def many_ops():
    g = many_ops_graph()
    x = rng.normal(size=(96, 8, 8, 3)).astype(np.float32) * 2
    return g, x, quantize(g, x, method="minmax", bias_correction=True)


def _q(graph: Graph, name: str):
    return graph.tensor(name).quant


def test_int8_graph_verifies_runs_and_keeps_names(many_ops):
    g, x, r = many_ops
    q = r.graph
    verify(q)
    float_acts = {o for op in r.float_graph.ops for o in op.outputs} | set(r.float_graph.inputs)
    assert float_acts <= set(q.tensors)
    for name in float_acts:
        assert q.tensor(name).dtype is DType.INT8
    assert [op.name for op in q.ops if op.type is not OpType.QUANTIZE] == [op.name for op in r.float_graph.ops]
    # The int8 model follows the float one.
    f = Interpreter(r.float_graph).run(x)
    out = Interpreter(q).run(ik.quantize(x, _q(q, "x")))
    for name in ("probs", "th"):
        got = ik.dequantize(out[name], _q(q, name))
        snr = 10 * np.log10((f[name] ** 2).sum() / ((f[name] - got) ** 2).sum())
        assert snr > 25, (name, snr)


def test_weights_are_symmetric_per_channel_on_the_tflite_axes(many_ops):
    _, _, r = many_ops
    q = r.graph
    axes = {"conv": 0, "dw": 3, "fc": 0}
    for op in q.ops:
        if op.name not in axes:
            continue
        w = q.tensor(op.inputs[1])
        assert w.dtype is DType.INT8 and w.quant.axis == axes[op.name]
        assert len(w.quant.scale) == w.shape[axes[op.name]]
        assert set(w.quant.zero_point) == {0}
        assert w.data.min() >= -127 and w.data.max() <= 127
        # each channel uses the full range: max |q| is 127
        per_ch = np.abs(np.moveaxis(w.data, axes[op.name], 0).reshape(w.shape[axes[op.name]], -1)).max(1)
        assert (per_ch == 127).all()
        # the weights round-trip within half a step
        fw = r.float_graph.const(op.inputs[1])
        deq = ik.dequantize(w.data, w.quant)
        steps = np.moveaxis(np.broadcast_to(w.quant.scales.reshape(
            [-1 if i == axes[op.name] else 1 for i in range(4 if op.name != "fc" else 2)]), fw.shape), 0, 0)
        assert (np.abs(deq - fw) <= steps * 0.5 + 1e-7).all()


def test_bias_is_int32_at_input_scale_times_weight_scale(many_ops):
    g, x, corrected = many_ops
    r = quantize(g, x, bias_correction=False, ranges=corrected.stats["calibration_ranges"])
    q = r.graph
    for op in q.ops:
        if op.type not in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
            continue
        b = q.tensor(op.inputs[2])
        assert b.dtype is DType.INT32 and set(b.quant.zero_point) == {0}
        expect = np.float64(_q(q, op.inputs[0]).scale[0]) * q.tensor(op.inputs[1]).quant.scales.astype(np.float64)
        np.testing.assert_allclose(b.quant.scales, expect, rtol=1e-6)
        fb = r.float_graph.const(op.inputs[2])
        np.testing.assert_allclose(b.data * expect, fb, rtol=0, atol=float(expect.max()) * 0.5 + 1e-9)
        # with bias correction, the float bias moved by at most the correction
        cb = corrected.graph.tensor(op.inputs[2]).data * expect
        shift = corrected.stats["bias_correction_max_abs"][op.name]
        assert np.abs(cb - fb).max() <= shift + float(expect.max())


def test_activation_ranges_hold_zero_exactly(many_ops):
    _, _, r = many_ops
    for _name, qp in ((n, t.quant) for n, t in r.graph.tensors.items() if t.dtype is DType.INT8 and not t.is_const):
        assert qp.is_per_tensor and -128 <= qp.zero_point[0] <= 127
        lo, hi = representable_range(qp)
        assert lo <= 0 <= hi
        assert ik.dequantize(ik.quantize(np.zeros(1, np.float32), qp), qp)[0] == 0.0
    # asymmetric: scale = (max - min) / 255 over the calibrated range
    rng_ = r.ranges["c1"]
    assert rng_.min == 0.0 and _q(r.graph, "c1").scale[0] == pytest.approx(rng_.max / 255, rel=1e-6)
    assert _q(r.graph, "c1").zero_point[0] == -128


def test_shared_and_fixed_parameters(many_ops):
    g, x, r = many_ops
    q = r.graph
    # Pools, pad, relu6, transpose and reshape share their input's parameters.
    assert _q(q, "x6") == _q(q, "x")
    assert _q(q, "p1") == _q(q, "d1") == _q(q, "pd") == _q(q, "a1")
    assert _q(q, "tr") == _q(q, "cat") == _q(q, "flat")
    # Concatenation: inputs and output share one set; the logistic input is requantized.
    assert _q(q, "a1") == _q(q, "cat")
    cat = next(op for op in q.ops if op.name == "concat")
    assert _q(q, cat.inputs[1]) == _q(q, "cat") and cat.inputs[1] != "s1"
    requant = next(op for op in q.ops if op.outputs[0] == cat.inputs[1])
    assert requant.type is OpType.QUANTIZE and requant.inputs == ["s1"]
    # Fixed outputs.
    assert _q(q, "probs").scale[0] == pytest.approx(1 / 256) and _q(q, "probs").zero_point[0] == -128
    assert _q(q, "s1").scale[0] == pytest.approx(1 / 256) and _q(q, "s1").zero_point[0] == -128
    assert _q(q, "th").scale[0] == pytest.approx(1 / 128) and _q(q, "th").zero_point[0] == 0
    assert r.methods["probs"] == r.methods["th"] == "fixed" and r.methods["p1"] == "shared"
    # Own ranges: MEAN, RELU, ADD, MUL, FC outputs.
    f = Interpreter(g).run(x, dump=True)
    for name in ("m", "mr", "ad", "mu", "logits"):
        lo, hi = representable_range(_q(q, name))
        half = _q(q, name).scale[0] / 2  # nudging 0 onto the grid shifts the range by < half a step
        assert lo <= min(float(f[name].min()), 0) + half and hi >= float(f[name].max()) - half
        assert r.methods[name] == "minmax"
    # The group's range is the union of its sources (conv/dw outputs), not of the pools'.
    assert r.ranges["p1"] == r.ranges["d1"]


def test_const_operands_are_int8(many_ops):
    _, _, r = many_ops
    add = next(op for op in r.graph.ops if op.name == "add")
    c = r.graph.tensor(add.inputs[1])
    assert c.dtype is DType.INT8 and c.is_const
    np.testing.assert_allclose(ik.dequantize(c.data, c.quant), np.linspace(-0.5, 0.5, 16), atol=c.quant.scale[0])


def test_io_int8_records_parameters_and_io_float_wraps_the_graph(many_ops):
    g, x, r = many_ops
    q = r.graph
    assert q.inputs == ["x"] and q.outputs == ["probs", "th"]
    meta = q.metadata["io_quant"]
    assert meta["x"] == {"dtype": "int8", "scale": _q(q, "x").scale[0], "zero_point": _q(q, "x").zero_point[0]}
    assert meta["probs"]["scale"] == pytest.approx(1 / 256)

    rf = quantize(g, x, method="minmax", io="float", ranges=r.stats["calibration_ranges"], bias_correction=True)
    qf = rf.graph
    verify(qf)
    assert qf.inputs == ["x"] and qf.outputs == ["probs", "th"] and "io_quant" not in qf.metadata
    assert qf.tensor("x").dtype is DType.FLOAT32 and qf.tensor("probs").dtype is DType.FLOAT32
    assert qf.ops[0].type is OpType.QUANTIZE and qf.ops[0].inputs == ["x"]
    assert {op.type for op in qf.ops[-2:]} == {OpType.DEQUANTIZE}
    # Same int8 arithmetic inside: float I/O == quantize -> int8 graph -> dequantize.
    out_f = Interpreter(qf).run(x[:16])
    out_i = Interpreter(q).run(ik.quantize(x[:16], _q(q, "x")))
    for name in ("probs", "th"):
        np.testing.assert_array_equal(out_f[name], ik.dequantize(out_i[name], _q(q, name)))


def test_per_tensor_weights(many_ops):
    g, x, r = many_ops
    rp = quantize(g, x, per_channel=False, ranges=r.stats["calibration_ranges"])
    for op in rp.graph.ops:
        if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
            w, b = rp.graph.tensor(op.inputs[1]), rp.graph.tensor(op.inputs[2])
            assert w.quant.is_per_tensor and b.quant.is_per_tensor
            assert np.abs(w.data).max() == 127


def test_given_ranges_skip_calibration():
    g = many_ops_graph()
    x = rng.normal(size=(8, 8, 8, 3)).astype(np.float32)
    base = quantize(g, x, bias_correction=False).stats["calibration_ranges"]
    given = {k: (v.min * 2, v.max * 2) for k, v in base.items()}
    r = quantize(g, x, ranges=given, bias_correction=False)
    lo, hi = given["c1"]
    assert r.graph.tensor("c1").quant.scale[0] == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert r.methods["c1"] == "given"
    with pytest.raises(BadInputError, match="no calibration range for tensor"):
        quantize(g, x, ranges={"x": (-1, 1)})


def test_unquantizable_ops_and_bad_arguments():
    g = Graph("bn")  # statistics from a graph input: the passes cannot fold it
    g.add_tensor("x", (1, 4, 4, 2), DType.FLOAT32)
    g.add_tensor("var", (2,), DType.FLOAT32)
    g.add_tensor("y", (1, 4, 4, 2), DType.FLOAT32)
    for n in ("gamma", "beta", "mean"):
        g.add_const(n, np.ones(2, np.float32))
    g.add_op(OpType.BATCH_NORM, ["x", "gamma", "beta", "mean", "var"], ["y"], name="lonely_bn")
    g.inputs, g.outputs = ["x", "var"], ["y"]
    x = np.ones((4, 4, 4, 2), np.float32)
    with pytest.raises(UnsupportedOpError, match="'BATCH_NORM' at node 'lonely_bn': BATCH_NORM has no int8 kernel"):
        quantize(g, x)
    with pytest.raises(BadInputError, match="io must be 'int8' or 'float'"):
        quantize(many_ops_graph(), x, io="int16")
    with pytest.raises(BadInputError, match="unknown calibration method"):
        quantize(many_ops_graph(), x, method="best")
    bad = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(BadInputError, match="1 NaN/inf values"):
        quantize(many_ops_graph(), bad)


def test_an_int8_model_is_rejected(many_ops):
    _, x, r = many_ops
    with pytest.raises(BadInputError, match="already quantized"):
        quantize(r.graph, x)


# -- bias correction ------------------------------------------------------------------------------

def biased_fc_graph() -> Graph:
    """One FC whose weights all round the same way: rows [1.0, (k + 0.4) / 127 ...]."""
    w = np.empty((4, 64), np.float32)
    w[:, 0] = 1.0  # sets the channel scale to 1/127
    w[:, 1:] = (rng.integers(-60, 60, size=(4, 63)) + 0.4) / 127
    g = Graph("biased_fc")
    g.add_tensor("x", (1, 64), DType.FLOAT32)
    g.add_tensor("y", (1, 4), DType.FLOAT32)
    g.add_const("w", w)
    g.add_const("b", np.zeros(4, np.float32))
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def test_bias_corrections_are_the_mean_output_error():
    g = biased_fc_graph()
    x = rng.uniform(0, 1, size=(100, 64)).astype(np.float32)
    dw = rng.normal(size=(4, 64)).astype(np.float32) * 1e-3
    corr = bias_corrections(g, x, {"fc": dw}, batch_size=32)["fc"]
    np.testing.assert_allclose(corr, x.astype(np.float64).mean(0) @ dw.T.astype(np.float64), rtol=1e-4, atol=1e-8)


def test_bias_correction_removes_the_systematic_error():
    g = biased_fc_graph()
    x = rng.uniform(0, 1, size=(200, 64)).astype(np.float32)
    f = Interpreter(g).run(x)["y"]
    errs = {}
    for bc in (False, True):
        r = quantize(g, x, bias_correction=bc)
        out = Interpreter(r.graph).run(ik.quantize(x, r.graph.tensor("x").quant))["y"]
        errs[bc] = np.abs((ik.dequantize(out, r.graph.tensor("y").quant) - f).mean(0))
        if bc:
            assert r.stats["bias_correction_max_abs"]["fc"] > 0.05
    assert errs[False].min() > 0.05  # 63 weights x -0.4/127 x E[x] = 0.5: about -0.1 per channel
    assert (errs[True] < 0.25 * errs[False]).all()


# -- accuracy ---------------------------------------------------------------------------------------

def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)


def run_float_io(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Outputs of a float or int8-I/O graph on float data, as float."""
    t = graph.input_tensors()[0]
    feed = ik.quantize(x, t.quant) if t.dtype is DType.INT8 else x
    out = Interpreter(graph).run(feed, layout="source")[graph.outputs[0]]
    o = graph.output_tensors()[0]
    return ik.dequantize(out, o.quant) if o.dtype is DType.INT8 else out


@pytest.fixture(scope="module")
def digits():
    from edgekit.frontends import load_model

    xtr, xte, ytr, yte = digits_split()
    g = load_model(DIGITS)
    return g, xtr, xte, yte, quantize(g, xtr[:200], method="minmax")


def test_digits_int8_within_one_point_of_float(digits):
    g, _, xte, yte, r = digits
    f_acc = (run_float_io(r.float_graph, xte).argmax(1) == yte).mean()
    q_acc = (run_float_io(r.graph, xte).argmax(1) == yte).mean()
    assert f_acc > 0.95
    assert q_acc >= f_acc - 0.01, (f_acc, q_acc)
    assert r.stats["calibration_samples"] == 200 and not r.stats["hybrid_input"]


def test_digits_int8_matches_tflite_micro(digits):
    try:
        from edgekit.backends.tflite import tflite_bytes
    except ImportError:
        pytest.skip("edgekit.backends.tflite.tflite_bytes is not available yet: no .tflite to run in TFLM")
    try:
        from tflite_micro import runtime
    except ImportError:
        pytest.skip("tflite-micro is not installed: pip install 'edgekit[tflite]'")
    _, _, xte, _, r = digits
    interp = runtime.Interpreter.from_bytes(tflite_bytes(r.graph))
    qin = ik.quantize(xte[:120], r.graph.tensor("input").quant)  # NCHW int8
    want = Interpreter(r.graph).run(qin, layout="source")["probs"]
    got = []
    for i in range(len(qin)):
        interp.set_input(np.ascontiguousarray(qin[i:i + 1].transpose(0, 2, 3, 1)), 0)  # TFLM takes NHWC
        interp.invoke()
        got.append(interp.get_output(0).copy())
    assert int((np.concatenate(got) != want).sum()) == 0


@pytest.fixture(scope="module")
def kws():
    from edgekit.frontends import load_model

    model = shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite")
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        x = (z["x_int8"].astype(np.float32) - 83) * np.float32(0.5847029)
        y = z["y"]
    return load_model(model), x[:200], x[200:], y[200:]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["minmax", "auto"])
def test_kws_top1(kws, method):
    g, xc, xe, ye = kws
    r = quantize(g, xc, method=method)
    assert r.stats["hybrid_input"]  # int8 weights, float activations: dequantized first
    assert all(r.float_graph.tensor(op.inputs[1]).dtype is DType.FLOAT32 for op in r.float_graph.ops
               if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED))
    acc = (run_float_io(r.graph, xe).argmax(1) == ye).mean()
    assert acc >= 0.89, acc
    if method == "auto":
        chosen = {m for n, m in r.methods.items() if m not in ("shared", "fixed")}
        assert chosen <= {"minmax", "percentile", "mse", "entropy"}
    # The input range is close to the int8 grid the data came from (scale 0.5847, zero point 83).
    qi = r.graph.tensor(g.inputs[0]).quant
    if method == "minmax":
        assert qi.scale[0] == pytest.approx(0.5847029, rel=0.01) and abs(qi.zero_point[0] - 83) <= 1


@pytest.mark.slow
def test_ad_reconstruction_error_follows_float(ad_windows):
    from edgekit.frontends import load_model

    g = load_model(shared_file("models/mlperf-tiny/ad01_fp32.tflite"))
    calib, ev = ad_windows[:100], ad_windows[100:]
    r = quantize(g, calib, method="minmax")
    fs = ((run_float_io(r.float_graph, ev) - ev) ** 2).mean(1)
    qs = ((run_float_io(r.graph, ev) - ev) ** 2).mean(1)
    assert np.corrcoef(fs, qs)[0, 1] > 0.95
    assert abs(qs.mean() - fs.mean()) < 0.05 * fs.mean()


def test_graph_ranges_are_range_objects(digits):
    _, _, _, _, r = digits
    assert all(isinstance(v, Range) for v in r.ranges.values())
    assert set(r.ranges) == set(r.methods)
