"""Placement: an offset for every buffer of one op order, minimizing the arena's peak.

The problem is dynamic storage allocation: each buffer is a rectangle with a fixed time
extent ``[first, last]`` and a height ``size``; choose offsets so that no two buffers live
at the same time overlap, except where a ``Sharing`` permits an op's output to start at
least ``min_shift`` bytes below the input it overwrites.

For a pair of buffers ``a``, ``b`` live at the same time, ``offset(a) - offset(b)`` must
stay out of one open interval ``(lo, hi)``: ``(-size(a), size(b))`` normally, and
``(-min_shift, size(b))`` when ``a`` may overwrite ``b``. Every strategy places buffers at
offsets that are multiples of the alignment (sizes and shifts are rounded up to it).

Strategies (all run; the smallest peak wins, ties go to the earlier one in ``STRATEGIES``).
Each greedy order is placed twice: bottom-up (lowest offset that fits) and top-down (the
same on mirrored offsets, ``top - offset - size``; reported as ``<name>_top_down``).
Top-down matters with sharing: an output may only sit *below* the input it overwrites, so
a chain of such ops descends through the arena, which bottom-up placement of the first
input at offset 0 cannot express.

- ``greedy_by_size``: TensorFlow Lite Micro's idea: largest buffer first, each at the
  lowest offset that fits among the buffers already placed.
- ``greedy_by_breadth``: ops by decreasing breadth (bytes live during the op), and within
  an op its buffers by decreasing size; the same lowest-fit placement.
- ``greedy_by_conflict``: buffers by decreasing bytes they conflict with.
- ``greedy_by_duration``: longest lifetime first.
- ``linear_scan``: in order of definition, as an allocator at run time would.
- ``exact``: for at most ``exact_limit`` buffers, a depth-first search with pruning that
  proves the optimum (or stops at a node budget and keeps the best found).

The exact search rests on this: in some optimal placement every buffer sits either at 0
or exactly on the top edge ``offset(b) + hi`` of a buffer ``b`` below it (push every
buffer down as far as it goes: the peak does not grow, and a buffer that cannot move lies
on such an edge). So the search places buffers in non-decreasing offset order, each at 0
or on an edge of one already placed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from edgekit.memory.lifetimes import Lifetimes, MemoryPlanError

STRATEGIES = ("greedy_by_size", "greedy_by_breadth", "greedy_by_conflict", "greedy_by_duration",
              "linear_scan", "exact")


@dataclass
class Placement:
    offsets: list[int]
    peak: int
    strategy: str
    lower_bound: int
    optimal: bool                                   # the peak is proven minimal for this order
    tried: dict[str, int] = field(default_factory=dict)  # strategy -> peak


class _Problem:
    """Pairwise constraints of one ``Lifetimes``, precomputed for the strategies."""

    def __init__(self, life: Lifetimes, sharing: bool = True):
        self.life = life
        self.sharing = sharing
        bufs = life.buffers
        self.n = len(bufs)
        self.size = [b.size for b in bufs]
        # conf[a]: [(b, lo, hi)] meaning offset(a) - offset(b) must not be in (lo, hi)
        self.conf: list[list[tuple[int, int, int]]] = [[] for _ in bufs]
        for a in range(self.n):
            if not bufs[a].size:
                continue
            for b in range(a + 1, self.n):
                if not bufs[b].size or not bufs[a].overlaps_in_time(bufs[b]):
                    continue
                lo_ab, hi_ab = forbidden_interval(life, a, b) if sharing else (-self.size[a], self.size[b])
                self.conf[a].append((b, lo_ab, hi_ab))
                # offset(b) - offset(a) not in (-hi_ab, -lo_ab)
                self.conf[b].append((a, -hi_ab, -lo_ab))

    def peak(self, offsets: list[int]) -> int:
        return max((o + s for o, s in zip(offsets, self.size)), default=0)

    def first_fit(self, order: list[int], top_down: bool = False) -> list[int]:
        """Each buffer in ``order`` at the lowest offset that fits among those placed before;
        ``top_down``: the same from the top of the arena down (offsets mirrored)."""
        conf = self.mirrored_conf() if top_down else self.conf
        offsets: list[int | None] = [None] * self.n
        for a in order:
            if not self.size[a]:
                offsets[a] = 0
                continue
            ivs = [(offsets[b] + lo, offsets[b] + hi) for b, lo, hi in conf[a]
                   if offsets[b] is not None]
            offsets[a] = _lowest_free(ivs)
        result = [o or 0 for o in offsets]
        if top_down:
            top = self.peak(result)
            result = [top - o - s if s else 0 for o, s in zip(result, self.size)]
        return result

    def mirrored_conf(self) -> list[list[tuple[int, int, int]]]:
        """The constraints on ``top - offset - size`` instead of ``offset``."""
        s = self.size
        return [[(b, s[b] - s[a] - hi, s[b] - s[a] - lo) for b, lo, hi in self.conf[a]]
                for a in range(self.n)]


def forbidden_interval(life: Lifetimes, a: int, b: int) -> tuple[int, int]:
    """Open interval ``offset(a) - offset(b)`` must avoid (a, b live at the same time)."""
    sa, sb = life.buffers[a].size, life.buffers[b].size
    s = life.sharing_of(a, b)
    if s is not None:  # a is the output, allowed to start >= min_shift below input b
        # (or >= rev_shift above it when the op can run its rows in reverse)
        return -s.min_shift, sb if s.rev_shift is None else min(sb, s.rev_shift)
    s = life.sharing_of(b, a)
    if s is not None:  # a is the input: offset(a) >= offset(b) + min_shift, or a below b
        return -sa if s.rev_shift is None else -min(sa, s.rev_shift), s.min_shift
    return -sa, sb


def _lowest_free(ivs: list[tuple[int, int]]) -> int:
    """Smallest c >= 0 outside every open interval (the answer is 0 or an upper end)."""
    for c in sorted({0, *(h for _, h in ivs if h > 0)}):
        if all(not (lo < c < hi) for lo, hi in ivs):
            return c
    raise AssertionError("unreachable: the largest upper end is always free")


# --------------------------------------------------------------------------- orders


def _order(problem: _Problem, strategy: str) -> list[int]:
    life = problem.life
    bufs = life.buffers
    idx = range(problem.n)
    if strategy == "greedy_by_size":
        return sorted(idx, key=lambda i: (-bufs[i].size, bufs[i].first, i))
    if strategy == "greedy_by_breadth":
        prof = life.profile()
        seen: set[int] = set()
        order: list[int] = []
        for t in sorted(range(life.steps), key=lambda t: (-prof[t], t)):
            for i in sorted(life.live_at(t), key=lambda i: (-bufs[i].size, bufs[i].first, i)):
                if i not in seen:
                    seen.add(i)
                    order.append(i)
        return order + [i for i in idx if i not in seen]
    if strategy == "greedy_by_conflict":
        weight = [bufs[i].size + sum(problem.size[b] for b, _, _ in problem.conf[i]) for i in idx]
        return sorted(idx, key=lambda i: (-weight[i], -bufs[i].size, i))
    if strategy == "greedy_by_duration":
        return sorted(idx, key=lambda i: (-(bufs[i].last - bufs[i].first), -bufs[i].size, i))
    if strategy == "linear_scan":
        return sorted(idx, key=lambda i: (bufs[i].first, -bufs[i].size, i))
    raise MemoryPlanError(f"unknown placement strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


# --------------------------------------------------------------------------- exact


def exact_search(problem: _Problem, incumbent: int, node_limit: int = 200_000, floor: int = 0
                 ) -> tuple[list[int] | None, int, bool]:
    """Best placement with a peak below ``incumbent``: (offsets or None, peak, complete).

    Stops early, complete, once a placement reaches ``floor`` (a lower bound)."""
    life = problem.life
    n = problem.n
    size = problem.size
    steps = life.steps
    # rem[t]: bytes of unplaced buffers live at t, less the sharing possible among them.
    rem = [0] * steps
    for i, b in enumerate(life.buffers):
        for t in range(b.first, b.last + 1):
            rem[t] += size[i]
    pair_saving = []
    for s in life.sharing:
        sv = s.savings(life.buffers)
        rem[s.op_index] -= sv
        pair_saving.append((s.output, s.input, s.op_index, sv))
    pairs_of: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    for out, inp, t, sv in pair_saving:
        pairs_of[out].append((inp, t, sv))
        pairs_of[inp].append((out, t, sv))
    by_size = sorted((i for i in range(n) if size[i]), key=lambda i: (-size[i], i))
    offsets: list[int | None] = [None if size[i] else 0 for i in range(n)]
    best = [incumbent, None]
    nodes = [0]

    def place(a: int, delta: int) -> None:
        b = life.buffers[a]
        for t in range(b.first, b.last + 1):
            rem[t] -= delta * size[a]
        for other, t, sv in pairs_of[a]:
            if offsets[other] is None:  # the pair's saving leaves rem with a
                rem[t] += delta * sv

    def dfs(count: int, last_off: int, last_idx: int, peak: int) -> bool:
        nodes[0] += 1
        if nodes[0] > node_limit:
            return False
        if count == len(by_size):
            if peak < best[0]:
                best[0], best[1] = peak, list(offsets)
            return True
        if best[0] <= floor:
            return True
        bound = max(peak, max((last_off + r for r in rem if r > 0), default=0))
        if bound >= best[0]:
            return True
        for a in by_size:
            if offsets[a] is not None:
                continue
            cands = {0}
            for b, _lo, hi in problem.conf[a]:
                if offsets[b] is not None:
                    cands.add(offsets[b] + hi)
            for c in sorted(cands):
                if c < last_off or (c == last_off and a < last_idx):
                    continue
                if max(peak, c + size[a]) >= best[0]:
                    break
                if any(offsets[b] is not None and lo < c - offsets[b] < hi for b, lo, hi in problem.conf[a]):
                    continue
                offsets[a] = c
                place(a, +1)
                ok = dfs(count + 1, c, a, max(peak, c + size[a]))
                place(a, -1)
                offsets[a] = None
                if not ok:
                    return False
        return True

    complete = dfs(0, 0, -1, 0)
    return (None if best[1] is None else [o or 0 for o in best[1]]), best[0], complete


# --------------------------------------------------------------------------- driver


def place_buffers(life: Lifetimes, *, strategies: tuple[str, ...] = STRATEGIES, exact_limit: int = 12,
                  node_limit: int = 200_000) -> Placement:
    """Run the strategies on one order and return the best validated placement."""
    problem = _Problem(life)
    # A placement that shares nothing is valid too, and a greedy order does not always
    # profit from the freedom to share: try each order both ways.
    variants = [(problem, "")] + ([(_Problem(life, sharing=False), "_no_sharing")] if life.sharing else [])
    lower = life.lower_bound()
    best: Placement | None = None
    tried: dict[str, int] = {}
    for name, top_down, (prob, suffix) in itertools.product(strategies, (False, True), variants):
        if name == "exact":
            continue
        label = name + ("_top_down" if top_down else "") + suffix
        offsets = prob.first_fit(_order(prob, name), top_down)
        problems = check_offsets(life, offsets)
        if problems:  # a bug, never a user error: say which strategy
            raise MemoryPlanError(f"strategy {label} produced an invalid plan: {problems[0]}")
        peak = problem.peak(offsets)
        tried[label] = peak
        if best is None or peak < best.peak:
            best = Placement(offsets, peak, label, lower, peak == lower)
    if best is None:  # only "exact" asked for: seed it with the size order
        offsets = problem.first_fit(_order(problem, "greedy_by_size"))
        best = Placement(offsets, problem.peak(offsets), "greedy_by_size", lower, False)
    best.optimal = best.peak == lower
    if "exact" in strategies and problem.n <= exact_limit and not best.optimal:
        offsets, peak, complete = exact_search(problem, best.peak, node_limit, floor=lower)
        tried["exact"] = peak
        if offsets is not None:
            problems = check_offsets(life, offsets)
            if problems:
                raise MemoryPlanError(f"strategy exact produced an invalid plan: {problems[0]}")
            best = Placement(offsets, peak, "exact", lower, complete)
        elif complete:
            best.optimal = True  # the search proved nothing beats the greedy result
    best.tried = tried
    return best


def check_offsets(life: Lifetimes, offsets: list[int]) -> list[str]:
    """Every violation of the placement rules: alignment, and overlap of buffers live at
    the same time that no ``Sharing`` permits (or that start too close)."""
    bufs = life.buffers
    out: list[str] = []
    for i, b in enumerate(bufs):
        if offsets[i] < 0 or offsets[i] % life.alignment:
            out.append(f"{b.key}: offset {offsets[i]} is not a non-negative multiple of {life.alignment}")
    for a in range(len(bufs)):
        for b in range(a + 1, len(bufs)):
            ba, bb = bufs[a], bufs[b]
            if not ba.size or not bb.size or not ba.overlaps_in_time(bb):
                continue
            oa, ob = offsets[a], offsets[b]
            if oa + ba.size <= ob or ob + bb.size <= oa:
                continue
            s = life.sharing_of(a, b) or life.sharing_of(b, a)
            if s is not None and offsets[s.input] - offsets[s.output] >= s.min_shift:
                continue
            if s is not None and s.rev_shift is not None and offsets[s.output] - offsets[s.input] >= s.rev_shift:
                continue  # above the input: the op runs its rows from the last
            t = max(ba.first, bb.first)
            out.append(f"{ba.key} [{oa}, {oa + ba.size}) and {bb.key} [{ob}, {ob + bb.size}) overlap "
                       f"while both are live at op {t} ({life.order[t] if t < len(life.order) else '-'})")
    return out
