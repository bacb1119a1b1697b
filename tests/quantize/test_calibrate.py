"""Calibration: statistics collection over a graph and each range method, checked
against hand computations on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.ir import DType, Graph, OpType, verify
from edgekit.quantize import Range, calibrate, collect_stats
from edgekit.quantize.auto_select import _candidate_errors_full, selectable_tensors
from edgekit.quantize.histogram import (ESTIMATORS, TensorHistogram, _kl_to_quantized, entropy_range,
                                        estimate_range, expected_sq_error, kl_divergences, minmax_range,
                                        mse_range, percentile_range, rebin)
from edgekit.quantize.scheme import activation_qparams
from edgekit.reference import int8_kernels as ik

rng = np.random.default_rng(0)


def hist_of(x: np.ndarray, batches: int = 1) -> TensorHistogram:
    h = TensorHistogram()
    for part in np.array_split(np.asarray(x, np.float32).ravel(), batches):
        h.update(part)
    return h


def quant_mse(x: np.ndarray, lo: float, hi: float) -> float:
    """The real squared error of int8 quantization with the range's parameters."""
    q = activation_qparams(lo, hi)
    return float(np.mean((ik.dequantize(ik.quantize(x, q), q) - x) ** 2))


def fc_relu_graph() -> Graph:
    """x [1,4] -> FC (2x, +1) -> h -> RELU -> y."""
    g = Graph("fc_relu")
    g.add_tensor("x", (1, 4), DType.FLOAT32)
    g.add_const("w", 2 * np.eye(4, dtype=np.float32))
    g.add_const("b", np.ones(4, np.float32))
    g.add_tensor("h", (1, 4), DType.FLOAT32)
    g.add_tensor("y", (1, 4), DType.FLOAT32)
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["h"], name="fc")
    g.add_op(OpType.RELU, ["h"], ["y"], name="relu")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


# -- statistics over a graph ------------------------------------------------------------------

def test_minmax_of_every_activation_tensor():
    g = fc_relu_graph()
    x = np.array([[-3.0, 0.5, 1.0, 2.0], [0.25, -1.0, 4.0, 0.0], [1, 1, 1, 1]], np.float32)
    r = calibrate(g, x, method="minmax", batch_size=2)
    assert set(r) == {"x", "h", "y"}
    assert (r["x"].min, r["x"].max) == (-3.0, 4.0)
    assert (r["h"].min, r["h"].max) == (-5.0, 9.0)          # 2x + 1
    assert (r["y"].min, r["y"].max) == (0.0, 9.0)           # relu
    assert all(v.method == "minmax" for v in r.values())
    lo, hi = r["x"]  # a Range unpacks as (min, max)
    assert (lo, hi) == (-3.0, 4.0)


def test_ranges_always_include_zero():
    g = fc_relu_graph()
    x = rng.uniform(1.0, 2.0, size=(64, 4)).astype(np.float32)
    for method in ESTIMATORS:
        r = calibrate(g, x, method=method)
        for rng_ in r.values():
            assert rng_.min <= 0.0 <= rng_.max
        assert r["x"].min == 0.0 and r["x"].max == pytest.approx(float(x.max()), rel=1e-2)


def test_batching_does_not_change_the_statistics():
    g = fc_relu_graph()
    x = rng.normal(size=(200, 4)).astype(np.float32)
    one = collect_stats(g, x, batch_size=200)
    many = collect_stats(g, x, batch_size=7)
    for name in one:
        assert (one[name].min, one[name].max) == (many[name].min, many[name].max)
        assert one[name].count == many[name].count == 800
    # Growing the range re-bins the counts: the distribution stays close.
    a = np.cumsum(one["h"].counts)
    b = np.cumsum(many["h"].counts)
    assert np.abs(a - b).max() <= 0.02 * 800


