"""``.tflite`` -> IR for RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV.

TRANSPOSE_CONV's TFLite inputs are ``(output_shape, filter, input, bias?)``; the IR takes
``(input, filter, bias?)`` with explicit pads: top/left as TFLite derives them from
SAME/VALID and the output size, bottom/right whatever then makes up the output size
(negative where the output is larger than the full result: rows with the bias only).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir import OpType

RESAMPLE_TFLITE = {
    "RESIZE_NEAREST_NEIGHBOR": OpType.RESIZE_NEAREST_NEIGHBOR,
    "RESIZE_BILINEAR": OpType.RESIZE_BILINEAR,
    "TRANSPOSE_CONV": OpType.TRANSPOSE_CONV,
}
RESAMPLE_MIN_INPUTS = {"RESIZE_NEAREST_NEIGHBOR": 2, "RESIZE_BILINEAR": 2, "TRANSPOSE_CONV": 3}


def resample_attrs(b, op, ir: OpType, node: str, ins: list[str], act: str) -> tuple[list[str], dict]:
    """(IR inputs, attributes) of one TFLite op; ``b`` is the importer's builder."""
    opts = op.options
    if ir in (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR):
        size = b.const_input(op, 1, f"{node} size").astype(np.int64).reshape(-1)
        if size.size != 2:
            raise b.fail(f"{node}: size must hold 2 values (height, width), got {size.tolist()}")
        attrs = {"size": (int(size[0]), int(size[1])),
                 "align_corners": bool(opts.get("align_corners", False)),
                 "half_pixel_centers": bool(opts.get("half_pixel_centers", False))}
        return ins[:1], attrs
    out_shape = b.const_input(op, 0, f"{node} output_shape").astype(np.int64).reshape(-1)
    x = tuple(b.sg.tensors[op.inputs[2]].shape)
    w = tuple(b.sg.tensors[op.inputs[1]].shape)
    if out_shape.size != 4 or len(x) != 4 or len(w) != 4:
        raise b.fail(f"{node}: expects a 4-D output_shape, input and filter, got {out_shape.tolist()}, "
                     f"{list(x)} and {list(w)}")
    strides = (opts.get("stride_h") or 1, opts.get("stride_w") or 1)
    padding = opts.get("padding", "SAME")
    from edgekit.backends.tflite.resample import tflite_pad_top_left  # one definition of TFLite's rule

    oh, ow = int(out_shape[1]), int(out_shape[2])
    top, left = tflite_pad_top_left(padding, (oh, ow), w[1:3], strides)
    bottom = (x[1] - 1) * strides[0] + w[1] - top - oh
    right = (x[2] - 1) * strides[1] + w[2] - left - ow
    if oh <= 0 or ow <= 0:
        raise BadInputError(f"{b.source}: {node}: output_shape {out_shape.tolist()} is empty")
    attrs = {"output_shape": tuple(int(v) for v in out_shape), "strides": strides,
             "pads": (top, left, bottom, right), "activation": act}
    bias = ins[3] if len(ins) > 3 and ins[3] else None
    return [ins[2], ins[1]] + ([bias] if bias else []), attrs
