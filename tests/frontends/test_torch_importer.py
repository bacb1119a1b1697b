"""The PyTorch frontend: structure of the imported IR, numerics against torch
itself (through the reference interpreter), spec forms and error paths."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError  # noqa: E402
from edgekit.frontends.torch_importer import SUPPORTED_TORCH_OPS, load_torch  # noqa: E402
from edgekit.ir import verify  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
    pytest.mark.filterwarnings("ignore:The tensor attributes:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning"),
]

MODELS_FILE = Path(__file__).with_name("torch_models.py")
REPO = Path(__file__).resolve().parents[2]


def _load_models():
    spec = importlib.util.spec_from_file_location("edgekit_test_torch_models", MODELS_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tm = _load_models()


def _build(factory: str):
    """(module, example inputs) from a factory of torch_models.py."""
    made = getattr(tm, factory)()
    if isinstance(made, tuple):
        return made
    ex = getattr(made, "example_inputs", None)
    if ex is None:
        ex = (torch.randn(*made.input_shape),)
    return made, ex


def _random_like(examples, seed: int, batch: int | None = None):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for e in examples:
        shape = list(e.shape)
        if batch is not None:
            shape[0] = batch
        out.append(torch.randn(*shape, generator=gen))
    return tuple(out)


def _compare(graph, model, inputs, rtol=1e-5, atol=1e-5):
    with torch.no_grad():
        ref = model(*inputs)
    ref = tuple(ref) if isinstance(ref, (tuple, list)) else (ref,)
    got = Interpreter(graph).run([i.numpy() for i in inputs], layout="source")
    assert len(graph.outputs) == len(ref)
    for name, r in zip(graph.outputs, ref):
        np.testing.assert_allclose(got[name], r.numpy(), rtol=rtol, atol=atol, err_msg=name)


def _ops(graph, op_type: str):
    return [op for op in graph.ops if op.type.value == op_type]


NUMERIC_MODELS = ["small_cnn", "depthwise_separable", "residual", "concat", "mlp", "padding", "misc",
                  "pad_then_conv"]


@pytest.mark.parametrize("factory", NUMERIC_MODELS)
def test_matches_torch(factory):
    model, examples = _build(factory)
    graph = load_torch(model, example_inputs=examples)
    verify(graph)
    assert graph.metadata["source_format"] == "torch"
    for seed in (0, 1):
        _compare(graph, model, _random_like(examples, seed))


def test_small_cnn_structure():
    model, examples = _build("small_cnn")
    graph = load_torch(model, example_inputs=examples)
    types = graph.op_types()
    assert "BATCH_NORM" not in types  # folded into the first conv
    assert "TRANSPOSE" not in types  # the flatten's NCHW transpose is folded into the FC weights
    assert types.count("CONV_2D") == 2
    assert {"MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(types)
    convs = _ops(graph, "CONV_2D")
    assert convs[0].attrs["activation"] == "RELU"
    assert convs[1].attrs["activation"] == "RELU6"
    assert tuple(convs[0].attrs["pads"]) == (1, 1, 1, 1)
    assert graph.tensor(convs[0].inputs[1]).shape == (8, 3, 3, 3)  # OHWI
    (x,) = graph.inputs
    assert x == "x"
    assert graph.tensor(x).shape == (1, 16, 16, 3)  # NHWC
    assert graph.metadata["io_layout"] == {"x": "NCHW"}
    assert graph.tensor(graph.outputs[0]).shape == (1, 10)


def test_batch_of_samples_through_batch_one_graph():
    model, examples = _build("small_cnn")
    graph = load_torch(model, example_inputs=examples)
    _compare(graph, model, _random_like(examples, 7, batch=3))


def test_depthwise_structure():
    model, examples = _build("depthwise_separable")
    graph = load_torch(model, example_inputs=examples)
    dws = _ops(graph, "DEPTHWISE_CONV_2D")
    assert len(dws) == 2
    assert dws[0].attrs["depth_multiplier"] == 1
    assert graph.tensor(dws[0].inputs[1]).shape == (1, 3, 3, 8)
    assert dws[0].attrs["activation"] == "RELU6"
    assert dws[1].attrs["depth_multiplier"] == 2
    assert graph.tensor(dws[1].inputs[1]).shape == (1, 3, 3, 24)
    assert tuple(dws[1].attrs["strides"]) == (2, 2)
    assert "BATCH_NORM" not in graph.op_types()
    assert "MEAN" in graph.op_types()  # adaptive_avg_pool2d(1)
    mean = _ops(graph, "MEAN")[0]
    assert tuple(mean.attrs["axes"]) == (1, 2) and mean.attrs["keep_dims"]


def test_residual_structure_and_4d_output():
    model, examples = _build("residual")
    graph = load_torch(model)  # example inputs from the module attribute
    assert "ADD" in graph.op_types()
    out = graph.outputs[0]
    assert graph.tensor(out).shape == (1, 10, 10, 4)
    assert graph.metadata["io_layout"] == {"x": "NCHW", out: "NCHW"}
    # IR layout: the output comes back NHWC
    x = _random_like(examples, 3)
    got = Interpreter(graph).run({"x": x[0].numpy().transpose(0, 2, 3, 1)})
    with torch.no_grad():
        ref = model(*x).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got[out], ref, rtol=1e-5, atol=1e-5)


def test_concat_axes_remapped():
    model, examples = _build("concat")
    graph = load_torch(model, example_inputs=examples)
    cats = _ops(graph, "CONCATENATION")
    assert [c.attrs["axis"] for c in cats] == [3, 1]  # torch dim 1 (C) -> 3, dim 2 (H) -> 1


def test_mlp_activations():
    model, examples = _build("mlp")
    graph = load_torch(model, example_inputs=examples)
    types = graph.op_types()
    assert {"LOGISTIC", "TANH"} <= set(types)
    assert types.count("FULLY_CONNECTED") == 3
    assert "BATCH_NORM" not in types  # BatchNorm1d folded into the FC
    # hardtanh(-1, 1) becomes the fused RELU_N1_TO_1 of the op before it
    assert any(op.attrs.get("activation") == "RELU_N1_TO_1" for op in graph.ops)
    assert graph.metadata["io_layout"] == {}


def test_padding_count_include_pad():
    model, examples = _build("padding")
    graph = load_torch(model, example_inputs=examples)
    pads = _ops(graph, "PAD")
    # F.pad(x, (1, 2, 0, 1), value=0.5): W gets (1, 2), H gets (0, 1); in NHWC order
    assert tuple(pads[0].attrs["pads"]) == (0, 0, 0, 1, 1, 2, 0, 0)
    assert pads[0].attrs["value"] == 0.5
    # count_include_pad=True: explicit zero PAD, then a VALID pool
    assert tuple(pads[1].attrs["pads"]) == (0, 0, 1, 1, 1, 1, 0, 0)
    avgs = _ops(graph, "AVERAGE_POOL_2D")
    assert tuple(avgs[0].attrs["pads"]) == (0, 0, 0, 0)
    # count_include_pad=False: the pool pads itself (padding not counted)
    assert tuple(avgs[1].attrs["pads"]) == (1, 1, 1, 1)
    # ceil_mode max pool: the partial window is covered by extra bottom/right padding
    maxes = _ops(graph, "MAX_POOL_2D")
    assert any(tuple(m.attrs["pads"]) == (0, 0, 1, 1) for m in maxes)


def test_zero_pad_absorbed_into_conv():
    model, examples = _build("pad_then_conv")
    graph = load_torch(model, example_inputs=examples)
    assert "PAD" not in graph.op_types()
    conv, dw = _ops(graph, "CONV_2D")[0], _ops(graph, "DEPTHWISE_CONV_2D")[0]
    assert tuple(conv.attrs["pads"]) == (0, 0, 1, 1)  # (top, left, bottom, right)
    assert tuple(dw.attrs["pads"]) == (2, 1, 0, 1)
    assert conv.attrs["activation"] == "RELU"


@pytest.mark.parametrize("factory", ["depthwise_separable", "padding", "misc"])
def test_core_aten_program(factory):
    """A program already decomposed to core ATen (convolution, addmm, clamp, _softmax, view, ...)."""
    model, examples = _build(factory)
    ep = torch.export.export(model, examples, strict=False).run_decompositions()
    graph = load_torch(ep)
    _compare(graph, model, _random_like(examples, 11))


def test_spec_file_factory():
    graph = load_torch(f"{MODELS_FILE}:depthwise_separable")
    model, examples = _build("depthwise_separable")
    _compare(graph, model, _random_like(examples, 4))
    assert graph.name == "DepthwiseSeparable"


def test_spec_file_uses_input_shape_attribute_and_input_shapes():
    graph = load_torch(f"{MODELS_FILE}:small_cnn")  # SmallCNN.input_shape
    assert graph.tensor(graph.inputs[0]).shape == (1, 16, 16, 3)
    graph = load_torch(f"{MODELS_FILE}:no_inputs", input_shapes=[[2, 6]])
    assert graph.tensor(graph.inputs[0]).shape == (2, 6)
    assert graph.op_types() == ["FULLY_CONNECTED"]
    assert graph.ops[0].attrs["activation"] == "RELU"


def test_pt2_file(tmp_path):
    model, examples = _build("misc")
    ep = torch.export.export(model, examples, strict=False)
    path = tmp_path / "misc.pt2"
    torch.export.save(ep, str(path))
    graph = load_torch(path)
    assert graph.name == "misc"
    _compare(graph, model, _random_like(examples, 5))


def test_exported_program_object():
    model, examples = _build("concat")
    ep = torch.export.export(model, examples, strict=False)
    graph = load_torch(ep)
    _compare(graph, model, _random_like(examples, 6))
    assert load_torch(ep, input_shapes=[[1, 4, 8, 16]]).op_types() == graph.op_types()
    with pytest.raises(BadInputError, match="takes inputs of shapes"):
        load_torch(ep, input_shapes=[[1, 4, 8, 8]])


def test_state_dict(tmp_path):
    torch.manual_seed(42)
    other = tm._randomize_bn(tm.SmallCNN(), seed=99)
    sd_path = tmp_path / "weights.pt"
    torch.save(other.state_dict(), sd_path)
    graph = load_torch(f"{MODELS_FILE}:small_cnn", state_dict=sd_path)
    x = (torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(8)),)
    _compare(graph, other, x)
    # the same weights applied to an exported program
    base, _ = _build("small_cnn")
    ep = torch.export.export(base, x, strict=False)
    _compare(load_torch(ep, state_dict=sd_path), other, x)


def test_state_dict_that_does_not_fit(tmp_path):
    sd_path = tmp_path / "wrong.pt"
    torch.save({"nope.weight": torch.zeros(3)}, sd_path)
    with pytest.raises(BadInputError, match="state_dict"):
        load_torch(f"{MODELS_FILE}:small_cnn", state_dict=sd_path)
    with pytest.raises(BadInputError, match="no such"):
        load_torch(f"{MODELS_FILE}:small_cnn", state_dict=tmp_path / "missing.pt")


def test_unsupported_op_cumsum():
    with pytest.raises(UnsupportedOpError) as info:
        load_torch(f"{MODELS_FILE}:cumsum")
    err = info.value
    assert err.exit_code == 2
    assert err.op == "aten.cumsum.default"
    assert err.node == "cumsum"
    assert "aten.cumsum" in str(err) and "'cumsum'" in str(err)
    assert "aten.conv2d" in err.supported


def test_unsupported_gru_state_and_grouped_conv():
    # nn.GRU itself is supported (test_recurrent_import.py); a run-time initial state is not.
    with pytest.raises(UnsupportedOpError, match="aten.gru.*non-zero initial state") as info:
        load_torch(f"{MODELS_FILE}:gru_with_state")
    assert info.value.exit_code == 2
    with pytest.raises(UnsupportedOpError, match="groups=2"):
        load_torch(f"{MODELS_FILE}:grouped")


def test_export_failure_is_bad_input():
    with pytest.raises(BadInputError, match="torch.export could not trace") as info:
        load_torch(f"{MODELS_FILE}:data_dependent")
    assert not isinstance(info.value, UnsupportedOpError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec, match", [
    ("does/not/exist.py:model", "no such file"),
    (f"{MODELS_FILE}:no_such_factory", "no factory function named 'no_such_factory'"),
    (f"{MODELS_FILE}:not_a_module", "not an nn.Module"),
    (f"{MODELS_FILE}", "name the factory"),
    (f"{MODELS_FILE}:no_inputs", "no example inputs"),
    ("model.onnx", "not a PyTorch model spec"),
    ("missing.pt2", "no such file"),
])
def test_bad_specs(spec, match):
    with pytest.raises(BadInputError, match=match) as info:
        load_torch(spec)
    assert info.value.exit_code == 2


def test_corrupt_pt2(tmp_path):
    path = tmp_path / "bad.pt2"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ModelFormatError):
        load_torch(path)


def test_supported_ops_list():
    for name in ("aten.conv2d", "aten.convolution", "aten.linear", "aten.addmm", "aten.relu",
                 "aten.hardtanh", "aten.max_pool2d_with_indices", "aten.avg_pool2d", "aten.mean",
                 "aten._native_batch_norm_legit_no_training", "aten.cat", "aten.view", "aten.permute",
                 "aten._softmax", "aten.constant_pad_nd", "aten.clone"):
        assert name in SUPPORTED_TORCH_OPS


def test_module_import_does_not_import_torch():
    code = ("import sys; import edgekit.frontends.torch_importer as m; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(callable(m.load_torch))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"


def test_missing_torch_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BadInputError, match=r"pip install 'edgekit\[torch\]'"):
        load_torch(f"{MODELS_FILE}:small_cnn")
