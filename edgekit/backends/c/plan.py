"""The arena plan of a generated C model: ``edgekit.memory`` with the rules of the C kernels.

The planner may place an op's output over an input that dies at that op when the
kernel keeps the write contract of ``edgekit/memory/lifetimes.py`` (outputs written in
increasing row-major order, each after every read it needs). What was checked for the
kernels of runtimes/micro:

- portable conv2d (both paths), depthwise (generic and 3x3 paths), pooling, the binary
  ops (flat and 4-D walks), softmax (reads a row before writing it), the elementwise ops,
  transpose and mean walk the output in row-major order and read before they write;
- the dsp variants only move reads *earlier*: conv2d and fully_connected compute two
  output channels before writing either, depthwise reads four channels (one word)
  before writing them, fully_connected sums its input row first. Writes stay in
  increasing order, so every shift the planner computes for the portable loop holds for
  them too, and no op needs to be excluded for the dsp variants;
- PAD and CONCATENATION copy runs of bytes with ``memcpy``. Under a sharing the source
  and destination of one ``memcpy`` may overlap (destination below the source), which C
  leaves undefined even where every libc copies forward. The C backend therefore never
  lets these two ops share their input's bytes (``NO_SHARE``).

Alternating the direction: a pointwise conv's output must start ``Cin - 1`` bytes below
its input (forward order), so a chain of depthwise and pointwise layers, each placed
below its input, drifts down the arena. With ``reverse_rows`` the code generator may
instead call the kernel once per output row, from the last row up (every kernel keeps
the contract within a row), and the output may then sit one row above the input
(``edgekit.memory.lifetimes.reverse_rows_shift``): the planner picks either side.

The kernels take no scratch buffers (the dsp variants read their operands in place), so
the plan is made without target features: ``edgekit.memory.scratch`` would otherwise
reserve the im2col buffers of a CMSIS-NN-style design that these kernels do not use.
"""

from __future__ import annotations

from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.memory import MemoryPlan, plan_memory

ALIGNMENT = 16
NO_SHARE = frozenset({OpType.PAD, OpType.CONCATENATION})


def plan_arena(graph: Graph, *, alignment: int = ALIGNMENT, no_share=NO_SHARE,
               reverse_rows: bool = False) -> MemoryPlan:
    """``plan_memory`` of ``graph`` in which the ops of type ``no_share`` never write over
    their inputs. Graph inputs may be overwritten (the generated code copies the input
    into the arena on every call). ``reverse_rows``: the generated C may run a pointwise
    conv by output rows from the last (one kernel call per row, ``codegen``), so its output
    can sit above its input; model packages run each op in one call and plan without it."""
    return plan_memory(graph, alignment=alignment, no_share=no_share, reverse_rows=reverse_rows)
