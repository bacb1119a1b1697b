"""The ONNX writer: exported models run in onnxruntime and compute what edgekit's
reference interpreter computes (float graphs within 1e-5), what PyTorch computes (an
independent oracle), and what the original ONNX file computes (round trip). int8
graphs are written as QDQ and agree with the int8 interpreter op by op within one
quantization step."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.support.ort_oracle import exact_session

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.backends.onnx import SUPPORTED_IR_OPS, to_onnx, write_onnx  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.ir.dtypes import DType, QuantParams  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.ir.ops import OpType, normalize_attrs  # noqa: E402
from edgekit.ir.passes import run_passes  # noqa: E402
from edgekit.ir.shapes import infer_op_shapes  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.shared import shared_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "edgekit" / "data" / "digits_cnn.onnx"
TORCH_MODELS = REPO / "tests" / "frontends" / "torch_models.py"
KWS_SCALE, KWS_ZERO = np.float32(0.5847029), 83


# -- helpers ------------------------------------------------------------------------

def _session(model) -> "ort.InferenceSession":
    return exact_session(model)


def _run(model, feeds: dict) -> dict:
    s = _session(model)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds)))


def _rel_l2(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-sample relative L2 error."""
    g = got.reshape(len(got), -1).astype(np.float64)
    r = ref.reshape(len(ref), -1).astype(np.float64)
    return np.linalg.norm(g - r, axis=1) / np.maximum(np.linalg.norm(r, axis=1), 1e-30)


def _kws_float_inputs(kws_data, n: int | None = None) -> np.ndarray:
    x, _ = kws_data
    x = x if n is None else x[:n]
    return ((x.astype(np.float32) - np.float32(KWS_ZERO)) * KWS_SCALE).astype(np.float32)


def _quantize_input(g: Graph, x: np.ndarray) -> np.ndarray:
    q = g.tensor(g.inputs[0]).quant
    return np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def _single_op_graph(g: Graph, op) -> Graph:
    """One op of ``g`` with its run-time inputs as graph inputs."""
    sub = Graph(f"one_{op.name}")
    for n in list(op.inputs) + list(op.outputs):
        if n and n not in sub.tensors:
            t = g.tensor(n)
            sub.add_tensor(n, t.shape, t.dtype, t.quant, None if n in op.outputs else t.data)
    sub.ops = [copy.deepcopy(op)]
    sub.inputs = list(dict.fromkeys(n for n in op.inputs if n and not g.tensor(n).is_const))
    sub.outputs = list(op.outputs)
    return sub


def _assert_ops_within_one_step(g: Graph, x: np.ndarray) -> set[str]:
    """Each op run alone in onnxruntime on the interpreter's own inputs: int8 outputs
    within one quantization step, float outputs within 1e-5."""
    dump = Interpreter(g).run(x, dump=True)
    seen = set()
    for op in g.ops:
        sub = _single_op_graph(g, op)
        got = _run(to_onnx(sub, dynamic_batch=True), {n: dump[n] for n in sub.inputs})[op.outputs[0]]
        ref = dump[op.outputs[0]]
        assert got.shape == ref.shape, op.name
        if ref.dtype == np.int8:
            diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
            assert diff.max() <= 1, f"{op.name} ({op.type.value}): {diff.max()} steps apart"
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=op.name)
        seen.add(op.type.value)
    return seen


