"""The one rule for the element type of model inputs, used by the interpreter, ``edgekit
run``, ``edgekit device infer`` and ``edgekit hil``:

- a float input takes any numeric data, cast to float32; NaN and infinities are refused
  (naming the input and the first bad index), since no kernel defines their result;
- an integer input takes integer data inside the type's range;
- float data for an integer (int8, uint8, ...) input is refused unless the caller asks
  for it to be quantized (``quantize_floats=True``, the CLI's ``--quantize-inputs``):
  then it is quantized with the input's own scale and zero point, as TFLite's QUANTIZE
  does, after the same NaN / infinity check.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType

QUANTIZE_HINT = "quantize it first, or pass --quantize-inputs to quantize it with the input's scale and zero point"


def check_finite(name: str, x: np.ndarray) -> None:
    """BadInputError naming ``name`` and the first index of a NaN or infinity in ``x``."""
    x = np.asarray(x)
    if x.dtype.kind not in "fc" or x.size == 0:
        return
    bad = ~np.isfinite(x)
    if bad.any():
        index = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape))
        value = x[index]
        what = "NaN" if np.isnan(value) else "an infinity"
        raise BadInputError(f"input {name!r} holds {what} at index {list(index)} ({int(bad.sum())} non-finite "
                            "value(s) in all): give finite numbers")


def to_input_dtype(name: str, dtype: DType, quant, x: np.ndarray, *, quantize_floats: bool = False) -> np.ndarray:
    """``x`` converted to the element type of the model input ``name`` (``dtype`` with
    quantization parameters ``quant``), following the rule of this module."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"input {name!r} must be numeric, got {x.dtype} data")
    if dtype is DType.FLOAT32:
        check_finite(name, x)
        return x.astype(np.float32)
    if dtype is DType.BOOL:
        if x.dtype.kind != "b" and x.size and not np.isin(x, (0, 1)).all():
            raise BadInputError(f"input {name!r} is bool: give booleans (or 0 and 1), got other {x.dtype} values")
        return x.astype(bool)
    info = np.iinfo(dtype.np)
    if x.dtype.kind == "f":
        hint = f" (scale {quant.scale[0]:g}, zero point {quant.zero_point[0]})" if quant is not None else ""
        if not quantize_floats:
            raise BadInputError(f"input {name!r} is {dtype.value}{hint}, got {x.dtype} data: {QUANTIZE_HINT}")
        if quant is None:
            raise BadInputError(f"input {name!r} is {dtype.value} without quantization parameters: "
                                "give integer data")
        check_finite(name, x)
        if dtype is DType.INT8:
            from edgekit.reference.int8_kernels import quantize

            return quantize(x.astype(np.float32), quant)  # TFLite's QUANTIZE, bit for bit
        # Other integer inputs (uint8, int16): per-tensor affine, round half away from zero.
        q = np.float32(x) / np.float32(quant.scale[0])
        q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5)) + quant.zero_point[0]
        return np.clip(q, info.min, info.max).astype(dtype.np)
    if x.dtype != dtype.np and x.size and (x.min() < info.min or x.max() > info.max):
        raise BadInputError(f"input {name!r} holds values outside the {dtype.value} range "
                            f"[{info.min}, {info.max}]")
    return x.astype(dtype.np)
