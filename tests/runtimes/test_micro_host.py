"""runtimes/micro on the host: every kernel (portable variant) through ctypes against
edgekit.reference.int8_kernels, byte for byte, on random shapes, strides, dilations,
pads, zero points, scales and activations (hypothesis), plus fixed corner cases and
the fixed-point helpers against edgekit.reference.fixedpoint."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from tests.runtimes import micro_cases as mc
from tests.runtimes.micro_abi import KernelCall, call

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = 100  # per op; the "ci" profile (tests/conftest.py) makes them the same every run


def assert_same_bytes(got: np.ndarray, kc: KernelCall) -> None:
    exp = kc.expected
    if got.tobytes() == exp.tobytes():
        return
    g = got.reshape(-1).view(np.uint32 if exp.dtype == np.float32 else np.int8)
    e = exp.reshape(-1).view(np.uint32 if exp.dtype == np.float32 else np.int8)
    bad = np.flatnonzero(g != e)
    i = int(bad[0])
    raise AssertionError(
        f"{kc.name} ({kc.function}): {len(bad)} of {e.size} outputs differ; first at flat "
        f"index {i}: got {got.reshape(-1)[i]!r}, expected {exp.reshape(-1)[i]!r}; "
        f"output shape {exp.shape}")


@pytest.mark.parametrize("op", sorted(mc.SAMPLERS))
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_kernel_matches_reference(micro_lib, op, data):
    kc = mc.SAMPLERS[op](mc.HypothesisDraw(data), name=op)
    assert_same_bytes(call(micro_lib, kc), kc)


# ------------------------------------------------------------------------------ corner cases


def qp(scale, zp=0):
    return QuantParams.per_tensor(scale, zp)


def rand_i8(rng, shape):
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def test_conv_1x1_with_bottom_padding_leaves_the_fast_path(micro_lib):
    # pad_top = pad_left = 0 but bottom/right padding: the last row/column reads nothing
    rng = np.random.default_rng(1)
    x, w = rand_i8(rng, (1, 3, 3, 5)), rand_i8(rng, (4, 1, 1, 5))
    for pads, stride in (((0, 0, 1, 1), (1, 1)), ((0, 0, 2, 2), (2, 2)), ((1, 1, 1, 1), (1, 1))):
        kc = mc.conv2d_case("conv1x1_pad", x, w, None, qp(0.05, 3), qp(0.01), qp(0.1, -5),
                            stride=stride, pads=pads, dilation=(1, 1), activation="NONE")
        assert_same_bytes(call(micro_lib, kc), kc)


def test_depthwise_3x3_interior_and_border(micro_lib):
    rng = np.random.default_rng(2)
    for c, stride in ((8, 1), (5, 2), (1, 1)):
        x, w = rand_i8(rng, (2, 9, 7, c)), rand_i8(rng, (1, 3, 3, c))
        bias = rng.integers(-5000, 5000, c).astype(np.int32)
        wq = QuantParams.per_axis(rng.uniform(0.002, 0.02, c), [0] * c, 3)
        kc = mc.depthwise_case("dw3x3", x, w, bias, qp(0.04, -7), wq, qp(0.2, 11),
                               stride=(stride, stride), pads=(1, 1, 1, 1), dilation=(1, 1),
                               depth_multiplier=1, activation="RELU6")
        assert_same_bytes(call(micro_lib, kc), kc)


def test_fully_connected_extreme_filter_zero_points(micro_lib):
    rng = np.random.default_rng(3)
    x, w = rand_i8(rng, (3, 37)), rand_i8(rng, (7, 37))
    for zp_w in (-128, 127):
        kc = mc.fully_connected_case("fc_zp_w", x, w, None, qp(0.1, -128), qp(0.01, zp_w),
                                     qp(2.0, 127), activation="NONE")
        assert_same_bytes(call(micro_lib, kc), kc)


def test_requantize_extreme_multipliers(micro_lib):
    x = np.arange(-128, 128, dtype=np.int8)
    # large ratio: positive shift, saturating; tiny ratio: shift below -31 flushes to 0
    for s_in, s_out in ((1.0, 1e-4), (1e-4, 1.0), (1.0, 1.0), (2.0 ** -40, 1.0)):
        kc = mc.requantize_case("requant", x, qp(s_in, 5), qp(s_out, -9))
        assert_same_bytes(call(micro_lib, kc), kc)
        kc = mc.relu_case("relu", x, qp(s_in, 5), qp(s_out, -9))
        assert_same_bytes(call(micro_lib, kc), kc)


def test_softmax_long_rows_and_single_values(micro_lib):
    # 1000 equal values: the sum needs 10 bits over unit, the final shift exceeds 31
    for x in (np.zeros((2, 1000), np.int8), np.full((1, 1), -128, np.int8),
              np.arange(-128, 128, dtype=np.int8).reshape(1, 256)):
        for beta in (1.0, 0.25):
            kc = mc.softmax_case("softmax_rows", x, qp(0.05, 0), beta)
            assert_same_bytes(call(micro_lib, kc), kc)


def test_logistic_and_tanh_every_input(micro_lib):
    x = np.arange(-128, 128, dtype=np.int8)
    for scale in (1e-3, 0.01, 1 / 16, 0.1, 0.5, 1.0):
        for zp in (-128, 0, 37, 127):
            for kind in ("logistic", "tanh"):
                kc = mc.sigmoid_case(kind, kind, x, qp(scale, zp))
                assert_same_bytes(call(micro_lib, kc), kc)


def test_quantize_ties_and_huge_values(micro_lib):
    scale = np.float32(0.25)
    x = (np.arange(-300, 300, dtype=np.float32) * np.float32(0.125)).astype(np.float32)
    x = np.concatenate([x, np.array([1e30, -1e30, 3e9, -3e9, -0.0], np.float32)])
    for zp in (-128, 0, 100):
        kc = mc.quantize_case("quantize_ties", x, qp(float(scale), zp))
        assert_same_bytes(call(micro_lib, kc), kc)


def test_mean_over_everything_and_nothing_kept(micro_lib):
    rng = np.random.default_rng(4)
    x = rand_i8(rng, (2, 7, 9, 6))
    for axes in ([0, 1, 2, 3], [1, 2], [3], [0]):
        kc = mc.mean_case("mean_axes", x, qp(0.02, -3), qp(0.02, -3), axes, keep_dims=True)
        assert_same_bytes(call(micro_lib, kc), kc)


def test_binary_broadcast_both_sides(micro_lib):
    rng = np.random.default_rng(5)
    a, b = rand_i8(rng, (2, 1, 4, 1)), rand_i8(rng, (3, 1, 5))
    for kind in ("add", "sub", "mul"):
        kc = mc.binary_case(kind, kind, a, b, qp(0.1, 4), qp(0.03, -20), qp(0.2, 1),
                            activation="RELU")
        assert_same_bytes(call(micro_lib, kc), kc)


# ------------------------------------------------------------------------------ fixed point


I32 = ctypes.c_int32


def _run_shim(lib, name, n, *arrays, scalars=(), outs=1):
    keep = [np.ascontiguousarray(a, dtype=np.int32) for a in arrays]
    res = [np.zeros(n, np.int32) for _ in range(outs)]
    fn = getattr(lib, name)
    fn.restype = None
    fn(I32(n), *[a.ctypes.data_as(ctypes.c_void_p) for a in keep], *[I32(s) for s in scalars],
       *[r.ctypes.data_as(ctypes.c_void_p) for r in res])
    return res[0] if outs == 1 else res


def _int32_samples(rng, n):
    edges = np.array([fp.INT32_MIN, fp.INT32_MIN + 1, -1, 0, 1, fp.INT32_MAX - 1, fp.INT32_MAX],
                     np.int64)
    wide = rng.integers(fp.INT32_MIN, fp.INT32_MAX, n, endpoint=True)
    small = rng.integers(-(1 << 16), 1 << 16, n)
    return np.concatenate([edges, wide, small])


def test_fixedpoint_srdhm_rdbp_mbqm(micro_lib):
    rng = np.random.default_rng(6)
    a = _int32_samples(rng, 4000)
    b = rng.permutation(a)
    b[:7] = fp.INT32_MIN  # includes INT32_MIN * INT32_MIN
    got = _run_shim(micro_lib, "ekt_srdhm", a.size, a, b)
    np.testing.assert_array_equal(got, fp.saturating_rounding_doubling_high_mul(a, b))

    # exact halves and their neighbours for every exponent
    e = rng.integers(0, 32, a.size)
    half = np.where(e > 0, np.left_shift(1, np.maximum(e - 1, 0)), 0)
    x = fp.wrap_int32(np.concatenate([a, (a >> e << e) + half, (a >> e << e) + half - 1,
                                      -((a >> e << e) + half)]))
    e4 = np.tile(e, 4)
    got = _run_shim(micro_lib, "ekt_rdbp", x.size, x, e4)
    np.testing.assert_array_equal(got, fp.rounding_divide_by_pot(x, e4))

    m = rng.integers(1 << 30, fp.INT32_MAX, a.size, endpoint=True)
    s = rng.integers(-31, 31, a.size)
    got = _run_shim(micro_lib, "ekt_mbqm", a.size, a, m, s)
    np.testing.assert_array_equal(got, fp.multiply_by_quantized_multiplier(a, m, s))


def test_fixedpoint_transcendentals(micro_lib):
    rng = np.random.default_rng(7)
    a = _int32_samples(rng, 4000)
    neg = -np.abs(a).clip(0, fp.INT32_MAX)
    neg = np.concatenate([neg, [fp.INT32_MIN]])
    for ib in (4, 5):
        got = _run_shim(micro_lib, "ekt_exp_on_negative_values", neg.size, neg, scalars=(ib,))
        np.testing.assert_array_equal(got, fp.exp_on_negative_values(neg, ib))
    got = _run_shim(micro_lib, "ekt_logistic", a.size, a, scalars=(4,))
    np.testing.assert_array_equal(got, fp.logistic(a, 4))
    got = _run_shim(micro_lib, "ekt_tanh", a.size, a, scalars=(4,))
    np.testing.assert_array_equal(got, fp.tanh(a, 4))
    unit = np.abs(a).clip(0, fp.INT32_MAX)
    got = _run_shim(micro_lib, "ekt_one_over_one_plus_x", unit.size, unit)
    np.testing.assert_array_equal(got, fp.one_over_one_plus_x_for_x_in_0_1(unit))
    pos = unit[unit > 0]
    got, bits = _run_shim(micro_lib, "ekt_get_reciprocal", pos.size, pos, scalars=(12,), outs=2)
    want, want_bits = fp.get_reciprocal(pos, 12)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bits, want_bits)
