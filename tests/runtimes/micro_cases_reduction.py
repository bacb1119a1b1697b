"""Kernel cases of REDUCE_MAX, SUM (ek_mean_s8 with SUM's multiplier), ARG_MAX/ARG_MIN,
L2_NORMALIZATION and BATCH_MATMUL for runtimes/micro: random operands, the C
parameters as edgekit.backends.c.params derives them, and the bytes
edgekit.reference.reduction_kernels produces (the definition). Registered in
micro_cases.SAMPLERS."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import lower_reduction as P
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import reduction_kernels as R
from tests.runtimes.micro_abi import KernelCall, Struct, dims4


def _i8(d, shape) -> np.ndarray:
    return d.rng().integers(-128, 128, size=shape).astype(np.int8)


def _qp(d, name: str, lo=1e-3, hi=0.5) -> QuantParams:
    return QuantParams.per_tensor(d.scale(f"s_{name}", lo, hi), d.int(f"zp_{name}", -128, 127))


def _shape4(d, hi=6):
    return tuple(d.int(f"d{i}", 1, hi) for i in range(4))


def _axes(d):
    return [i for i in range(4) if d.bool(f"axis{i}")] or [d.int("axis", 0, 3)]


def sample_reduce_max(d, name="reduce_max"):
    x = _i8(d, _shape4(d))
    axes = _axes(d)
    q = _qp(d, "in")
    expected = R.reduce_max_int8(x, q, q, axes=axes)
    return KernelCall(name, "ek_reduce_max_s8", [dims4(x.shape), sum(1 << a for a in axes), x], expected)


def sample_sum(d, name="sum"):
    x = _i8(d, _shape4(d))
    axes = _axes(d)
    xq, oq = _qp(d, "in"), _qp(d, "out", 0.01, 5.0)
    expected = R.reduce_sum_int8(x, xq, oq, axes=axes)
    struct = P.sum_params(xq, oq)
    params = Struct(struct.ctype, struct.values)
    return KernelCall(name, "ek_mean_s8", [params, dims4(x.shape), sum(1 << a for a in axes), x], expected)


def sample_arg_min_max(d, name="arg_min_max"):
    shape = _shape4(d)
    x = d.rng().integers(-3, 3, size=shape).astype(np.int8)  # few values: ties
    axis = d.int("axis", 0, 3)
    is_min = d.bool("is_min")
    expected = (R.arg_min if is_min else R.arg_max)(x, axis=axis)
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    return KernelCall(name, "ek_arg_min_max_s8", [outer, shape[axis], inner, int(is_min), x], expected)


def sample_l2_normalization(d, name="l2_normalization"):
    rows, depth = d.int("rows", 1, 8), d.int("depth", 1, 64)
    xq = _qp(d, "in")
    spread = d.choice("spread", (1, 4, 128))
    zp = int(xq.zero_point[0])
    x = np.clip(zp + d.rng().integers(-spread, spread + 1, size=(rows, depth)), -128, 127).astype(np.int8)
    expected = R.l2_normalization_int8(x, xq, QuantParams.per_tensor(1 / 128, 0))
    return KernelCall(name, "ek_l2_normalization_s8", [-zp, rows, depth, x], expected)


def sample_batch_matmul(d, name="batch_matmul"):
    m, k, n = d.int("m", 1, 9), d.int("k", 1, 48), d.int("n", 1, 9)
    batch = (d.int("b0", 1, 3), d.int("b1", 1, 3))
    a_batch = tuple(s if d.bool(f"a_full{i}") else 1 for i, s in enumerate(batch))
    b_batch = tuple(s if d.bool(f"b_full{i}") else 1 for i, s in enumerate(batch))
    adj_x, adj_y = d.bool("adj_x"), d.bool("adj_y")
    a = _i8(d, a_batch + ((k, m) if adj_x else (m, k)))
    b = _i8(d, b_batch + ((n, k) if adj_y else (k, n)))
    aq, bq, oq = _qp(d, "a"), _qp(d, "b"), _qp(d, "out", 0.01, 5.0)
    expected = R.batch_matmul_int8(a, b, aq, bq, oq, adj_x=adj_x, adj_y=adj_y)
    struct = P.batch_matmul_params(aq, bq, oq, adj_x=adj_x, adj_y=adj_y)
    return KernelCall(name, "ek_batch_matmul_s8", [Struct(struct.ctype, struct.values), dims4(a.shape), a,
                                                   dims4(b.shape), b, dims4(expected.shape)], expected)


SAMPLERS = {
    "reduce_max": sample_reduce_max,
    "sum": sample_sum,
    "arg_min_max": sample_arg_min_max,
    "l2_normalization": sample_l2_normalization,
    "batch_matmul": sample_batch_matmul,
}
