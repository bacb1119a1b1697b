"""``edgekit inspect`` on models edgekit cannot import: every unsupported operator is
named with its nodes and what to try (not only the first), exit code 2; real model
files written here by each framework."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import _register, cli

_register()


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def _onnx_model(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("TopK", ["a", "k"], ["v", "i"], axis=1, name="top3"),
             helper.make_node("Sin", ["v"], ["s"], name="sin_1"),
             helper.make_node("Cos", ["s"], ["c"], name="cos_1"),
             helper.make_node("Relu", ["c"], ["r"], name="relu_after"),  # fine on its own: not reported
             helper.make_node("Sin", ["r"], ["y"], name="sin_2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(np.asarray([3], np.int64), "k")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_onnx_names_every_unsupported_op_with_nodes_and_hint(tmp_path):
    path = _onnx_model(tmp_path / "m.onnx")
    r = invoke("inspect", str(path))
    assert r.exit_code == 2
    out = r.output
    for op, node in (("TopK", "top3"), ("Sin", "sin_1"), ("Sin", "sin_2"), ("Cos", "cos_1")):
        assert op in out and node in out
    assert "relu_after" not in out
    assert "ArgMax" in out  # TopK's hint
    assert "3 unsupported operators: TopK (1x), Sin (2x), Cos (1x)" in out


def test_onnx_json_lists_them(tmp_path):
    path = _onnx_model(tmp_path / "m.onnx")
    r = invoke("inspect", str(path), "--json")
    assert r.exit_code == 2
    doc = json.loads(r.output[:r.output.rindex("}") + 1])
    by_op = {u["op"]: u for u in doc["unsupported"]}
    assert set(by_op) == {"TopK", "Sin", "Cos"}
    assert by_op["Sin"]["nodes"] == ["sin_1", "sin_2"]
    assert all(u["hint"] and u["detail"] for u in doc["unsupported"])


def test_onnx_variant_rejection_names_the_reason(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect", name="reflect_pad"),
             helper.make_node("Sin", ["y"], ["z"], name="sin")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [onnx.numpy_helper.from_array(np.asarray([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "p")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "pad.onnx"))
    r = invoke("inspect", str(tmp_path / "pad.onnx"), "--json")
    assert r.exit_code == 2
    doc = json.loads(r.output[:r.output.rindex("}") + 1])
    by_op = {u["op"]: u for u in doc["unsupported"]}
    assert "reflect" in by_op["Pad"]["detail"] and by_op["Pad"]["nodes"] == ["reflect_pad"]
    assert by_op["Sin"]["nodes"] == ["sin"]  # reported although it reads the rejected Pad's output


def test_torch_model_file_names_every_aten_op(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch

        class Net(torch.nn.Module):
            def forward(self, x):
                return torch.cumsum(torch.sin(torch.relu(x)), dim=1) + torch.cos(x)

        def make():
            return Net(), (torch.randn(1, 8),)
    """))
    r = invoke("inspect", f"{tmp_path / 'net.py'}:make", "--json")
    assert r.exit_code == 2
    doc = json.loads(r.output[:r.output.rindex("}") + 1])
    ops = {u["op"] for u in doc["unsupported"]}
    assert {"aten.sin", "aten.cos", "aten.cumsum"} <= ops and "aten.relu" not in ops


def test_tflite_names_every_unsupported_builtin(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def f(x):
        return tf.math.cumsum(tf.sin(tf.nn.relu(x)), axis=1) + tf.cos(x)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    (tmp_path / "m.tflite").write_bytes(conv.convert())
    r = invoke("inspect", str(tmp_path / "m.tflite"), "--json")
    assert r.exit_code == 2
    doc = json.loads(r.output[:r.output.rindex("}") + 1])
    ops = {u["op"] for u in doc["unsupported"]}
    assert ops == {"SIN", "COS", "CUMSUM"}
    assert all(u["nodes"][0].startswith("#") for u in doc["unsupported"])


def test_importable_model_reports_backend_gaps(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "ok.onnx"))
    r = invoke("inspect", str(tmp_path / "ok.onnx"), "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)["backend_gaps"] == {}
