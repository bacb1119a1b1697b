"""Op orders that lower the memory peak where the graph allows a choice.

A chain has one order. A graph with branches (residual blocks, parallel towers feeding a
concat) has several, and the order decides which tensors are live together. The cost of
an order here is its *profile peak*: the most bytes live during any op, less what the
input/output sharing of ``lifetimes.py`` can save (the arena can never be smaller; the
placement usually reaches it).

- ``exact_order``: the order with the smallest profile peak, by dynamic programming over
  the sets of ops already run (a state is such a set; the bytes live between ops depend on
  the set only, not on the order inside it). Exact; gives up (returns None) when the
  graph has too many such sets (many wide parallel branches).
- ``greedy_order``: list scheduling: among the ops ready to run, take the one that leaves
  the fewest bytes live after it (it frees the most), then the one with the smallest peak
  while it runs, then the one first in the original order. This finishes a branch that
  shrinks memory before starting one that grows it.

``candidate_orders`` returns the original order first and then the others that differ
from it; ``plan_memory`` places buffers for each and keeps the original order unless
another one gives a strictly smaller arena.
"""

from __future__ import annotations

from typing import Sequence

from edgekit.ir.graph import Graph
from edgekit.memory.lifetimes import MemoryModel


def is_topological(graph: Graph, order: Sequence[str]) -> bool:
    """True when ``order`` names every op once and each op comes after its inputs' producers."""
    names = [op.name for op in graph.ops]
    if sorted(order) != sorted(names):
        return False
    ops = {op.name: op for op in graph.ops}
    producers = graph.producers()
    pos = {n: i for i, n in enumerate(order)}
    for name in order:
        for i in ops[name].inputs:
            p = producers.get(i) if i else None
            if p is not None and pos[p.name] >= pos[name]:
                return False
    return True


class _Costs:
    """Per op: what it needs, what it allocates, what it may free; in bitmasks."""

    def __init__(self, model: MemoryModel):
        self.model = model
        names = model.op_names
        self.n = len(names)
        bit = {name: i for i, name in enumerate(names)}
        producers = model.graph.producers()
        self.deps = [0] * self.n
        for i, name in enumerate(names):
            for t in model.ops[name].inputs:
                p = producers.get(t) if t else None
                if p is not None:
                    self.deps[i] |= 1 << bit[p.name]
        roots = list(model.members)
        self.size = {r: model.size[r] for r in roots}
        self.users = {r: sum(1 << bit[c] for c in model.consumers[r]) for r in roots}
        self.keep = {r: model.is_output[r] for r in roots}
        self.new = [[r for r in roots if model.producer[r] == name] for name in names]
        self.reads = [sorted({model.root[t] for t in model.ops[name].inputs if t in model.root})
                      for name in names]
        self.scratch = [model.scratch[name] for name in names]
        self.shares = [[(r_in, max(0, min(self.size[r_in], self.size[r_out] - shift)))
                        for r_in, r_out, _, shift, _rev in model.shares[name]] for name in names]
        self.mem0 = sum(self.size[r] for r in roots if model.is_input[r] and (self.users[r] or self.keep[r]))

    def step(self, done: int, mem: int, v: int) -> tuple[int, int]:
        """(bytes live while op ``v`` runs after ``done``, bytes live after it)."""
        after = done | (1 << v)
        new = sum(self.size[r] for r in self.new[v])
        saved = 0
        for r_in, sv in self.shares[v]:
            if self.users[r_in] & ~after == 0:
                saved += sv
        during = mem + new + self.scratch[v] - saved
        freed = sum(self.size[r] for r in self.reads[v]
                    if not self.keep[r] and self.users[r] & ~after == 0)
        kept = sum(self.size[r] for r in self.new[v] if self.users[r] or self.keep[r])
        return during, mem + kept - freed


def greedy_order(model: MemoryModel) -> list[str]:
    c = _Costs(model)
    done, mem, order = 0, c.mem0, []
    for _ in range(c.n):
        best = None
        for v in range(c.n):
            if done >> v & 1 or c.deps[v] & ~done:
                continue
            during, after = c.step(done, mem, v)
            key = (after, during, v)
            if best is None or key < best[0]:
                best = (key, v)
        _, v = best
        mem = c.step(done, mem, v)[1]
        done |= 1 << v
        order.append(model.op_names[v])
    return order


def exact_order(model: MemoryModel, state_limit: int = 20_000) -> list[str] | None:
    """The order with the smallest profile peak, or None when the search is too large."""
    c = _Costs(model)
    level: dict[int, tuple[int, int]] = {0: (0, c.mem0)}  # done set -> (peak so far, bytes live)
    parent: dict[int, tuple[int, int]] = {}
    total = 0
    for _ in range(c.n):
        nxt: dict[int, tuple[int, int]] = {}
        for done, (peak, mem) in level.items():
            for v in range(c.n):
                if done >> v & 1 or c.deps[v] & ~done:
                    continue
                during, after = c.step(done, mem, v)
                key = done | (1 << v)
                cand = max(peak, during)
                if key not in nxt or cand < nxt[key][0]:
                    nxt[key] = (cand, after)
                    parent[key] = (done, v)
        total += len(nxt)
        if total > state_limit:
            return None
        level = nxt
    full = (1 << c.n) - 1
    order: list[str] = []
    state = full
    while state:
        prev, v = parent[state]
        order.append(model.op_names[v])
        state = prev
    return order[::-1]


def candidate_orders(model: MemoryModel, state_limit: int = 20_000) -> list[tuple[str, list[str]]]:
    """("original", order) first, then the distinct orders of the other methods."""
    out = [("original", list(model.op_names))]
    seen = {tuple(model.op_names)}
    for name, fn in (("exact", lambda: exact_order(model, state_limit)), ("greedy", lambda: greedy_order(model))):
        order = fn()
        if order is not None and tuple(order) not in seen:
            seen.add(tuple(order))
            out.append((name, order))
    return out
