"""Streaming statistics of one tensor, and the activation ranges computed from them.

``TensorHistogram`` keeps the exact minimum and maximum and a fixed number of bins
over the running range (always including 0). When a batch exceeds the range, the
old counts are re-binned onto the wider range (assuming values spread uniformly
inside each bin), so nothing but the histogram is ever kept.

The range estimators (all return ``(lo, hi)`` with ``lo <= 0 <= hi``):
- ``minmax_range``: the observed extremes;
- ``percentile_range``: the two-sided percentile (``p`` and ``100 - p``);
- ``mse_range``: the range minimizing the expected squared error of asymmetric
  int8 quantization (rounding noise inside, clipping error outside);
- ``entropy_range``: TensorRT's KL-divergence threshold (128 quantization levels),
  for the positive and the negative side separately.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINS = 2048
QLEVELS = 255  # steps of an int8 grid: (hi - lo) / 255


class TensorHistogram:
    """Histogram of a tensor's values, accumulated batch by batch."""

    def __init__(self, bins: int = DEFAULT_BINS):
        self.bins = int(bins)
        self.counts = np.zeros(self.bins, dtype=np.float64)
        self.lo = 0.0
        self.hi = 0.0
        self.min = np.inf
        self.max = -np.inf
        self.count = 0
        self.zeros = 0  # exact zeros (post-ReLU tensors have many; int8 represents 0 exactly)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.bins + 1)

    @property
    def empty(self) -> bool:
        return self.count == 0

    def update(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float32).ravel()
        if v.size == 0:
            return
        vmin, vmax = float(v.min()), float(v.max())
        if not (np.isfinite(vmin) and np.isfinite(vmax)):
            v = v[np.isfinite(v)]
            if v.size == 0:
                return
            vmin, vmax = float(v.min()), float(v.max())
        self.min = min(self.min, vmin)
        self.max = max(self.max, vmax)
        lo, hi = min(self.min, 0.0), max(self.max, 0.0)
        if hi - lo <= 0:
            hi = lo + 1e-12  # all zeros so far: a tiny range around 0
        if self.count == 0:
            self.lo, self.hi = lo, hi
        elif lo < self.lo or hi > self.hi:
            self.counts = rebin(self.counts, self.lo, self.hi, lo, hi)
            self.lo, self.hi = lo, hi
        c, _ = np.histogram(v, bins=self.bins, range=(self.lo, self.hi))
        self.counts += c
        self.count += int(v.size)
        self.zeros += int(np.count_nonzero(v == 0))

    def cdf_at(self, x) -> np.ndarray:
        """Number of values below ``x`` (interpolated inside bins)."""
        cum = np.concatenate([[0.0], np.cumsum(self.counts)])
        return np.interp(x, self.edges, cum, left=0.0, right=float(cum[-1]))

    def side_histogram(self, side: int, bins: int | None = None) -> tuple[np.ndarray, float]:
        """Histogram of the magnitudes of the positive (``side`` 1) or negative (-1) values
        over [0, their largest magnitude], exact zeros left out, and its bin width."""
        bins = bins or self.bins
        top = self.hi if side > 0 else -self.lo
        edges = np.linspace(0.0, top, bins + 1)
        if side > 0:
            cum = self.cdf_at(edges) - self.cdf_at(0.0)
        else:
            cum = self.cdf_at(0.0) - self.cdf_at(-edges)
        hist = np.diff(cum)
        # Zeros sit in the bin at 0 of the signed histogram, split between the sides by
        # where 0 falls in it; take this side's share of them out.
        if hist.size and self.zeros:
            share = self._zero_share(side)
            hist[0] = max(hist[0] - share, 0.0)
        return hist, top / bins

    def _zero_share(self, side: int) -> float:
        e = self.edges
        k = min(max(int(np.searchsorted(e, 0.0, side="right")) - 1, 0), self.bins - 1)
        width = e[k + 1] - e[k]
        frac_pos = (e[k + 1] - 0.0) / width if width > 0 else 1.0
        return self.zeros * (frac_pos if side > 0 else 1.0 - frac_pos)


def rebin(counts: np.ndarray, lo: float, hi: float, new_lo: float, new_hi: float) -> np.ndarray:
    """Counts over [lo, hi] spread onto the same number of bins over [new_lo, new_hi]."""
    n = len(counts)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    new_cum = np.interp(np.linspace(new_lo, new_hi, n + 1), np.linspace(lo, hi, n + 1), cum,
                        left=0.0, right=float(cum[-1]))
    return np.diff(new_cum)


def _with_zero(lo: float, hi: float) -> tuple[float, float]:
    return float(min(lo, 0.0)), float(max(hi, 0.0))


# -- estimators -----------------------------------------------------------------------

def minmax_range(h: TensorHistogram) -> tuple[float, float]:
    if h.empty:
        return 0.0, 0.0
    return _with_zero(h.min, h.max)


