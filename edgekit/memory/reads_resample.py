"""Read maps of RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (see ``lifetimes.read_map``).

Output element (b, y, x, c) of a nearest resize reads input (b, rows[y], cols[x], c); a
bilinear one reads four taps of which (b, y0, x0, c) is the first in memory (y0 <= y1,
x0 <= x1; int8 positions as TFLM computes them). Both kernels read an element's taps
before writing it, one element at a time in row-major order, so they keep the write
contract wherever the read map allows it: a downscaling resize can run in place, an
upscaling one shares the bytes past its shift.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.ops import OpType
from edgekit.reference.resample_kernels import bilinear_scale_10, nearest_indices

RESAMPLE_READ_OPS = frozenset({OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR})


def _bilinear_lower(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    scale = bilinear_scale_10(in_size, out_size, align)
    pos = np.arange(out_size, dtype=np.int64) * scale
    if half:
        pos = pos + scale // 2 - 512
    lo = np.sign(pos) * (np.abs(pos) // 1024)  # C division
    return np.clip(lo, 0, in_size - 1)


def resample_read_map(t: OpType, xs, ys, attrs) -> np.ndarray | None:
    if len(xs) != 4 or len(ys) != 4:
        return None
    n, h, w, c = xs
    _, oh, ow, _ = ys
    align, half = bool(attrs["align_corners"]), bool(attrs["half_pixel_centers"])
    if t is OpType.RESIZE_NEAREST_NEIGHBOR:
        rows, cols = nearest_indices(h, oh, align, half), nearest_indices(w, ow, align, half)
    else:
        rows, cols = _bilinear_lower(h, oh, align, half), _bilinear_lower(w, ow, align, half)
    b = np.arange(n, dtype=np.int64)
    ch = np.arange(c, dtype=np.int64)
    idx = (((b[:, None, None, None] * h + rows[None, :, None, None]) * w + cols[None, None, :, None]) * c
           + ch[None, None, None, :])
    return idx.ravel()
