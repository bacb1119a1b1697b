"""The TFLite writer on the shared MLPerf Tiny models: import -> write -> the written
file re-imports to the same graph, has the layout TFLite Micro needs, and runs to
the same outputs as the original in TFLite Micro and LiteRT; plus its errors and
``edgekit convert --to tflite``."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.support import tflite_oracle as orc
from tests.support.shared import litert_outputs, shared_file, tflm_outputs
from edgekit.backends.tflite import tflite_bytes, write_tflite
from edgekit.errors import BadInputError, EdgekitError, VerifyError
from edgekit.frontends.tflite import load_tflite
from edgekit.frontends.tflite.flatbuffer import _Reader, read_tflite
from edgekit.frontends.tflite.schema_enums import builtin_name
from edgekit.ir import DType, Graph, OpType, QuantParams
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import same_pads

MODELS = ["kws_ref_model_int8", "ad01_int8", "ad01_fp32", "kws_ref_model_float32"]
KWS_INPUT_SCALE, KWS_INPUT_ZP = np.float32(0.5847029), 83


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """name -> (original path, imported graph, written path, written bytes)."""
    out_dir = tmp_path_factory.mktemp("tflite_writer")
    cache = {}

    def get(name: str):
        if name not in cache:
            src = shared_file(f"models/mlperf-tiny/{name}.tflite")
            graph = load_tflite(src)
            dst = out_dir / f"{name}.tflite"
            n = write_tflite(graph, dst)
            data = dst.read_bytes()
            assert n == len(data)
            cache[name] = (src, graph, dst, data)
        return cache[name]

    return get


# ------------------------------------------------------------------------------ structure


def _assert_same_graph(g1: Graph, g2: Graph) -> None:
    assert g2.op_types() == g1.op_types()
    assert g2.inputs == g1.inputs and g2.outputs == g1.outputs
    for o1, o2 in zip(g1.ops, g2.ops):
        assert normalize_attrs(o1.type, o1.attrs) == normalize_attrs(o2.type, o2.attrs), o1.name
        assert o1.inputs == o2.inputs and o1.outputs == o2.outputs, o1.name  # tensor names kept
        for name in [n for n in o1.inputs + o1.outputs if n]:
            t1, t2 = g1.tensor(name), g2.tensor(name)
            assert (t1.shape, t1.dtype, t1.quant) == (t2.shape, t2.dtype, t2.quant), name
            assert t1.is_const == t2.is_const, name
            if t1.is_const:
                assert t1.data.tobytes() == t2.data.tobytes(), name


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_reimports_to_the_same_graph(written, name):
    _, graph, dst, data = written(name)
    _assert_same_graph(graph, load_tflite(dst))
    _assert_same_graph(graph, load_tflite(data))


def _buffer_data_offsets(data: bytes) -> list[tuple[int, int]]:
    """(start, length) of every buffer's data vector, found with edgekit's checked reader."""
    r = _Reader(data, "written")
    root = r.table(r.u32(0, "root"), "Model", 0)
    out = []
    for bt in root.tables(4, "buffers"):
        v = bt.raw_vector(0, 1, "data")
        out.append(v if v is not None else (0, 0))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_file_layout(written, name):
    src, graph, _, data = written(name)
    assert data[4:8] == b"TFL3"
    fb = read_tflite(data)
    assert fb.version == 3
    assert fb.description == "edgekit"
    from edgekit import __version__

    assert fb.metadata["edgekit_version"] == __version__.encode()
    assert fb.buffers[0] == b""  # the empty sentinel
    sg = fb.subgraphs[0]
    assert [sg.tensors[i].name for i in sg.inputs] == graph.inputs
    assert [sg.tensors[i].name for i in sg.outputs] == graph.outputs
    # One buffer per constant tensor; activations on buffer 0.
    const_buffers = [t.buffer for t in sg.tensors if t.name in graph.tensors and graph.tensors[t.name].is_const]
    assert len(const_buffers) == len(set(const_buffers)) and 0 not in const_buffers
    for t in sg.tensors:
        if t.name in graph.tensors and not graph.tensors[t.name].is_const:
            assert t.buffer == 0, t.name
    # Constant data 16-byte aligned (TFLite Micro reads it in place): two independent checks.
    orc.check_alignment(data)
    offsets = _buffer_data_offsets(data)
    assert sum(1 for _, n in offsets if n) >= len(const_buffers)
    for i, (start, n) in enumerate(offsets):
        if n:
            assert start % 16 == 0, f"buffer {i} data at {start}"
            assert data[start:start + n] == fb.buffers[i]
            assert struct.unpack_from("<I", data, start - 4)[0] == n


@pytest.mark.parametrize("name", MODELS)
def test_operator_codes_and_versions(written, name):
    src, _, _, data = written(name)
    root = orc.schema.Model.GetRootAs(data, 0)
    codes = {}
    for i in range(root.OperatorCodesLength()):
        oc = root.OperatorCodes(i)
        assert oc.DeprecatedBuiltinCode() == min(oc.BuiltinCode(), 127)
        codes[builtin_name(oc.BuiltinCode())] = oc.Version()
    original = read_tflite(src.read_bytes())
    theirs = {builtin_name(c.builtin_code): c.version for c in original.operator_codes}
    assert set(codes) == set(theirs)
    if "int8" in name:  # the converter's versions for int8 ops
        assert codes == theirs
    # (kws_ref_model_float32's converter marked its float FULLY_CONNECTED version 3, the
    # hybrid version, though its weights stayed float; the writer says 1.)


@pytest.mark.parametrize("name", MODELS)
def test_file_size_close_to_the_original(written, name):
    """Within 3% of the original, once the min/max arrays the IR does not keep are discounted."""
    src, _, _, data = written(name)
    original = src.read_bytes()
    fb = read_tflite(original)
    minmax = sum((q.min.nbytes if q.min is not None else 0) + (q.max.nbytes if q.max is not None else 0)
                 for q in (t.quantization for t in fb.subgraphs[0].tensors) if q is not None)
    expected = len(original) - minmax
    assert abs(len(data) - expected) <= 0.03 * len(original), (len(data), expected, len(original))


# ------------------------------------------------------------------------------ same outputs


def test_kws_int8_written_equals_original_in_tflm(written, kws_data):
    src, _, dst, _ = written("kws_ref_model_int8")
    x, _ = kws_data
    assert x.shape[0] == 1000
    theirs, ours = tflm_outputs(src, x), tflm_outputs(dst, x)
    assert ours.dtype == np.int8 and ours.shape == (1000, 12)
    assert int((ours != theirs).sum()) == 0


def _ad_int8_inputs(graph: Graph, windows: np.ndarray) -> np.ndarray:
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(windows / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def test_ad_int8_written_equals_original_in_tflm(written, ad_windows):
    src, graph, dst, _ = written("ad01_int8")
    xq = _ad_int8_inputs(graph, ad_windows)
    assert xq.shape == (196, 640)
    assert int((tflm_outputs(dst, xq) != tflm_outputs(src, xq)).sum()) == 0


def test_int8_models_in_litert_reference_kernels(written, kws_data, ad_windows):
    src, _, dst, _ = written("kws_ref_model_int8")
    x = kws_data[0][:250]
    assert (litert_outputs(dst, x, reference=True) == litert_outputs(src, x, reference=True)).all()
    src, graph, dst, _ = written("ad01_int8")
    xq = _ad_int8_inputs(graph, ad_windows)
    assert (litert_outputs(dst, xq, reference=True) == litert_outputs(src, xq, reference=True)).all()


def test_float_models_identical_in_litert(written, kws_data, ad_windows):
    src, _, dst, _ = written("ad01_fp32")
    for ref in (False, True):
        assert (litert_outputs(dst, ad_windows, reference=ref) == litert_outputs(src, ad_windows, reference=ref)).all()
    # kws_ref_model_float32 is hybrid (int8 conv weights, float activations): written as it is.
    src, graph, dst, _ = written("kws_ref_model_float32")
    assert any(graph.tensor(op.inputs[1]).dtype is DType.INT8 for op in graph.ops if op.type is OpType.CONV_2D)
    xf = ((kws_data[0][:300].astype(np.float32) - KWS_INPUT_ZP) * KWS_INPUT_SCALE).astype(np.float32)
    for ref in (False, True):
        assert (litert_outputs(dst, xf, reference=ref) == litert_outputs(src, xf, reference=ref)).all()


# ------------------------------------------------------------------------------ errors and API


def _float_graph(op_type: OpType, attrs: dict, out_shape, extra_inputs=()) -> Graph:
    g = Graph("g")
    g.add_tensor("x", (1, 4, 4, 2), DType.FLOAT32)
    g.inputs = ["x"]
    names = ["x"]
    for i, arr in enumerate(extra_inputs):
        names.append(g.add_const(f"c{i}", arr).name)
    g.add_tensor("y", out_shape, DType.FLOAT32)
    g.add_op(op_type, names, ["y"], attrs, name="the_op")
    g.outputs = ["y"]
    return g


def test_batch_norm_is_refused_with_a_hint():
    ones = np.ones(2, np.float32)
    g = _float_graph(OpType.BATCH_NORM, {}, (1, 4, 4, 2), [ones, ones * 0, ones * 0, ones])
    with pytest.raises(BadInputError, match=r"the_op.*BATCH_NORM.*fold"):
        tflite_bytes(g)


def test_average_pool_with_inexpressible_pads_is_refused():
    g = _float_graph(OpType.AVERAGE_POOL_2D, {"kernel": (2, 2), "strides": (2, 2), "pads": (1, 1, 1, 1)},
                     (1, 3, 3, 2))
    assert same_pads((4, 4), (2, 2), (2, 2)) != (1, 1, 1, 1)
    with pytest.raises(BadInputError, match=r"the_op.*AVERAGE_POOL_2D.*SAME"):
        tflite_bytes(g)
    # SAME-equivalent pads are fine.
    g = _float_graph(OpType.AVERAGE_POOL_2D, {"kernel": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1)},
                     (1, 4, 4, 2))
    assert [builtin_name(c.builtin_code) for c in read_tflite(tflite_bytes(g)).operator_codes] == ["AVERAGE_POOL_2D"]


def test_float_max_pool_window_wholly_in_padding_is_refused():
    g = _float_graph(OpType.MAX_POOL_2D, {"kernel": (2, 2), "strides": (2, 2), "pads": (2, 0, 0, 0)},
                     (1, 3, 2, 2))
    with pytest.raises(BadInputError, match=r"the_op.*entirely in the padding"):
        tflite_bytes(g)


def test_explicit_pads_become_pad_ops():
    rng = np.random.default_rng(1)
    g = _float_graph(OpType.CONV_2D, {"pads": (0, 1, 2, 0)}, (1, 4, 3, 3),
                     [rng.normal(size=(3, 3, 3, 2)).astype(np.float32), rng.normal(size=3).astype(np.float32)])
    fb = read_tflite(tflite_bytes(g))
    ops = [builtin_name(fb.operator_codes[o.opcode_index].builtin_code) for o in fb.subgraphs[0].operators]
    assert ops == ["PAD", "CONV_2D"]
    assert fb.subgraphs[0].operators[1].options["padding"] == "VALID"
    if orc.HAVE_LITERT:
        from edgekit.reference.interpreter import Interpreter

        x = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
        got = orc.run_litert(tflite_bytes(g), [x])[0]
        np.testing.assert_allclose(got, Interpreter(g).run([x])["y"], rtol=1e-5, atol=1e-5)


def test_invalid_graph_fails_verification_and_writes_nothing(tmp_path):
    g = _float_graph(OpType.RELU, {}, (1, 4, 4, 3))  # declared output shape is wrong
    with pytest.raises(VerifyError, match="relu|the_op"):
        tflite_bytes(g)
    with pytest.raises(EdgekitError):
        write_tflite(g, tmp_path / "bad.tflite")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        tflite_bytes("not a graph")  # type: ignore[arg-type]


def test_write_is_atomic_and_overwrites(written, tmp_path):
    _, graph, _, data = written("ad01_int8")
    dst = tmp_path / "sub" / "model.tflite"
    dst.parent.mkdir()
    dst.write_bytes(b"old content")
    n = write_tflite(graph, dst)
    assert n == dst.stat().st_size == len(data)
    assert dst.read_bytes() == data
    assert [p.name for p in dst.parent.iterdir()] == ["model.tflite"]  # no temp file left
    assert tflite_bytes(graph, description="custom") != data
    assert read_tflite(tflite_bytes(graph, description="custom")).description == "custom"


def test_int8_graph_built_in_code_round_trips():
    """A graph with per-channel conv weights, a MEAN and a quantized PADV2 value."""
    rng = np.random.default_rng(7)
    g = Graph("small")
    qx = QuantParams.per_tensor(0.05, -3)
    g.add_tensor("x", (1, 5, 5, 2), DType.INT8, qx)
    g.inputs = ["x"]
    qw = QuantParams.per_axis([0.01, 0.02, 0.03], [0, 0, 0], 0)
    g.add_const("w", rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8), qw)
    g.add_const("b", rng.integers(-500, 500, 3).astype(np.int32),
                QuantParams.per_axis([np.float32(0.05) * np.float32(s) for s in qw.scale], [0] * 3, 0))
    qy = QuantParams.per_tensor(0.1, 5)
    g.add_tensor("y", (1, 5, 5, 3), DType.INT8, qy)
    g.add_op(OpType.CONV_2D, ["x", "w", "b"], ["y"], {"pads": (1, 1, 1, 1), "activation": "RELU"})
    g.add_tensor("p", (1, 6, 6, 3), DType.INT8, qy)
    g.add_op(OpType.PAD, ["y"], ["p"], {"pads": (0, 0, 1, 0, 1, 0, 0, 0), "value": 0.0})
    g.add_tensor("m", (1, 3), DType.INT8, qy)
    g.add_op(OpType.MEAN, ["p"], ["m"], {"axes": (1, 2)})
    g.outputs = ["m"]
    _assert_same_graph(g, load_tflite(tflite_bytes(g)))
    if orc.HAVE_TFLM:
        from edgekit.reference.interpreter import Interpreter

        x = rng.integers(-128, 128, (1, 5, 5, 2)).astype(np.int8)
        assert (orc.run_tflm(tflite_bytes(g), [x])[0] == Interpreter(g).run([x])["m"]).all()


# ------------------------------------------------------------------------------ CLI


def test_cli_convert_to_tflite(written, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    src, graph, _, data = written("kws_ref_model_int8")
    out = tmp_path / "out.tflite"
    result = CliRunner().invoke(cli, ["convert", str(src), "--to", "tflite", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == data
    assert f"{len(data):,} bytes" in result.output
    _assert_same_graph(graph, load_tflite(out))


def test_cli_convert_bad_input_exits_2(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    runner = CliRunner()
    missing = runner.invoke(cli, ["convert", str(tmp_path / "nope.tflite"), "--to", "tflite",
                                  "-o", str(tmp_path / "o.tflite")])
    assert missing.exit_code == 2
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    bad = runner.invoke(cli, ["convert", str(corrupt), "--to", "tflite", "-o", str(tmp_path / "o.tflite")])
    assert bad.exit_code == 2
    assert not (tmp_path / "o.tflite").exists()
