"""ONNX lowering of RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV (float
semantics; int8 ops are dequantized around them by the writer).

- RESIZE_NEAREST_NEIGHBOR -> Resize(nearest) with ``sizes``: no flags ->
  asymmetric + floor; half_pixel_centers -> tf_half_pixel_for_nn + floor;
  align_corners -> align_corners + round_prefer_ceil (TFLite rounds half away from
  zero; positions are never negative).
- RESIZE_BILINEAR -> Resize(linear): asymmetric, align_corners or half_pixel.
- TRANSPOSE_CONV -> ConvTranspose, filter ``[Cout, KH, KW, Cin]`` -> ``[Cin, Cout, KH, KW]``;
  a negative bottom/right pad (rows holding the bias alone) is ONNX's output_padding.
"""

from __future__ import annotations


from edgekit.ir.graph import Op
from edgekit.ir.ops import OpType

RESAMPLE_OPS = (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV)


def emit_resample(w, op: Op, a: dict) -> str:
    """``w``: the writer (edgekit.backends.onnx.writer._Writer); returns the float result."""
    g = w.g
    x = w.f(op.inputs[0])
    if op.type is OpType.TRANSPOSE_CONV:
        cout, kh, kw, _ = g.tensor(op.inputs[1]).shape
        weights = w.weight(op.inputs[1], (3, 0, 1, 2))  # [Cout,KH,KW,Cin] -> [Cin,Cout,KH,KW]
        inputs = [x, weights]
        b = w.bias(op.input(2), cout, op.inputs[0], op.inputs[1])
        if b is not None:
            inputs.append(b)
        top, left, bottom, right = (int(p) for p in a["pads"])
        out_pad = [max(-bottom, 0), max(-right, 0)]
        return w.node("ConvTranspose", inputs, kernel_shape=[kh, kw], strides=list(a["strides"]),
                      pads=[top, left, max(bottom, 0), max(right, 0)], output_padding=out_pad)
    n, _, _, c = g.tensor(op.inputs[0]).shape
    oh, ow = a["size"]
    if w.dynamic_batch:  # N from the run-time shape
        nc = w.node("Slice", [w.node("Shape", [x]), w.ints([0], "start"), w.ints([2], "end")])
        sizes = w.node("Concat", [nc, w.ints([oh, ow], f"{op.name}_hw")], axis=0)
    else:
        sizes = w.ints([n, c, oh, ow], f"{op.name}_sizes")
    if op.type is OpType.RESIZE_NEAREST_NEIGHBOR:
        if a["align_corners"]:
            coord, nearest = "align_corners", "round_prefer_ceil"
        elif a["half_pixel_centers"]:
            coord, nearest = "tf_half_pixel_for_nn", "floor"
        else:
            coord, nearest = "asymmetric", "floor"
        return w.node("Resize", [x, "", "", sizes], mode="nearest", coordinate_transformation_mode=coord,
                      nearest_mode=nearest)
    coord = "align_corners" if a["align_corners"] else ("half_pixel" if a["half_pixel_centers"] else "asymmetric")
    return w.node("Resize", [x, "", "", sizes], mode="linear", coordinate_transformation_mode=coord)



