"""The offline memory planner: where every activation of a graph lives in one static arena.

For MCU targets the C code generator emits ``static uint8_t arena[plan.arena_bytes]`` and
one fixed offset per tensor (``plan.offsets``). Parts, in the order they run:

- ``schedule.py``: op orders that lower the peak when the graph has branches;
- ``lifetimes.py``: buffers of one order (RESHAPE aliases, graph inputs/outputs, scratch)
  and which op may write its output over a dying input (the kernel write contract);
- ``scratch.py``: the scratch bytes each op's kernel needs on a target;
- ``planner.py``: offsets by several strategies, the best one kept, each validated.

    plan = plan_memory(graph, alignment=16)
    plan.arena_bytes, plan.lower_bound_bytes, plan.offsets["conv1_out"], plan.inplace

The generated code must run the ops in ``plan.order`` (it may differ from ``graph.ops``
when a reordering lowers the peak), and must write each graph input into the arena
before every inference (an input may be overwritten unless ``preserve_inputs=True``).
``plan.inplace`` lists the ``(op, input tensor)`` pairs whose output overlaps that input's
bytes: the code generator must use a kernel that keeps the write contract of
``lifetimes.py`` for those ops (TFLM-style loops do). With ``reverse_rows=True`` an output
may also sit above its input (``plan.reversed_rows``): the code generator must then run
that op by output rows from the last to the first (``lifetimes.reverse_rows_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.memory.lifetimes import Lifetimes, MemoryModel, MemoryPlanError, min_shift
from edgekit.memory.planner import STRATEGIES, check_offsets, place_buffers
from edgekit.memory.schedule import candidate_orders, is_topological
from edgekit.memory.scratch import scratch_bytes

__all__ = ["Buffer", "MemoryPlan", "MemoryPlanError", "Overlap", "STRATEGIES", "min_shift",
           "plan_memory", "scratch_bytes"]


@dataclass(frozen=True)
class Buffer:
    """One block of the arena."""

    names: tuple[str, ...]       # the tensors stored here (root first, then aliases), or the scratch key
    offset: int
    size: int                    # aligned bytes reserved
    nbytes: int                  # bytes the tensor uses
    first: int                   # op index (in ``MemoryPlan.order``) of its definition
    last: int                    # op index of its last use
    aliases: tuple[str, ...] = ()  # RESHAPE outputs that are these same bytes
    inplace_of: str | None = None  # input tensor whose bytes this output overwrites
    kind: str = "tensor"         # "tensor" or "scratch"

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Overlap:
    """An op output placed over the input it overwrites: ``shift`` = offset(input) -
    offset(output) >= ``min_shift``; 0 means exactly in place. A negative shift: the
    output starts ``-shift`` bytes above the input, and the op runs its rows in reverse."""

    op: str
    input: str
    output: str
    shift: int
    min_shift: int


@dataclass
class MemoryPlan:
    graph_name: str
    order: list[str]
    buffers: list[Buffer]
    offsets: dict[str, int]          # every activation tensor (aliases included) -> offset
    arena_bytes: int
    lower_bound_bytes: int           # no placement of this order's buffers can be smaller
    naive_bytes: int                 # every buffer in its own bytes (no sharing)
    strategy: str                    # the placement strategy that won
    alignment: int
    optimal: bool                    # arena proven minimal for this order and these rules
    order_source: str = "original"   # which schedule produced ``order``
    inplace: list[tuple[str, str]] = field(default_factory=list)  # (op, input tensor) pairs
    overlaps: list[Overlap] = field(default_factory=list)
    tried: dict[str, int] = field(default_factory=dict)           # "<order>/<strategy>" -> arena
    scratch: dict[str, int] = field(default_factory=dict)         # op -> offset of its scratch
    _life: Lifetimes | None = field(default=None, repr=False)

    @property
    def reversed_rows(self) -> set[str]:
        """Ops whose output overlaps their input from above: run by rows from the last."""
        return {o.op for o in self.overlaps if o.shift < 0}

    def timeline(self) -> list[dict]:
        """One row per op: index, op name and the buffers live while it runs, by offset."""
        rows = []
        for t, name in enumerate(self.order):
            live = [b for b in self.buffers if b.first <= t <= b.last and b.size]
            live.sort(key=lambda b: (b.offset, b.name))
            rows.append({
                "index": t,
                "op": name,
                "live": [{"name": b.name, "offset": b.offset, "size": b.size, "kind": b.kind,
                          "inplace_of": b.inplace_of} for b in live],
                "bytes": max((b.end for b in live), default=0),
            })
        return rows

    def validate(self) -> None:
        """Raise MemoryPlanError when two buffers live at the same time overlap (other than
        an output over the input it may overwrite, far enough below it), when an offset is
        misaligned, or when a buffer runs past the arena."""
        problems = []
        if self._life is not None:
            offsets = [b.offset for b in self.buffers]
            problems += check_offsets(self._life, offsets)
        for b in self.buffers:
            if b.end > self.arena_bytes:
                problems.append(f"{b.name} ends at {b.end}, past the arena of {self.arena_bytes} bytes")
        for name, off in self.offsets.items():
            if off % self.alignment:
                problems.append(f"{name}: offset {off} not a multiple of {self.alignment}")
        if problems:
            raise MemoryPlanError(f"memory plan of {self.graph_name!r} is invalid:\n  " + "\n  ".join(problems))

    def summary(self) -> str:
        lines = [f"arena {self.arena_bytes} B (lower bound {self.lower_bound_bytes} B, no sharing "
                 f"{self.naive_bytes} B), strategy {self.strategy}, order {self.order_source}"]
        for o in self.overlaps:
            how = "in place" if o.shift == 0 else (f"{o.shift} B below its input" if o.shift > 0 else
                                                    f"{-o.shift} B above its input, rows in reverse")
            lines.append(f"  {o.op}: {o.output} over {o.input} ({how})")
        return "\n".join(lines)


def plan_memory(graph: Graph, *, alignment: int = 16, reorder: bool = True, inplace: bool = True,
                target_features: Iterable[str] = (), strategies: tuple[str, ...] = STRATEGIES,
                exact_limit: int = 12, preserve_inputs: bool = False,
                no_share: Iterable[OpType] = (), reverse_rows: bool = False) -> MemoryPlan:
    """Plan the activation arena of ``graph``.

    ``reorder``: also try op orders that lower the peak (kept only when strictly better).
    ``inplace``: let ops write their output over an input that dies there (see
    ``lifetimes.py`` for the rule per op). ``no_share``: op types that never do, whatever
    that rule allows (a backend whose kernel for them cannot keep the write contract).
    ``preserve_inputs``: never overwrite graph inputs.
    ``reverse_rows``: the backend can run the ops of ``lifetimes.reverse_rows_shift`` by
    rows from the last, so their output may also sit above their input.
    ``target_features`` select the kernels whose scratch needs are planned (``scratch.py``).
    """
    model = MemoryModel(graph, alignment=alignment, inplace=inplace,
                        target_features=tuple(target_features), preserve_inputs=preserve_inputs,
                        no_share=no_share, reverse_rows=reverse_rows)
    orders = candidate_orders(model) if reorder else [("original", list(model.op_names))]
    best = None
    tried: dict[str, int] = {}
    for source, order in orders:
        if not is_topological(graph, order):
            raise MemoryPlanError(f"schedule {source!r} is not a valid order of {graph.name!r}")
        life = model.lifetimes(order)
        placement = place_buffers(life, strategies=strategies, exact_limit=exact_limit)
        for s, peak in placement.tried.items():
            tried[f"{source}/{s}"] = peak
        if best is None or placement.peak < best[2].peak:
            best = (source, life, placement)
    source, life, placement = best
    plan = _build(graph, life, placement, source, tried)
    plan.validate()
    return plan


def _build(graph: Graph, life: Lifetimes, placement, source: str, tried: dict[str, int]) -> MemoryPlan:
    offsets_by_index = placement.offsets
    overlap_of: dict[int, tuple[str, int]] = {}
    overlaps: list[Overlap] = []
    for s in life.sharing:
        bo, bi = life.buffers[s.output], life.buffers[s.input]
        oo, oi = offsets_by_index[s.output], offsets_by_index[s.input]
        if oo < oi + bi.size and oi < oo + bo.size:  # the bytes really are shared
            overlaps.append(Overlap(s.op, s.input_tensor, bo.key, oi - oo, s.min_shift))
            overlap_of[s.output] = (s.input_tensor, oi - oo)
    buffers = []
    offsets: dict[str, int] = {}
    scratch: dict[str, int] = {}
    for i, b in enumerate(life.buffers):
        off = offsets_by_index[i]
        names = b.tensors if b.tensors else (b.key,)
        inplace_of = overlap_of.get(i, (None, 0))[0]
        buffers.append(Buffer(names, off, b.size, b.nbytes, b.first, b.last, tuple(b.tensors[1:]),
                              inplace_of, b.kind))
        if b.kind == "scratch":
            scratch[b.key.rsplit(":", 1)[0]] = off
        for n in b.tensors:
            offsets[n] = off
    naive = sum(b.size for b in life.buffers)
    return MemoryPlan(
        graph_name=graph.name, order=list(life.order), buffers=buffers, offsets=offsets,
        arena_bytes=placement.peak, lower_bound_bytes=placement.lower_bound, naive_bytes=naive,
        strategy=placement.strategy, alignment=life.alignment, optimal=placement.optimal,
        order_source=source, inplace=[(o.op, o.input) for o in overlaps], overlaps=overlaps,
        tried=tried, scratch=scratch, _life=life)
