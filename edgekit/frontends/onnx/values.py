"""What an ONNX tensor name stands for while a graph is converted.

- ``Act``: a run-time tensor of the IR (by IR name). A 4-D one holds the source's
  NCHW data in NHWC order; every other rank keeps the source's axis order.
- ``QConst``: the output of DequantizeLinear on a constant: integer data plus scale,
  zero point and axis, so a weight can enter the IR as int8 instead of float.
- a plain ``numpy.ndarray``: any other constant, in the source's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NHWC = (0, 2, 3, 1)  # IR axis i of a 4-D tensor holds source (NCHW) axis NHWC[i]
NCHW = (0, 3, 1, 2)  # source axis j of a 4-D tensor sits at IR axis NCHW[j]


def ir_perm(rank: int) -> tuple[int, ...]:
    """For each IR axis, the source axis it holds."""
    return NHWC if rank == 4 else tuple(range(rank))


def ir_axis(src_axis: int, rank: int) -> int:
    return NCHW[src_axis] if rank == 4 else src_axis


def src_to_ir_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    return tuple(shape[p] for p in ir_perm(len(shape)))


def ir_to_src_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    return tuple(shape[NCHW[j]] for j in range(4)) if len(shape) == 4 else shape


def src_to_ir_array(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(NHWC)) if a.ndim == 4 else a


@dataclass(frozen=True)
class Act:
    name: str


@dataclass
class QConst:
    q: np.ndarray  # integer values; uint8 data is stored shifted to int8 (zero point - 128)
    scale: np.ndarray  # float32, 0-D (per tensor) or 1-D (per axis)
    zp: np.ndarray  # int64, same shape as scale
    axis: int | None  # None: per tensor

    @classmethod
    def make(cls, q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int | None) -> "QConst":
        q = np.asarray(q)
        scale = np.asarray(scale, dtype=np.float32)
        zp = np.zeros(scale.shape, np.int64) if zp is None else np.asarray(zp).astype(np.int64)
        if q.dtype == np.uint8:
            q = (q.astype(np.int16) - 128).astype(np.int8)
            zp = zp - 128
        if scale.size == 1 and (axis is None or scale.ndim == 0 or q.ndim == 0 or q.shape[axis] == 1):
            scale, zp, axis = scale.reshape(()), zp.reshape(()), None
        return cls(q, scale, zp, axis)

    @property
    def per_tensor(self) -> bool:
        return self.axis is None

    def value(self) -> np.ndarray:
        """The dequantized float32 value, computed as ONNX does: (q - zp) * scale."""
        if self.axis is None:
            return ((self.q.astype(np.float32) - np.float32(self.zp)) * self.scale).astype(np.float32)
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return ((self.q.astype(np.float32) - self.zp.reshape(shape).astype(np.float32))
                * self.scale.reshape(shape)).astype(np.float32)

    def transpose(self, perm) -> "QConst":
        axis = None if self.axis is None else list(perm).index(self.axis)
        return QConst(np.ascontiguousarray(self.q.transpose(perm)), self.scale, self.zp, axis)

    def scales_for(self, n: int) -> np.ndarray:
        """One scale per output channel (broadcast when per tensor)."""
        return np.broadcast_to(self.scale.reshape(-1), (n,)) if self.scale.size == 1 else self.scale.reshape(-1)
