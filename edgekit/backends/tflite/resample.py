"""IR -> TFLite for RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV.

TRANSPOSE_CONV's inputs are ``(output_shape, filter, input, bias?)`` in TFLite, and its
padding is only SAME or VALID: TFLite derives the top/left crop from the output size
(``tflite_pad_top_left``). An IR op whose top/left pads match neither is refused with
an error naming both; bottom/right are implied by the output shape, so any value works.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.frontends.tflite.schema_enums import (ActivationFunctionType, BuiltinOperator, BuiltinOptions,
                                                   Padding)
from edgekit.ir import DType, Op, OpType

RESAMPLE_OPS = (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV)


def tflite_pad_top_left(padding: str, out_hw, kernel_hw, strides) -> tuple[int, int]:
    """The (top, left) crop TFLite's TRANSPOSE_CONV uses for an output of ``out_hw``
    (``ComputePaddingHeightWidth`` over the output, as if it were a conv's input)."""
    pads = []
    for size, k, s in zip(out_hw, kernel_hw, strides):
        n = (size + s - 1) // s if padding == "SAME" else (size + s - k) // s
        pads.append(max((n - 1) * s + k - size, 0) // 2)
    return pads[0], pads[1]


def _implied_input_hw(padding: str, out_hw, kernel_hw, strides) -> tuple[int, int]:
    return tuple((size + s - 1) // s if padding == "SAME" else (size + s - k) // s
                 for size, k, s in zip(out_hw, kernel_hw, strides))


def lower_resample(low, op: Op, a: dict) -> None:
    """Emit ``op`` into the lowering ``low`` (edgekit.backends.tflite.writer._Lowering)."""
    g = low.g
    xt = g.tensor(op.inputs[0])
    int8 = xt.dtype is DType.INT8
    out = [low.tensor(o) for o in op.outputs]
    where = f"op {op.name!r} ({op.type.value})"
    if op.type in (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR):
        size = low.const(f"{op.name}/size", np.asarray(a["size"], np.int32), DType.INT32)
        flags = bool(a["align_corners"]), bool(a["half_pixel_centers"])
        if op.type is OpType.RESIZE_BILINEAR:
            # version 3: half_pixel_centers; 2: int8 (the converter's numbering)
            version = 3 if flags[1] else (2 if int8 else 1)
            low.emit(BuiltinOperator.RESIZE_BILINEAR, version, [low.tensor(op.inputs[0]), size], out,
                     BuiltinOptions.ResizeBilinearOptions, [(2, "bool", flags[0]), (3, "bool", flags[1])])
        else:
            version = 3 if any(flags) else (2 if int8 else 1)
            low.emit(BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, version, [low.tensor(op.inputs[0]), size], out,
                     BuiltinOptions.ResizeNearestNeighborOptions, [(0, "bool", flags[0]), (1, "bool", flags[1])])
        return
    wt = g.tensor(op.inputs[1])
    ot = g.tensor(op.outputs[0])
    kernel = (wt.shape[1], wt.shape[2])
    strides = tuple(a["strides"])
    top_left = (int(a["pads"][0]), int(a["pads"][1]))
    # Among the paddings giving these pads, prefer the one whose implied input size is the
    # input's (LiteRT checks it; TFLite Micro does not).
    fits = [name for name in ("SAME", "VALID") if tflite_pad_top_left(name, ot.shape[1:3], kernel, strides) == top_left]
    consistent = [name for name in fits
                  if _implied_input_hw(name, ot.shape[1:3], kernel, strides) == tuple(xt.shape[1:3])]
    padding = (consistent or fits or [None])[0]
    if padding is None:
        raise BadInputError(
            f"{where}: top/left pads {list(top_left)} are neither TFLite's SAME "
            f"({list(tflite_pad_top_left('SAME', ot.shape[1:3], kernel, strides))}) nor VALID "
            f"({list(tflite_pad_top_left('VALID', ot.shape[1:3], kernel, strides))}) for output "
            f"{list(ot.shape)}; TFLite's TRANSPOSE_CONV cannot express them")
    if xt.dtype is DType.FLOAT32 and wt.dtype is not DType.FLOAT32:
        raise BadInputError(f"{where}: hybrid TRANSPOSE_CONV (int8 filter, float input) cannot be written")
    shape = low.const(f"{op.name}/output_shape", np.asarray(ot.shape, np.int32), DType.INT32)
    bias = low.tensor(op.inputs[2]) if op.input(2) else -1
    act = a["activation"]
    if act != "NONE":
        version = 4
    elif bias >= 0:
        version = 3
    else:
        version = 2 if int8 else 1
    opts = [(0, "i8", int(Padding[padding])), (1, "i32", strides[1]), (2, "i32", strides[0]),
            (3, "i8", int(ActivationFunctionType[act]))]
    ins = [shape, low.tensor(op.inputs[1]), low.tensor(op.inputs[0])] + ([bias] if bias >= 0 else [])
    low.emit(BuiltinOperator.TRANSPOSE_CONV, version, ins, out, BuiltinOptions.TransposeConvOptions, opts)
