"""The elementwise ops through the torch and .tflite importers: each model's output in
edgekit's reference interpreter against the framework's own output, and the ops the
importer produced (fused HARD_SWISH, LEAKY_RELU, PRELU, GELU, ... rather than
decompositions)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from edgekit.frontends.torch_importer import load_torch  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")]


class _Unary(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.prelu = nn.PReLU(6)
        self.prelu1 = nn.PReLU()

    def forward(self, x):
        x = self.conv(x)
        a = F.hardswish(x) + nn.Hardswish()(x * 2.0)
        b = F.leaky_relu(x, 0.2) + nn.LeakyReLU(0.05)(x)
        c = self.prelu(x) + self.prelu1(x)
        d = F.gelu(x) + F.gelu(x, approximate="tanh")
        e = torch.exp(-torch.abs(x)) + torch.log(torch.abs(x) + 1.0)
        f = torch.sqrt(torch.abs(x) + 0.5) + torch.rsqrt(x * x + 1.0) + torch.pow(x, 2) + (x.abs() + 1.0) ** 0.5
        g = torch.maximum(a, b) - torch.minimum(c, d) + F.hardsigmoid(x)
        h = e / (f + 1.0) + torch.square(g)
        return h


class _Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 5)
        self.prelu = nn.PReLU(5)

    def forward(self, x):
        y = self.prelu(self.fc(x))
        return torch.maximum(y, torch.zeros(5)) / (torch.exp(y) + 1.0)


def _ops(g):
    return {op.type for op in g.ops}


@pytest.mark.parametrize("factory,shape", [(_Unary, (1, 3, 6, 5)), (_Flat, (2, 8))])
def test_torch_elementwise_matches_torch(factory, shape):
    torch.manual_seed(0)
    m = factory().eval()
    if hasattr(m, "prelu"):
        with torch.no_grad():
            m.prelu.weight.uniform_(-0.5, 0.5)
    x = torch.randn(*shape) * 2
    g = load_torch(m, example_inputs=(x,))
    with torch.no_grad():
        want = m(x).numpy()
    got = Interpreter(g).run({g.inputs[0]: x.numpy()}, layout="source")[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    if factory is _Unary:
        assert {OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.PRELU, OpType.GELU, OpType.EXP, OpType.LOG,
                OpType.SQRT, OpType.RSQRT, OpType.ABS, OpType.MAXIMUM, OpType.MINIMUM, OpType.DIV} <= _ops(g)
    else:
        assert {OpType.PRELU, OpType.MAXIMUM, OpType.DIV} <= _ops(g)


# ---------------------------------------------------------------------------------- ONNX

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx import load_onnx  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402


def _onnx_model(nodes, x_shape, inits=(), opset=13, extra_inputs=()):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in extra_inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x_shape))
    graph = helper.make_graph(nodes, "elementwise", inputs, [out],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 20 else 9
    return m


def _check_onnx(m, feeds, ops, rtol=1e-5, atol=1e-6):
    want = exact_session(m).run(None, feeds)[0]
    g = load_onnx(m.SerializeToString())
    got = Interpreter(g).run(feeds, layout="source")[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert set(ops) <= _ops(g), _ops(g)
    return g


def test_onnx_unary_family_matches_onnxruntime():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 4, 5)) * 3).astype(np.float32)
    n = helper.make_node
    nodes = [n("HardSwish", ["x"], ["hs"]), n("LeakyRelu", ["hs"], ["lr"], alpha=0.1),
             n("PRelu", ["lr", "slope"], ["pr"]), n("Abs", ["pr"], ["ab"]), n("Neg", ["ab"], ["ng"]),
             n("Exp", ["ng"], ["ex"]), n("Add", ["ab", "one"], ["ab1"]), n("Log", ["ab1"], ["lg"]),
             n("Sqrt", ["ab1"], ["sq"]), n("Reciprocal", ["ab1"], ["rc"]), n("Pow", ["ab1", "half"], ["pw"]),
             n("Pow", ["x", "two"], ["p2"]), n("Pow", ["ab1", "mhalf"], ["rs"]),
             n("Max", ["ex", "lg", "sq"], ["mx"]), n("Min", ["rc", "pw", "p2", "rs"], ["mn"]),
             n("Div", ["mx", "ab1"], ["dv"]), n("Add", ["dv", "mn"], ["y"])]
    inits = [("slope", rng.uniform(-0.5, 0.5, (3, 1, 1))), ("one", [1.0]), ("half", 0.5), ("two", 2.0),
             ("mhalf", -0.5)]
    _check_onnx(_onnx_model(nodes, x.shape, inits, opset=14), {"x": x},
                {OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.PRELU, OpType.ABS, OpType.NEG, OpType.EXP, OpType.LOG,
                 OpType.SQRT, OpType.RSQRT, OpType.MAXIMUM, OpType.MINIMUM, OpType.DIV})


def test_onnx_max_min_broadcast_lower_rank_operands():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = rng.standard_normal((3,)).astype(np.float32)
    nodes = [helper.make_node("Max", ["x", "w"], ["m"]), helper.make_node("Min", ["m", "c"], ["y"])]
    m = _onnx_model(nodes, x.shape, [("c", rng.standard_normal((4, 1, 1)))], extra_inputs=[("w", w.shape)])
    _check_onnx(m, {"x": x, "w": w}, {OpType.MAXIMUM, OpType.MINIMUM})


@pytest.mark.parametrize("form", ["div_half_last", "mul_half_first", "gelu_op", "gelu_tanh"])
def test_onnx_gelu_forms_become_one_gelu(form):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 16)) * 3).astype(np.float32)
    n = helper.make_node
    opset = 13
    if form == "div_half_last":
        nodes = [n("Div", ["x", "sqrt2"], ["s"]), n("Erf", ["s"], ["e"]), n("Add", ["e", "one"], ["a"]),
                 n("Mul", ["x", "a"], ["m"]), n("Mul", ["m", "half"], ["y"])]
    elif form == "mul_half_first":
        nodes = [n("Mul", ["x", "isqrt2"], ["s"]), n("Erf", ["s"], ["e"]), n("Add", ["one", "e"], ["a"]),
                 n("Mul", ["x", "half"], ["h"]), n("Mul", ["h", "a"], ["y"])]
    else:
        opset = 20
        nodes = [n("Gelu", ["x"], ["y"], approximate="tanh" if form == "gelu_tanh" else "none")]
    inits = [("sqrt2", np.float32(np.sqrt(2))), ("isqrt2", np.float32(1 / np.sqrt(2))), ("one", 1.0),
             ("half", 0.5)]
    g = _check_onnx(_onnx_model(nodes, x.shape, inits, opset=opset), {"x": x}, {OpType.GELU})
    assert [op.type for op in g.ops] == [OpType.GELU]
    assert g.ops[0].attrs.get("approximate", False) == (form == "gelu_tanh")


def test_onnx_erf_outside_gelu_is_refused_by_name():
    m = _onnx_model([helper.make_node("Erf", ["x"], ["y"], name="lonely_erf")], (2, 3))
    with pytest.raises(UnsupportedOpError, match="Erf") as e:
        load_onnx(m.SerializeToString())
    assert e.value.node == "lonely_erf" and "GELU" in str(e.value)


def test_onnx_pow_with_other_exponents_is_refused():
    m = _onnx_model([helper.make_node("Pow", ["x", "e"], ["y"])], (2, 3), [("e", 3.0)])
    with pytest.raises(UnsupportedOpError, match="exponent 3"):
        load_onnx(m.SerializeToString())


def test_torch_pow_with_other_exponents_is_refused_by_name():
    from edgekit.errors import UnsupportedOpError as _Unsupported

    class Cube(nn.Module):
        def forward(self, x, e):
            return torch.pow(x, 3.0) + torch.pow(x, e)

    with pytest.raises(_Unsupported, match="pow"):
        load_torch(Cube(), example_inputs=(torch.randn(2, 3), torch.randn(2, 3)))
