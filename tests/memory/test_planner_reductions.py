"""The memory planner lets REDUCE_MAX, SUM, ARG_MAX/MIN and L2_NORMALIZATION write over
an input that dies there, by their read maps (edgekit.memory.reads_reduction); the C
host tests (tests/backends/c/test_cgen_host.py, cases ``reductions*``) run those plans
bit-exact."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.plan import plan_arena
from edgekit.ir import OpType
from edgekit.memory.reads_reduction import reduction_read_map
from tests.backends.c.graphs_reduction import reduction_cases


def test_read_maps():
    # SUM over axis 1 of [2, 3, 4]: output (b, c) reads from b*12 + c on
    reads = reduction_read_map(OpType.SUM, (2, 3, 4), 8, {"axes": (1,)})
    np.testing.assert_array_equal(reads, [0, 1, 2, 3, 12, 13, 14, 15])
    reads = reduction_read_map(OpType.ARG_MAX, (2, 3), 2, {"axis": 1})
    np.testing.assert_array_equal(reads, [0, 3])
    reads = reduction_read_map(OpType.L2_NORMALIZATION, (2, 3), 6, {})
    np.testing.assert_array_equal(reads, [0, 0, 0, 3, 3, 3])
    assert reduction_read_map(OpType.BATCH_MATMUL, (2, 3), 6, {}) is None


def test_reductions_share_their_dying_input():
    cases = reduction_cases(np.random.default_rng(7))
    shared = set()
    for g in cases.values():
        ops = {op.name: op.type for op in g.ops}
        shared |= {ops[o.op] for o in plan_arena(g).overlaps}
    assert {OpType.SUM, OpType.L2_NORMALIZATION} <= shared
    assert OpType.BATCH_MATMUL not in shared
