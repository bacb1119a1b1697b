"""ONNX import of Resize (opsets 10-19) / Upsample, ConvTranspose and 1-D Conv/pooling,
against onnxruntime (graph optimizations off): every mode that maps onto TFLite's two
resize flags matches, the others are refused naming the mode."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx_importer import load_onnx  # noqa: E402
from edgekit.ir import DType, OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402

RNG = np.random.default_rng(77)


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def model(nodes, x_shape, inits=None, opset=13, n_out=1):
    """The model with its output types from ONNX shape inference."""
    names = [f"y{i}" for i in range(n_out)] if n_out > 1 else ["y"]
    graph = helper.make_graph(nodes, "t", [vi("x", x_shape)], [helper.make_empty_tensor_value_info(n) for n in names],
                              initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(m)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in m.graph.output:
        if known[o.name].type.tensor_type.HasField("shape"):
            o.CopyFrom(known[o.name])
        else:
            o.CopyFrom(helper.make_tensor_value_info(o.name, TensorProto.FLOAT, None))
    return m


def run_both(m, x, atol=1e-5):
    g = load_onnx(m)
    ref = exact_session(m.SerializeToString()).run(None, {"x": x})
    got = Interpreter(g).run({"x": x}, layout="source")
    for name, r in zip(g.outputs, ref):
        assert got[name].shape == r.shape, (got[name].shape, r.shape)
        np.testing.assert_allclose(got[name], r, rtol=1e-5, atol=atol)
    return g


def resize_node(mode, coord, nearest_mode="round_prefer_floor", sizes=None, scales=None, opset=13):
    inits = {"roi": np.zeros(0, np.float32)}
    ins = ["x", "roi"]
    if scales is not None:
        inits["scales"] = np.asarray(scales, np.float32)
        ins.append("scales")
    else:
        ins.append("")
    if sizes is not None:
        inits["sizes"] = np.asarray(sizes, np.int64)
        ins.append("sizes")
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest_mode
    return helper.make_node("Resize", ins, ["y"], **attrs), inits


NEAREST_OK = [  # (coordinate mode, nearest mode, scales or sizes)
    ("asymmetric", "floor", dict(scales=[1, 1, 2, 2])),
    ("asymmetric", "floor", dict(sizes=[1, 2, 7, 11])),
    ("half_pixel", "round_prefer_ceil", dict(sizes=[1, 2, 9, 6])),
    ("tf_half_pixel_for_nn", "floor", dict(scales=[1, 1, 3, 3])),
    ("align_corners", "round_prefer_ceil", dict(sizes=[1, 2, 9, 11])),
    ("half_pixel", "round_prefer_floor", dict(scales=[1, 1, 2, 2])),  # 2x: the same pixels as floor
]


@pytest.mark.parametrize("coord,nearest_mode,size", NEAREST_OK)
def test_nearest_resize_modes_that_map(coord, nearest_mode, size):
    node, inits = resize_node("nearest", coord, nearest_mode, **size)
    g = run_both(model([node], [1, 2, 4, 5], inits), RNG.standard_normal((1, 2, 4, 5)).astype(np.float32))
    assert [op.type for op in g.ops] == [OpType.RESIZE_NEAREST_NEIGHBOR]


def test_nearest_resize_that_does_not_map_is_refused():
    node, inits = resize_node("nearest", "half_pixel", "round_prefer_floor", sizes=[1, 2, 7, 3])
    with pytest.raises(UnsupportedOpError, match="picks source pixels"):
        load_onnx(model([node], [1, 2, 4, 5], inits))


@pytest.mark.parametrize("coord,size", [
    ("asymmetric", dict(sizes=[1, 2, 7, 11])), ("asymmetric", dict(scales=[1, 1, 2, 2])),
    ("align_corners", dict(sizes=[1, 2, 9, 3])), ("half_pixel", dict(sizes=[1, 2, 8, 3])),
    ("pytorch_half_pixel", dict(scales=[1, 1, 2, 2])), ("half_pixel", dict(sizes=[1, 2, 2, 2]))])
def test_linear_resize_modes_that_map(coord, size):
    node, inits = resize_node("linear", coord, **size)
    g = run_both(model([node], [1, 2, 4, 5], inits), RNG.standard_normal((1, 2, 4, 5)).astype(np.float32))
    assert [op.type for op in g.ops] == [OpType.RESIZE_BILINEAR]


@pytest.mark.parametrize("mode,coord,size,match", [
    ("cubic", "half_pixel", dict(sizes=[1, 2, 8, 10]), "only nearest and linear"),
    ("linear", "tf_crop_and_resize", dict(sizes=[1, 2, 8, 10]), "tf_crop_and_resize"),
    ("linear", "half_pixel", dict(scales=[1, 1, 1.7, 1.7]), "give sizes"),
    ("linear", "asymmetric", dict(sizes=[1, 4, 8, 10]), "batch or channel"),
])
def test_resize_refusals(mode, coord, size, match):
    node, inits = resize_node(mode, coord, **size)
    with pytest.raises(UnsupportedOpError, match=match):
        load_onnx(model([node], [1, 2, 4, 5], inits))


def test_resize_opset10_and_upsample_opset9():
    x = RNG.standard_normal((1, 3, 4, 6)).astype(np.float32)
    for op_type, opset, factors in (("Resize", 10, [2, 3]), ("Resize", 10, [0.5, 0.5]), ("Upsample", 9, [2, 3])):
        for mode in ("nearest", "linear"):
            node = helper.make_node(op_type, ["x", "scales"], ["y"], mode=mode)
            scales = {"scales": np.array([1, 1] + factors, np.float32)}
            run_both(model([node], [1, 3, 4, 6], scales, opset=opset), x)


def test_resize_sizes_computed_by_shape_arithmetic():
    # sizes = Concat(Shape(x)[:2], [8, 10]): constant after folding
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "st", "en"], ["nc"]),
             helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    inits = {"st": np.array([0], np.int64), "en": np.array([2], np.int64), "hw": np.array([8, 10], np.int64)}
    run_both(model(nodes, [1, 2, 4, 5], inits), RNG.standard_normal((1, 2, 4, 5)).astype(np.float32))


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(strides=[2, 2]),
    dict(strides=[2, 1], pads=[0, 1, 0, 1]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[2, 2], output_shape=[9, 8]),
])
def test_conv_transpose_matches_onnxruntime(attrs):
    wt = (RNG.standard_normal((3, 4, 3, 3)) * 0.3).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    g = run_both(model([node], [2, 3, 4, 4], {"w": wt, "b": b}), RNG.standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert [op.type for op in g.ops] == [OpType.TRANSPOSE_CONV]


def test_conv1d_stack_with_pooling_matches_onnxruntime():
    w1 = (RNG.standard_normal((8, 3, 5)) * 0.3).astype(np.float32)
    w2 = (RNG.standard_normal((8, 1, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2], strides=[2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], group=8, strides=[2], auto_pad="SAME_UPPER"),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[3], pads=[1, 1], count_include_pad=1),
             helper.make_node("GlobalMaxPool", ["p2"], ["y0"]),
             helper.make_node("GlobalAveragePool", ["p2"], ["y1"])]
    m = model(nodes, [2, 3, 32], {"w1": w1, "b1": RNG.standard_normal(8).astype(np.float32), "w2": w2}, n_out=2)
    g = run_both(m, RNG.standard_normal((2, 3, 32)).astype(np.float32))
    types = [op.type for op in g.ops]
    assert types.count(OpType.CONV_2D) == 1 and types.count(OpType.DEPTHWISE_CONV_2D) == 1
    assert OpType.RELU not in types  # fused into the convs through the NHWC view


@pytest.mark.parametrize("attrs", [dict(strides=[2], pads=[1, 1], output_padding=[1]), dict(strides=[3]),
                                   dict(strides=[2], output_shape=[12])])
def test_conv_transpose_1d_matches_onnxruntime(attrs):
    wt = (RNG.standard_normal((3, 2, 3)) * 0.3).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
    g = run_both(model([node], [2, 3, 5], {"w": wt}), RNG.standard_normal((2, 3, 5)).astype(np.float32))
    assert OpType.TRANSPOSE_CONV in [op.type for op in g.ops]


@pytest.mark.parametrize("mode,coord,size", [("nearest", "asymmetric", dict(scales=[1, 1, 2])),
                                             ("linear", "half_pixel", dict(sizes=[2, 3, 13])),
                                             ("linear", "align_corners", dict(sizes=[2, 3, 4]))])
def test_1d_resize_matches_onnxruntime(mode, coord, size):
    node, inits = resize_node(mode, coord, "floor", **size)
    g = run_both(model([node], [2, 3, 7], inits), RNG.standard_normal((2, 3, 7)).astype(np.float32))
    assert {OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR} & {op.type for op in g.ops}


def test_ort_quantized_qdq_model_runs_its_resizes_and_transposed_conv_in_int8(tmp_path):
    q = pytest.importorskip("onnxruntime.quantization")
    wt = (RNG.standard_normal((3, 4, 4, 4)) * 0.3).astype(np.float32)  # [Cin, Cout, KH, KW]
    wc = (RNG.standard_normal((2, 4, 3, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Resize", ["r", "", "", "s1"], ["n"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Resize", ["n", "", "", "s2"], ["b"], mode="linear",
                              coordinate_transformation_mode="half_pixel"),
             helper.make_node("Conv", ["b", "wc", "bc"], ["y"], pads=[1, 1, 1, 1])]
    inits = {"wt": wt, "bt": RNG.standard_normal(4).astype(np.float32) * 0.1, "wc": wc,
             "bc": RNG.standard_normal(2).astype(np.float32) * 0.1,
             "s1": np.array([1, 4, 16, 12], np.int64), "s2": np.array([1, 4, 11, 9], np.int64)}
    calib = [RNG.standard_normal((1, 3, 4, 3)).astype(np.float32) for _ in range(16)]

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x}

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(model(nodes, [1, 3, 4, 3], inits), src)
    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, per_channel=True)
    g = load_onnx(dst)
    int8_ops = {op.type for op in g.ops if g.tensor(op.outputs[0]).dtype is DType.INT8}
    assert {OpType.TRANSPOSE_CONV, OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR} <= int8_ops
    tc = next(op for op in g.ops if op.type is OpType.TRANSPOSE_CONV)
    assert g.tensor(tc.inputs[1]).quant.axis == 0 and g.tensor(tc.inputs[2]).dtype is DType.INT32
    sess = exact_session(str(dst))
    xs = np.concatenate([RNG.standard_normal((1, 3, 4, 3)).astype(np.float32) for _ in range(8)])
    ref = np.concatenate([sess.run(None, {"x": xs[i:i + 1]})[0] for i in range(len(xs))])
    got = Interpreter(g).run({"x": xs}, layout="source")["y"]
    out_scale = g.tensor(next(op for op in g.ops if op.type is OpType.DEQUANTIZE).inputs[0]).quant.scale[0]
    # int8 arithmetic differs from onnxruntime's float-between-QDQ only by rounding
    assert np.abs(got - ref).max() <= 4 * out_scale + 1e-6
