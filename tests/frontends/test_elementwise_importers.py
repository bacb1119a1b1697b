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
