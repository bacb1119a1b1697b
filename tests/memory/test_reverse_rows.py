"""Arena plans in which a pointwise conv runs its rows from the last (``reverse_rows``):
the shift rule against a byte-level simulation of the kernel over one shared buffer, the
KWS plan (smaller, valid, above the lower bound), the C that runs it, and that C bit-exact
on the emulated Cortex-M4 and Cortex-M55."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import plan_arena
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.memory.lifetimes import reverse_rows_shift
from edgekit.memory.planner import check_offsets
from tests.firmware import support


def _simulate(h, w, cin, cout, d, rng):
    """A 1x1 conv computed the way the generated C runs it by rows in reverse: rows from
    the last, each by the forward kernel (pixels, then output channels, in order; every
    output byte written right after the reads it needs), over one byte buffer holding the
    input at 0 and the output at ``d``. Returns (what it wrote, what it should write)."""
    x = rng.integers(0, 256, (h, w, cin), dtype=np.int64)
    wt = rng.integers(1, 256, (cout, cin), dtype=np.int64)
    want = np.einsum("hwi,oi->hwo", x, wt) % 251
    mem = np.zeros(max(h * w * cin, d + h * w * cout), dtype=np.int64)
    mem[:h * w * cin] = x.ravel()
    for r in range(h - 1, -1, -1):
        for px in range(w):
            src = (r * w + px) * cin
            for oc in range(cout):
                mem[d + (r * w + px) * cout + oc] = int(mem[src:src + cin] @ wt[oc]) % 251
    return mem[d:d + h * w * cout].reshape(h, w, cout), want


def _pointwise_graph(h, w, cin, cout):
    g = Graph("pw")
    g.add_tensor("x", (1, h, w, cin), DType.INT8)
    g.add_tensor("w", (cout, 1, 1, cin), DType.INT8, data=np.ones((cout, 1, 1, cin), np.int8))
    g.add_tensor("y", (1, h, w, cout), DType.INT8)
    return g, g.add_op(OpType.CONV_2D, ["x", "w"], ["y"], name="pw")


@pytest.mark.parametrize("h,w,cin,cout", [(4, 3, 5, 5), (3, 2, 6, 3), (5, 2, 3, 7), (1, 4, 4, 4), (6, 1, 2, 2)])
def test_reverse_rows_shift_is_the_least_safe_distance(h, w, cin, cout):
    g, op = _pointwise_graph(h, w, cin, cout)
    d = reverse_rows_shift(g, op, "x")
    assert d == max(w * cin, h * w * cin - (h - 1) * w * cout)
    rng = np.random.default_rng([h, w, cin, cout])
    got, want = _simulate(h, w, cin, cout, d, rng)
    assert np.array_equal(got, want)
    # one byte closer and the first row written destroys an input byte still to be read
    got, want = _simulate(h, w, cin, cout, d - 1, rng)
    assert not np.array_equal(got, want)


def test_only_unpadded_unit_stride_pointwise_convs_run_rows_in_reverse():
    g, op = _pointwise_graph(4, 4, 8, 8)
    assert reverse_rows_shift(g, op, "x") == 32
    op.attrs["strides"] = (2, 2)
    assert reverse_rows_shift(g, op, "x") is None
    op.attrs["strides"] = (1, 1)
    op.attrs["pads"] = (1, 0, 0, 0)
    assert reverse_rows_shift(g, op, "x") is None
    assert reverse_rows_shift(g, op, "w") is None


def test_kws_plan_alternates_directions_and_stays_valid():
    g = support.kws_graph()
    forward = plan_arena(g)
    both = plan_arena(g, reverse_rows=True)
    assert forward.arena_bytes == 9792 and forward.lower_bound_bytes == 8384
    assert both.lower_bound_bytes == 8384 <= both.arena_bytes <= 8496
    pointwise = {op.name for op in g.ops if op.type is OpType.CONV_2D
                 and g.tensor(op.inputs[1]).shape[1:3] == (1, 1)}
    assert both.reversed_rows == pointwise and len(pointwise) == 4
    assert {o.op for o in both.overlaps if o.shift > 0} >= {op.name for op in g.ops
                                                            if op.type is OpType.DEPTHWISE_CONV_2D}
    both.validate()
    # the verifier refuses a reversed output moved 16 bytes into its input's forbidden range
    life = both._life
    offsets = [b.offset for b in both.buffers]
    s = next(s for s in life.sharing if s.op in pointwise)
    assert offsets[s.output] - offsets[s.input] >= s.rev_shift == 320  # one row of 5 x 64
    assert not check_offsets(life, offsets)
    offsets[s.output] = offsets[s.input] + s.rev_shift - 16
    assert any("overlap" in p for p in check_offsets(life, offsets))


def test_generated_c_runs_the_pointwise_rows_from_the_last(tmp_path):
    from edgekit.backends.c.compile import compile_model

    res = compile_model(support.kws_graph(), "cortex-m4", tmp_path / "kws", measure=False)
    model_c = (tmp_path / "kws" / "model.c").read_text()
    assert res.arena_bytes == plan_arena(support.kws_graph(), reverse_rows=True).arena_bytes
    assert model_c.count("for (r = 24; r >= 0; r--)") == 4
    assert f"ek_arena[{res.arena_bytes}]" in model_c


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_linked_kws_with_reversed_rows_is_bit_exact_on_qemu(target, tmp_path):
    support.require_tool("arm-none-eabi-gcc")
    support.require_tool("qemu-system-arm")
    from edgekit.device import DeviceClient, QemuBoard
    from edgekit.firmware.build import build_firmware

    g = support.kws_graph()
    elf = build_firmware(target, tmp_path / "fw", model=g)
    with QemuBoard(target, elf) as qb, DeviceClient(qb, timeout=5.0) as client:
        for x in support.kws_inputs(3):
            out, _ = client.infer(np.ascontiguousarray(x).tobytes())
            assert out == support.reference_output(g, x)
