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


def _simulate(h, w, cin, cout, d, rng, kh=1, kw=1, sh=1, pt=0, pl=0, rows=None):
    """A conv computed the way the generated C runs it by rows in reverse: output rows
    from the last, each by the forward kernel (pixels, then output channels, in order;
    every output byte written right after the reads it needs; taps outside the input
    skipped), over one byte buffer holding the input at 0 and the output at ``d``.
    Returns (what it wrote, what it should write)."""
    rows = rows or h
    x = rng.integers(0, 256, (h, w, cin), dtype=np.int64)
    wt = rng.integers(1, 256, (cout, kh, kw, cin), dtype=np.int64)
    ow = w  # stride 1 across, 'same'-like width
    mem = np.zeros(max(h * w * cin, d + rows * ow * cout), dtype=np.int64)
    mem[:h * w * cin] = x.ravel()

    def out_pixel(src, r, px):
        acc = np.zeros(cout, dtype=np.int64)
        for ky in range(kh):
            iy = r * sh - pt + ky
            for kx in range(kw):
                ix = px - pl + kx
                if 0 <= iy < h and 0 <= ix < w:
                    acc += wt[:, ky, kx, :] @ src(iy, ix)
        return acc % 251

    want = np.stack([np.stack([out_pixel(lambda iy, ix: x[iy, ix], r, px) for px in range(ow)])
                     for r in range(rows)])
    for r in range(rows - 1, -1, -1):
        for px in range(ow):
            for oc in range(cout):
                v = out_pixel(lambda iy, ix: mem[(iy * w + ix) * cin:(iy * w + ix + 1) * cin], r, px)[oc]
                mem[d + (r * ow + px) * cout + oc] = v
    return mem[d:d + rows * ow * cout].reshape(rows, ow, cout), want


def _conv_graph(h, w, cin, cout, kh=1, kw=1, sh=1, pt=0, pl=0, rows=None):
    g = Graph("conv")
    g.add_tensor("x", (1, h, w, cin), DType.INT8)
    g.add_tensor("w", (cout, kh, kw, cin), DType.INT8, data=np.ones((cout, kh, kw, cin), np.int8))
    g.add_tensor("y", (1, rows or h, w, cout), DType.INT8)
    op = g.add_op(OpType.CONV_2D, ["x", "w"], ["y"], {"strides": (sh, 1), "pads": (pt, pl, 0, 0)}, name="conv")
    return g, op


def _pointwise_graph(h, w, cin, cout):
    return _conv_graph(h, w, cin, cout)


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


# (h, w, cin, cout, kh, kw, stride_h, pad_top, pad_left, output rows)
WINDOWED = [(6, 3, 2, 4, 3, 3, 1, 1, 1, 6), (9, 2, 1, 8, 4, 2, 2, 1, 0, 4), (7, 3, 3, 3, 3, 1, 2, 0, 0, 3),
            (10, 4, 1, 16, 10, 4, 2, 4, 1, 5), (5, 2, 4, 2, 2, 2, 1, 0, 1, 4)]


@pytest.mark.parametrize("case", WINDOWED, ids=str)
def test_reverse_rows_shift_keeps_windowed_convs_exact(case):
    h, w, cin, cout, kh, kw, sh, pt, pl, rows = case
    g, op = _conv_graph(h, w, cin, cout, kh, kw, sh, pt, pl, rows)
    d = reverse_rows_shift(g, op, "x")
    got, want = _simulate(h, w, cin, cout, d, np.random.default_rng(list(case)), kh, kw, sh, pt, pl, rows)
    assert np.array_equal(got, want)


def test_reverse_rows_needs_batch_one_and_the_data_input():
    g, op = _conv_graph(4, 4, 8, 8)
    assert reverse_rows_shift(g, op, "x") == 32
    assert reverse_rows_shift(g, op, "w") is None
    g2, op2 = _conv_graph(4, 4, 8, 8)
    g2.tensors["x"].shape = (2, 4, 4, 8)
    assert reverse_rows_shift(g2, op2, "x") is None


def test_kws_plan_alternates_directions_and_stays_valid():
    g = support.kws_graph()
    forward = plan_arena(g)
    both = plan_arena(g, reverse_rows=True)
    assert forward.arena_bytes == 9792 and forward.lower_bound_bytes == 8384
    assert both.arena_bytes == both.lower_bound_bytes == 8384 and both.optimal
    convs = {op.name for op in g.ops if op.type is OpType.CONV_2D}
    pointwise = {n for n in convs if g.tensor(next(o for o in g.ops if o.name == n).inputs[1]).shape[1:3] == (1, 1)}
    assert both.reversed_rows == convs and len(pointwise) == 4 and len(convs) == 5
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
    # the packed conv (cortex-m4's dsp kernel) has a reverse field: one call per reversed op
    assert model_c.count(".reverse = 1}") == 5 and "for (r = 24; r >= 0; r--)" not in model_c
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


def test_a_kernel_with_a_reverse_field_gets_one_call_instead_of_rows():
    """A kernel whose params have ``reverse`` runs its pixels from the last itself (the
    whole-row bound holds for it too): one call with reverse = 1, no row loop."""
    from edgekit.backends.c import lower_op
    from edgekit.backends.c.codegen import generate
    from edgekit.backends.c.params import Struct

    g = support.kws_graph()
    plan = plan_arena(g, reverse_rows=True)
    calls = {op.name: lower_op(g, op) for op in g.ops}
    for name in plan.reversed_rows:
        c = calls[name]
        c.args[0] = Struct(c.args[0].ctype, {**c.args[0].values, "reverse": 0})
    model_c = generate(g, plan, calls, {}, name="kws", target="cortex-m4").model_c
    assert "for (r = " not in model_c
    assert model_c.count("pixels from the last (reverse = 1)") == len(plan.reversed_rows) == 5
    assert model_c.count(".reverse = 1}") == 5 and ".reverse = 0" not in model_c


def test_compile_model_can_keep_one_call_per_op(tmp_path):
    from edgekit.backends.c.compile import compile_model

    res = compile_model(support.kws_graph(), "cortex-m55", tmp_path / "kws", measure=False, reverse_rows=False)
    assert res.arena_bytes == 9792
    assert "for (r = " not in (tmp_path / "kws" / "model.c").read_text()
