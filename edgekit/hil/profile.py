"""Per-op profile of a model on the board: timer ticks of every op (read by firmware
built with ``--profile``), instructions where the board counts them (QEMU ``-icount``:
ticks x 1e9 / tick_hz; a real board reports timer ticks, i.e. cycles of its clock),
MACs from ``edgekit.ir`` and instructions (or ticks) per MAC.

    result = run_hil(graph, "qemu:cortex-m4", x, profile=True)
    for row in result.profile:
        print(row.name, row.instructions, row.macs, row.instructions_per_mac)

The ops timed are the ops that run code, in the order the model runs them: the
package's op table (RESHAPE aliases run nothing and are not timed), the same order
as the generated C model's ``edgekit_profile_mark`` calls.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class OpProfile:
    index: int                  # position among the ops timed
    name: str                   # the IR op's name
    op_type: str
    kernel: str                 # the C function it calls ("copy" for a RESHAPE copy)
    ticks: float                # median over the vectors
    macs: int
    instructions: float | None  # known on QEMU with -icount shift=0

    @property
    def instructions_per_mac(self) -> float | None:
        if self.instructions is None or not self.macs:
            return None
        return self.instructions / self.macs

    @property
    def ticks_per_mac(self) -> float | None:
        return self.ticks / self.macs if self.macs else None

    def to_dict(self) -> dict:
        return asdict(self) | {"instructions_per_mac": self.instructions_per_mac}


def timed_ops(graph, *, linked: bool = False) -> list:
    """The IR ops a profiling build times, in run order: the package's op table, or with
    ``linked`` the generated model.c's (whose plan may order branches differently)."""
    from edgekit.backends.c import lower_op, plan_arena
    from edgekit.backends.c.codegen import runs_code

    plan = plan_arena(graph, reverse_rows=linked)
    ops = {op.name: op for op in graph.ops}
    out = []
    for name in plan.order:
        op = ops[name]
        if runs_code(graph, plan, lower_op(graph, op), op):
            out.append(op)
    return out


def op_macs_of(graph, op) -> int:
    """MACs of one op, as ``edgekit inspect`` counts them (edgekit.ir.shapes.op_macs)."""
    from edgekit.ir.ops import normalize_attrs
    from edgekit.ir.shapes import op_macs

    return int(op_macs(op.type, [graph.tensor(i).shape if i else None for i in op.inputs],
                       [graph.tensor(o).shape for o in op.outputs], normalize_attrs(op.type, op.attrs)))


def build_profile(graph, per_vector: list[list[int]], instructions_per_tick: float | None, *,
                  linked: bool = False, features=None) -> list[OpProfile]:
    """Rows of the profile from the per-op ticks of each vector (medians per op);
    ``linked``: the ops of a linked firmware's model.c, whose kernels are those of a
    target with ``features`` (packages call the generic kernels)."""
    from edgekit.backends.c import lower_op
    from edgekit.errors import EdgekitError

    ops = timed_ops(graph, linked=linked)
    for i, ticks in enumerate(per_vector):
        if len(ticks) != len(ops):
            raise EdgekitError(f"the device timed {len(ticks)} ops in vector {i}; the model runs "
                               f"{len(ops)} (is the firmware's package the model given?)")
    rows = []
    for k, op in enumerate(ops):
        med = float(statistics.median(v[k] for v in per_vector)) if per_vector else 0.0
        call = lower_op(graph, op, features if linked else None)
        rows.append(OpProfile(k, op.name, op.type.value, call.function if call else "copy", med,
                              op_macs_of(graph, op),
                              med * instructions_per_tick if instructions_per_tick else None))
    return rows
