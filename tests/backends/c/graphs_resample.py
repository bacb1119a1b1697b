"""Graphs of the resampling ops for the C backend tests (``graphs.cases`` adds them):
RESIZE_NEAREST_NEIGHBOR 2x, TRANSPOSE_CONV (4x4, stride 2, TFLite's SAME, fused RELU),
RESIZE_BILINEAR with half-pixel centres (downscaling) and RESIZE_NEAREST_NEIGHBOR with
aligned corners; and a downscaling chain the memory planner runs over its input.
Quantized by the quantizer."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, verify
from edgekit.quantize import quantize


def resample_graph(rng) -> Graph:
    g = Graph("resample")
    for name, shape in [("x", (1, 5, 6, 3)), ("up", (1, 10, 12, 3)), ("tc", (1, 20, 24, 4)),
                        ("bl", (1, 9, 11, 4)), ("y", (1, 5, 4, 4))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("w", (rng.standard_normal((4, 4, 4, 3)) * 0.3).astype(np.float32))
    g.add_const("b", (rng.standard_normal(4) * 0.1).astype(np.float32))
    op = g.add_op
    op(OpType.RESIZE_NEAREST_NEIGHBOR, ["x"], ["up"], {"size": (10, 12)}, "upsample")
    op(OpType.TRANSPOSE_CONV, ["up", "w", "b"], ["tc"],
       {"output_shape": (1, 20, 24, 4), "strides": (2, 2), "pads": (1, 1, 1, 1), "activation": "RELU"},
       "transpose_conv")
    op(OpType.RESIZE_BILINEAR, ["tc"], ["bl"], {"size": (9, 11), "half_pixel_centers": True}, "bilinear")
    op(OpType.RESIZE_NEAREST_NEIGHBOR, ["bl"], ["y"], {"size": (5, 4), "align_corners": True}, "nearest_aligned")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def downscale_graph(rng) -> Graph:
    """A 1x1 conv whose output dies at a downscaling RESIZE_BILINEAR, then a downscaling
    RESIZE_NEAREST_NEIGHBOR: both may run over their input (edgekit.memory.reads_resample)."""
    g = Graph("resample_in_place")
    for name, shape in [("x", (1, 8, 8, 4)), ("c", (1, 8, 8, 6)), ("bl", (1, 5, 4, 6)), ("y", (1, 2, 3, 6))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("w", (rng.standard_normal((6, 1, 1, 4)) * 0.3).astype(np.float32))
    g.add_op(OpType.CONV_2D, ["x", "w"], ["c"], name="conv")
    g.add_op(OpType.RESIZE_BILINEAR, ["c"], ["bl"], {"size": (5, 4)}, "bilinear_down")
    g.add_op(OpType.RESIZE_NEAREST_NEIGHBOR, ["bl"], ["y"], {"size": (2, 3), "half_pixel_centers": True},
             "nearest_down")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def resample_cases(rng) -> dict[str, Graph]:
    out = {}
    for name, fn in (("resample", resample_graph), ("resample_in_place", downscale_graph)):
        g = fn(rng)
        calib = rng.normal(size=(64,) + tuple(g.input_tensors()[0].shape[1:])).astype(np.float32)
        qg = quantize(g, calib).graph
        qg.name = name
        out[name] = qg
    return out
