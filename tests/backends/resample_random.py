"""Random resampling steps for the ONNX writer's random float graphs
(tests/backends/test_onnx_writer.py): RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR by whole
factors (any flags), TRANSPOSE_CONV with any stride, kernel and pads (bottom/right
negative too). Whole factors keep the source positions exact in both TFLite's and ONNX's
float formulas; other sizes are covered by tests/backends/test_onnx_writer_resample.py."""

from __future__ import annotations

from edgekit.ir import OpType


def resample_step(b, x: str, st) -> str | None:
    """``b``: the test's graph builder (``draw``, ``op``, ``const``)."""
    d = b.draw
    n, h, w, c = b.g.tensor(x).shape
    kind = d(st.sampled_from(["nearest", "bilinear", "transpose_conv"]))
    if kind != "transpose_conv":
        fh, fw = d(st.integers(1, 3)), d(st.integers(1, 3))
        flags = d(st.sampled_from([(False, False), (True, False), (False, True)]))
        typ = OpType.RESIZE_NEAREST_NEIGHBOR if kind == "nearest" else OpType.RESIZE_BILINEAR
        return b.op(typ, [x], {"size": (h * fh, w * fw), "align_corners": flags[0],
                               "half_pixel_centers": flags[1]})
    kh, kw = d(st.integers(1, 4)), d(st.integers(1, 4))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    top, left = d(st.integers(0, kh - 1)), d(st.integers(0, kw - 1))
    bottom = d(st.integers(-(sh - 1), kh - 1 - top))
    right = d(st.integers(-(sw - 1), kw - 1 - left))
    cout = d(st.integers(1, 4))
    oh, ow = (h - 1) * sh + kh - top - bottom, (w - 1) * sw + kw - left - right
    ins = [x, b.const((cout, kh, kw, c))]
    if d(st.booleans()):
        ins.append(b.const((cout,)))
    return b.op(OpType.TRANSPOSE_CONV, ins, {"output_shape": (n, oh, ow, cout), "strides": (sh, sw),
                                             "pads": (top, left, bottom, right),
                                             "activation": d(st.sampled_from(["NONE", "RELU", "RELU6"]))})
