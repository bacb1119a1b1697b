"""compile_model and `edgekit compile`: the folder it writes (manifest, report with the
arena timeline, header macros), quantizing a float model first, and the errors for
unsupported ops, dynamic shapes, targets and variants."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.backends.c import DynamicShapeError, compile_model
from edgekit.cli.main import _register, cli
from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.frontends import load_model
from edgekit.ir import DType, Graph, OpType, QuantParams
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.backends.c.support import KWS, host_exe, host_run, kws_graph
from tests.support.shared import shared_file

_register()
DIGITS = "edgekit/data/digits_cnn.onnx"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False,
                              env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def kws_out(tmp_path_factory):
    return compile_model(kws_graph(), "cortex-m4", tmp_path_factory.mktemp("c") / "kws")


def test_folder_manifest_and_header(kws_out):
    d = kws_out.out_dir
    assert {"model.c", "model.h", "manifest.json", "report.html", "report.json"} <= {
        p.name for p in d.iterdir()}
    m = json.loads((d / "manifest.json").read_text())
    assert m["format"] == "edgekit-c-model" and m["target"] == "cortex-m4" and m["variant"] == "auto"
    assert m["arena_bytes"] == kws_out.arena_bytes == kws_out.plan.arena_bytes
    # tensor area against tensor area: TFLM's is 16,000 B for KWS (notes/toolchain.md)
    assert m["arena_bytes"] <= 0.62 * 16_000
    assert m["macs"] == 2_656_768
    assert [o["name"] for o in m["ops"]] == kws_out.plan.order
    assert m["flash"]["measured"] and m["flash"]["total"] == sum(
        m["flash"][k] for k in ("code", "weights", "constants"))
    assert m["placement"] == {"code": "SSRAM1 (flash)", "weights": "SSRAM1 (flash)",
                              "constants": "SSRAM1 (flash)", "stack": "SSRAM2-3 (sram)",
                              "arena": "SSRAM2-3 (sram)", "scratch": "SSRAM2-3 (sram)"}
    h = (d / "model.h").read_text()
    for macro in ("EDGEKIT_MODEL_ARENA_BYTES 8384u", "EDGEKIT_MODEL_INPUT_SHAPE {1, 49, 10, 1}",
                  "EDGEKIT_MODEL_INPUT_ZERO_POINT (83)", "EDGEKIT_MODEL_OUTPUT_BYTES 12u",
                  "EDGEKIT_MODEL_OUTPUT_SCALE 0.00390625f",
                  "int edgekit_model_invoke(const int8_t *in, int8_t *out);"):
        assert macro in h, macro
    c = (d / "model.c").read_text()
    assert 'section(".rodata.edgekit_weights"), aligned(16)' in c
    assert re.search(r"static uint8_t ek_arena\[8384\] EK_ARENA;", c)
    # cortex-m4 has the dsp feature: every conv takes the packed kernel (cost model), and
    # its filters the packed layout; the portable build keeps the generic kernel
    assert c.count("ek_conv2d_packed_s8(") == 5 and c.count("ek_depthwise_conv2d_s8(") == 4
    assert c.count("ek_conv2d_s8(") == 0 and "static int32_t ek_scratch[" in c
    assert "RESHAPE): an alias, no code" in c


def test_report_has_timeline_and_tables(kws_out):
    d = kws_out.out_dir
    html = (d / "report.html").read_text()
    assert html.count("<svg") == 1 and "Arena timeline" in html and "Memory fit" in html
    assert "op_3_depthwise_conv_2d" in html and "SSRAM2-3" in html
    rep = json.loads((d / "report.json").read_text())
    assert len(rep["timeline"]) == 13 and rep["arena_bytes"] == 8384
    peak = max(row["bytes"] for row in rep["timeline"])
    assert peak == 8384


def test_timeline_svg_draws_each_buffer_once():
    from edgekit.report.timeline import arena_timeline_svg

    rows = [{"index": 0, "op": "a", "bytes": 32,
             "live": [{"name": "x", "offset": 0, "size": 16, "kind": "tensor", "inplace_of": None},
                      {"name": "y", "offset": 16, "size": 16, "kind": "tensor", "inplace_of": None}]},
            {"index": 1, "op": "b", "bytes": 32,
             "live": [{"name": "y", "offset": 16, "size": 16, "kind": "tensor", "inplace_of": None},
                      {"name": "s", "offset": 0, "size": 16, "kind": "scratch", "inplace_of": None}]}]
    svg = arena_timeline_svg(rows, 32, title="t")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<title>y:") == 1 and "ops 0..1" in svg and "url(#ek-hatch)" in svg


def test_float_model_is_quantized_with_calib(tmp_path):
    g = load_model(DIGITS)
    with np.load("edgekit/data/digits_samples.npz") as z:
        x = z["x"]
    with pytest.raises(BadInputError, match="float model"):
        compile_model(g, "cortex-m4", tmp_path / "nocalib", measure=False)
    r = compile_model(g, "cortex-m4", tmp_path / "digits", calib=x, variant="portable",
                      measure=False)
    q = quantize(g, x).graph  # the same quantization, deterministic
    t = q.input_tensors()[0].quant
    xq = np.clip(np.round(x.transpose(0, 2, 3, 1) / t.scale[0]) + t.zero_point[0],
                 -128, 127).astype(np.int8)
    ref = Interpreter(q).run([xq])[q.outputs[0]]
    ours = host_run(host_exe(r.out_dir), xq, np.int8, ref.shape)
    assert int((ours != ref).sum()) == 0
    assert "the source model's layout was NCHW" in (r.out_dir / "model.h").read_text()


def _int8_graph(op_type, attrs=None, **kw) -> Graph:
    g = Graph("bad")
    q = QuantParams.per_tensor(0.1, 0)
    g.add_tensor("x", kw.get("shape", (1, 4, 4, 2)), DType.INT8, q)
    g.add_tensor("y", kw.get("out_shape", (1, 4, 4, 2)), DType.INT8, kw.get("out_q", q))
    g.add_op(op_type, ["x"], ["y"], attrs or {}, name="the_node")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_unsupported_op_names_op_and_node(tmp_path):
    g = _int8_graph(OpType.TRANSPOSE, {"perm": (0, 4, 1, 2, 3)}, shape=(1, 2, 3, 4, 5),
                    out_shape=(1, 5, 2, 3, 4))
    with pytest.raises(UnsupportedOpError) as info:
        compile_model(g, "cortex-m4", tmp_path / "o", measure=False)
    assert "'TRANSPOSE' at node 'the_node'" in str(info.value) and "rank 5" in str(info.value)
    assert info.value.exit_code == 2
    g = _int8_graph(OpType.BATCH_NORM)
    for n in ("s", "b", "m", "v"):
        g.add_const(n, np.ones(2, np.float32))
    g.ops[0].inputs += ["s", "b", "m", "v"]
    with pytest.raises(UnsupportedOpError, match="'BATCH_NORM' at node 'the_node'"):
        compile_model(g, "cortex-m4", tmp_path / "o", measure=False)


def test_dynamic_shape_names_op_and_node(tmp_path):
    g = _int8_graph(OpType.RELU, shape=(-1, 4, 4, 2))
    with pytest.raises(DynamicShapeError, match=r"RELU at node 'the_node'.*\[\?, 4, 4, 2\]"):
        compile_model(g, "cortex-m4", tmp_path / "o", measure=False)


def test_bad_targets_and_variants(tmp_path):
    g = kws_graph()
    with pytest.raises(BadInputError, match="microcontrollers"):
        compile_model(g, "x86_64", tmp_path / "a", measure=False)
    with pytest.raises(BadInputError, match="'dsp' feature"):
        compile_model(g, "cortex-m3", tmp_path / "b", variant="dsp", measure=False)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "precious.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not empty"):
        compile_model(g, "cortex-m4", tmp_path / "c", measure=False)
    assert (tmp_path / "c" / "precious.txt").read_text() == "keep me"


def test_cli_compile_prints_the_summary(tmp_path):
    out = tmp_path / "kws"
    r = invoke("compile", shared_file(KWS), "--target", "cortex-m4", "--out", out,
               "--variant", "portable")
    assert r.exit_code == 0, r.output
    for text in ("tensor arena", "8,384", "weights and biases", "flash total", "fit per region",
                 "SSRAM2-3", "PSRAM", "conv2d (portable)", str(out)):
        assert text in r.output, (text, r.output)
    m = json.loads((out / "c" / "manifest.json").read_text())   # the bundle keeps the generated C in c/
    assert {k["variant"] for k in m["kernels"]} == {"portable"}
    # compiling again into the same folder replaces it
    r = invoke("compile", shared_file(KWS), "--target", "cortex-m4", "--out", out, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["arena_bytes"] == 8384


@pytest.mark.filterwarnings("ignore::edgekit.quantize.FewSamplesWarning")
def test_cli_compile_float_model_with_calib(tmp_path):
    out = tmp_path / "digits"
    r = invoke("compile", DIGITS, "--target", "cortex-m0plus", "--calib",
               "edgekit/data/digits_samples.npz", "--out", out)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "c" / "manifest.json").read_text())
    assert m["io"]["input"]["ctype"] == "int8_t" and {k["variant"] for k in m["kernels"]} == {"portable"}
    r = invoke("compile", DIGITS, "--target", "cortex-m0plus", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "--calib" in r.output