def percentile_range(h: TensorHistogram, percentile: float = 99.99) -> tuple[float, float]:
    """The ``percentile``-th and ``(100 - percentile)``-th percentiles of the values."""
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    if h.empty:
        return 0.0, 0.0
    cum = np.concatenate([[0.0], np.cumsum(h.counts)])
    cum /= cum[-1]
    edges = h.edges
    q_hi, q_lo = percentile / 100.0, 1.0 - percentile / 100.0
    # The first edge where the cumulative share reaches q, interpolated inside its bin.
    hi = _inverse_cdf(cum, edges, q_hi)
    lo = _inverse_cdf(cum, edges, q_lo)
    return _with_zero(max(lo, h.min), min(hi, h.max))


def _inverse_cdf(cum: np.ndarray, edges: np.ndarray, q: float) -> float:
    i = int(np.searchsorted(cum, q, side="left"))
    if i <= 0:
        return float(edges[0])
    if i >= len(cum):
        return float(edges[-1])
    c0, c1 = cum[i - 1], cum[i]
    t = 0.0 if c1 <= c0 else (q - c0) / (c1 - c0)
    return float(edges[i - 1] + t * (edges[i] - edges[i - 1]))


def nudged_grid(lo, hi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale and the representable [lo', hi'] of asymmetric int8 for ranges (lo, hi)
    (arrays allowed), with the zero point rounded so 0 is exactly representable."""
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    scale = np.maximum(hi - lo, 1e-30) / QLEVELS
    zp = np.clip(np.round(-128.0 - lo / scale), -128, 127)
    return scale, (-128.0 - zp) * scale, (127.0 - zp) * scale


def expected_sq_error(h: TensorHistogram, lo, hi) -> np.ndarray:
    """Expected squared error per value of int8 quantization with range (lo, hi), for
    arrays of candidates: rounding noise scale^2/12 for values inside the grid,
    (x - bound)^2 for clipped values; values spread uniformly inside each bin.
    Uses prefix sums of each bin's moments, so a candidate costs O(log bins)."""
    scale, glo, ghi = nudged_grid(lo, hi)
    e = h.edges
    a, b, n = e[:-1], e[1:], h.counts
    s0 = np.concatenate([[0.0], np.cumsum(n)])
    s1 = np.concatenate([[0.0], np.cumsum(n * (a + b) / 2.0)])
    s2 = np.concatenate([[0.0], np.cumsum(n * (a * a + a * b + b * b) / 3.0)])
    dens = n / np.maximum(b - a, 1e-300)

    def moments_below(u):
        """Count, sum and sum of squares of the values below ``u``."""
        u = np.clip(u, e[0], e[-1])
        k = np.clip(np.searchsorted(e, u, side="right") - 1, 0, len(n) - 1)
        d, ak = dens[k], a[k]
        return (s0[k] + d * (u - ak), s1[k] + d * (u * u - ak * ak) / 2.0,
                s2[k] + d * (u ** 3 - ak ** 3) / 3.0)

    t0, t1, t2 = s0[-1], s1[-1], s2[-1]
    l0, l1, l2 = moments_below(glo)
    h0, h1, h2 = moments_below(ghi)
    u0, u1, u2 = t0 - h0, t1 - h1, t2 - h2
    err_below = l2 - 2.0 * glo * l1 + glo * glo * l0
    err_above = u2 - 2.0 * ghi * u1 + ghi * ghi * u0
    inside = np.maximum(t0 - l0 - u0, 0.0)
    err = np.maximum(err_below, 0.0) + np.maximum(err_above, 0.0) + inside * scale ** 2 / 12.0
    return err / max(h.count, 1)


def mse_range(h: TensorHistogram, steps: int = 512, rounds: int = 3) -> tuple[float, float]:
    """The (lo, hi) that minimizes ``expected_sq_error``: a search over a common shrink
    factor of the observed range, then alternating refinements of each end."""
    lo0, hi0 = minmax_range(h)
    if hi0 - lo0 <= 0:
        return lo0, hi0
    fracs = np.linspace(1.0 / steps, 1.0, steps)
    err = expected_sq_error(h, lo0 * fracs, hi0 * fracs)
    best = int(np.argmin(err))
    lo, hi, best_err = lo0 * fracs[best], hi0 * fracs[best], err[best]
    for _ in range(rounds):
        changed = False
        if hi0 > 0:
            cand = hi0 * fracs
            e = expected_sq_error(h, np.full(steps, lo), cand)
            i = int(np.argmin(e))
            if e[i] < best_err:
                hi, best_err, changed = cand[i], e[i], True
        if lo0 < 0:
            cand = lo0 * fracs
            e = expected_sq_error(h, cand, np.full(steps, hi))
            i = int(np.argmin(e))
            if e[i] < best_err:
                lo, best_err, changed = cand[i], e[i], True
        if not changed:
            break
    return _with_zero(float(lo), float(hi))


def entropy_range(h: TensorHistogram, levels: int = 128, min_per_bin: int = 8) -> tuple[float, float]:
    """TensorRT's entropy calibration, one side at a time: the threshold T whose clipped
    distribution of magnitudes and its quantization to ``levels`` levels have the
    smallest KL divergence. A post-ReLU tensor has only the positive side (128 levels,
    as TensorRT). A signed tensor's sides get the int8 grid's 256 levels in proportion
    to their extent; a side with fewer than 16 levels is not clipped. Exact zeros are
    left out (int8 represents 0 exactly). A side with too few values for the histogram
    (under ``min_per_bin`` per bin on average) uses fewer bins, and is not clipped when
    that leaves fewer bins than levels."""
    if h.empty:
        return 0.0, 0.0
    lo, hi = minmax_range(h)
    result = [lo, hi]
    for k, side, extent in ((1, 1, hi), (0, -1, -lo)):
        if extent <= 0:
            continue
        side_levels = levels if lo == 0 or hi == 0 else int(round(256 * extent / (hi - lo)))
        if side_levels < 16:
            continue
        hist, _ = h.side_histogram(side)
        nbins = int(min(h.bins, hist.sum() // min_per_bin))
        if nbins <= side_levels:
            continue
        if nbins < h.bins:
            hist, _ = h.side_histogram(side, nbins)
        t = _kl_threshold(hist, extent / nbins, side_levels)
        result[k] = side * t
    return _with_zero(max(h.min, result[0]), min(h.max, result[1]))


def _kl_threshold(hist: np.ndarray, width: float, levels: int, stride: int = 1) -> float:
    """The threshold (in value units) of the smallest ``kl_divergences``."""
    n = len(hist)
    if width <= 0 or n <= levels or hist.sum() <= 0:
        return n * width
    ends = np.arange(levels, n + 1, stride)
    kl = kl_divergences(hist, ends, levels)
    best_i = int(ends[int(np.argmin(kl))])
    return (best_i + 0.5) * width if best_i < n else n * width


def kl_divergences(hist: np.ndarray, ends: np.ndarray, levels: int) -> np.ndarray:
    """For each clip bin count i in ``ends``: KL(P || Q) where P is ``hist[:i]`` with the
    mass beyond added to its last bin, and Q is ``hist[:i]`` merged into ``levels``
    groups (the last takes the remainder), each group's mass spread evenly over its
    non-empty bins. Computed for all i at once from prefix sums."""
    h = np.asarray(hist, np.float64)
    n = len(h)
    ends = np.asarray(ends, np.int64)
    H = np.concatenate([[0.0], np.cumsum(h)])
    Z = np.concatenate([[0], np.cumsum(h > 0)])
    hlogh = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
    L = np.concatenate([[0.0], np.cumsum(hlogh)])
    total = H[n]
    m = ends // levels                                            # bins per group
    g = np.arange(levels)
    start = g[None, :] * m[:, None]                               # [E, levels]
    stop = np.where(g[None, :] == levels - 1, ends[:, None], start + m[:, None])
    mass = H[stop] - H[start]
    nz = Z[stop] - Z[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_bin = np.where(nz > 0, mass / np.maximum(nz, 1), 0.0)   # Q's value in a non-empty bin
        log_q = np.where(per_bin > 0, np.log(np.where(per_bin > 0, per_bin, 1.0)), 0.0)
    last_h = h[ends - 1]
    # Bins before the last: sum h log h - sum h log q (the last group without its last bin).
    mass_wo_last = mass.copy()
    mass_wo_last[:, -1] -= last_h
    term_a = L[ends - 1]
    term_b = (mass_wo_last * log_q).sum(axis=1)
    qs = H[ends]
    head = H[ends - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = (term_a - term_b) / total + head / total * np.log(np.where(head > 0, qs / total, 1.0))
        pl = (last_h + (total - H[ends])) / total
        ql = np.where(last_h > 0, per_bin[:, -1] / np.where(qs > 0, qs, 1.0), 0.0)
        ql = np.maximum(ql, 1e-10)
        kl = kl + np.where(pl > 0, pl * np.log(np.where(pl > 0, pl, 1.0) / ql), 0.0)
    kl[qs <= 0] = np.inf
    return kl


def _kl_to_quantized(p: np.ndarray, candidate: np.ndarray, levels: int) -> float:
    """One KL(P || Q) as ``kl_divergences`` defines it, bin by bin (the plain version)."""
    i = len(p)
    group = np.minimum(np.arange(i) // (i // levels), levels - 1)
    nonzero = candidate > 0
    mass = np.bincount(group, weights=candidate, minlength=levels)
    nz = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
    q = np.where(nonzero, mass[group] / np.maximum(nz[group], 1.0), 0.0)
    ps, qs = p.sum(), q.sum()
    if ps <= 0 or qs <= 0:
        return np.inf
    p = p / ps
    q = q / qs
    mask = p > 0
    qm = np.maximum(q[mask], 1e-10)
    return float(np.sum(p[mask] * np.log(p[mask] / qm)))


ESTIMATORS = ("minmax", "percentile", "mse", "entropy")


def estimate_range(h: TensorHistogram, method: str, percentile: float = 99.99) -> tuple[float, float]:
    if method == "minmax":
        return minmax_range(h)
    if method == "percentile":
        return percentile_range(h, percentile)
    if method == "mse":
        return mse_range(h)
    if method == "entropy":
        return entropy_range(h)
    raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(ESTIMATORS)}, auto")
