"""Reference kernels of the data-movement ops: SLICE, STRIDED_SLICE, SPLIT, SQUEEZE,
EXPAND_DIMS, GATHER, PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH and CAST.

Every one except CAST moves elements without looking at them, for any element type, so
the float and the int8 kernel are one function. TFLite Micro's kernels copy raw bytes and
never requantize (PACK, SPLIT, UNPACK, GATHER, ... have no quantization step), so an
int8 op is only meaningful when its input and output quantization are equal: edgekit's
quantizer gives them equal parameters (``scheme.SHARES_INPUT``; PACK's inputs join one
group like CONCATENATION's) and these kernels refuse int8 tensors whose parameters
differ rather than reinterpret bytes silently.

CAST converts each element as C's ``static_cast`` does in TFLite Micro's kernel: float
to integer truncates toward zero, integer to narrower integer wraps (two's complement),
to bool is ``x != 0``. Quantization parameters are ignored (a cast of raw values).
Converting a float outside the target range is undefined behaviour in C (TFLM's result
then depends on the CPU); edgekit saturates it, and NaN becomes 0.

Batches: a graph declared with batch 1 runs N samples at once. The ops that touch axis
0 only in the trivial way (a slice keeping all of it) pass the batch through; an op that
moves axis 0 itself (PACK/UNPACK/SPLIT/GATHER/SQUEEZE on axis 0) refuses a batch above 1.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType
from edgekit.ir.shapes_movement import gather_indices_in_range


def _same_quant(a: QuantParams | None, b: QuantParams | None) -> bool:
    if a is None or b is None:
        return a is b
    return (np.array_equal(np.float32(a.scale), np.float32(b.scale))
            and np.array_equal(np.asarray(a.zero_point), np.asarray(b.zero_point)))


def check_shared_quant(graph: Graph, op: Op, inputs: list[str], outputs: list[str]) -> None:
    """int8 data movement copies raw values: every operand must carry the same parameters."""
    ts = [graph.tensor(n) for n in inputs + outputs if n]
    q0 = ts[0].quant
    for t in ts[1:]:
        if t.dtype in (DType.INT8, DType.INT16) and not _same_quant(q0, t.quant):
            raise BadInputError(
                f"op {op.name!r} ({op.type.value}): tensor {t.name!r} is quantized unlike "
                f"{ts[0].name!r}; TFLite Micro copies raw values here, so both must share "
                "scale and zero point (requantize first)")


# ----------------------------------------------------------------------------- kernels


def _dense(a: np.ndarray) -> np.ndarray:
    return np.require(a, requirements="C")  # (ascontiguousarray would make 0-d 1-d)


def slice_(x: np.ndarray, begin, size) -> np.ndarray:
    idx = tuple(slice(int(b), int(b) + int(s)) for b, s in zip(begin, size))
    return _dense(x[idx])


def strided_slice(x: np.ndarray, begin, end, strides, shrink_axis_mask: int = 0) -> np.ndarray:
    out = x
    for axis, (b, e, s) in enumerate(zip(begin, end, strides)):
        rows = np.arange(int(b), int(e), int(s), dtype=np.int64)
        out = np.take(out, rows, axis=axis)
    shrink = tuple(i for i in range(x.ndim) if shrink_axis_mask >> i & 1)
    if shrink:
        out = out.reshape([d for i, d in enumerate(out.shape) if i not in shrink])
    return _dense(out)


def split(x: np.ndarray, axis: int, sizes) -> list[np.ndarray]:
    cuts = np.cumsum([int(s) for s in sizes])[:-1]
    return [_dense(p) for p in np.split(x, cuts, axis=axis)]


def unpack(x: np.ndarray, axis: int) -> list[np.ndarray]:
    return [_dense(np.take(x, i, axis=axis)) for i in range(x.shape[axis])]


def pack(xs: list[np.ndarray], axis: int) -> np.ndarray:
    return _dense(np.stack(xs, axis=axis))


def gather(x: np.ndarray, indices: np.ndarray, axis: int, batch_dims: int = 0) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise BadInputError(f"gather indices must be integers, are {indices.dtype}")
    if not gather_indices_in_range(indices, x.shape[axis]):
        raise BadInputError(f"gather index out of range: indices span [{int(indices.min())}, "
                            f"{int(indices.max())}], axis {axis} has {x.shape[axis]} entries")
    idx = indices.astype(np.int64)
    if batch_dims == 0:
        return _dense(np.take(x, idx, axis=axis))
    lead = x.shape[:batch_dims]
    nb = int(np.prod(lead, dtype=np.int64))
    xb = x.reshape((nb,) + x.shape[batch_dims:])
    ib = idx.reshape((nb,) + idx.shape[batch_dims:])
    parts = [np.take(xb[i], ib[i], axis=axis - batch_dims) for i in range(nb)]
    out = np.stack(parts) if parts else np.zeros((0,), x.dtype)
    return _dense(out.reshape(lead + out.shape[1:]))


def depth_to_space(x: np.ndarray, block: int) -> np.ndarray:
    n, h, w, c = x.shape
    oc = c // (block * block)
    y = x.reshape(n, h, w, block, block, oc).transpose(0, 1, 3, 2, 4, 5)
    return _dense(y.reshape(n, h * block, w * block, oc))


def space_to_depth(x: np.ndarray, block: int) -> np.ndarray:
    n, h, w, c = x.shape
    y = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return _dense(y.reshape(n, h // block, w // block, block * block * c))


CASTABLE = (DType.FLOAT32, DType.INT8, DType.INT16, DType.INT32, DType.BOOL)


def cast(x: np.ndarray, to: DType) -> np.ndarray:
    """C's static_cast of every element (see the module docstring for out-of-range floats)."""
    target = np.dtype(to.np)
    if to is DType.BOOL:
        return x != 0
    if x.dtype.kind == "f" and target.kind in "iu":
        info = np.iinfo(target)
        t = np.trunc(np.nan_to_num(x.astype(np.float64), nan=0.0))
        return np.clip(t, info.min, info.max).astype(target)
    if x.dtype.kind in "iub" and target.kind in "iu":
        return x.astype(np.int64).astype(target)  # wraps: two's complement
    return x.astype(target)


