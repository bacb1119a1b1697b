"""Element types and quantization parameters of IR tensors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class DType(str, Enum):
    FLOAT32 = "float32"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"  # shape-like constants only; never an activation on a device
    BOOL = "bool"

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def is_float(self) -> bool:
        return self is DType.FLOAT32

    @property
    def is_quantized_int(self) -> bool:
        return self in (DType.INT8, DType.INT16)

    @classmethod
    def from_numpy(cls, dt) -> "DType":
        name = np.dtype(dt).name
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unsupported element type {name}") from None


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    Per tensor when ``axis`` is None (one scale, one zero point); per axis otherwise,
    with one scale and zero point per index along ``axis``. Scales are float32 values
    (as in TFLite files); the int8 kernels derive their fixed-point multipliers from
    them exactly as TFLite Micro does.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        scale = tuple(float(np.float32(s)) for s in self.scale)
        zp = tuple(int(z) for z in self.zero_point)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)
        if not scale:
            raise ValueError("quantization needs at least one scale")
        if len(scale) != len(zp):
            raise ValueError(f"{len(scale)} scales but {len(zp)} zero points")
        if self.axis is None and len(scale) != 1:
            raise ValueError("per-tensor quantization has exactly one scale")

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int = 0) -> "QuantParams":
        return cls((float(scale),), (int(zero_point),), None)

    @classmethod
    def per_axis(cls, scales, zero_points, axis: int) -> "QuantParams":
        return cls(tuple(np.asarray(scales, np.float32).tolist()),
                   tuple(np.asarray(zero_points, np.int64).tolist()), int(axis))

    @property
    def is_per_tensor(self) -> bool:
        return self.axis is None

    @property
    def scales(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    @property
    def zero_points(self) -> np.ndarray:
        return np.asarray(self.zero_point, dtype=np.int64)

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantParams":
        return cls(tuple(d["scale"]), tuple(d["zero_point"]), d.get("axis"))


INT_RANGES = {DType.INT8: (-128, 127), DType.INT16: (-32768, 32767), DType.INT32: (-(2**31), 2**31 - 1)}
