"""Tests for edgekit.frontends.tflite.flatbuffer, the bounds-checked .tflite reader.

Three kinds of checks:
* the MLPerf Tiny models in shared/models parse to exactly what LiteRT's
  interpreter reports (skipped when the models or ai_edge_litert are absent);
* small models built with the schema's own generated code (ai_edge_litert)
  round-trip, including option defaults, external buffers and metadata;
* corrupt input (truncation, byte mutation, crafted fields) raises
  ModelFormatError and nothing else, quickly.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import BadInputError, ModelFormatError
from edgekit.frontends.tflite import flatbuffer as fb
from edgekit.frontends.tflite.flatbuffer import (
    Quantization,
    TFLiteModel,
    read_tflite,
    read_tflite_file,
)
from edgekit.frontends.tflite.schema_enums import (
    ActivationFunctionType,
    BuiltinOperator,
    BuiltinOptions,
    Padding,
    TensorType,
    builtin_name,
    numpy_dtype,
)

SHARED_DIR = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
MODELS_DIR = SHARED_DIR / "models" / "mlperf-tiny"
MODEL_NAMES = [
    "kws_ref_model_int8.tflite",
    "kws_ref_model_float32.tflite",
    "ad01_int8.tflite",
    "ad01_fp32.tflite",
]
KWS_OPS = [
    "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
    "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
    "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX",
]  # fmt: skip

_model_cache: dict[str, bytes] = {}


def model_bytes(name: str) -> bytes:
    path = MODELS_DIR / name
    if not path.is_file():
        pytest.skip(f"reference model {path} is absent (the shared/ folder next to the repo)")
    if name not in _model_cache:
        _model_cache[name] = path.read_bytes()
    return _model_cache[name]


def parse_or_reject(data: bytes) -> TFLiteModel | None:
    """Parse; a ModelFormatError is fine, any other exception fails the test."""
    try:
        return read_tflite(data, source="fuzz.tflite")
    except ModelFormatError as e:
        assert str(e).startswith("fuzz.tflite: "), str(e)
        return None


def op_names(model: TFLiteModel, sg: int = 0) -> list[str]:
    return [
        builtin_name(model.operator_codes[op.opcode_index].builtin_code)
        for op in model.subgraphs[sg].operators
    ]


# ---------------------------------------------------------------------------
# schema enums
# ---------------------------------------------------------------------------


def test_enums_match_generated_schema():
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    for ours, name in [
        (TensorType, "TensorType"),
        (BuiltinOperator, "BuiltinOperator"),
        (BuiltinOptions, "BuiltinOptions"),
        (ActivationFunctionType, "ActivationFunctionType"),
        (Padding, "Padding"),
    ]:
        theirs = {k: v for k, v in vars(getattr(schema, name)).items() if not k.startswith("_")}
        assert {m.name: int(m) for m in ours} == theirs, name


def test_enum_basics():
    assert (TensorType.FLOAT32, TensorType.INT8, TensorType.INT16) == (0, 9, 7)
    assert builtin_name(3) == "CONV_2D"
    assert builtin_name(4) == "DEPTHWISE_CONV_2D"
    assert builtin_name(100000) == "UNKNOWN_100000"
    assert numpy_dtype(TensorType.INT8) == np.int8
    assert numpy_dtype(TensorType.STRING) is None


# ---------------------------------------------------------------------------
# real models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parse_reference_models(name):
    model_bytes(name)  # skips with a clear message when the models are absent
    model = read_tflite_file(MODELS_DIR / name)
    assert model.version == 3
    assert len(model.subgraphs) == 1
    sg = model.subgraphs[0]
    assert sg.inputs == [0] and len(sg.outputs) == 1
    for t in sg.tensors:
        assert 0 <= t.buffer < len(model.buffers)
        assert all(d >= 0 for d in t.shape)
    for op in sg.operators:
        assert 0 <= op.opcode_index < len(model.operator_codes)
    assert "min_runtime_version" in model.metadata


def test_kws_int8_known_facts():
    model = read_tflite(model_bytes("kws_ref_model_int8.tflite"), "kws.tflite")
    assert op_names(model) == KWS_OPS
    sg = model.subgraphs[0]
    inp = sg.tensors[sg.inputs[0]]
    assert inp.shape == (1, 49, 10, 1)
    assert inp.shape_signature == (-1, 49, 10, 1)
    assert inp.type == TensorType.INT8
    assert inp.quantization is not None
    assert inp.quantization.scale.dtype == np.float32
    assert inp.quantization.zero_point.dtype == np.int64
    assert inp.quantization.scale.tolist() == [pytest.approx(0.5847029, rel=1e-6)]
    assert inp.quantization.zero_point.tolist() == [83]
    conv = sg.operators[0]
    assert conv.builtin_options_type == BuiltinOptions.Conv2DOptions
    assert conv.options["stride_w"] == 2 and conv.options["stride_h"] == 2
    assert conv.options["padding"] == "SAME"
    assert conv.options["fused_activation_function"] == "RELU"
    assert conv.options["dilation_w_factor"] == 1 and conv.options["dilation_h_factor"] == 1
    dw = sg.operators[1]
    assert dw.builtin_options_type == BuiltinOptions.DepthwiseConv2DOptions
    assert dw.options["depth_multiplier"] >= 1
    # Conv filters are per-channel quantized along the output channel axis.
    w = sg.tensors[conv.inputs[1]]
    assert w.quantization is not None and w.quantization.per_channel
    assert w.quantization.scale.size == w.shape[w.quantization.quantized_dimension]
    out = sg.tensors[sg.outputs[0]]
    assert out.shape == (1, 12)
    assert out.quantization.scale.tolist() == [pytest.approx(1 / 256)]
    assert out.quantization.zero_point.tolist() == [-128]
    assert sg.operators[-1].options == {"beta": pytest.approx(1.0)}


def test_ad01_int8_known_facts():
    model = read_tflite(model_bytes("ad01_int8.tflite"))
    assert op_names(model) == ["FULLY_CONNECTED"] * 10
    fused = [op.options["fused_activation_function"] for op in model.subgraphs[0].operators]
    assert fused.count("RELU") == 9 and fused.count("NONE") == 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_matches_litert_interpreter(name):
    data = model_bytes(name)
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    model = read_tflite(data, name)
    sg = model.subgraphs[0]

    assert op_names(model) == [d["op_name"] for d in interp._get_ops_details()]
    for op, det in zip(sg.operators, interp._get_ops_details(), strict=True):
        assert op.inputs == [int(i) for i in det["inputs"]]
        assert op.outputs == [int(i) for i in det["outputs"]]
    assert sg.inputs == [d["index"] for d in interp.get_input_details()]
    assert sg.outputs == [d["index"] for d in interp.get_output_details()]

    details = {d["index"]: d for d in interp.get_tensor_details()}
    n_const = 0
    for i, t in enumerate(sg.tensors):
        d = details[i]
        assert t.name == d["name"]
        assert list(t.shape) == d["shape"].tolist()
        assert list(t.shape_signature or t.shape) == d["shape_signature"].tolist()
        assert numpy_dtype(t.type) == np.dtype(d["dtype"])
        qp = d["quantization_parameters"]
        if t.quantization is None:
            assert qp["scales"].size == 0
        else:
            np.testing.assert_array_equal(t.quantization.scale, qp["scales"])
            np.testing.assert_array_equal(t.quantization.zero_point, qp["zero_points"])
            assert t.quantization.quantized_dimension == qp["quantized_dimension"]
        buf = model.buffers[t.buffer]
        if buf:
            n_const += 1
            assert buf == interp.get_tensor(i).tobytes(), t.name
    assert n_const >= len(sg.operators)  # every op has at least a weight or a shape constant


# ---------------------------------------------------------------------------
# synthetic models built with the schema's generated object API
# ---------------------------------------------------------------------------


def _schema():
    return pytest.importorskip("ai_edge_litert.schema_py_generated")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _pack(model_t, identifier: bytes | None = b"TFL3") -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model_t.Pack(b), file_identifier=identifier)
    return bytes(b.Output())


def _tiny_model(s, *, options_type: int = 0, options=None, tensors=None, buffers=None, ops=None):
    """One subgraph: two float tensors, one ADD-like operator."""
    m = s.ModelT()
    m.version = 3
    m.description = "tiny"
    code = s.OperatorCodeT()
    code.builtinCode = BuiltinOperator.ADD
    code.deprecatedBuiltinCode = BuiltinOperator.ADD
    code.version = 1
    m.operatorCodes = [code]
    m.buffers = buffers if buffers is not None else [s.BufferT()]
    if tensors is None:
        tensors = []
        for name in ("x", "y"):
            t = s.TensorT()
            t.name, t.shape, t.type, t.buffer = name, [1, 4], TensorType.FLOAT32, 0
            tensors.append(t)
    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs, sg.outputs = [0], [len(tensors) - 1]
    if ops is None:
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [0, -1], [len(tensors) - 1]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        ops = [op]
    sg.operators = ops
    sg.name = "main"
    m.subgraphs = [sg]
    return m


def _options_t(s, options_type: int):
    return getattr(s, BuiltinOptions(options_type).name + "T")()


@pytest.mark.parametrize(
    "options_type", sorted(fb._OPTION_FIELDS), ids=lambda v: BuiltinOptions(v).name
)
def test_option_defaults_match_schema(options_type):
    """Fields left at their default are not written; the reader must supply the schema default."""
    s = _schema()
    opt = _options_t(s, options_type)
    model = read_tflite(_pack(_tiny_model(s, options_type=options_type, options=opt)))
    got = model.subgraphs[0].operators[0].options
    enum_names = {"padding": Padding, "act": ActivationFunctionType}
    expected = {}
    for name, _slot, kind, default in fb._OPTION_FIELDS[options_type]:
        raw = getattr(opt, _camel(name))  # the generated code's default
        if kind in enum_names:
            expected[name] = enum_names[kind](raw).name
        elif kind == "wfmt":
            expected[name] = ["DEFAULT", "SHUFFLED4x16INT8"][raw]
        elif kind == "ivec":
            expected[name] = default if raw is None else tuple(raw)
        else:
            expected[name] = raw
        assert expected[name] == default, f"{name}: schema {raw!r}, reader {default!r}"
    assert got == expected


def test_options_absent_table_gives_defaults_and_unknown_table_gives_empty():
    s = _schema()
    m = read_tflite(_pack(_tiny_model(s, options_type=BuiltinOptions.Conv2DOptions, options=None)))
    assert m.subgraphs[0].operators[0].options["dilation_w_factor"] == 1
    rnn = _options_t(s, BuiltinOptions.RNNOptions)
    m = read_tflite(_pack(_tiny_model(s, options_type=BuiltinOptions.RNNOptions, options=rnn)))
    op = m.subgraphs[0].operators[0]
    assert op.builtin_options_type == BuiltinOptions.RNNOptions and op.options == {}


def test_option_values_round_trip():
    s = _schema()
    opt = _options_t(s, BuiltinOptions.DepthwiseConv2DOptions)
    opt.padding, opt.strideW, opt.strideH, opt.depthMultiplier = Padding.VALID, 3, 4, 2
    opt.fusedActivationFunction = ActivationFunctionType.RELU6
    opt.dilationWFactor, opt.dilationHFactor = 2, 5
    dw_type = BuiltinOptions.DepthwiseConv2DOptions
    m = read_tflite(_pack(_tiny_model(s, options_type=dw_type, options=opt)))
    assert m.subgraphs[0].operators[0].options == {
        "padding": "VALID", "stride_w": 3, "stride_h": 4, "depth_multiplier": 2,
        "fused_activation_function": "RELU6", "dilation_w_factor": 2, "dilation_h_factor": 5,
    }  # fmt: skip
    r = _options_t(s, BuiltinOptions.ReshapeOptions)
    r.newShape = [1, -1]
    m = read_tflite(_pack(_tiny_model(s, options_type=BuiltinOptions.ReshapeOptions, options=r)))
    assert m.subgraphs[0].operators[0].options == {"new_shape": (1, -1)}


def test_unknown_activation_is_rejected():
    s = _schema()
    opt = _options_t(s, BuiltinOptions.AddOptions)
    opt.fusedActivationFunction = 42
    with pytest.raises(ModelFormatError, match="fused_activation_function value 42"):
        read_tflite(_pack(_tiny_model(s, options_type=BuiltinOptions.AddOptions, options=opt)))


def test_operator_code_uses_max_of_deprecated_and_new_code():
    s = _schema()
    m = _tiny_model(s)
    old = s.OperatorCodeT()
    old.deprecatedBuiltinCode, old.builtinCode = BuiltinOperator.CONV_2D, 0  # pre-2.4 writer
    new = s.OperatorCodeT()
    new.deprecatedBuiltinCode = BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    new.builtinCode, new.version = BuiltinOperator.GELU, 2
    custom = s.OperatorCodeT()
    custom.deprecatedBuiltinCode = custom.builtinCode = BuiltinOperator.CUSTOM
    custom.customCode = "MyOp"
    m.operatorCodes += [old, new, custom]
    codes = read_tflite(_pack(m)).operator_codes
    assert [(c.builtin_code, c.custom_code, c.version) for c in codes] == [
        (BuiltinOperator.ADD, None, 1),
        (BuiltinOperator.CONV_2D, None, 1),
        (BuiltinOperator.GELU, None, 2),
        (BuiltinOperator.CUSTOM, "MyOp", 1),
    ]


def test_metadata_and_buffers():
    s = _schema()
    b0, b1 = s.BufferT(), s.BufferT()
    b1.data = np.frombuffer(b"1.5.0\x00", np.uint8)
    m = _tiny_model(s, buffers=[b0, b1])
    md = s.MetadataT()
    md.name, md.buffer = "min_runtime_version", 1
    m.metadata = [md]
    model = read_tflite(_pack(m))
    assert model.buffers == [b"", b"1.5.0\x00"]
    assert model.metadata == {"min_runtime_version": b"1.5.0\x00"}
    assert model.description == "tiny" and model.subgraphs[0].name == "main"


def _external_buffer_model(s, payload: bytes, offset_override: int | None = None) -> bytes:
    def build(offset: int) -> bytes:
        b0, b1 = s.BufferT(), s.BufferT()
        b1.offset, b1.size = offset, len(payload)
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = "w", [len(payload) // 4], TensorType.FLOAT32, 1
        x = s.TensorT()
        x.name, x.shape, x.type = "x", [1], TensorType.FLOAT32
        return _pack(_tiny_model(s, buffers=[b0, b1], tensors=[t, x]))

    head_len = len(build(2))
    start = (head_len + 15) // 16 * 16
    head = build(start if offset_override is None else offset_override)
    assert len(head) == head_len
    return head + b"\x00" * (start - head_len) + payload


def test_external_buffer_offset_and_size():
    s = _schema()
    payload = np.arange(6, dtype="<f4").tobytes()
    model = read_tflite(_external_buffer_model(s, payload))
    assert model.buffers[1] == payload
    assert model.subgraphs[0].tensors[0].shape == (6,)
    bad = _external_buffer_model(s, payload, offset_override=10**9)
    with pytest.raises(ModelFormatError, match="buffer 1: external data"):
        read_tflite(bad)


def test_missing_identifier_accepted_when_root_parses():
    s = _schema()
    model = read_tflite(_pack(_tiny_model(s), identifier=None))
    assert model.version == 3 and len(model.subgraphs[0].tensors) == 2


def test_external_custom_options():
    s = _schema()
    m = _tiny_model(s)
    m.subgraphs[0].operators[0].customOptions = np.frombuffer(b"\x01\x02\x03", np.uint8)
    model = read_tflite(_pack(m))
    assert model.subgraphs[0].operators[0].custom_options == b"\x01\x02\x03"


# --- crafted faults ---------------------------------------------------------


def _float_tensor(s, name, shape, buffer=0, ttype=TensorType.FLOAT32):
    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name, shape, ttype, buffer
    return t


def _quant(s, scale, zp, qdim=0):
    q = s.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = scale, zp, qdim
    return q


def test_rejects_short_files():
    for n in range(8):
        with pytest.raises(ModelFormatError, match=rf"^x\.tflite: file is too short .*\({n} bytes"):
            read_tflite(b"\x00" * n, "x.tflite")


def test_rejects_wrong_identifier_and_names_it():
    hdf5_ident = r"file identifier is b'\\r\\n\\x1a\\n'.*HDF5.*root table offset"
    with pytest.raises(ModelFormatError, match=hdf5_ident):
        read_tflite(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "model.h5")
    with pytest.raises(ModelFormatError, match=r"file identifier is b'ONNX'"):
        read_tflite(b"\x08\x07\x12\x04ONNX" + bytes(range(200)))
    data = bytearray(model_bytes("kws_ref_model_int8.tflite"))
    data[4:8] = b"TFL2"
    # The root table still parses cleanly as a version-3 model: accepted.
    assert op_names(read_tflite(bytes(data))) == KWS_OPS
    # A corrupt root with a wrong identifier: rejected, naming the identifier.
    struct.pack_into("<I", data, 0, len(data) - 2)
    with pytest.raises(ModelFormatError, match=r"file identifier is b'TFL2', expected b'TFL3'"):
        read_tflite(bytes(data))


def test_missing_identifier_requires_schema_version_3():
    s = _schema()
    m = _tiny_model(s)
    m.version = 2
    assert read_tflite(_pack(m)).version == 2  # with the identifier: reported as is
    with pytest.raises(ModelFormatError, match="schema version is 2, not 3"):
        read_tflite(_pack(m, identifier=None))


def test_rejects_index_and_shape_errors():
    s = _schema()
    cases = []

    def with_tensor(t):
        return _tiny_model(s, tensors=[t, _float_tensor(s, "y", [1])])

    m = _tiny_model(s)
    m.subgraphs[0].tensors[0].buffer = 7
    cases.append((m, "buffer index 7 out of range"))

    m = _tiny_model(s)
    m.subgraphs[0].operators[0].opcodeIndex = 3
    cases.append((m, "opcode_index 3 out of range"))

    m = _tiny_model(s)
    m.subgraphs[0].operators[0].inputs = [0, 5]
    cases.append((m, "tensor index 5 out of range"))

    m = _tiny_model(s)
    m.subgraphs[0].operators[0].inputs = [-2]
    cases.append((m, "tensor index -2 out of range"))

    m = _tiny_model(s)
    m.subgraphs[0].outputs = [-1]
    cases.append((m, "subgraph 0 outputs: tensor index -1"))

    m = _tiny_model(s, tensors=[_float_tensor(s, "x", [1, -3]), _float_tensor(s, "y", [1])])
    cases.append((m, r"negative dimension -3"))

    t = _float_tensor(s, "x", [1, 3])
    t.shapeSignature = [-2, 3]
    cases.append((with_tensor(t), "shape_signature"))

    t = _float_tensor(s, "q", [2, 3], ttype=TensorType.INT8)
    t.quantization = _quant(s, [0.5, 0.25], [0])
    cases.append((with_tensor(t), r"2 scale value\(s\) but 1"))

    t = _float_tensor(s, "q", [2, 3], ttype=TensorType.INT8)
    t.quantization = _quant(s, [0.5, 0.25], [0, 0], qdim=1)
    cases.append((with_tensor(t), "per-channel scales"))

    t = _float_tensor(s, "q", [2, 3], ttype=TensorType.INT8)
    t.quantization = _quant(s, [0.5, 0.25], [0, 0], qdim=4)
    cases.append((with_tensor(t), "quantized_dimension 4"))

    t = _float_tensor(s, "x", [1], ttype=55)
    cases.append((with_tensor(t), "unknown tensor type"))

    b1 = s.BufferT()
    b1.data = np.zeros(5, np.uint8)
    t = _float_tensor(s, "w", [2], buffer=1)
    y = _float_tensor(s, "y", [1])
    cases.append((_tiny_model(s, tensors=[t, y], buffers=[s.BufferT(), b1]),
                  "holds 5 bytes but a FLOAT32 tensor of shape \\[2\\] needs 8"))

    m = _tiny_model(s)
    md = s.MetadataT()
    md.name, md.buffer = "meta", 9
    m.metadata = [md]
    cases.append((m, "metadata 0 \\('meta'\\): buffer index 9"))

    m = _tiny_model(s)
    m.subgraphs = []
    cases.append((m, "no subgraphs"))

    for model_t, pattern in cases:
        with pytest.raises(ModelFormatError, match=rf"^bad\.tflite: .*{pattern}"):
            read_tflite(_pack(model_t), "bad.tflite")


def _vector_length_pos(data: bytes, *path: tuple[int, int | None]) -> int:
    """Byte position of a vector's length word, found with the reader's own checked walk."""
    r = fb._Reader(data, "t")
    tab = r.table(r.u32(0, ""), "Model", 0)
    *tables, (last_slot, _) = path
    for slot, index in tables:
        tab = tab.tables(slot, "")[index]
    return r.follow(tab._field(last_slot), "")


def test_huge_vector_length_rejected_before_allocating():
    data = model_bytes("kws_ref_model_int8.tflite")
    # Model.buffers, Model.subgraphs, SubGraph.tensors, Tensor.shape, Buffer.data
    paths = [
        ((4, None),),
        ((2, None),),
        ((2, 0), (0, None)),
        ((2, 0), (0, 3), (0, None)),
        ((4, 3), (0, None)),
    ]
    for path in paths:
        pos = _vector_length_pos(data, *path)
        for length in (0x80000000, 0xFFFFFFFF, 0x7FFFFFFF, len(data)):
            bad = bytearray(data)
            struct.pack_into("<I", bad, pos, length)
            t0 = time.perf_counter()
            with pytest.raises(ModelFormatError, match="runs past the end of the file"):
                read_tflite(bytes(bad))
            # generous: a shared 2-core machine; a hang or quadratic blow-up takes minutes
            assert time.perf_counter() - t0 < 5.0


def test_vtable_and_root_offsets_outside_file():
    data = bytearray(model_bytes("kws_ref_model_int8.tflite"))
    root = struct.unpack_from("<I", data, 0)[0]
    bad = bytearray(data)
    struct.pack_into("<i", bad, root, -(len(data) * 4))
    with pytest.raises(ModelFormatError, match="vtable"):
        read_tflite(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 0, len(data) + 100)
    with pytest.raises(ModelFormatError, match="root table offset .* is outside the file"):
        read_tflite(bytes(bad))


def test_read_file_errors(tmp_path):
    with pytest.raises(BadInputError, match="cannot read model file"):
        read_tflite_file(tmp_path / "missing.tflite")
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    with pytest.raises(ModelFormatError, match=r"empty\.tflite: file is too short"):
        read_tflite_file(p)


def test_accepts_bytearray_and_memoryview():
    data = model_bytes("kws_ref_model_int8.tflite")
    a = read_tflite(bytearray(data))
    b = read_tflite(memoryview(data))
    assert a == b
    with pytest.raises(TypeError):
        read_tflite("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# fuzzing
# ---------------------------------------------------------------------------


def _timed(data: bytes) -> float:
    t0 = time.perf_counter()
    parse_or_reject(data)
    return time.perf_counter() - t0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fuzz_truncation(name):
    data = model_bytes(name)
    rng = np.random.default_rng(1234)
    lengths = set(range(65)) | {len(data) - k for k in range(1, 33)}
    lengths |= set(rng.integers(0, len(data), size=300 - len(lengths)).tolist())
    worst = 0.0
    for n in sorted(lengths):
        worst = max(worst, _timed(data[:n]))
    assert worst < 5.0


class _RecordingReader(fb._Reader):
    """The reader, noting every position it decodes a scalar from: the file's structure."""

    def __init__(self, data: bytes, source: str):
        super().__init__(data, source)
        self.touched: set[int] = set()

    def unpack(self, fmt, size, pos, what):
        self.touched.add(pos)
        return super().unpack(fmt, size, pos, what)