# ----------------------------------------------------------------------------- dispatch


def _batch_scaled(x: np.ndarray, declared: tuple[int, ...]) -> bool:
    return x.ndim > 0 and bool(declared) and x.shape[0] != declared[0]


def run_movement(graph: Graph, op: Op, attrs: dict, args: list) -> list[np.ndarray]:
    """Outputs of one data-movement op (any element type)."""
    t = op.type
    x = args[0]
    declared = tuple(graph.tensor(op.inputs[0]).shape)
    batched = _batch_scaled(x, declared)
    where = f"op {op.name!r} ({t.value})"

    def axis0_refused(axis: int):
        if batched and axis == 0:
            raise BadInputError(f"{where}: works on axis 0, so it cannot run a batch of {x.shape[0]}")

    if t is OpType.CAST:
        to = graph.tensor(op.outputs[0]).dtype
        if to not in CASTABLE or graph.tensor(op.inputs[0]).dtype not in CASTABLE:
            raise BadInputError(f"{where}: CAST between {graph.tensor(op.inputs[0]).dtype.value} and "
                                f"{to.value} is not supported (types: {', '.join(d.value for d in CASTABLE)})")
        return [cast(x, to)]

    check_shared_quant(graph, op, [i for i in op.inputs if t is not OpType.GATHER or i == op.inputs[0]],
                       list(op.outputs))
    if t in (OpType.SLICE, OpType.STRIDED_SLICE):
        begin = list(attrs["begin"])
        if t is OpType.SLICE:
            size = list(attrs["size"])
            if batched:
                if not (declared[0] == 1 and begin[0] == 0 and size[0] == 1):
                    axis0_refused(0)
                size[0] = x.shape[0]
            return [slice_(x, begin, size)]
        end, strides = list(attrs["end"]), list(attrs["strides"])
        shrink = attrs["shrink_axis_mask"]
        if batched:
            if not (declared[0] == 1 and begin[0] == 0 and end[0] == 1 and strides[0] == 1 and not shrink & 1):
                axis0_refused(0)
            end[0] = x.shape[0]
        return [strided_slice(x, begin, end, strides, shrink)]
    if t is OpType.SPLIT:
        axis0_refused(attrs["axis"])
        return split(x, attrs["axis"], attrs["sizes"])
    if t is OpType.UNPACK:
        axis0_refused(attrs["axis"])
        return unpack(x, attrs["axis"])
    if t is OpType.PACK:
        axis0_refused(attrs["axis"])
        shapes = {a.shape for a in args}
        if len(shapes) != 1:
            raise BadInputError(f"{where}: inputs have different shapes {sorted(shapes)}")
        return [pack(list(args), attrs["axis"])]
    if t is OpType.SQUEEZE:
        axes = tuple(int(a) for a in attrs["axes"])
        for a in axes:
            axis0_refused(a)
        return [_dense(x.reshape([d for i, d in enumerate(x.shape) if i not in axes]))]
    if t is OpType.EXPAND_DIMS:
        axis0_refused(attrs["axis"])
        return [np.expand_dims(x, attrs["axis"])]
    if t is OpType.GATHER:
        axis0_refused(attrs["axis"])
        if batched and attrs["batch_dims"] > 0:
            axis0_refused(0)
        return [gather(x, args[1], attrs["axis"], attrs["batch_dims"])]
    if t is OpType.DEPTH_TO_SPACE:
        return [depth_to_space(x, attrs["block_size"])]
    if t is OpType.SPACE_TO_DEPTH:
        return [space_to_depth(x, attrs["block_size"])]
    raise BadInputError(f"{where}: not a data-movement op")  # pragma: no cover
