"""Small int8 graphs that together use every op the C backend compiles, with random
weights and quantization from the quantizer (or hand-set where the quantizer never
produces a case, e.g. a weight zero point).

Each builder returns ``(int8 graph, inputs)``: inputs as the graph takes them.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, QuantParams, verify
from edgekit.quantize import quantize


def _w(rng, *shape, scale=0.3):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def _tensors(g: Graph, spec):
    for name, shape in spec:
        g.add_tensor(name, shape, DType.FLOAT32)


def convs_graph(rng) -> Graph:
    """RELU6 (unfused, on the input), conv 3x3, depthwise x2 stride 2, conv 1x1, max and
    average pooling with padding, reshape, fully connected, softmax."""
    g = Graph("convs")
    _tensors(g, [("x", (1, 9, 9, 3)), ("x6", (1, 9, 9, 3)), ("c1", (1, 9, 9, 8)),
                 ("d1", (1, 5, 5, 16)), ("c2", (1, 5, 5, 12)), ("p1", (1, 3, 3, 12)),
                 ("a1", (1, 3, 3, 12)), ("flat", (1, 108)), ("logits", (1, 10)), ("probs", (1, 10))])
    g.add_const("w1", _w(rng, 8, 3, 3, 3))
    g.add_const("b1", _w(rng, 8, scale=0.1))
    g.add_const("wd", _w(rng, 1, 3, 3, 16))
    g.add_const("bd", _w(rng, 16, scale=0.1))
    g.add_const("w2", _w(rng, 12, 1, 1, 16))
    g.add_const("b2", _w(rng, 12, scale=0.1))
    g.add_const("wf", _w(rng, 10, 108, scale=0.1))
    g.add_const("bf", _w(rng, 10, scale=0.1))
    op = g.add_op
    op(OpType.RELU6, ["x"], ["x6"], name="relu6")
    op(OpType.CONV_2D, ["x6", "w1", "b1"], ["c1"], {"pads": (1, 1, 1, 1), "activation": "RELU"}, "conv1")
    op(OpType.DEPTHWISE_CONV_2D, ["c1", "wd", "bd"], ["d1"],
       {"pads": (1, 1, 1, 1), "strides": (2, 2), "depth_multiplier": 2, "activation": "RELU6"}, "dw")
    op(OpType.CONV_2D, ["d1", "w2", "b2"], ["c2"], name="conv_1x1")
    op(OpType.MAX_POOL_2D, ["c2"], ["p1"], {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 1, 1)},
       "maxpool")
    op(OpType.AVERAGE_POOL_2D, ["p1"], ["a1"], {"kernel": (3, 3), "strides": (1, 1),
                                                "pads": (1, 1, 1, 1)}, "avgpool")
    op(OpType.RESHAPE, ["a1"], ["flat"], {"shape": (1, 108)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "wf", "bf"], ["logits"], name="fc")
    op(OpType.SOFTMAX, ["logits"], ["probs"], name="softmax")
    g.inputs, g.outputs = ["x"], ["probs"]
    verify(g)
    return g


def elementwise_graph(rng) -> Graph:
    """ADD / MUL (with a broadcast constant) / SUB, LOGISTIC and TANH into a
    CONCATENATION (the quantizer requantizes one side), PAD, TRANSPOSE, an unfused RELU,
    MEAN, reshape and fully connected."""
    g = Graph("elementwise")
    _tensors(g, [("x", (1, 6, 6, 4)), ("a", (1, 6, 6, 4)), ("s", (1, 6, 6, 4)), ("m", (1, 6, 6, 4)),
                 ("d", (1, 6, 6, 4)), ("lg", (1, 6, 6, 4)), ("th", (1, 6, 6, 4)),
                 ("cat", (1, 6, 6, 8)), ("pd", (1, 7, 7, 8)), ("tr", (1, 7, 7, 8)), ("rl", (1, 7, 7, 8)),
                 ("mn", (1, 1, 1, 8)), ("flat", (1, 8)), ("y", (1, 5))])
    g.add_const("wa", _w(rng, 4, 1, 1, 4))
    g.add_const("ba", _w(rng, 4, scale=0.1))
    g.add_const("k", np.array([0.5, -1.5, 2.0, 1.0], np.float32))
    g.add_const("wf", _w(rng, 5, 8))
    g.add_const("bf", _w(rng, 5, scale=0.1))
    op = g.add_op
    op(OpType.CONV_2D, ["x", "wa", "ba"], ["a"], name="conv")
    op(OpType.ADD, ["x", "a"], ["s"], name="add")
    op(OpType.MUL, ["s", "k"], ["m"], name="mul")
    op(OpType.SUB, ["m", "a"], ["d"], name="sub")
    op(OpType.LOGISTIC, ["d"], ["lg"], name="logistic")
    op(OpType.TANH, ["d"], ["th"], name="tanh")
    op(OpType.CONCATENATION, ["lg", "th"], ["cat"], {"axis": 3}, "concat")
    op(OpType.PAD, ["cat"], ["pd"], {"pads": (0, 0, 1, 0, 0, 1, 0, 0)}, "pad")
    op(OpType.TRANSPOSE, ["pd"], ["tr"], {"perm": (0, 2, 1, 3)}, "transpose")
    op(OpType.RELU, ["tr"], ["rl"], name="relu")
    op(OpType.MEAN, ["rl"], ["mn"], {"axes": (1, 2), "keep_dims": True}, "mean")
    op(OpType.RESHAPE, ["mn"], ["flat"], {"shape": (1, 8)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "wf", "bf"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def dilated_graph(rng) -> Graph:
    """Dilated and strided convolutions with asymmetric explicit padding, a dilated
    depthwise, a VALID strided conv and a padded average pool (quantized per tensor)."""
    g = Graph("dilated")
    _tensors(g, [("x", (1, 10, 8, 3)), ("c1", (1, 10, 4, 5)), ("d1", (1, 10, 4, 5)),
                 ("c2", (1, 5, 2, 6)), ("a1", (1, 3, 1, 6)), ("flat", (1, 18)), ("y", (1, 4))])
    g.add_const("w1", _w(rng, 5, 3, 2, 3))
    g.add_const("b1", _w(rng, 5, scale=0.1))
    g.add_const("wd", _w(rng, 1, 3, 3, 5))
    g.add_const("w2", _w(rng, 6, 2, 2, 5))
    g.add_const("wf", _w(rng, 4, 18))
    op = g.add_op
    op(OpType.CONV_2D, ["x", "w1", "b1"], ["c1"],
       {"dilations": (2, 1), "strides": (1, 2), "pads": (2, 0, 2, 1), "activation": "RELU_N1_TO_1"}, "conv_dil")
    op(OpType.DEPTHWISE_CONV_2D, ["c1", "wd"], ["d1"], {"dilations": (2, 2), "pads": (2, 2, 2, 2)}, "dw_dil")
    op(OpType.CONV_2D, ["d1", "w2"], ["c2"], {"strides": (2, 2), "activation": "RELU"}, "conv_s2")
    op(OpType.AVERAGE_POOL_2D, ["c2"], ["a1"], {"kernel": (2, 2), "strides": (2, 2), "pads": (1, 0, 0, 0)},
       "avgpool")
    op(OpType.RESHAPE, ["a1"], ["flat"], {"shape": (1, 18)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "wf"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def inplace_graph(rng) -> Graph:
    """A chain whose elementwise and pooling ops can write over their inputs: LOGISTIC,
    MAX_POOL_2D, TANH (the planner shares their buffers)."""
    g = Graph("inplace")
    _tensors(g, [("x", (1, 8, 8, 4)), ("c", (1, 8, 8, 4)), ("lg", (1, 8, 8, 4)), ("mp", (1, 4, 4, 4)),
                 ("th", (1, 4, 4, 4)), ("flat", (1, 64)), ("y", (1, 6))])
    g.add_const("wc", _w(rng, 4, 1, 1, 4))
    g.add_const("wf", _w(rng, 6, 64))
    g.add_const("bf", _w(rng, 6, scale=0.1))
    op = g.add_op
    op(OpType.CONV_2D, ["x", "wc"], ["c"], name="conv")
    op(OpType.LOGISTIC, ["c"], ["lg"], name="logistic")
    op(OpType.MAX_POOL_2D, ["lg"], ["mp"], {"kernel": (2, 2), "strides": (2, 2)}, "maxpool")
    op(OpType.TANH, ["mp"], ["th"], name="tanh")
    op(OpType.RESHAPE, ["th"], ["flat"], {"shape": (1, 64)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "wf", "bf"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def handmade_int8_graph(rng) -> Graph:
    """What the quantizer does not produce: an int8 -> int8 QUANTIZE, a 4-D broadcast ADD
    of two activations, and a per-tensor FULLY_CONNECTED with a fused RELU."""
    g = Graph("handmade")
    q = QuantParams.per_tensor
    g.add_tensor("x", (1, 4, 3, 5), DType.INT8, q(0.05, 3))
    g.add_tensor("rq", (1, 4, 3, 5), DType.INT8, q(0.07, -10))
    g.add_tensor("mq", (1, 4, 1, 5), DType.INT8, q(0.04, 2))
    g.add_tensor("s", (1, 4, 3, 5), DType.INT8, q(0.09, -4))
    g.add_tensor("flat", (1, 60), DType.INT8, q(0.09, -4))
    g.add_tensor("y", (1, 7), DType.INT8, q(0.5, 6))
    w = rng.integers(-128, 128, size=(7, 60)).astype(np.int8)
    g.add_tensor("w", (7, 60), DType.INT8, q(0.01, 0), w)
    g.add_tensor("b", (7,), DType.INT32, q(0.09 * 0.01, 0), rng.integers(-2000, 2000, 7).astype(np.int32))
    op = g.add_op
    op(OpType.QUANTIZE, ["x"], ["rq"], name="requantize")
    op(OpType.MEAN, ["rq"], ["mq"], {"axes": (2,), "keep_dims": True}, "mean")
    op(OpType.ADD, ["rq", "mq"], ["s"], name="add_bcast")
    op(OpType.RESHAPE, ["s"], ["flat"], {"shape": (1, 60)}, "flatten")
    op(OpType.FULLY_CONNECTED, ["flat", "w", "b"], ["y"], {"activation": "RELU"}, "fc_zp")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def random_inputs(graph: Graph, rng, n: int) -> np.ndarray:
    t = graph.input_tensors()[0]
    if t.dtype is DType.INT8:
        return rng.integers(-128, 128, size=(n,) + tuple(t.shape[1:])).astype(np.int8)
    return (rng.normal(size=(n,) + tuple(t.shape[1:])) * 1.5).astype(np.float32)


def cases(seed: int = 7) -> dict[str, Graph]:
    """name -> int8 graph. Float graphs are quantized with random calibration data."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, fn, kw in [("convs", convs_graph, {}),
                         ("convs_float_io", convs_graph, {"io": "float"}),
                         ("elementwise", elementwise_graph, {}),
                         ("dilated_per_tensor", dilated_graph, {"per_channel": False}),
                         ("inplace", inplace_graph, {})]:
        g = fn(rng)
        calib = (rng.normal(size=(64,) + tuple(g.input_tensors()[0].shape[1:])) * 1.5).astype(np.float32)
        qg = quantize(g, calib, **kw).graph
        qg.name = name
        out[name] = qg
    out["handmade"] = handmade_int8_graph(rng)
    from tests.backends.c.graphs_movement import movement_cases

    out.update(movement_cases(rng))
    from tests.backends.c.graphs_elementwise import elementwise_family_cases

    out.update(elementwise_family_cases(rng))
    from tests.backends.c.graphs_reduction import reduction_cases

    out.update(reduction_cases(rng))
    from tests.backends.c.graphs_recurrent import recurrent_cases

    out.update(recurrent_cases(rng))
    from tests.backends.c.graphs_resample import resample_cases

    out.update(resample_cases(rng))
    return out