_structure_cache: dict[str, list[int]] = {}


def structure_positions(name: str) -> list[int]:
    """Byte positions of the offsets, vtables, lengths and fields a parse reads."""
    if name not in _structure_cache:
        r = _RecordingReader(model_bytes(name), name)
        fb._parse_model(r)
        _structure_cache[name] = sorted(r.touched)
    return _structure_cache[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fuzz_mutation(name):
    data = model_bytes(name)
    structure = structure_positions(name)
    assert len(structure) > 100
    rng = np.random.default_rng(sum(name.encode()))
    head = min(len(data), 4096)
    words = [0, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 1, 0xFFFF]
    parsed = 0
    worst = 0.0
    n_cases = 600
    for i in range(n_cases):
        bad = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            where = rng.random()
            if where < 0.45:  # a field the parser reads (offset, vtable entry, length, value)
                pos = structure[int(rng.integers(0, len(structure)))] + int(rng.integers(-1, 3))
            elif where < 0.85:  # the first 4 KB: root, buffer tables, early data
                pos = int(rng.integers(0, head))
            else:  # anywhere
                pos = int(rng.integers(0, len(data)))
            pos = min(max(pos, 0), len(data) - 4)
            kind = i % 4
            if kind == 0:
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            elif kind == 1:
                bad[pos] = int(rng.integers(0, 256))
            elif kind == 2:
                struct.pack_into("<I", bad, pos, words[int(rng.integers(0, len(words)))])
            else:
                struct.pack_into("<I", bad, pos, int(rng.integers(0, 2**32)))
        t0 = time.perf_counter()
        parsed += parse_or_reject(bytes(bad)) is not None
        worst = max(worst, time.perf_counter() - t0)
    assert worst < 5.0
    assert 0 < parsed < n_cases  # some mutations are harmless, many are caught


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_edits_to_real_model(data):
    raw = model_bytes("kws_ref_model_int8.tflite")
    structure = structure_positions("kws_ref_model_int8.tflite")
    positions = st.one_of(st.sampled_from(structure), st.integers(0, len(raw) - 1))
    edits = data.draw(
        st.lists(st.tuples(positions, st.binary(min_size=1, max_size=4)), min_size=1, max_size=6)
    )
    bad = bytearray(raw)
    for pos, chunk in edits:
        bad[pos : pos + len(chunk)] = chunk
    assert _timed(bytes(bad)[: len(raw)]) < 5.0


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=300),
    root=st.integers(0, 2**32 - 1),
    ident=st.sampled_from([b"TFL3", b"\x00\x00\x00\x00", b"ABCD"]),
)
def test_hypothesis_random_bytes(body, root, ident):
    data = struct.pack("<I", root % 320 if root & 1 else root) + ident + body
    assert _timed(data) < 5.0


