"""Scratch (temporary) memory an op's kernel needs while it runs.

The planner gives every op with a non-zero ``scratch_bytes`` a buffer that lives during
that op only, so it shares the arena with everything not live at that time.

edgekit's portable reference kernels need no scratch: they read the input in place. The
formulas below are the sizes the optimized kernel variants (selected by target features)
are designed around; they return 0 until a target asks for those variants:

- CONV_2D on a target with ``dsp`` or ``mve``: the kernel gathers the receptive fields of
  two output pixels (im2col) widened to int16, so the SIMD inner loop reads two columns
  at once: ``2 * KH * KW * Cin * 2`` bytes. A 1x1 conv with stride 1 and no padding reads
  its columns straight from the input and needs none. Float graphs need none.
- DEPTHWISE_CONV_2D on ``dsp`` / ``mve``: one output pixel's window for all channels,
  widened to int16: ``KH * KW * C * 2`` bytes (0 for a 1x1 window).
- Everything else: 0.
"""

from __future__ import annotations

from typing import Iterable

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs

SIMD_FEATURES = frozenset({"dsp", "mve"})


def scratch_bytes(op: Op, graph: Graph, target_features: Iterable[str] = ()) -> int:
    """Bytes of scratch memory ``op`` needs on a target with ``target_features``."""
    if not SIMD_FEATURES & set(target_features):
        return 0
    if op.type not in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D) or not op.inputs:
        return 0
    x = graph.tensor(op.inputs[0])
    if x.dtype is not DType.INT8 or len(x.shape) != 4:
        return 0
    _, kh, kw, _ = graph.tensor(op.inputs[1]).shape
    cin = x.shape[3]
    attrs = normalize_attrs(op.type, op.attrs)
    if op.type is OpType.CONV_2D:
        pointwise = (kh, kw) == (1, 1) and tuple(attrs["strides"]) == (1, 1) and not any(attrs["pads"])
        return 0 if pointwise else 2 * kh * kw * cin * 2
    return 0 if (kh, kw) == (1, 1) else kh * kw * cin * 2