def test_progress_callback_and_bad_arguments():
    g = fc_relu_graph()
    x = rng.normal(size=(10, 4)).astype(np.float32)
    calls = []
    calibrate(g, x, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(BadInputError, match="unknown calibration method 'kl'"):
        calibrate(g, x, method="kl")
    with pytest.raises(BadInputError, match="percentile must be in"):
        calibrate(g, x, method="percentile", percentile=20)
    with pytest.raises(BadInputError, match="takes 1 input"):
        calibrate(g, [x, x])


def test_all_zero_tensor_gets_an_empty_range():
    g = fc_relu_graph()
    x = np.full((8, 4), -5.0, np.float32)  # h = -9 everywhere, y = relu(h) = 0
    for method in ESTIMATORS:
        assert tuple(calibrate(g, x, method=method)["y"]) == (0.0, 0.0)


# -- the histogram ------------------------------------------------------------------------------

def test_rebin_keeps_the_total_and_the_shape():
    x = rng.normal(size=50000)
    c, _ = np.histogram(x, bins=256, range=(-5, 5))
    moved = rebin(c.astype(float), -5, 5, -10, 10)
    assert moved.sum() == pytest.approx(c.sum())
    direct, _ = np.histogram(x, bins=256, range=(-10, 10))
    assert np.abs(np.cumsum(moved) - np.cumsum(direct)).max() < 0.01 * len(x)


def test_streaming_histogram_matches_numpy_after_growth():
    x = np.concatenate([rng.uniform(0, 1, 20000), rng.uniform(-3, 4, 20000)])  # the range grows
    h = hist_of(x, batches=8)
    assert (h.min, h.max) == (float(np.float32(x).min()), float(np.float32(x).max()))
    edges = np.linspace(h.min, h.max, 50)
    want = np.searchsorted(np.sort(np.float32(x)), edges)
    assert np.abs(h.cdf_at(edges) - want).max() < 0.01 * len(x)


# -- the range methods ----------------------------------------------------------------------------

def test_minmax_range():
    h = hist_of(np.array([0.5, 3.0, -2.0, 1.0]))
    assert minmax_range(h) == (-2.0, 3.0)
    assert minmax_range(hist_of(np.array([2.0, 5.0]))) == (0.0, 5.0)


def test_percentile_matches_numpy():
    x = rng.normal(1.0, 2.0, size=200000).astype(np.float32)
    h = hist_of(x, batches=4)
    width = (h.hi - h.lo) / h.bins
    for p in (99.0, 99.9, 99.99):
        lo, hi = percentile_range(h, p)
        want_lo, want_hi = np.percentile(x, [100 - p, p])
        assert abs(hi - want_hi) < 2 * width and abs(lo - want_lo) < 2 * width
    assert percentile_range(h, 100.0) == pytest.approx(minmax_range(h))


def test_expected_error_model_matches_real_quantization():
    x = rng.laplace(size=100000).astype(np.float32)
    h = hist_of(x)
    for lo, hi in [(-8.0, 8.0), (-3.0, 2.0), (float(x.min()), float(x.max()))]:
        model = float(expected_sq_error(h, np.array([lo]), np.array([hi]))[0])
        assert model == pytest.approx(quant_mse(x, lo, hi), rel=0.05)


def test_mse_optimal_range_beats_minmax_on_laplace():
    x = rng.laplace(scale=1.0, size=100000).astype(np.float32)
    h = hist_of(x, batches=5)
    lo, hi = mse_range(h)
    mm = minmax_range(h)
    assert mm[0] < lo < 0 < hi < mm[1]  # clips the tails
    assert quant_mse(x, lo, hi) < 0.9 * quant_mse(x, *mm)
    # and no shrink factor of the min/max range does better (within 2%)
    best = min(quant_mse(x, mm[0] * f, mm[1] * f) for f in np.linspace(0.3, 1.0, 36))
    assert quant_mse(x, lo, hi) <= 1.02 * best


def test_mse_range_of_a_uniform_distribution_is_minmax():
    x = rng.uniform(-1, 3, size=50000).astype(np.float32)
    lo, hi = mse_range(hist_of(x))
    assert lo == pytest.approx(x.min(), rel=0.02) and hi == pytest.approx(x.max(), rel=0.02)


def test_entropy_range_is_tighter_than_minmax_on_heavy_tails():
    x = rng.standard_t(df=2, size=200000).astype(np.float32)  # heavy tails
    h = hist_of(x)
    lo, hi = entropy_range(h)
    mm = minmax_range(h)
    assert mm[0] < lo < 0 < hi < mm[1]
    assert hi - lo < 0.5 * (mm[1] - mm[0])
    # post-ReLU: only the positive side, the zeros do not pull the threshold down
    r = np.maximum(rng.standard_t(df=3, size=200000), 0).astype(np.float32)
    lo, hi = entropy_range(hist_of(r))
    assert lo == 0.0 and np.percentile(r, 99) < hi < r.max()


def test_entropy_keeps_the_range_with_too_few_values():
    x = np.abs(rng.standard_t(df=2, size=500)).astype(np.float32)
    assert entropy_range(hist_of(x)) == minmax_range(hist_of(x))


def test_vectorized_kl_equals_the_plain_computation():
    x = np.abs(rng.laplace(size=30000))
    hist, _ = np.histogram(x, bins=1024)
    hist = hist.astype(float)
    ends = np.arange(128, 1025, 37)
    fast = kl_divergences(hist, ends, 128)
    for i, kl in zip(ends, fast):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        assert kl == pytest.approx(_kl_to_quantized(p, hist[:i], 128), rel=1e-9, abs=1e-12)


def test_estimate_range_rejects_unknown_methods():
    with pytest.raises(ValueError, match="unknown calibration method"):
        estimate_range(hist_of(np.ones(4)), "magic")


# -- auto -----------------------------------------------------------------------------------------------

def two_layer_graph() -> Graph:
    """x [1,16] -> FC -> h1 (RELU) -> FC -> y; h1 has rare large outliers."""
    g = Graph("two_layer")
    g.add_tensor("x", (1, 16), DType.FLOAT32)
    g.add_const("w1", rng.normal(size=(16, 16)).astype(np.float32) / 4)
    g.add_const("w2", rng.normal(size=(4, 16)).astype(np.float32) / 4)
    g.add_tensor("h1", (1, 16), DType.FLOAT32)
    g.add_tensor("y", (1, 4), DType.FLOAT32)
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w1"], ["h1"], {"activation": "RELU"}, name="fc1")
    g.add_op(OpType.FULLY_CONNECTED, ["h1", "w2"], ["y"], name="fc2")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def test_auto_picks_the_candidate_with_the_smallest_output_error():
    g = two_layer_graph()
    x = rng.laplace(size=(200, 16)).astype(np.float32)
    x[::50] *= 20  # outliers
    calls = []
    r = calibrate(g, x, method="auto", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == 4 + 3  # 4 batches + 3 tensors
    assert selectable_tensors(g) == ["x", "h1", "y"]
    hists = collect_stats(g, x)
    for name in ("x", "h1", "y"):
        cands = {m: estimate_range(hists[name], m) for m in ESTIMATORS}
        assert r[name].method in ESTIMATORS
        assert (r[name].min, r[name].max) == pytest.approx(cands[r[name].method])
    # Brute force on the same 64-sample subset: the chosen range has the smallest error.
    from edgekit.quantize.auto_select import _ir_graph_and_inputs, _subset
    from edgekit.reference.interpreter import Interpreter

    gi, feeds = _ir_graph_and_inputs(g, _subset([x], 64))
    ref = Interpreter(gi).run(feeds, dump=True)
    cands = {m: estimate_range(hists["h1"], m) for m in ESTIMATORS}
    errors = _candidate_errors_full(gi, "h1", [activation_qparams(*c) for c in cands.values()], ref)
    chosen = activation_qparams(r["h1"].min, r["h1"].max)
    assert min(errors) == pytest.approx(errors[[activation_qparams(*c) for c in cands.values()].index(chosen)])


def test_auto_skips_tensors_with_fixed_or_shared_parameters():
    g = Graph("pool_softmax")
    g.add_tensor("x", (1, 4, 4, 2), DType.FLOAT32)
    g.add_tensor("p", (1, 2, 2, 2), DType.FLOAT32)
    g.add_tensor("f", (1, 8), DType.FLOAT32)
    g.add_tensor("s", (1, 8), DType.FLOAT32)
    g.add_op(OpType.MAX_POOL_2D, ["x"], ["p"], {"kernel": (2, 2), "strides": (2, 2)}, name="pool")
    g.add_op(OpType.RESHAPE, ["p"], ["f"], {"shape": (1, 8)}, name="flat")
    g.add_op(OpType.SOFTMAX, ["f"], ["s"], name="softmax")
    g.inputs, g.outputs = ["x"], ["s"]
    verify(g)
    assert selectable_tensors(g) == ["x"]
    r = calibrate(g, rng.normal(size=(32, 4, 4, 2)).astype(np.float32), method="auto")
    assert set(r) == {"x", "p", "f", "s"} and r["s"].method == "minmax"


def test_range_union():
    a, b = Range(-1.0, 2.0, "mse"), Range(-3.0, 1.0, "mse")
    assert a.union(b) == Range(-3.0, 2.0, "mse")
    assert a.union(Range(0.0, 5.0, "minmax")).method == "minmax+mse"