# Random *valid* models: what the schema's own writer produces must read back exactly.

_FIXED_TYPES = [
    TensorType.FLOAT32, TensorType.INT8, TensorType.UINT8, TensorType.INT16,
    TensorType.INT32, TensorType.INT64, TensorType.BOOL, TensorType.FLOAT16,
]  # fmt: skip
_I32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def _option_values(draw, options_type):
    values = {}
    for name, _slot, kind, _default in fb._OPTION_FIELDS[options_type]:
        if kind == "padding":
            values[name] = draw(st.sampled_from(list(Padding)))
        elif kind == "act":
            values[name] = draw(st.sampled_from(list(ActivationFunctionType)))
        elif kind == "wfmt":
            values[name] = draw(st.integers(0, 1))
        elif kind == "bool":
            values[name] = draw(st.booleans())
        elif kind == "i32":
            values[name] = draw(_I32)
        elif kind == "i8":
            values[name] = draw(st.integers(-128, 127))
        elif kind == "f32":
            values[name] = draw(st.floats(width=32, allow_nan=False))
        elif kind == "ivec":
            values[name] = draw(st.one_of(st.none(), st.lists(_I32, max_size=5)))
    return values


def _expected_option(kind, value, default):
    if kind in ("padding", "act"):
        return value.name
    if kind == "wfmt":
        return ["DEFAULT", "SHUFFLED4x16INT8"][value]
    if kind == "ivec":
        return default if value is None else tuple(value)
    return value


