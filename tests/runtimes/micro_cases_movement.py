"""Kernel cases of the data-movement kernels (slice, split, gather, depth_to_space,
space_to_depth, cast): random operands, the C parameters as edgekit.backends.c derives
them, and the bytes edgekit.reference.movement_kernels produces (the definition)."""

from __future__ import annotations

import numpy as np

from edgekit.reference import movement_kernels as mk
from tests.runtimes.micro_abi import KernelCall, Struct, dims4


def _i8(d, shape) -> np.ndarray:
    return d.rng().integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def _shape4(d, hi=5):
    return tuple(d.int(f"d{i}", 1, hi) for i in range(4))


def sample_slice(d, name="slice"):
    """STRIDED_SLICE on 4-D with positive and negative strides (SLICE is stride 1)."""
    shape = _shape4(d, 6)
    x = _i8(d, shape)
    begin, end, stride = [], [], []
    for i, n in enumerate(shape):
        s = d.choice(f"s{i}", (-2, -1, 1, 1, 2, 3))
        b = d.int(f"b{i}", 0, n - 1)
        e = d.int(f"e{i}", b + 1, n) if s > 0 else d.int(f"e{i}", -1, b - 1)
        begin.append(b)
        end.append(e)
        stride.append(s)
    expected = mk.strided_slice(x, begin, end, stride)
    size = [len(range(b, e, s)) for b, e, s in zip(begin, end, stride)]
    params = Struct("ek_slice_params", {"begin": begin, "stride": stride, "size": size})
    return KernelCall(name, "ek_slice_s8", [params, dims4(shape), x], expected)


def sample_split(d, name="split"):
    rank = d.int("rank", 1, 4)
    axis = d.int("axis", 0, rank - 1)
    shape = [d.int(f"d{i}", 1, 4) for i in range(rank)]
    sizes = [d.int(f"size{k}", 1, 3) for k in range(d.int("outputs", 1, 4))]
    shape[axis] = sum(sizes)
    x = _i8(d, tuple(shape))
    parts = mk.split(x, axis, sizes)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    expected = np.concatenate([p.ravel() for p in parts])
    return KernelCall(name, "ek_split_s8",
                      [len(sizes), [p.nbytes for p in parts], np.array(sizes, np.int32), outer, inner, x],
                      expected)


def sample_gather(d, name="gather"):
    rank = d.int("rank", 1, 4)
    shape = tuple(d.int(f"d{i}", 1, 4) for i in range(rank))
    axis = d.int("axis", 0, rank - 1)
    batch_dims = d.int("batch_dims", 0, min(axis, 1))
    idx_shape = shape[:batch_dims] + tuple(d.int(f"i{k}", 1, 3) for k in range(d.int("idx_rank", 1, 2)))
    idx = d.rng().integers(0, shape[axis], size=idx_shape).astype(np.int32)
    x = _i8(d, shape)
    expected = mk.gather(x, idx, axis, batch_dims)
    batch = int(np.prod(shape[:batch_dims], dtype=np.int64))
    params = Struct("ek_gather_params", {
        "batch_size": batch, "outer_size": int(np.prod(shape[batch_dims:axis], dtype=np.int64)),
        "axis_size": shape[axis], "inner_size": int(np.prod(shape[axis + 1:], dtype=np.int64)),
        "num_indices": idx.size // batch})
    return KernelCall(name, "ek_gather_s8", [params, idx.ravel(), x], expected)


def sample_depth_to_space(d, name="depth_to_space"):
    b = d.int("block", 1, 3)
    shape = (d.int("n", 1, 2), d.int("h", 1, 4), d.int("w", 1, 4), d.int("c", 1, 3) * b * b)
    x = _i8(d, shape)
    return KernelCall(name, "ek_depth_to_space_s8", [dims4(shape), b, x], mk.depth_to_space(x, b))


def sample_space_to_depth(d, name="space_to_depth"):
    b = d.int("block", 1, 3)
    shape = (d.int("n", 1, 2), d.int("h", 1, 3) * b, d.int("w", 1, 3) * b, d.int("c", 1, 4))
    x = _i8(d, shape)
    return KernelCall(name, "ek_space_to_depth_s8", [dims4(shape), b, x], mk.space_to_depth(x, b))


def sample_cast_s8_f32(d, name="cast_s8_f32"):
    x = _i8(d, (d.int("size", 1, 100),))
    from edgekit.ir.dtypes import DType

    return KernelCall(name, "ek_cast_s8_f32", [x.size, x], mk.cast(x, DType.FLOAT32))


def sample_cast_f32_s8(d, name="cast_f32_s8"):
    """Values in and out of range and halves: the reference's saturating rule (NaN is a
    host corner case: the QEMU vector tables have no NaN constant)."""
    from edgekit.ir.dtypes import DType

    n = d.int("size", 1, 100)
    rng = d.rng()
    x = rng.uniform(-300, 300, size=n).astype(np.float32)
    halves = rng.random(n) < 0.3
    x[halves] = np.floor(x[halves]) + 0.5
    return KernelCall(name, "ek_cast_f32_s8", [n, x], mk.cast(x, DType.INT8))


SAMPLERS = {
    "slice": sample_slice,
    "split": sample_split,
    "gather": sample_gather,
    "depth_to_space": sample_depth_to_space,
    "space_to_depth": sample_space_to_depth,
    "cast_s8_f32": sample_cast_s8_f32,
    "cast_f32_s8": sample_cast_f32_s8,
}
