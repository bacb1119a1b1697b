"""The data-movement ops through the ONNX and torch importers: each model's output in
edgekit's reference interpreter against onnxruntime (exact session) or torch itself, and
the IR ops the importer produced (SLICE / STRIDED_SLICE / SPLIT / GATHER / ... rather
than refusals)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edgekit.frontends.onnx import load_onnx  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for out, vi in zip(model.graph.output, inferred.graph.output):
        out.CopyFrom(vi)
    return model


def _vi(name, shape, elem=TensorProto.FLOAT):
    if shape is None:  # an output: onnx's shape inference fills in its type
        return helper.make_empty_tensor_value_info(name)
    return helper.make_tensor_value_info(name, elem, shape)


def _i64(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], [int(v) for v in values])


def _check(model, feeds: dict, want_ops: set[OpType]):
    sess = exact_session(model)
    ort_out = sess.run(None, feeds)
    g = load_onnx(model.SerializeToString())
    ours = Interpreter(g).run(feeds, layout="source")
    for name, expect in zip([o.name for o in model.graph.output], ort_out):
        got = ours[name]
        assert got.shape == expect.shape, (name, got.shape, expect.shape)
        assert np.array_equal(got, expect), name
    ops = {op.type for op in g.ops}
    assert want_ops <= ops, sorted(t.value for t in want_ops - ops)
    return g


RNG = np.random.default_rng(3)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([0, 1], [1, 3], [0, 2], [1, 1]),           # plain slice on NCHW's H (a SLICE)
    ([-1, 4], [-10**9, 0], [3, 1], [-2, -1]),   # reversed, clamped ends (a STRIDED_SLICE)
    ([1], [10**9], [-1], [3]),
])
def test_onnx_slice_4d(starts, ends, axes, steps):
    x = RNG.normal(size=(1, 5, 4, 6)).astype(np.float32)
    node = helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])
    model = _model([node], [_vi("x", x.shape)], [_vi("y", None)],
                   [_i64("s", starts), _i64("e", ends), _i64("a", axes), _i64("t", steps)])
    want = {OpType.SLICE} if all(s == 1 for s in steps) else {OpType.STRIDED_SLICE}
    _check(model, {"x": x}, want)


def test_onnx_slice_bounds_from_the_shape_fold_to_constants():
    """ends computed from Shape -> Gather at run-time-free import (constant after folding)."""
    x = RNG.normal(size=(2, 7)).astype(np.float32)
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Gather", ["sh", "one"], ["d1"], axis=0),
             helper.make_node("Div", ["d1", "two"], ["half"]),
             helper.make_node("Slice", ["x", "zero", "half", "ax"], ["y"])]
    inits = [_i64("one", [1]), _i64("two", [2]), _i64("zero", [0]), _i64("ax", [1])]
    _check(_model(nodes, [_vi("x", x.shape)], [_vi("y", None)], inits), {"x": x}, {OpType.SLICE})


@pytest.mark.parametrize("opset,split,num_outputs", [(17, [2, 3, 1], None), (13, None, None), (18, None, 3)])
def test_onnx_split_4d_channels(opset, split, num_outputs):
    x = RNG.normal(size=(1, 6, 3, 4)).astype(np.float32)
    n = 3
    inputs = ["x"] + (["sp"] if split else [])
    kw = {"axis": 1}
    if num_outputs:
        kw["num_outputs"] = num_outputs
    nodes = [helper.make_node("Split", inputs, [f"y{i}" for i in range(n)], **kw),
             helper.make_node("Add", ["y0", "y2"], ["s02"]) if split is None else
             helper.make_node("Identity", ["y0"], ["s02"])]
    inits = [_i64("sp", split)] if split else []
    outs = [_vi("s02", None), _vi("y1", None)]
    g = _check(_model(nodes, [_vi("x", x.shape)], outs, inits, opset), {"x": x}, {OpType.SPLIT})
    split_op = next(op for op in g.ops if op.type is OpType.SPLIT)
    assert split_op.attrs["axis"] == 3 and len(split_op.outputs) == 3  # NCHW channels -> NHWC axis 3


def test_onnx_gather_layouts():
    """1-D indices on a 4-D tensor keep the layout; a scalar index and 2-D indices change
    the rank; run-time indices into a constant table (an embedding lookup)."""
    x = RNG.normal(size=(1, 5, 3, 4)).astype(np.float32)
    table = RNG.normal(size=(10, 6)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["x", "i1"], ["g1"], axis=1),
             helper.make_node("Gather", ["x", "i0"], ["g0"], axis=-1),
             helper.make_node("Gather", ["x", "i2"], ["g2"], axis=2),
             helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)]
    inits = [_i64("i1", [4, 0, -1]), helper.make_tensor("i0", TensorProto.INT64, [], [2]),
             helper.make_tensor("i2", TensorProto.INT64, [2, 2], [0, 2, 2, 1]),
             helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel())]
    ids = np.array([[3, 9, 0]], np.int64)
    model = _model(nodes, [_vi("x", x.shape), _vi("ids", ids.shape, TensorProto.INT64)],
                   [_vi("g1", None), _vi("g0", None), _vi("g2", None), _vi("emb", None)], inits)
    _check(model, {"x": x, "ids": ids}, {OpType.GATHER})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_onnx_depth_to_space_and_back(mode):
    x = RNG.normal(size=(1, 8, 3, 2)).astype(np.float32)
    nodes = [helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode=mode),
             helper.make_node("SpaceToDepth", ["d"], ["y"], blocksize=2, **({"mode": mode} if mode == "CRD" else {}))]
    opset = 28 if mode == "CRD" else 17  # SpaceToDepth has a mode from opset 28
    model = _model(nodes, [_vi("x", x.shape)], [_vi("d", None), _vi("y", None)], opset=opset)
    g = load_onnx(model.SerializeToString())
    ours = Interpreter(g).run({"x": x}, layout="source")
    assert np.array_equal(ours["y"], x)  # there and back
    if mode == "DCR":
        _check(model, {"x": x}, {OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH})
    else:
        import torch

        want = torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 2).numpy()  # CRD
        assert np.array_equal(ours["d"], want)


def test_onnx_cast_float_to_int32_and_back():
    x = (RNG.normal(size=(2, 5)) * 50).astype(np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32),
             helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)]
    _check(_model(nodes, [_vi("x", x.shape)], [_vi("y", None)]), {"x": x}, {OpType.CAST})


def test_onnx_slice_with_runtime_starts_is_refused_clearly():
    from edgekit.errors import UnsupportedOpError

    x = np.zeros((2, 4), np.float32)
    node = helper.make_node("Slice", ["x", "s", "e"], ["y"])
    model = _model([node], [_vi("x", x.shape), _vi("s", [1], TensorProto.INT64)], [_vi("y", None)],
                   [_i64("e", [2])])
    with pytest.raises(UnsupportedOpError, match="starts must be a constant"):
        load_onnx(model.SerializeToString())


# ------------------------------------------------------------------------------ torch

class _TorchMovement:
    """Built lazily: torch is optional for the ONNX tests above."""

    @staticmethod
    def make():
        import torch
        nn = torch.nn

        class Heads(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(4, 12, 3, padding=1)
                self.fc = nn.Linear(6, 6)

            def forward(self, x):
                y = self.conv(x)                                  # [1, 12, 6, 6]
                a, b, c = torch.split(y, [4, 4, 4], dim=1)        # channel split (SPLIT)
                q = a[:, :, 1:5:2, :] + b[:, :, ::2, :][:, :, :2, :]  # strided slices
                heads = torch.chunk(c, 2, dim=3)                  # width split
                s = torch.stack([heads[0], heads[1]], dim=1)      # [1, 2, 4, 6, 3] (PACK)
                r = s.narrow(2, 1, 2).sum(dim=1)                  # [1, 2, 6, 3]
                t = y[:, 3]                                       # select -> [1, 6, 6]
                u = torch.unbind(t, dim=1)                        # 6 x [1, 6]
                v = self.fc(u[0] + u[5])
                w = torch.index_select(y, 1, torch.tensor([11, 0, 5]))
                p = nn.functional.pixel_shuffle(y, 2)             # [1, 3, 12, 12]
                pu = nn.functional.pixel_unshuffle(p, 2)          # back to [1, 12, 6, 6]
                return q.sum() + r.mean() + v.sum() + w.mean() + (pu - y).abs().sum() + p.mean()

        return Heads()


def test_torch_movement_matches_torch():
    torch = pytest.importorskip("torch")
    from edgekit.frontends.torch_importer import load_torch

    torch.manual_seed(0)
    m = _TorchMovement.make().eval()
    x = torch.randn(1, 4, 6, 6)
    g = load_torch(m, example_inputs=(x,))
    with torch.no_grad():
        want = m(x).numpy()
    got = Interpreter(g).run({g.inputs[0]: x.numpy()}, layout="source")[g.outputs[0]]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
    ops = {op.type for op in g.ops}
    want_ops = {OpType.SPLIT, OpType.PACK, OpType.GATHER, OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH}
    assert want_ops <= ops, sorted(t.value for t in want_ops - ops)
    assert ops & {OpType.SLICE, OpType.STRIDED_SLICE}


# ------------------------------------------------------------------------------ Keras

@pytest.mark.slow
def test_keras_cropping_split_gather_matches_tensorflow(tmp_path):
    """Keras layers users have (Cropping2D; tf.split, tf.gather and strided slicing on Keras tensors)
    reach the IR through TensorFlow's converter and edgekit's .tflite importer."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
        pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'")
    from edgekit.frontends.keras_importer import load_keras  # sets TensorFlow's environment first
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((10, 8, 6), batch_size=1)
    c = keras.layers.Cropping2D(((1, 2), (2, 1)))(inp)                       # [1, 7, 5, 6]
    a, b = tf.split(c, [2, 4], axis=-1)                                      # TF ops on Keras tensors
    g = tf.gather(b, [3, 0, 1], axis=-1)
    s = a[:, ::-2, 1:, :]                                                    # [1, 4, 4, 2]
    y = keras.layers.Concatenate()([g[:, ::2, 1:, :], s])
    model = keras.Model(inp, keras.layers.Flatten()(y))
    path = tmp_path / "movement_savedmodel"  # Lambda layers of tf ops save as a SavedModel
    model.save(path, save_format="tf")
    x = RNG.normal(size=(1, 10, 8, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    graph = load_keras(path)
    got = Interpreter(graph).run([x])[graph.outputs[0]]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    ops = {op.type for op in graph.ops}
    assert {OpType.SPLIT, OpType.GATHER} <= ops and ops & {OpType.SLICE, OpType.STRIDED_SLICE}, ops


def test_onnx_qdq_split_and_slice_run_on_int8():
    """DequantizeLinear -> Split / Slice / Gather -> QuantizeLinear: the data movement runs on
    int8 with the input's parameters (no float island), as onnxruntime computes it."""
    x = RNG.normal(size=(1, 4, 6, 5)).astype(np.float32)
    s = helper.make_tensor("s", TensorProto.FLOAT, [], [0.02])
    z = helper.make_tensor("z", TensorProto.INT8, [], [3])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Split", ["xd", "sp"], ["a", "b"], axis=1),
             helper.make_node("Slice", ["b", "st", "en", "ax", "stp"], ["c"]),
             helper.make_node("Gather", ["a", "gi"], ["g"], axis=3),
             helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
             helper.make_node("QuantizeLinear", ["g", "s", "z"], ["gq"]),
             helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y1"]),
             helper.make_node("DequantizeLinear", ["gq", "s", "z"], ["y2"])]
    inits = [s, z, _i64("sp", [1, 3]), _i64("st", [5]), _i64("en", [-10]), _i64("ax", [2]), _i64("stp", [-2]),
             _i64("gi", [4, 0, 0])]
    model = _model(nodes, [_vi("x", x.shape)], [_vi("y1", None), _vi("y2", None)], inits)
    g = _check(model, {"x": x}, {OpType.SPLIT, OpType.STRIDED_SLICE, OpType.GATHER})
    for op in g.ops:
        if op.type in (OpType.SPLIT, OpType.STRIDED_SLICE, OpType.GATHER):
            assert g.tensor(op.inputs[0]).dtype.value == "int8", op.name
