"""The memory planner lets RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR write over an input
that dies there, by their read maps (edgekit.memory.reads_resample); the C host tests
(tests/backends/c/test_cgen_host.py, case ``resample_in_place``) and the firmware's
package executor run those plans bit-exact."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.plan import plan_arena
from edgekit.ir import OpType
from edgekit.memory.lifetimes import min_shift
from edgekit.memory.reads_resample import resample_read_map
from tests.backends.c.graphs_resample import resample_cases


def test_read_maps():
    # nearest 2 -> 4 columns of a [1, 1, 2, 1] input: columns 0, 0, 1, 1
    reads = resample_read_map(OpType.RESIZE_NEAREST_NEIGHBOR, (1, 1, 2, 1), (1, 1, 4, 1),
                              {"align_corners": False, "half_pixel_centers": False})
    np.testing.assert_array_equal(reads, [0, 0, 1, 1])
    # bilinear 4 -> 2 columns, 2 channels: first taps at columns 0 and 2
    reads = resample_read_map(OpType.RESIZE_BILINEAR, (1, 1, 4, 2), (1, 1, 2, 2),
                              {"align_corners": False, "half_pixel_centers": False})
    np.testing.assert_array_equal(reads, [0, 1, 4, 5])


def test_downscaling_resizes_share_their_dying_input_and_upscaling_ones_need_a_shift():
    cases = resample_cases(np.random.default_rng(7))
    g = cases["resample_in_place"]
    ops = {op.name: op.type for op in g.ops}
    shared = {ops[o.op] for o in plan_arena(g).overlaps}
    assert {OpType.RESIZE_BILINEAR, OpType.RESIZE_NEAREST_NEIGHBOR} <= shared
    for op in g.ops[1:]:
        assert min_shift(g, op, op.inputs[0]) == 0, op.name  # exactly in place
    up = cases["resample"]
    first = up.ops[0]  # 2x nearest upsampling: it writes faster than it reads
    assert first.type is OpType.RESIZE_NEAREST_NEIGHBOR and min_shift(up, first, first.inputs[0]) > 0
