"""Recurrent layers imported from ONNX (LSTM, GRU, RNN) and torch (nn.LSTM, nn.GRU, nn.RNN), checked
against the framework's own outputs (onnxruntime without graph optimizations, torch);
and the clear refusals of the variants edgekit does not support."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import UnsupportedOpError
from edgekit.ir import OpType
from edgekit.reference.interpreter import Interpreter

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from tests.support.ort_oracle import exact_session  # noqa: E402


def _rnn_model(kind: str, t: int, b: int, n_in: int, hidden: int, rng, *, layout: int = 0, outputs=("Y", "Y_h"),
               attrs: dict | None = None, extra_inputs: dict | None = None, zero_bias: bool = False):
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    d = 2 if (attrs or {}).get("direction") == "bidirectional" else 1
    w = rng.normal(0, 0.4, (d, gates * hidden, n_in)).astype(np.float32)
    r = rng.normal(0, 0.4, (d, gates * hidden, hidden)).astype(np.float32)
    bias = np.zeros((d, 2 * gates * hidden), np.float32) if zero_bias else \
        rng.normal(0, 0.4, (d, 2 * gates * hidden)).astype(np.float32)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
             helper.make_tensor("R", TensorProto.FLOAT, r.shape, r.ravel()),
             helper.make_tensor("B", TensorProto.FLOAT, bias.shape, bias.ravel())]
    names = ["X", "W", "R", "B"]
    for idx, (name, arr) in sorted((extra_inputs or {}).items()):
        while len(names) < idx:
            names.append("")
        dt = TensorProto.INT32 if arr.dtype == np.int32 else TensorProto.FLOAT
        inits.append(helper.make_tensor(name, dt, arr.shape, arr.ravel()))
        names.append(name)
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[:3 if kind == "LSTM" else 2]]
    while outs and not outs[-1]:
        outs.pop()
    node = helper.make_node(kind, names, outs, hidden_size=hidden, layout=layout, **(attrs or {}))
    xs = [b, t, n_in] if layout else [t, b, n_in]
    ydims = {"Y": [b, t, d, hidden] if layout else [t, d, b, hidden],
             "Y_h": [b, d, hidden] if layout else [d, b, hidden], "Y_c": [d, b, hidden]}
    graph = helper.make_graph([node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, xs)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, ydims[o]) for o in outs if o],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), xs


def _compare_onnx(model, xs, rng, tol=2e-5):
    from edgekit.frontends.onnx import load_onnx

    g = load_onnx(model.SerializeToString())
    x = rng.normal(0, 1, xs).astype(np.float32)
    want = exact_session(model).run(None, {"X": x})
    got = Interpreter(g).run({g.inputs[0]: x}, layout="source")
    for w, name in zip(want, g.outputs):
        assert got[name].shape == w.shape, (name, got[name].shape, w.shape)
        np.testing.assert_allclose(got[name], w, atol=tol, rtol=0)
    return g


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("t,b", [(6, 1), (5, 3), (1, 1)])
def test_onnx_rnn_matches_onnxruntime(kind, t, b):
    rng = np.random.default_rng(7 + t * 10 + b)
    model, xs = _rnn_model(kind, t, b, 5, 6, rng)
    g = _compare_onnx(model, xs, rng)
    types = {op.type for op in g.ops}
    if kind == "LSTM":
        assert OpType.UNIDIRECTIONAL_SEQUENCE_LSTM in types
    else:
        assert OpType.UNIDIRECTIONAL_SEQUENCE_LSTM not in types and OpType.FULLY_CONNECTED in types


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_onnx_rnn_batchwise_layout(kind):
    """layout=1 ([B, T, I]): onnxruntime refuses it, so the oracle is the same weights in
    layout 0 on the transposed input, outputs transposed back."""
    from edgekit.frontends.onnx import load_onnx

    t, b = 4, 2
    model1, xs1 = _rnn_model(kind, t, b, 5, 6, np.random.default_rng(11), layout=1)
    model0, _ = _rnn_model(kind, t, b, 5, 6, np.random.default_rng(11), layout=0)
    x = np.random.default_rng(12).normal(0, 1, xs1).astype(np.float32)
    y0, yh0 = exact_session(model0).run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})
    g = load_onnx(model1.SerializeToString())
    got = Interpreter(g).run({g.inputs[0]: x}, layout="source")
    np.testing.assert_allclose(got["Y"], y0.transpose(2, 0, 1, 3), atol=2e-5, rtol=0)
    np.testing.assert_allclose(got["Y_h"], yh0.transpose(1, 0, 2), atol=2e-5, rtol=0)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_onnx_rnn_other_directions_match_onnxruntime(kind, direction):
    rng = np.random.default_rng(21)
    model, xs = _rnn_model(kind, 5, 2, 3, 4, rng, attrs={"direction": direction})
    g = _compare_onnx(model, xs, rng)
    if kind == "LSTM":
        assert OpType.GATHER in {op.type for op in g.ops}


def test_onnx_gru_linear_before_reset_and_zero_initial_state():
    rng = np.random.default_rng(3)
    model, xs = _rnn_model("GRU", 5, 2, 4, 3, rng, attrs={"linear_before_reset": 1},
                           extra_inputs={4: ("seq", np.full(2, 5, np.int32)),
                                         5: ("h0", np.zeros((1, 2, 3), np.float32))})
    _compare_onnx(model, xs, rng)


def test_onnx_lstm_only_last_state_and_explicit_default_activations():
    rng = np.random.default_rng(4)
    model, xs = _rnn_model("LSTM", 7, 1, 3, 4, rng, outputs=("Y_h",),
                           attrs={"activations": ["Sigmoid", "Tanh", "Tanh"], "direction": "forward"})
    _compare_onnx(model, xs, rng)


@pytest.mark.parametrize("attrs,extra,outputs,needle", [
    ({"activations": ["Relu", "Tanh", "Tanh"]}, None, ("Y",), "activations"),
    ({"clip": 1.0}, None, ("Y",), "clip"),
    ({"input_forget": 1}, None, ("Y",), "input_forget"),
    ({}, {5: ("h0", np.ones((1, 1, 4), np.float32))}, ("Y",), "initial_h"),
    ({}, {7: ("P", np.ones((1, 12), np.float32))}, ("Y",), "peepholes"),
    ({}, {4: ("seq", np.array([2], np.int32))}, ("Y",), "sequence_lens"),
    ({}, None, ("Y", "Y_h", "Y_c"), "Y_c"),
])
def test_onnx_lstm_variants_are_refused_clearly(attrs, extra, outputs, needle):
    from edgekit.frontends.onnx import load_onnx

    rng = np.random.default_rng(5)
    model, _ = _rnn_model("LSTM", 3, 1, 2, 4, rng, attrs=attrs, extra_inputs=extra, outputs=outputs)
    with pytest.raises(UnsupportedOpError, match=needle):
        load_onnx(model.SerializeToString())


# -------------------------------------------------------------------------------- torch

torch = pytest.importorskip("torch")


class _Net(torch.nn.Module):
    def __init__(self, cls, layers: int, batch_first: bool, head: str, bidirectional: bool = False):
        super().__init__()
        self.rnn = cls(5, 6, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(6, 3)
        self.head = head

    def forward(self, x):
        y, h = self.rnn(x)
        if isinstance(h, tuple):
            h = h[0]
        if self.head == "h_n":
            return self.fc(h.reshape(h.shape[0] * h.shape[1], -1)) if h.shape[0] > 1 else self.fc(h.squeeze(0))
        return torch.tanh(y)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers,batch_first,head", [(1, True, "h_n"), (2, True, "seq"), (1, False, "seq"),
                                                     (2, False, "h_n")])
def test_torch_rnn_matches_torch(cls, layers, batch_first, head):
    from edgekit.frontends.torch_importer import load_torch

    torch.manual_seed(layers * 10 + batch_first)
    m = _Net(getattr(torch.nn, cls), layers, batch_first, head).eval()
    shape = (1, 6, 5) if batch_first else (6, 1, 5)
    g = load_torch(m, (torch.zeros(*shape),))
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    got = Interpreter(g).run([x])[g.outputs[0]]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=2e-6, rtol=0)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers,batch_first", [(1, True), (2, False)])
def test_torch_bidirectional_rnn_matches_torch(cls, layers, batch_first):
    from edgekit.frontends.torch_importer import load_torch

    torch.manual_seed(layers)
    m = _Net(getattr(torch.nn, cls), layers, batch_first, "seq", bidirectional=True).eval()
    shape = (1, 5, 5) if batch_first else (5, 1, 5)
    g = load_torch(m, (torch.zeros(*shape),))
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    got = Interpreter(g).run([x])[g.outputs[0]]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=2e-6, rtol=0)
    if cls == "LSTM":
        assert OpType.GATHER in {op.type for op in g.ops}  # the reverse direction's time reversal


def test_torch_refuses_nonzero_initial_state():
    from edgekit.frontends.torch_importer import load_torch

    class H0(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x, torch.ones(1, 1, 4))[0]

    with pytest.raises(UnsupportedOpError, match="initial state"):
        load_torch(H0().eval(), (torch.zeros(1, 2, 3),))
