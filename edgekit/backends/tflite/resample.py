"""IR -> TFLite for RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV.

TRANSPOSE_CONV's inputs are ``(output_shape, filter, input, bias?)`` in TFLite, and its
padding is only SAME or VALID: TFLite derives the top/left crop from the output size
(``tflite_pad_top_left``); bottom/right are implied by the output shape. An IR op whose
top/left pads match neither (torch's ``ConvTranspose2d(k=3, s=2, p=1, output_padding=1)``)
is written as a VALID TRANSPOSE_CONV over the full result followed by a SLICE of its
window: each output value is computed on its own, so that is exact (int8 included: the
slice keeps the parameters).
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
    if xt.dtype is DType.FLOAT32 and wt.dtype is not DType.FLOAT32:
        raise BadInputError(f"{where}: hybrid TRANSPOSE_CONV (int8 filter, float input) cannot be written")
    out_idx = out[0]
    sliced = None
    if padding is None:
        # VALID over the full result (plus the bias-only rows past it), then a SLICE of the
        # output's window: every output value is computed on its own, so this is exact.
        full = [(xt.shape[1 + i] - 1) * strides[i] + kernel[i] for i in range(2)]
        big = [max(full[i], top_left[i] + ot.shape[1 + i]) for i in range(2)]
        if any(b - f >= s for b, f, s in zip(big, full, strides)):
            raise BadInputError(
                f"{where}: pads {list(a['pads'])} add {[b - f for b, f in zip(big, full)]} bias-only rows/columns "
                f"past the full result; TFLite's TRANSPOSE_CONV takes fewer than the stride {list(strides)}")
        padding = "VALID"
        sliced = (ot.shape[0], big[0], big[1], ot.shape[3])
        out_idx = low.activation(f"{op.name}/full", sliced, ot.dtype, ot.quant)
    shape = low.const(f"{op.name}/output_shape", np.asarray(sliced or ot.shape, np.int32), DType.INT32)
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
    low.emit(BuiltinOperator.TRANSPOSE_CONV, version, ins, [out_idx], BuiltinOptions.TransposeConvOptions, opts)
    if sliced is not None:
        begin = low.const(f"{op.name}/begin", np.array([0, top_left[0], top_left[1], 0], np.int32), DType.INT32)
        size = low.const(f"{op.name}/size", np.asarray(ot.shape, np.int32), DType.INT32)
        low.emit(BuiltinOperator.SLICE, 2 if int8 else 1, [out_idx, begin, size], out, BuiltinOptions.SliceOptions,
                 [])