@st.composite
def _random_model(draw):
    s = _schema()
    buffers = [s.BufferT()]
    tensors, expected_tensors = [], []
    for _ in range(draw(st.integers(1, 5))):
        shape = draw(st.lists(st.integers(0, 4), max_size=4))
        ttype = draw(st.sampled_from(_FIXED_TYPES))
        t = _float_tensor(s, draw(st.text(max_size=8)), shape, ttype=ttype)
        t.isVariable = draw(st.booleans())
        if draw(st.booleans()):
            size = numpy_dtype(ttype).itemsize * int(np.prod(shape, dtype=np.int64))
            raw = draw(st.binary(min_size=size, max_size=size))
            if raw:
                b = s.BufferT()
                b.data = np.frombuffer(raw, np.uint8)
                buffers.append(b)
                t.buffer = len(buffers) - 1
        quant = None
        if draw(st.booleans()):
            per_channel = shape and shape[-1] > 1 and draw(st.booleans())
            n = shape[-1] if per_channel else 1
            scale = draw(st.lists(st.floats(2.0**-20, 16.0, width=32), min_size=n, max_size=n))
            zp = draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n))
            qdim = len(shape) - 1 if per_channel else 0
            t.quantization = _quant(s, scale, zp, qdim)
            quant = Quantization(np.array(scale, np.float32), np.array(zp, np.int64), qdim)
        tensors.append(t)
        expected_tensors.append((t.name, tuple(shape), int(ttype), t.buffer, quant, t.isVariable))

    ops, expected_ops = [], []
    option_types = sorted(fb._OPTION_FIELDS) + [BuiltinOptions.RNNOptions, 0]
    n_t = len(tensors)
    for _ in range(draw(st.integers(0, 3))):
        otype = draw(st.sampled_from(option_types))
        op = s.OperatorT()
        op.opcodeIndex = 0
        op.inputs = draw(st.lists(st.integers(-1, n_t - 1), max_size=3))
        op.outputs = draw(st.lists(st.integers(0, n_t - 1), min_size=1, max_size=2))
        op.builtinOptionsType = otype
        expected_opts = {}
        if otype:
            opt = _options_t(s, otype)
            if otype in fb._OPTION_FIELDS:
                values = draw(_option_values(otype))
                for name, _slot, kind, default in fb._OPTION_FIELDS[otype]:
                    setattr(opt, _camel(name), values[name])
                    expected_opts[name] = _expected_option(kind, values[name], default)
            op.builtinOptions = opt
        ops.append(op)
        expected_ops.append((op.inputs, op.outputs, otype, expected_opts))
    m = _tiny_model(s, tensors=tensors, buffers=buffers, ops=ops)
    return _pack(m), buffers, expected_tensors, expected_ops


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_random_model())
def test_hypothesis_valid_models_round_trip(case):
    data, buffers_t, expected_tensors, expected_ops = case
    model = read_tflite(data)
    assert model.buffers == [
        b"" if bt.data is None else np.asarray(bt.data, np.uint8).tobytes() for bt in buffers_t
    ]
    sg = model.subgraphs[0]
    got_tensors = [
        (t.name, t.shape, t.type, t.buffer, t.quantization, t.is_variable) for t in sg.tensors
    ]
    assert got_tensors == expected_tensors
    got_ops = [(op.inputs, op.outputs, op.builtin_options_type, op.options) for op in sg.operators]
    assert got_ops == [(list(i), list(o), t, opts) for i, o, t, opts in expected_ops]
    # Every prefix of a valid model is either valid or rejected cleanly.
    for cut in range(0, len(data), max(1, len(data) // 16)):
        parse_or_reject(data[:cut])


def test_shared_offsets_cannot_cause_quadratic_work():
    """Many tensor offsets aimed at one tensor with a long shape: rejected, not O(n^2)."""
    import flatbuffers

    k = m = 60_000
    b = flatbuffers.Builder(0)
    b.StartVector(4, m, 4)
    for _ in range(m):
        b.PrependInt32(1)
    shape = b.EndVector()
    b.StartObject(8)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    tensor = b.EndObject()
    b.StartVector(4, k, 4)
    for _ in range(k):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    subgraph = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    data = bytes(b.Output())
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match="references far more data than it contains"):
        read_tflite(data)
    assert time.perf_counter() - t0 < 5.0