def _load_torch_models():
    spec = importlib.util.spec_from_file_location("edgekit_test_torch_models_onnx", TORCH_MODELS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- MLPerf Tiny float models vs the interpreter ------------------------------------------

def test_ad01_float_matches_interpreter(ad_windows, tmp_path):
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/ad01_fp32.tflite"))
    path = tmp_path / "ad01.onnx"
    size = write_onnx(g, path, dynamic_batch=True)
    assert size == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["ad01.onnx"]  # no temporaries left
    x = ad_windows.astype(np.float32)
    got = _run(str(path), {g.inputs[0]: x})[g.outputs[0]]
    ref = Interpreter(g).run(x)[g.outputs[0]]
    assert got.shape == ref.shape
    assert np.median(_rel_l2(got, ref)) <= 1e-5
    assert _rel_l2(got, ref).max() <= 1e-4


def test_kws_float_matches_interpreter(kws_data):
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"))
    run_passes(g, ["dequantize_weights"])
    assert all(t.dtype is DType.FLOAT32 for t in g.tensors.values())
    x = _kws_float_inputs(kws_data)
    model = to_onnx(g, dynamic_batch=True)
    # A TFLite model is NHWC: its input is exposed as NHWC, converted inside.
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 49, 10, 1]
    assert {n.op_type for n in model.graph.node} >= {"Conv", "AveragePool", "Gemm", "Softmax", "Transpose"}
    assert sum(1 for n in model.graph.node if n.op_type == "Conv" and
               any(a.name == "group" and a.i == 64 for a in n.attribute)) == 4  # the depthwise convs
    onnx.checker.check_model(model, full_check=True)
    got = _run(model, {g.inputs[0]: x})[g.outputs[0]]
    ref = Interpreter(g).run(x)[g.outputs[0]]
    assert np.median(_rel_l2(got, ref)) <= 1e-5
    np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))


def test_kws_static_batch_and_ir_layout(kws_data):
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"))
    run_passes(g, ["dequantize_weights"])
    x = _kws_float_inputs(kws_data, 4)
    ref = Interpreter(g).run(x)[g.outputs[0]]
    for layout in ("source", "ir"):
        s = _session(to_onnx(g, layout=layout))
        assert s.get_inputs()[0].shape == [1, 49, 10, 1]
        got = np.concatenate([s.run(None, {g.inputs[0]: x[i:i + 1]})[0] for i in range(len(x))])
        assert np.median(_rel_l2(got, ref)) <= 1e-5


def test_hybrid_graph_is_refused_with_a_hint():
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"))
    if not any(t.dtype is DType.INT8 for t in g.tensors.values()):
        pytest.skip("this KWS float model has no int8 weights")
    with pytest.raises(BadInputError, match="dequantize_weights"):
        to_onnx(g)


# -- int8 graphs as QDQ ---------------------------------------------------------------

def test_kws_int8_qdq(kws_data):
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))
    x, y = kws_data
    model = to_onnx(g, dynamic_batch=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    # int8 weights with per-channel scales on the ONNX output-channel axis, int32 biases.
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = inits[node.input[0]]
            assert q.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.INT32)
            scales = onnx.numpy_helper.to_array(inits[node.input[1]])
            if scales.size > 1:
                axis = next(a.i for a in node.attribute if a.name == "axis")
                assert axis == 0 and q.dims[0] == scales.size
    got = _run(model, {g.inputs[0]: x})[g.outputs[0]]
    ref = Interpreter(g).run(x)[g.outputs[0]]
    assert got.dtype == np.int8
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.98
    assert np.mean(got.argmax(-1) == y) >= 0.85
    seen = _assert_ops_within_one_step(g, x[:50])
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= seen


def test_ad01_int8_qdq(ad_windows):
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/ad01_int8.tflite"))
    x = _quantize_input(g, ad_windows.astype(np.float32))
    _assert_ops_within_one_step(g, x[:64])
    got = _run(to_onnx(g, dynamic_batch=True), {g.inputs[0]: x})[g.outputs[0]]
    ref = Interpreter(g).run(x)[g.outputs[0]]
    oq = g.tensor(g.outputs[0]).quant
    deq = lambda v: (v.astype(np.float32) - oq.zero_point[0]) * oq.scale[0]  # noqa: E731
    assert np.median(_rel_l2(deq(got), deq(ref))) <= 0.05


