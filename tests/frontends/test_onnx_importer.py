"""ONNX importer: float models against onnxruntime, the shared QDQ models, error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.ort_oracle import exact_session

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx_importer import SUPPORTED_ONNX_OPS, load_onnx  # noqa: E402
from edgekit.ir import DType, OpType  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ONNX_DIR = SHARED / "models" / "mlperf-tiny" / "onnx"
KWS_ONNX = ONNX_DIR / "v1.3_kai_jiang_kws_ref_model.onnx"
AD_ONNX = ONNX_DIR / "v1.3_kai_jiang_ad_deep_autoencoder.onnx"
KWS_DATA = SHARED / "data" / "kws01" / "kws01_test1000.npz"
AD_DATA = SHARED / "data" / "ad01" / "normal_id_01_00000000_windows_f32_196x640.npy"
# The KWS model's float input is the int8 MFCC dequantized with the TFLite model's
# input parameters (see shared/models/mlperf-tiny/PROVENANCE.md).
KWS_IN_SCALE, KWS_IN_ZP = np.float32(0.5847029), 83

RNG = np.random.default_rng(1234)


def _interp():
    mod = pytest.importorskip("edgekit.reference.interpreter",
                              reason="the reference interpreter (edgekit.reference.interpreter) is not there yet")
    return mod.Interpreter



# -- model building ---------------------------------------------------------------------

def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, inits=None, opset=13):
    graph = helper.make_graph(nodes, "test", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgekit-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def run_both(model, feeds, rtol=1e-5, atol=1e-5, **load_kw):
    """Import, run in source layout, compare every output with onnxruntime."""
    Interpreter = _interp()
    g = load_onnx(model, **load_kw)
    sess = exact_session(model.SerializeToString())
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    got = Interpreter(g).run(feeds, layout="source")
    assert set(got) == set(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape, name
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=atol, err_msg=name)
    return g


# -- float models ------------------------------------------------------------------------

def test_conv_bn_relu_pool_flatten_gemm_softmax():
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3, name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Flatten", ["p1"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="softmax"),
    ]
    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "g": 1 + w(8, scale=0.1), "beta": w(8), "mean": w(8),
             "var": np.abs(w(8)) + 0.5, "wf": w(10, 8 * 4 * 4, scale=0.1), "bf": w(10)}
    m = make_model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", [1, 10])], inits)
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    g = run_both(m, {"x": x})
    assert g.metadata["source_format"] == "onnx"
    assert g.metadata["io_layout"] == {"x": "NCHW"}
    assert g.tensor("x").shape == (1, 8, 8, 3)
    types = g.op_types()
    assert "BATCH_NORM" not in types and "TRANSPOSE" not in types  # BN folded, NCHW flatten folded into FC
    conv = next(op for op in g.ops if op.type is OpType.CONV_2D)
    assert conv.attrs["activation"] == "RELU"
    assert g.tensor(conv.inputs[1]).shape == (8, 3, 3, 3)  # OHWI: [Cout, KH, KW, Cin]


def test_nchw_flatten_before_gemm_keeps_element_order():
    # A 2x3x3 feature map flattened in NCHW order: the IR must reproduce that order.
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1, name="fc")]
    inits = {"w1": w(2, 1, 1, 1), "shape": np.array([1, -1], np.int64), "wf": w(4, 18)}
    m = make_model(nodes, [vi("x", [1, 1, 3, 3])], [vi("y", [1, 4])], inits)
    g = run_both(m, {"x": RNG.standard_normal((1, 1, 3, 3)).astype(np.float32)})
    assert "TRANSPOSE" not in g.op_types()


def test_depthwise_with_multiplier_and_relu6():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=4, strides=[2, 2], auto_pad="SAME_UPPER",
                              name="dw"),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="relu6")]
    inits = {"w": w(8, 1, 3, 3), "b": w(8), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    m = make_model(nodes, [vi("x", [1, 4, 9, 7])], [vi("y", [1, 8, 5, 4])], inits)
    x = (RNG.standard_normal((1, 4, 9, 7)) * 4).astype(np.float32)
    g = run_both(m, {"x": x})
    dw = next(op for op in g.ops if op.type is OpType.DEPTHWISE_CONV_2D)
    assert dw.attrs["depth_multiplier"] == 2 and dw.attrs["activation"] == "RELU6"
    assert g.tensor(dw.inputs[1]).shape == (1, 3, 3, 8)
    assert g.metadata["io_layout"] == {"x": "NCHW", "y": "NCHW"}


def test_residual_add_and_channel_constants():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Add", ["c", "x"], ["s"], name="residual"),
             helper.make_node("Mul", ["s", "scale"], ["m"], name="mul_c11"),
             helper.make_node("Sub", ["m", "shift"], ["d"], name="sub_c11"),
             helper.make_node("Div", ["d", "div"], ["y"], name="div_const")]
    inits = {"w1": w(3, 3, 3, 3), "scale": w(3, 1, 1) + 1, "shift": w(3, 1, 1), "div": np.array(2.5, np.float32)}
    m = make_model(nodes, [vi("x", [1, 3, 5, 5])], [vi("y", [1, 3, 5, 5])], inits)
    g = run_both(m, {"x": RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)})
    assert "MUL" in g.op_types() and "ADD" in g.op_types()


def test_concat_pad_avgpool_include_pad():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="ca"),
             helper.make_node("Conv", ["x", "w2"], ["b"], name="cb"),
             helper.make_node("Concat", ["a", "b"], ["cat"], axis=1, name="cat"),
             helper.make_node("Pad", ["cat", "pads", "val"], ["p"], mode="constant", name="pad"),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=1, name="avg")]
    inits = {"w1": w(2, 3, 1, 1), "w2": w(3, 3, 1, 1), "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64),
             "val": np.array(0.5, np.float32)}
    m = make_model(nodes, [vi("x", [1, 3, 4, 4])], [vi("y", [1, 5, 5, 6])], inits)
    g = run_both(m, {"x": RNG.standard_normal((1, 3, 4, 4)).astype(np.float32)})
    assert "CONCATENATION" in g.op_types() and "PAD" in g.op_types()


def test_sigmoid_tanh_reducemean_globalpool():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Tanh", ["s"], ["t"]),
             helper.make_node("ReduceMean", ["t"], ["rm"], axes=[2, 3], keepdims=0),
             helper.make_node("GlobalAveragePool", ["t"], ["gp"]),
             helper.make_node("ReduceMean", ["x"], ["rw"], axes=[3], keepdims=0)]
    m = make_model(nodes, [vi("x", [1, 4, 5, 6])], [vi("rm", [1, 4]), vi("gp", [1, 4, 1, 1]), vi("rw", [1, 4, 5])],
                   opset=13)
    run_both(m, {"x": RNG.standard_normal((1, 4, 5, 6)).astype(np.float32)})


def test_matmul_reshape_transpose_squeeze_and_shape_arithmetic():
    # PyTorch-style flatten: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, all folded.
    nodes = [helper.make_node("Shape", ["x"], ["shp"]),
             helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("MatMul", ["flat", "wm"], ["mm"]),
             helper.make_node("Unsqueeze", ["mm", "ax2"], ["u"]),
             helper.make_node("Transpose", ["u"], ["tr"], perm=[0, 2, 1]),
             helper.make_node("Squeeze", ["tr", "ax1"], ["y"])]
    inits = {"zero": np.array(0, np.int64), "ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
             "wm": w(24, 7), "ax2": np.array([2], np.int64), "ax1": np.array([1], np.int64)}
    m = make_model(nodes, [vi("x", [1, 2, 3, 4])], [vi("y", [1, 7])], inits)
    run_both(m, {"x": RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)})


def test_gemm_alpha_beta_transposes():
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=1, transB=0)]
    inits = {"b": w(6, 4), "c": w(1, 4)}
    m = make_model(nodes, [vi("a", [6, 1])], [vi("y", [1, 4])], inits)
    run_both(m, {"a": RNG.standard_normal((6, 1)).astype(np.float32)})


def test_clip_minus1_1_fuses_and_pool_ceil_mode():
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv"),
             helper.make_node("Clip", ["c", "lo", "hi"], ["cl"], name="clip"),
             helper.make_node("MaxPool", ["cl"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                              name="pool")]
    inits = {"w1": w(2, 2, 1, 1, scale=2), "b1": w(2), "lo": np.array(-1, np.float32), "hi": np.array(1, np.float32)}
    m = make_model(nodes, [vi("x", [1, 2, 5, 5])], [vi("y", [1, 2, 3, 3])], inits)
    g = run_both(m, {"x": RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)})
    conv = next(op for op in g.ops if op.type is OpType.CONV_2D)
    assert conv.attrs["activation"] == "RELU_N1_TO_1"


def test_dynamic_batch_and_input_shapes():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = make_model(nodes, [vi("x", ["N", 3, "H", 4])], [vi("y", ["N", 3, "H", 4])])
    with pytest.raises(BadInputError, match="input_shapes"):
        load_onnx(m)
    g = load_onnx(m, input_shapes={"x": [1, 3, 6, 4]})
    assert g.tensor("x").shape == (1, 6, 4, 3)
    m2 = make_model(nodes, [vi("x", ["N", 3, 2, 4])], [vi("y", ["N", 3, 2, 4])])
    assert load_onnx(m2).tensor("x").shape == (1, 2, 4, 3)
    with pytest.raises(BadInputError, match="unknown input"):
        load_onnx(m2, input_shapes={"nope": [1]})


def test_identity_dropout_removed_and_outputs_keep_names(tmp_path):
    nodes = [helper.make_node("Identity", ["x"], ["i"]),
             helper.make_node("Dropout", ["i"], ["d"]),
             helper.make_node("Relu", ["d"], ["y"])]
    m = make_model(nodes, [vi("x", [2, 5])], [vi("y", [2, 5])])
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    for src in (m, path, str(path), path.read_bytes()):
        g = load_onnx(src)
        assert g.op_types() == ["RELU"] and g.outputs == ["y"] and g.inputs == ["x"]


def make_model_inferred(nodes, inputs, outputs, inits=None, opset=13):
    """Like make_model, with the output types filled in by ONNX shape inference."""
    graph = helper.make_graph(nodes, "test", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(m)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in m.graph.output:
        o.CopyFrom(known[o.name])
    onnx.checker.check_model(m)
    return m


N = helper.make_node
I64 = np.int64
PATTERNS = {
    "conv_same_lower": ([N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])], [1, 2, 7, 8],
                        {"w": w(3, 2, 3, 2)}, 13),
    "conv_dilated_asym_pads": ([N("Conv", ["x", "w"], ["y"], pads=[2, 1, 1, 0], strides=[2, 1], dilations=[2, 3])],
                               [1, 2, 9, 8], {"w": w(3, 2, 3, 2)}, 13),
    "avgpool_exclude_pad": ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 0, 2, 1], strides=[2, 1])],
                            [1, 2, 6, 5], {}, 13),
    "avgpool_ceil": ([N("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
                     [1, 2, 5, 5], {}, 13),
    "maxpool_ceil_pads": ([N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                             ceil_mode=1)], [1, 2, 6, 6], {}, 13),
    "transpose_4d_to_nhwc": ([N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), N("Relu", ["t"], ["y"])],
                             [1, 2, 3, 4], {}, 13),
    "transpose_4d_any": ([N("Transpose", ["x"], ["y"], perm=[3, 1, 0, 2])], [1, 2, 3, 4], {}, 13),
    "concat_height": ([N("Concat", ["x", "c"], ["y"], axis=2)], [1, 2, 3, 4], {"c": w(1, 2, 2, 4)}, 13),
    "pad_opset18_axes": ([N("Pad", ["x", "p", "v", "ax"], ["y"])], [1, 2, 3, 4],
                         {"p": np.array([1, 0, 2, 3], I64), "v": np.array(1.5, np.float32),
                          "ax": np.array([2, -1], I64)}, 18),
    "reducemean_opset18_channel": ([N("ReduceMean", ["x", "ax"], ["y"], keepdims=0)], [1, 2, 3, 4],
                                   {"ax": np.array([1], I64)}, 18),
    "softmax_opset11_flattening": ([N("Softmax", ["x"], ["y"], axis=1)], [2, 3, 4], {}, 11),
    "softmax_nchw_channels": ([N("Softmax", ["x"], ["y"], axis=1)], [1, 3, 2, 2], {}, 13),
    "unsqueeze_to_conv": ([N("Unsqueeze", ["x", "a"], ["u"]), N("Conv", ["u", "w"], ["y"])], [1, 6, 5],
                          {"a": np.array([1], I64), "w": w(2, 1, 3, 3)}, 13),
    "matmul_4d": ([N("MatMul", ["x", "w"], ["y"])], [1, 2, 3, 4], {"w": w(4, 5)}, 13),
    "matmul_3d": ([N("MatMul", ["x", "w"], ["y"])], [2, 3, 4], {"w": w(4, 5)}, 13),
    "matmul_vector": ([N("MatMul", ["x", "w"], ["y"])], [2, 4], {"w": w(4)}, 13),
    "gemm_matrix_bias": ([N("Gemm", ["x", "b", "c"], ["y"], transB=1)], [3, 4], {"b": w(5, 4), "c": w(3, 5)}, 13),
    "sub_constant_first": ([N("Sub", ["c", "x"], ["y"])], [1, 3, 2, 2], {"c": w(3, 1, 1)}, 13),
    "flatten_axis2": ([N("Flatten", ["x"], ["y"], axis=2)], [1, 2, 3, 4], {}, 13),
    "batchnorm_alone": ([N("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"])], [1, 3, 2, 2],
                        {"g": w(3), "b": w(3), "m": w(3), "v": np.abs(w(3)) + 1}, 13),
    "batchnorm_3d": ([N("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"])], [2, 3, 5],
                     {"g": w(3), "b": w(3), "m": w(3), "v": np.abs(w(3)) + 1}, 13),
    "global_max_pool": ([N("GlobalMaxPool", ["x"], ["y"])], [1, 3, 4, 5], {}, 13),
    "add_lower_rank_runtime": ([N("ReduceMean", ["x"], ["m"], axes=[0, 1], keepdims=0), N("Add", ["x", "m"], ["y"])],
                               [1, 3, 2, 2], {}, 13),
    "scalar_constant_node": ([N("Constant", [], ["c"], value_float=2.0), N("Mul", ["x", "c"], ["y"])], [2, 2], {}, 13),
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_float_patterns_match_onnxruntime(name):
    nodes, shape, inits, opset = PATTERNS[name]
    m = make_model_inferred(nodes, [vi("x", shape)], ["y"], inits, opset)
    run_both(m, {"x": RNG.standard_normal(shape).astype(np.float32)})


# -- QDQ models made by onnxruntime's quantizer -------------------------------------------

def _small_cnn():
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], group=8, pads=[1, 1, 1, 1], name="dw"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Add", ["r1", "r2"], ["s"], name="add"),
             helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("GlobalAveragePool", ["p"], ["gp"], name="gap"),
             helper.make_node("Flatten", ["gp"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc")]
    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "w2": w(8, 1, 3, 3), "b2": w(8), "wf": w(5, 8), "bf": w(5)}
    return make_model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", [1, 5])], inits)


@pytest.mark.parametrize("act_type,per_channel", [("QUInt8", False), ("QInt8", True)])
def test_ort_quantized_qdq_model(tmp_path, act_type, per_channel):
    q = pytest.importorskip("onnxruntime.quantization")
    Interpreter = _interp()

    calib = [RNG.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(16)]

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x}

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_small_cnn(), src)
    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=getattr(q.QuantType, act_type), weight_type=q.QuantType.QInt8,
                      per_channel=per_channel)
    g = load_onnx(dst)
    convs = [op for op in g.ops if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)]
    assert len(convs) == 3
    for op in convs:
        assert g.tensor(op.inputs[0]).dtype is DType.INT8 and g.tensor(op.inputs[1]).dtype is DType.INT8
        assert g.tensor(op.inputs[2]).dtype is DType.INT32
        if per_channel and op.type is not OpType.FULLY_CONNECTED:
            assert g.tensor(op.inputs[1]).quant.axis == (0 if op.type is OpType.CONV_2D else 3)
    assert g.tensor(g.inputs[0]).dtype is DType.FLOAT32 and g.tensor(g.outputs[0]).dtype is DType.FLOAT32
    sess = exact_session(str(dst))
    xs = np.concatenate([RNG.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(32)])
    ref = np.concatenate([sess.run(None, {"x": xs[i:i + 1]})[0] for i in range(len(xs))])
    got = Interpreter(g).run({"x": xs}, layout="source")["y"]
    out_scale = g.tensor(next(op for op in g.ops if op.type is OpType.DEQUANTIZE).inputs[0]).quant.scale[0]
    # int8 arithmetic differs from onnxruntime's only by requantization rounding.
    assert np.abs(got - ref).max() <= 4 * out_scale + 1e-6


# -- the shared MLPerf Tiny QDQ models ----------------------------------------------------

def _need(*paths):
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} is absent (the shared/ folder is not next to this checkout)")


def _kws_float_inputs(spec_shape):
    d = np.load(KWS_DATA)
    x = (d["x_int8"].astype(np.float32) - KWS_IN_ZP) * KWS_IN_SCALE  # [N, 49, 10, 1]
    return x.reshape((len(x),) + tuple(spec_shape[1:])), d["y"]


def test_kws_qdq_model_matches_onnxruntime_top1():
    _need(KWS_ONNX, KWS_DATA)
    Interpreter = _interp()
    g = load_onnx(KWS_ONNX)
    # The int8 path: every conv / depthwise / fully-connected runs on int8 tensors.
    weighted = [op for op in g.ops if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)]
    assert len(weighted) == 10
    for op in weighted:
        assert g.tensor(op.inputs[0]).dtype is DType.INT8 and g.tensor(op.inputs[1]).dtype is DType.INT8
    dws = [op for op in weighted if op.type is OpType.DEPTHWISE_CONV_2D]
    assert len(dws) == 4 and all(g.tensor(op.inputs[1]).quant.axis == 3 for op in dws)

    sess = exact_session(str(KWS_ONNX))
    spec = sess.get_inputs()[0]
    assert spec.type == "tensor(float)"
    x, y = _kws_float_inputs(spec.shape)
    ref = np.concatenate([sess.run(None, {spec.name: x[i:i + 1]})[0] for i in range(len(x))])
    got = Interpreter(g).run({spec.name: x}, layout="source")[g.outputs[0]]
    acc_ort = float((ref.argmax(1) == y).mean())
    acc_ek = float((got.argmax(1) == y).mean())
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    print(f"\nKWS QDQ top-1: onnxruntime {acc_ort:.3f}, edgekit {acc_ek:.3f}, per-sample argmax agreement {agree:.3f}")
    # edgekit's int8 kernels round as TFLite Micro does (fixed-point requantization),
    # onnxruntime in float: a few borderline samples flip, the accuracy does not move.
    assert abs(acc_ek - acc_ort) <= 0.005
    assert acc_ek >= 0.895
    assert agree >= 0.98


def test_ad_qdq_model_reconstruction_error_matches_onnxruntime():
    _need(AD_ONNX, AD_DATA)
    Interpreter = _interp()
    g = load_onnx(AD_ONNX)
    fcs = [op for op in g.ops if op.type is OpType.FULLY_CONNECTED]
    assert len(fcs) == 10 and all(g.tensor(op.inputs[0]).dtype is DType.INT8 for op in fcs)
    x = np.load(AD_DATA).astype(np.float32)
    sess = exact_session(str(AD_ONNX))
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    got = Interpreter(g).run({name: x})[g.outputs[0]]
    mse_ref = ((x - ref) ** 2).mean(axis=1)
    mse_got = ((x - got) ** 2).mean(axis=1)
    print(f"\nAD QDQ mean reconstruction MSE: onnxruntime {mse_ref.mean():.4f}, edgekit {mse_got.mean():.4f}")
    assert abs(mse_got.mean() - mse_ref.mean()) <= 0.01 * mse_ref.mean()
    assert np.corrcoef(mse_ref, mse_got)[0, 1] > 0.98


# -- errors -------------------------------------------------------------------------------

def test_unsupported_op_names_op_node_and_supported_list():
    m = make_model([helper.make_node("Det", ["x"], ["y"], name="det_1")],
                   [vi("x", [2, 4, 4])], [vi("y", [2])])
    with pytest.raises(UnsupportedOpError) as ei:
        load_onnx(m)
    e = ei.value
    assert e.op == "Det" and e.node == "det_1" and e.exit_code == 2
    assert "Det" in str(e) and "det_1" in str(e)
    assert "Conv" in e.supported and "Conv" in str(e)
    assert list(e.supported) == sorted(SUPPORTED_ONNX_OPS)


def test_grouped_conv_is_rejected_with_detail():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], group=2, name="gconv")],
                   [vi("x", [1, 4, 5, 5])], [vi("y", [1, 4, 3, 3])], {"w": w(4, 2, 3, 3)})
    with pytest.raises(UnsupportedOpError, match="group=2"):
        load_onnx(m)


# Softmax over any axis and Clip with constant bounds are supported now (the node
# conformance tests); a scalar softmax and run-time Clip bounds are not.
@pytest.mark.parametrize("node,detail,shape", [
    (helper.make_node("Softmax", ["x"], ["y"]), "softmax of a scalar", []),
    (helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect"), "reflect", [1, 2, 3, 4]),
    (helper.make_node("Clip", ["x", "lo_run_time", "hi"], ["y"]), "min must be a constant", [1, 2, 3, 4]),
])
def test_rejected_variants(node, detail, shape):
    inits = {"p": np.zeros(8, np.int64), "hi": np.array(2, np.float32)}
    used = {k: v for k, v in inits.items() if k in node.input}
    inputs = [vi("x", shape)] + [vi(n, []) for n in node.input if n.endswith("_run_time")]
    m = make_model([node], inputs, [vi("y", shape)], used)
    with pytest.raises(UnsupportedOpError, match=detail):
        load_onnx(m)


def test_runtime_weights_rejected():
    # (MatMul of two run-time tensors is a BATCH_MATMUL: tests/frontends/test_onnx_reduction.py)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", [1, 1, 4, 4]), vi("w", [2, 1, 3, 3])],
                   [vi("y", [1, 2, 2, 2])])
    with pytest.raises(UnsupportedOpError, match="constant"):
        load_onnx(m)


def test_malformed_files(tmp_path):
    m = _small_cnn()
    data = m.SerializeToString()
    with pytest.raises(ModelFormatError) as ei:
        load_onnx(data[: len(data) // 3])
    assert ei.value.exit_code == 2
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[:100])
    with pytest.raises(ModelFormatError, match=str(bad)):
        load_onnx(bad)
    with pytest.raises(ModelFormatError):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ModelFormatError):
        load_onnx(b"")
    with pytest.raises(ModelFormatError):
        load_onnx(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    # a node reading a tensor that nothing produces (a missing initializer)
    broken = onnx.ModelProto()
    broken.CopyFrom(m)
    del broken.graph.initializer[0]
    with pytest.raises(ModelFormatError):
        load_onnx(broken.SerializeToString())


def test_qdq_int8_input_unwrapped_op_stays_float_and_int8_softmax():
    Interpreter = _interp()
    i8, f32 = np.int8, np.float32
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xd"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0, name="dq_w"),
             helper.make_node("DequantizeLinear", ["bq", "sb"], ["bd"], axis=0, name="dq_b"),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("QuantizeLinear", ["c", "sc", "zc"], ["cq"], name="q_conv"),
             helper.make_node("DequantizeLinear", ["cq", "sc", "zc"], ["cd"], name="dq_conv"),
             helper.make_node("Sigmoid", ["cd"], ["y"], name="sigmoid"),  # not wrapped: stays float
             helper.make_node("Softmax", ["cd"], ["sm"], axis=1, name="softmax"),
             helper.make_node("QuantizeLinear", ["sm", "ss", "zs"], ["smq"], name="q_sm"),
             helper.make_node("DequantizeLinear", ["smq", "ss", "zs"], ["z"], name="dq_sm")]
    sw = np.array([0.01, 0.02, 0.015, 0.03], f32)
    sx = f32(0.05)
    inits = {"sx": sx, "zx": np.array(3, i8), "wq": RNG.integers(-127, 128, (4, 2, 3, 3)).astype(i8), "sw": sw,
             "zw": np.zeros(4, i8), "bq": RNG.integers(-500, 500, 4).astype(np.int32), "sb": (sx * sw).astype(f32),
             "sc": np.array(0.08, f32), "zc": np.array(-5, i8), "ss": np.array(1 / 256, f32),
             "zs": np.array(-128, i8)}
    m = make_model(nodes, [vi("x", [1, 2, 5, 5], TensorProto.INT8)], [vi("y", [1, 4, 5, 5]), vi("z", [1, 4, 5, 5])],
                   inits)
    g = load_onnx(m)
    xt = g.tensor("x")
    assert xt.dtype is DType.INT8 and xt.quant.scale[0] == pytest.approx(0.05) and xt.quant.zero_point == (3,)
    conv = next(op for op in g.ops if op.type is OpType.CONV_2D)
    assert g.tensor(conv.inputs[0]).dtype is DType.INT8 and g.tensor(conv.outputs[0]).dtype is DType.INT8
    sig = next(op for op in g.ops if op.type is OpType.LOGISTIC)
    assert g.tensor(sig.inputs[0]).dtype is DType.FLOAT32
    sm = next(op for op in g.ops if op.type is OpType.SOFTMAX)
    assert g.tensor(sm.outputs[0]).dtype is DType.INT8
    x = RNG.integers(-128, 128, (1, 2, 5, 5)).astype(i8)
    sess = exact_session(m.SerializeToString())
    ry, rz = sess.run(None, {"x": x})
    got = Interpreter(g).run({"x": x}, layout="source")
    assert np.abs(got["y"] - ry).max() <= 0.25 * 0.08 + 1e-6  # one output step through the sigmoid
    assert np.abs(got["z"] - rz).max() <= 2 / 256 + 1e-6


def test_qdq_matmul_with_transposed_int8_weights():
    Interpreter = _interp()
    i8, f32 = np.int8, np.float32
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("Transpose", ["wd"], ["wt"], perm=[1, 0]),  # [N, K] -> [K, N]
             helper.make_node("MatMul", ["xd", "wt"], ["mm"]),
             helper.make_node("Relu", ["mm"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["y"])]
    inits = {"sx": np.array(0.04, f32), "zx": np.array(0, i8), "wq": RNG.integers(-127, 128, (6, 10)).astype(i8),
             "sw": (0.01 + 0.01 * RNG.random(6)).astype(f32), "zw": np.zeros(6, i8),
             "sy": np.array(0.05, f32), "zy": np.array(-128, i8)}
    m = make_model(nodes, [vi("x", [3, 10])], [vi("y", [3, 6])], inits)
    g = load_onnx(m)
    fc = next(op for op in g.ops if op.type is OpType.FULLY_CONNECTED)
    wt = g.tensor(fc.inputs[1])
    assert wt.dtype is DType.INT8 and wt.shape == (6, 10) and wt.quant.axis == 0
    assert fc.attrs["activation"] == "RELU" and g.tensor(fc.outputs[0]).dtype is DType.INT8
    x = RNG.standard_normal((3, 10)).astype(f32)
    ref = exact_session(m.SerializeToString()).run(None, {"x": x})[0]
    got = Interpreter(g).run({"x": x})["y"]
    assert np.abs(got - ref).max() <= 0.05 + 1e-6