def test_qdq_onnx_round_trip_kws(kws_data):
    """A QDQ ONNX model imported as an int8 graph and written back computes what the
    original computes in onnxruntime."""
    from edgekit.frontends.onnx import load_onnx

    path = shared_file("models/mlperf-tiny/onnx/v1.3_kai_jiang_kws_ref_model.onnx")
    g = load_onnx(path)
    assert any(t.dtype is DType.INT8 for t in g.tensors.values())
    src = _session(str(path))
    exp = _session(to_onnx(g, opset=17))
    spec = src.get_inputs()[0]
    x = _kws_float_inputs(kws_data, 300).reshape((300,) + tuple(spec.shape[1:]))
    a = np.concatenate([src.run(None, {spec.name: x[i:i + 1]})[0] for i in range(len(x))])
    b = np.concatenate([exp.run(None, {spec.name: x[i:i + 1]})[0] for i in range(len(x))])
    assert np.mean(a.argmax(-1) == b.argmax(-1)) >= 0.99
    assert np.abs(a - b).max() <= 0.02


def _int8_graph() -> Graph:
    """A small hand-built int8 graph with float edges: QUANTIZE, conv, max pool, add,
    concatenation, pad, mean, transpose, fully connected, logistic, DEQUANTIZE."""
    rng = np.random.default_rng(3)
    g = Graph("int8_mix")
    pt = QuantParams.per_tensor
    g.add_tensor("x", (1, 6, 6, 3), DType.FLOAT32)
    g.add_tensor("xq", (1, 6, 6, 3), DType.INT8, pt(0.03, -5))
    g.add_tensor("w", (4, 3, 3, 3), DType.INT8, QuantParams.per_axis([0.01, 0.02, 0.015, 0.03], [0] * 4, 0),
                 rng.integers(-127, 128, (4, 3, 3, 3)))
    wscale = np.array([0.01, 0.02, 0.015, 0.03]) * np.float32(0.03)
    g.add_tensor("b", (4,), DType.INT32, QuantParams.per_axis(wscale, [0] * 4, 0), rng.integers(-300, 300, 4))
    g.add_tensor("c", (1, 6, 6, 4), DType.INT8, pt(0.05, -20))
    g.add_tensor("p", (1, 3, 3, 4), DType.INT8, pt(0.05, -20))
    g.add_tensor("dw", (1, 3, 3, 4), DType.INT8, QuantParams.per_axis([0.02] * 4, [0] * 4, 3),
                 rng.integers(-127, 128, (1, 3, 3, 4)))
    g.add_tensor("d", (1, 3, 3, 4), DType.INT8, pt(0.06, 3))
    g.add_tensor("s", (1, 3, 3, 4), DType.INT8, pt(0.08, -2))
    g.add_tensor("cat", (1, 3, 3, 8), DType.INT8, pt(0.08, -2))
    g.add_tensor("pd", (1, 4, 5, 8), DType.INT8, pt(0.08, -2))
    g.add_tensor("m", (1, 8), DType.INT8, pt(0.04, 1))
    g.add_tensor("fw", (5, 8), DType.INT8, QuantParams.per_axis([0.01] * 5, [0] * 5, 0),
                 rng.integers(-127, 128, (5, 8)))
    g.add_tensor("f", (1, 5), DType.INT8, pt(0.02, 0))
    g.add_tensor("sig", (1, 5), DType.INT8, pt(1 / 256, -128))
    g.add_tensor("y", (1, 5), DType.FLOAT32)
    g.add_op(OpType.QUANTIZE, ["x"], ["xq"])
    g.add_op(OpType.CONV_2D, ["xq", "w", "b"], ["c"], {"pads": (1, 1, 1, 1), "activation": "RELU"})
    g.add_op(OpType.MAX_POOL_2D, ["c"], ["p"], {"kernel": (2, 2), "strides": (2, 2)})
    g.add_op(OpType.DEPTHWISE_CONV_2D, ["p", "dw"], ["d"], {"pads": (1, 1, 1, 1)})
    g.add_op(OpType.ADD, ["p", "d"], ["s"])
    g.add_op(OpType.CONCATENATION, ["s", "s"], ["cat"], {"axis": 3})
    g.add_op(OpType.PAD, ["cat"], ["pd"], {"pads": (0, 0, 1, 0, 0, 2, 0, 0)})
    g.add_op(OpType.MEAN, ["pd"], ["m"], {"axes": (1, 2), "keep_dims": False})
    g.add_op(OpType.FULLY_CONNECTED, ["m", "fw"], ["f"])
    g.add_op(OpType.LOGISTIC, ["f"], ["sig"])
    g.add_op(OpType.DEQUANTIZE, ["sig"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_int8_graph_with_float_edges():
    g = _int8_graph()
    x = np.random.default_rng(4).standard_normal((8, 6, 6, 3)).astype(np.float32)
    seen = _assert_ops_within_one_step(g, x)
    assert {"QUANTIZE", "CONV_2D", "MAX_POOL_2D", "ADD", "CONCATENATION", "PAD", "MEAN",
            "FULLY_CONNECTED", "LOGISTIC", "DEQUANTIZE"} <= seen
    got = _run(to_onnx(g, dynamic_batch=True), {"x": x})["y"]
    ref = Interpreter(g).run(x)["y"]
    np.testing.assert_allclose(got, ref, atol=4 / 256)


# -- PyTorch models: onnxruntime on the export vs torch itself ----------------------------

TORCH_NUMERIC = ["small_cnn", "depthwise_separable", "residual", "concat", "mlp", "padding", "misc",
                 "pad_then_conv"]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("factory", TORCH_NUMERIC)
def test_torch_models_match_torch(factory):
    torch = pytest.importorskip("torch")
    from edgekit.frontends.torch_importer import load_torch

    tm = _load_torch_models()
    made = getattr(tm, factory)()
    if isinstance(made, tuple):
        module, examples = made
    else:
        module = made
        examples = getattr(made, "example_inputs", None) or (torch.randn(*made.input_shape),)
    g = load_torch(module, tuple(examples))
    model = to_onnx(g)
    gen = torch.Generator().manual_seed(11)
    inputs = tuple(torch.randn(*e.shape, generator=gen) for e in examples)
    s = _session(model)
    # PyTorch models are NCHW: the export takes and returns what torch does.
    assert [tuple(i.shape) for i in s.get_inputs()] == [tuple(e.shape) for e in inputs]
    got = s.run(None, {i.name: x.numpy() for i, x in zip(s.get_inputs(), inputs)})
    with torch.no_grad():
        ref = module(*inputs)
    ref = tuple(ref) if isinstance(ref, (tuple, list)) else (ref,)
    assert len(got) == len(ref)
    for o, r in zip(got, ref):
        assert o.shape == tuple(r.shape)
        np.testing.assert_allclose(o, r.numpy(), rtol=1e-5, atol=1e-5)


# -- ONNX round trip ----------------------------------------------------------------

def test_digits_cnn_round_trip(tmp_path):
    from edgekit.frontends.onnx import load_onnx

    g = load_onnx(DIGITS)
    out = tmp_path / "digits_again.onnx"
    write_onnx(g, out)
    with np.load(REPO / "edgekit" / "data" / "digits_samples.npz") as z:
        key = next(k for k in z.files if z[k].dtype.kind == "f" and z[k].ndim == 4)
        x = z[key].astype(np.float32)
    src = _session(str(DIGITS))
    exp = _session(str(out))
    assert [(i.name, i.shape) for i in src.get_inputs()] == [(i.name, i.shape) for i in exp.get_inputs()]
    name = src.get_inputs()[0].name
    for i in range(len(x)):
        a = src.run(None, {name: x[i:i + 1]})[0]
        b = exp.run(None, {name: x[i:i + 1]})[0]
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    g2 = load_onnx(out)  # and back into the IR: same graph inputs, same numbers
    assert g2.inputs == g.inputs and g2.outputs == g.outputs
    assert g2.metadata["io_layout"] == g.metadata["io_layout"]
    np.testing.assert_allclose(Interpreter(g2).run(x, layout="source")[g2.outputs[0]],
                               Interpreter(g).run(x, layout="source")[g.outputs[0]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(opset):
    from edgekit.frontends.onnx import load_onnx

    g = load_onnx(DIGITS)
    model = to_onnx(g, opset=opset)
    assert model.opset_import[0].version == opset
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    got = _run(model, {g.inputs[0]: x})[g.outputs[0]]
    ref = Interpreter(g).run(x, layout="source")[g.outputs[0]]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_layout_ir_exposes_nhwc():
    from edgekit.frontends.onnx import load_onnx

    g = load_onnx(DIGITS)
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 1)).astype(np.float32)
    s = _session(to_onnx(g, layout="ir"))
    assert s.get_inputs()[0].shape == [1, 8, 8, 1]
    np.testing.assert_allclose(s.run(None, {g.inputs[0]: x})[0], Interpreter(g).run(x)[g.outputs[0]],
                               rtol=1e-5, atol=1e-6)


def test_bad_arguments_and_unsupported_graphs(tmp_path):
    from edgekit.frontends.onnx import load_onnx

    g = load_onnx(DIGITS)
    with pytest.raises(BadInputError, match="opset"):
        to_onnx(g, opset=11)
    with pytest.raises(BadInputError, match="layout"):
        to_onnx(g, layout="nchw")
    # int16 activations have no QDQ form here: the error names the op.
    h = Graph("int16")
    h.add_tensor("x", (1, 4), DType.FLOAT32)
    h.add_tensor("q", (1, 4), DType.INT16, QuantParams.per_tensor(0.01, 0))
    h.add_op(OpType.QUANTIZE, ["x"], ["q"], name="to_int16")
    h.inputs, h.outputs = ["x"], ["q"]
    with pytest.raises(BadInputError, match="to_int16"):
        to_onnx(h)
    # Average pooling whose pads reach a whole window has no ONNX equivalent.
    p = Graph("pool")
    p.add_tensor("x", (1, 4, 4, 2), DType.FLOAT32)
    p.add_tensor("y", (1, 6, 6, 2), DType.FLOAT32)
    p.add_op(OpType.AVERAGE_POOL_2D, ["x"], ["y"], {"kernel": (1, 1), "pads": (1, 1, 1, 1)}, name="wide_pool")
    p.inputs, p.outputs = ["x"], ["y"]
    with pytest.raises(BadInputError, match="wide_pool"):
        to_onnx(p)
    with pytest.raises(BadInputError):
        write_onnx(p, tmp_path / "pool.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_convert_to_onnx(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    out = tmp_path / "sub" / "digits.onnx"
    res = CliRunner().invoke(cli, ["convert", str(DIGITS), "--to", "onnx", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "bytes" in res.output
    x = np.random.default_rng(2).standard_normal((1, 1, 8, 8)).astype(np.float32)
    got = _run(str(out), {"input": x})["probs"]
    np.testing.assert_allclose(got, _run(str(DIGITS), {"input": x})["probs"], rtol=1e-5, atol=1e-6)


# -- random float graphs over every op the writer lowers ----------------------------------

_ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


class _GraphBuilder:
    """Random float graphs: a chain of ops (with side branches) drawn op by op."""

    def __init__(self, draw, rng):
        self.draw = draw
        self.rng = rng
        self.g = Graph("random")
        self.n = 0
        self.used: set[str] = set()

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def const(self, shape, scale=0.5) -> str:
        name = self.name("c")
        self.g.add_tensor(name, shape, DType.FLOAT32,
                          data=(self.rng.standard_normal(shape) * scale).astype(np.float32))
        return name

    def op(self, typ: OpType, inputs, attrs=None) -> str | None:
        attrs = dict(attrs or {})
        shapes = [self.g.tensor(i).shape for i in inputs]
        try:
            out_shape = infer_op_shapes(typ, shapes, normalize_attrs(typ, attrs))[0]
        except ValueError:
            return None
        if int(np.prod(out_shape)) > 4000 or 0 in out_shape:
            return None
        out = self.name("t")
        self.g.add_tensor(out, out_shape, DType.FLOAT32)
        self.g.add_op(typ, list(inputs), [out], attrs)
        self.used.add(typ.value)
        return out

    def step(self, x: str) -> str:
        d = self.draw
        t = self.g.tensor(x)
        r = t.rank
        choices = ["unary", "binary", "softmax", "fc", "fc_keep", "reshape", "transpose", "mean", "pad",
                   "concat", "batch_norm", "movement", "movement", "movement", "reduction", "reduction",
                   "elementwise"]
        if r == 4:
            choices += ["conv", "depthwise", "pool", "conv", "depthwise", "pool", "resample"]
        kind = d(_st.sampled_from(choices))
        act = d(_st.sampled_from(_ACTS))
        out = None
        if kind in ("conv", "depthwise"):
            kh, kw = d(_st.integers(1, 3)), d(_st.integers(1, 3))
            dil = (d(_st.integers(1, 2)), d(_st.integers(1, 2)))
            strides = (d(_st.integers(1, 2)), d(_st.integers(1, 2)))
            pads = tuple(d(_st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
            cin = t.shape[3]
            attrs = {"strides": strides, "dilations": dil, "pads": pads, "activation": act}
            if kind == "conv":
                cout = d(_st.integers(1, 5))
                ins = [x, self.const((cout, kh, kw, cin))]
                typ = OpType.CONV_2D
            else:
                mult = d(_st.integers(1, 2))
                cout = cin * mult
                attrs["depth_multiplier"] = mult
                ins = [x, self.const((1, kh, kw, cout))]
                typ = OpType.DEPTHWISE_CONV_2D
            if d(_st.booleans()):
                ins.append(self.const((cout,)))
            out = self.op(typ, ins, attrs)
        elif kind == "pool":
            k = (d(_st.integers(1, 3)), d(_st.integers(1, 3)))
            pads = tuple(d(_st.integers(0, kk - 1)) for kk in (k[0], k[1], k[0], k[1]))
            typ = d(_st.sampled_from([OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D]))
            out = self.op(typ, [x], {"kernel": k, "strides": (d(_st.integers(1, 2)), d(_st.integers(1, 2))),
                                     "pads": pads, "activation": act})
        elif kind == "unary":
            typ = d(_st.sampled_from([OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH]))
            out = self.op(typ, [x])
        elif kind == "softmax":
            out = self.op(OpType.SOFTMAX, [x], {"beta": d(_st.sampled_from([1.0, 0.5, 2.0]))})
        elif kind == "binary":
            typ = d(_st.sampled_from([OpType.ADD, OpType.SUB, OpType.MUL]))
            form = d(_st.sampled_from(["self", "full", "last", "scalar", "tail2", "ones"]))
            shape = t.shape
            if form == "self":
                other = self.op(OpType.TANH, [x]) or x
            elif form == "full":
                other = self.const(shape)
            elif form == "last":
                other = self.const(shape[-1:])
            elif form == "scalar":
                other = self.const((1,))
            elif form == "tail2":
                other = self.const(shape[-2:])
            else:
                other = self.const((1,) * r)
            ins = [other, x] if d(_st.booleans()) else [x, other]
            out = self.op(typ, ins, {"activation": act})
        elif kind in ("fc", "fc_keep"):
            cout = d(_st.integers(1, 6))
            keep = kind == "fc_keep"
            k = t.shape[-1] if keep else t.size  # one row per sample, so batches run as in the IR
            ins = [x, self.const((cout, k))]
            if d(_st.booleans()):
                ins.append(self.const((cout,)))
            out = self.op(OpType.FULLY_CONNECTED, ins, {"activation": act, "keep_num_dims": keep})
        elif kind == "reshape":
            size = t.size
            options = [(1, size), (1, 1, size), (1, size, 1, 1), (1, 1, 1, size)]
            for a in range(2, size):
                if size % a == 0:
                    options += [(1, a, size // a), (1, a, size // a, 1), (1, 1, a, size // a)]
            out = self.op(OpType.RESHAPE, [x], {"shape": d(_st.sampled_from(options))})
        elif kind == "transpose" and r >= 2:
            rest = list(d(_st.permutations(list(range(1, r)))))
            out = self.op(OpType.TRANSPOSE, [x], {"perm": tuple([0] + rest)})
        elif kind == "mean" and r >= 2:
            axes = d(_st.lists(_st.integers(1, r - 1), min_size=1, max_size=r - 1, unique=True))
            keep = d(_st.booleans()) or r - len(axes) < 2  # the batch axis stays an axis of its own
            out = self.op(OpType.MEAN, [x], {"axes": tuple(axes), "keep_dims": keep})
        elif kind == "pad" and r >= 1:
            pads = [0, 0] + [d(_st.integers(0, 2)) for _ in range(2 * (r - 1))]
            out = self.op(OpType.PAD, [x], {"pads": tuple(pads), "value": d(_st.sampled_from([0.0, -0.5]))})
        elif kind == "concat" and r >= 2:
            axis = d(_st.integers(1, r - 1))
            other = self.op(OpType.RELU, [x]) or x
            out = self.op(OpType.CONCATENATION, [x, other] if d(_st.booleans()) else [other, x, x],
                          {"axis": axis - r if d(_st.booleans()) else axis, "activation": act})
        elif kind == "batch_norm" and r >= 2:
            c = t.shape[-1]
            var = self.const((c,))
            self.g.tensor(var).data = np.abs(self.g.tensor(var).data) + np.float32(0.5)
            out = self.op(OpType.BATCH_NORM, [x, self.const((c,)), self.const((c,)), self.const((c,)), var],
                          {"epsilon": 1e-3})
        elif kind == "movement":  # tests/backends/movement_random.py
            from tests.backends.movement_random import movement_step

            out = movement_step(self, x, _st)
        elif kind == "reduction":  # tests/backends/reduction_random.py
            from tests.backends.reduction_random import reduction_step

            out = reduction_step(self, x, _st)
        elif kind == "elementwise":  # tests/backends/elementwise_random.py
            from tests.backends.elementwise_random import elementwise_step

            out = elementwise_step(self, x, _st)
        elif kind == "resample":  # tests/backends/resample_random.py
            from tests.backends.resample_random import resample_step

            out = resample_step(self, x, _st)
        return out or x


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as _st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    _st = None


def _random_graph_case(data, seed: int):
    rng = np.random.default_rng(seed)
    b = _GraphBuilder(data.draw, rng)
    shape = (1, data.draw(_st.integers(2, 7)), data.draw(_st.integers(2, 7)), data.draw(_st.integers(1, 4)))
    b.g.add_tensor("x", shape, DType.FLOAT32)
    b.g.inputs = ["x"]
    x = "x"
    for _ in range(data.draw(_st.integers(1, 5))):
        x = b.step(x)
    if x == "x":
        x = b.op(OpType.RELU, [x])
    outs = [x]
    # Sometimes a second output: a 4-D intermediate, exposed as NCHW or NHWC.
    mids = [n for n in b.g.tensors if not b.g.tensor(n).is_const and n not in ("x", x)]
    if mids and data.draw(_st.booleans()):
        outs.append(data.draw(_st.sampled_from(mids)))
    b.g.outputs = outs
    b.g.remove_unused()
    if data.draw(_st.booleans()):
        b.g.metadata["io_layout"] = {n: "NCHW" for n in b.g.inputs + b.g.outputs if b.g.tensor(n).rank == 4}
    return b


if _st is not None:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=_st.data(), seed=_st.integers(0, 2**16), layout=_st.sampled_from(["source", "ir"]),
           opset=_st.sampled_from([13, 17, 18]), batch=_st.sampled_from([1, 3]))
    def test_random_float_graphs_match_interpreter(data, seed, layout, opset, batch):
        b = _random_graph_case(data, seed)
        g = b.g
        model = to_onnx(g, opset=opset, layout=layout, dynamic_batch=batch > 1)
        shape = (batch,) + g.tensor("x").shape[1:]
        x = np.random.default_rng(seed + 1).standard_normal(shape).astype(np.float32)
        nchw = layout == "source" and g.metadata.get("io_layout", {}).get("x") == "NCHW"
        feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
        ref = Interpreter(g).run(feed, layout=layout)
        got = _run(model, {"x": feed})
        for name in g.outputs:
            r = ref[name]
            o = got[name]
            assert o.shape == r.shape, name
            tol = 1e-5 * max(1.0, float(np.abs(r).max()) if r.size else 1.0)
            np.testing.assert_allclose(o, r, rtol=1e-5, atol=tol, err_msg=f"{name}: {g.op_types()}")
else:  # pragma: no cover
    def test_random_float_graphs_match_interpreter():
        pytest.skip("hypothesis is not installed")


def test_random_graphs_cover_every_float_op():
    """The random graph generator reaches every op the writer lowers (a fixed sample)."""
    if _st is None:
        pytest.skip("hypothesis is not installed")
    # The recurrent ops need sequence-shaped inputs and weight sets of their own; their
    # writer is tested against onnxruntime in tests/backends/test_onnx_writer_recurrent.py
    # (test_float_lstm_equals_onnxruntime, test_svdf_equals_onnxruntime_float_and_close_in_int8).
    dedicated = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF"}
    wanted = set(SUPPORTED_IR_OPS) - {"QUANTIZE", "DEQUANTIZE"} - dedicated
    covered: set[str] = set()

    # derandomize: a fixed sample, so the check does not depend on the run's seed (some ops,
    # e.g. ARG_MAX / ARG_MIN, come from a numpy coin inside one step kind and are rare).
    @settings(max_examples=600, deadline=None, database=None, derandomize=True)
    @given(data=_st.data(), seed=_st.integers(0, 2**16))
    def collect(data, seed):
        b = _random_graph_case(data, seed)
        covered.update(op.type.value for op in b.g.ops)

    collect()
    assert wanted <= covered, f"never generated: {sorted(wanted - covered)}"


def test_writer_output_layout_details():
    """Constants broadcast over channels become [C, 1, 1]; FC of a feature map flattens
    in NHWC order; a Reshape keeps the IR's element order."""
    g = Graph("details")
    rng = np.random.default_rng(5)
    g.add_tensor("x", (1, 3, 4, 2), DType.FLOAT32)
    g.add_tensor("bias", (2,), DType.FLOAT32, data=np.array([1.0, -2.0], np.float32))
    g.add_tensor("a", (1, 3, 4, 2), DType.FLOAT32)
    g.add_tensor("w", (5, 24), DType.FLOAT32, data=rng.standard_normal((5, 24)).astype(np.float32))
    g.add_tensor("f", (1, 5), DType.FLOAT32)
    g.add_tensor("r", (1, 4, 6, 1), DType.FLOAT32)
    g.add_op(OpType.ADD, ["x", "bias"], ["a"])
    g.add_op(OpType.FULLY_CONNECTED, ["a", "w"], ["f"])
    g.add_op(OpType.RESHAPE, ["a"], ["r"], {"shape": (1, 4, 6, 1)})
    g.inputs, g.outputs = ["x"], ["f", "r"]
    g.metadata["io_layout"] = {"x": "NCHW", "r": "NCHW"}
    model = to_onnx(g)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    add = next(n for n in model.graph.node if n.op_type == "Add")
    assert inits[add.input[1]].shape == (2, 1, 1)
    x = rng.standard_normal((1, 3, 4, 2)).astype(np.float32)
    got = _run(model, {"x": x.transpose(0, 3, 1, 2).copy()})
    ref = Interpreter(g).run(x)
    np.testing.assert_allclose(got["f"], ref["f"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["r"], ref["r"].transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)
