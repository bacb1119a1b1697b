"""The memory planner: every plan is checked byte by byte against the liveness and sharing
rules, written out again here; placements against brute force; sharing by running the
graph element by element inside the planned arena; and the MLPerf Tiny models against
TFLM's arena figures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.ir import DType, Graph, OpType
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import infer_op_shapes
from edgekit.memory import MemoryPlan, MemoryPlanError, min_shift, plan_memory, scratch_bytes
from edgekit.memory.lifetimes import LiveBuffer, Lifetimes, MemoryModel, Sharing, align_up
from edgekit.memory.planner import check_offsets, exact_search, place_buffers, _Problem
from edgekit.memory.schedule import exact_order, greedy_order, is_topological
from edgekit.reference.interpreter import Interpreter
from tests.support.shared import shared_file

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

F32 = DType.FLOAT32


# --------------------------------------------------------------------------- graph building


class Builder:
    """Small NHWC graphs with random weights; each method returns the new tensor's name."""

    def __init__(self, shape, dtype=F32, seed=0, name="g"):
        self.g = Graph(name)
        self.dtype = DType(dtype)
        self.rng = np.random.default_rng(seed)
        self.g.add_tensor("x", shape, self.dtype)
        self.g.inputs = ["x"]
        self.n = 0

    def shape(self, t):
        return self.g.tensor(t).shape

    def op(self, type_, inputs, attrs=None, dtype=None):
        attrs = dict(attrs or {})
        shapes = [self.g.tensor(i).shape if i else None for i in inputs]
        out_shape = infer_op_shapes(OpType(type_), shapes, normalize_attrs(OpType(type_), attrs))[0]
        self.n += 1
        out = f"t{self.n}"
        self.g.add_tensor(out, out_shape, dtype or self.dtype)
        self.g.add_op(type_, inputs, [out], attrs, name=f"op{self.n}_{OpType(type_).value.lower()}")
        return out

    def const(self, shape):
        return self.g.add_const("w", self.rng.normal(size=shape).astype(np.float32) * 0.5)

    def conv(self, x, cout, k=3, stride=1, pad=1, act="RELU"):
        cin = self.shape(x)[3]
        w, b = self.const((cout, k, k, cin)).name, self.const((cout,)).name
        return self.op(OpType.CONV_2D, [x, w, b], {"strides": (stride, stride), "pads": (pad,) * 4,
                                                   "activation": act})

    def dw(self, x, k=3, stride=1, pad=1, mult=1):
        c = self.shape(x)[3]
        w, b = self.const((1, k, k, c * mult)).name, self.const((c * mult,)).name
        return self.op(OpType.DEPTHWISE_CONV_2D, [x, w, b],
                       {"strides": (stride, stride), "pads": (pad,) * 4, "depth_multiplier": mult})

    def pool(self, x, k=2, stride=2, kind=OpType.MAX_POOL_2D):
        return self.op(kind, [x], {"kernel": (k, k), "strides": (stride, stride)})

    def unary(self, x, kind=OpType.RELU):
        return self.op(kind, [x])

    def add(self, a, b, kind=OpType.ADD):
        return self.op(kind, [a, b])

    def concat(self, xs, axis=3):
        return self.op(OpType.CONCATENATION, list(xs), {"axis": axis})

    def pad(self, x, p=1):
        return self.op(OpType.PAD, [x], {"pads": (0, 0, p, p, p, p, 0, 0)})

    def reshape(self, x, shape):
        return self.op(OpType.RESHAPE, [x], {"shape": tuple(shape)})

    def fc(self, x, cout):
        k = self.shape(x)[-1]
        w, b = self.const((cout, k)).name, self.const((cout,)).name
        return self.op(OpType.FULLY_CONNECTED, [x, w, b])

    def softmax(self, x):
        return self.op(OpType.SOFTMAX, [x])

    def transpose(self, x, perm):
        return self.op(OpType.TRANSPOSE, [x], {"perm": tuple(perm)})

    def done(self, *outputs):
        self.g.outputs = list(outputs)
        return self.g


@st.composite
def random_graphs(draw, max_blocks=5, dtype=F32):
    """Chains, residual blocks, concats of parallel branches, forks from older tensors,
    reshapes and a classifier head."""
    h = draw(st.integers(3, 7))
    w = draw(st.integers(3, 7))
    c = draw(st.integers(1, 4))
    b = Builder((1, h, w, c), dtype=dtype, seed=draw(st.integers(0, 2**16)))
    pool = ["x"]
    cur = "x"
    for _ in range(draw(st.integers(1, max_blocks))):
        kind = draw(st.sampled_from(["conv", "dw", "pointwise", "unary", "pool", "residual", "concat",
                                     "fork", "pad", "reshape_roundtrip", "transpose"]))
        _, hh, ww, cc = b.shape(cur)
        if kind == "conv":
            stride = draw(st.sampled_from([1, 2])) if min(hh, ww) >= 4 else 1
            cur = b.conv(cur, draw(st.integers(1, 6)), k=draw(st.sampled_from([1, 3])), stride=stride,
                         pad=draw(st.integers(0, 1)) if min(hh, ww) >= 3 else 1)
        elif kind == "dw":
            cur = b.dw(cur, k=draw(st.sampled_from([1, 3])), pad=draw(st.integers(0, 1)) if min(hh, ww) >= 3 else 1,
                       mult=draw(st.sampled_from([1, 1, 2])))
        elif kind == "pointwise":
            cur = b.conv(cur, cc, k=1, pad=0, act="NONE")
        elif kind == "unary":
            cur = b.unary(cur, draw(st.sampled_from([OpType.RELU, OpType.RELU6, OpType.TANH, OpType.LOGISTIC])))
        elif kind == "pool" and min(hh, ww) >= 2:
            cur = b.pool(cur, kind=draw(st.sampled_from([OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D])))
        elif kind == "residual":
            y = b.conv(cur, cc, k=3, pad=1)
            if draw(st.booleans()):
                y = b.dw(y)
            cur = b.add(cur, y, kind=draw(st.sampled_from([OpType.ADD, OpType.MUL, OpType.SUB])))
        elif kind == "concat":
            left = b.conv(cur, draw(st.integers(1, 4)), k=1, pad=0)
            right = b.dw(cur) if draw(st.booleans()) else b.unary(cur)
            parts = [left, right] if draw(st.booleans()) else [right, left]
            cur = b.concat(parts, axis=draw(st.sampled_from([3, 3, 1])) if b.shape(left) == b.shape(right) else 3)
        elif kind == "fork":
            src = draw(st.sampled_from(pool))
            other = b.conv(src, draw(st.integers(1, 4)), k=1, pad=0)
            if b.shape(other)[1:3] == b.shape(cur)[1:3]:
                cur = b.concat([cur, other])
        elif kind == "pad":
            cur = b.pad(cur)
        elif kind == "reshape_roundtrip":
            flat = b.reshape(cur, (1, hh * ww, cc))
            cur = b.reshape(b.unary(flat), (1, hh, ww, cc))
        elif kind == "transpose":
            cur = b.transpose(cur, (0, 2, 1, 3))
        pool.append(cur)
    outputs = [cur]
    if draw(st.booleans()):
        _, hh, ww, cc = b.shape(cur)
        flat = b.reshape(cur, (1, hh * ww * cc))
        outputs = [b.softmax(b.fc(flat, draw(st.integers(2, 10))))]
        if draw(st.booleans()):
            outputs.append(cur)  # an intermediate also returned: lives to the end
    return b.done(*outputs)


# --------------------------------------------------------------------------- independent checks


def independent_liveness(g: Graph, order: list[str]):
    """tensor -> (alias root, first, last), written out again without the planner's code."""
    ops = {op.name: op for op in g.ops}
    root = {}
    for n in g.inputs:
        root[n] = n
    for name in order:
        op = ops[name]
        for o in op.outputs:
            src = op.inputs[0]
            is_alias = op.type is OpType.RESHAPE and not g.tensor(src).is_const
            root[o] = root[src] if is_alias else o
    first, last = {}, {}
    end = len(order) - 1
    for n in g.inputs:
        first[root[n]] = 0
        last[root[n]] = 0
    for t, name in enumerate(order):
        op = ops[name]
        for o in op.outputs:
            r = root[o]
            if r == o:
                first[r] = t
                last[r] = t
        for i in op.inputs:
            if i in root:
                last[root[i]] = max(last[root[i]], t)
    for n in g.outputs:
        last[root[n]] = end
    return root, first, last


def assert_plan_is_safe(g: Graph, plan: MemoryPlan) -> None:
    """Byte-level check: during every op, no byte holds two live buffers, except an op's
    output over an input that dies at that op, starting at least min_shift below it."""
    assert is_topological(g, plan.order)
    root, first, last = independent_liveness(g, plan.order)
    out_roots = {root[n] for n in g.outputs}
    ops = {op.name: op for op in g.ops}
    a = plan.alignment
    for n, r in root.items():
        assert plan.offsets[n] == plan.offsets[r], f"alias {n} not at its root {r}"
        assert plan.offsets[n] % a == 0
        assert plan.offsets[r] + g.tensor(r).nbytes <= plan.arena_bytes
    roots = sorted(set(root.values()))
    for t, name in enumerate(plan.order):
        op = ops[name]
        live = [r for r in roots if first[r] <= t <= last[r] and g.tensor(r).nbytes]
        spans = {r: (plan.offsets[r], plan.offsets[r] + g.tensor(r).nbytes) for r in live}
        for buf in plan.buffers:
            if buf.kind == "scratch" and buf.first == t:
                spans[buf.name] = (buf.offset, buf.offset + buf.size)
        for p, q in itertools.combinations(sorted(spans), 2):
            (p0, p1), (q0, q1) = spans[p], spans[q]
            if p1 <= q0 or q1 <= p0:
                continue
            ok = False
            for out, inp in ((p, q), (q, p)):
                if out in op.outputs and last.get(inp) == t and inp not in out_roots and any(
                        root.get(i) == inp for i in op.inputs):
                    readers = [i for i in op.inputs if root.get(i) == inp]
                    shift = min_shift(g, op, readers[0]) if len(set(readers)) == 1 else None
                    if shift is not None and plan.offsets[inp] - plan.offsets[out] >= shift:
                        ok = True
            assert ok, f"op {t} {name}: {p} {spans[p]} overlaps {q} {spans[q]}"


def run_in_arena(g: Graph, plan: MemoryPlan, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a float graph element by element inside one byte array laid out by ``plan``:
    each output element is computed from what the arena holds at that moment, then
    written, in row-major order (the kernel write contract of lifetimes.py)."""
    arena = np.zeros(plan.arena_bytes + 16, np.uint8)

    def view(name):
        t = g.tensor(name)
        if t.is_const:
            return t.data
        off = plan.offsets[name]
        return arena[off:off + t.nbytes].view(np.float32).reshape(t.shape)

    for n, v in inputs.items():
        view(n)[...] = v
    ops = {op.name: op for op in g.ops}
    for name in plan.order:
        op = ops[name]
        attrs = normalize_attrs(op.type, op.attrs)
        if op.type is OpType.RESHAPE:
            continue  # same bytes
        out = view(op.outputs[0])
        for idx in np.ndindex(*out.shape):
            out[idx] = _element(g, op, attrs, view, idx)
    return {n: view(n).copy() for n in g.outputs}


def _act(v, act):
    if act == "RELU":
        return max(v, 0.0)
    if act == "RELU6":
        return min(max(v, 0.0), 6.0)
    return v


def _window(size, k, stride, dil, pad, o):
    return [(j, o * stride - pad + j * dil) for j in range(k) if 0 <= o * stride - pad + j * dil < size]


def _element(g, op, attrs, view, idx):
    t = op.type
    x = view(op.inputs[0])
    if t in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D):
        n, oy, ox, oc = idx
        _, h, w, _ = x.shape
        if t in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
            wt = view(op.inputs[1])
            kh, kw = wt.shape[1:3]
            dh, dw = attrs["dilations"]
        else:
            kh, kw = attrs["kernel"]
            dh = dw = 1
        sh, sw = attrs["strides"]
        rows = _window(h, kh, sh, dh, attrs["pads"][0], oy)
        cols = _window(w, kw, sw, dw, attrs["pads"][1], ox)
        if t is OpType.CONV_2D:
            acc = float(view(op.inputs[2])[oc])
            for ky, r in rows:
                for kx, c in cols:
                    acc += float(np.dot(x[n, r, c, :].astype(np.float64), wt[oc, ky, kx, :].astype(np.float64)))
            return _act(acc, attrs["activation"])
        if t is OpType.DEPTHWISE_CONV_2D:
            ic = oc // attrs["depth_multiplier"]
            acc = float(view(op.inputs[2])[oc])
            for ky, r in rows:
                for kx, c in cols:
                    acc += float(x[n, r, c, ic]) * float(wt[0, ky, kx, oc])
            return _act(acc, attrs["activation"])
        vals = [float(x[n, r, c, oc]) for _, r in rows for _, c in cols]
        return max(vals) if t is OpType.MAX_POOL_2D else np.float32(np.float32(sum(vals)) / np.float32(len(vals)))
    if t is OpType.FULLY_CONNECTED:
        b_, oc = idx
        wt = view(op.inputs[1])
        row = x.reshape(-1, wt.shape[1])[b_].astype(np.float64)
        return _act(float(view(op.inputs[2])[oc]) + float(np.dot(row, wt[oc].astype(np.float64))),
                    attrs["activation"])
    if t in (OpType.ADD, OpType.SUB, OpType.MUL):
        a, b = float(x[idx]), float(view(op.inputs[1])[idx])
        v = a + b if t is OpType.ADD else a - b if t is OpType.SUB else np.float32(a) * np.float32(b)
        return _act(v, attrs["activation"])
    if t is OpType.RELU:
        return max(float(x[idx]), 0.0)
    if t is OpType.RELU6:
        return min(max(float(x[idx]), 0.0), 6.0)
    if t is OpType.TANH:
        return np.tanh(np.float64(x[idx]))
    if t is OpType.LOGISTIC:
        return 1.0 / (1.0 + np.exp(-np.float64(x[idx])))
    if t is OpType.SOFTMAX:
        row = x[idx[:-1]].astype(np.float32)  # the whole row, as the arena holds it now
        e = np.exp((row - row.max()).astype(np.float64))
        return e[idx[-1]] / e.sum()
    if t is OpType.PAD:
        p = attrs["pads"]
        src = tuple(i - p[2 * d] for d, i in enumerate(idx))
        inside = all(0 <= s < n for s, n in zip(src, x.shape))
        return float(x[src]) if inside else attrs["value"]
    if t is OpType.CONCATENATION:
        axis = attrs["axis"] % len(idx)
        k = idx[axis]
        for name in op.inputs:
            part = view(name)
            if k < part.shape[axis]:
                return float(part[idx[:axis] + (k,) + idx[axis + 1:]])
            k -= part.shape[axis]
    if t is OpType.TRANSPOSE:
        perm = attrs["perm"]
        src = [0] * len(idx)
        for i, p in enumerate(perm):
            src[p] = idx[i]
        return float(x[tuple(src)])
    raise AssertionError(f"no element rule for {t}")


def greedy_baseline(g: Graph, **kw) -> int:
    life = MemoryModel(g, **kw).lifetimes()
    return place_buffers(life, strategies=("greedy_by_size",)).peak


# --------------------------------------------------------------------------- property tests


@settings(max_examples=80)
@given(random_graphs())
def test_random_graphs_plan_safely(g):
    plan = plan_memory(g)
    plan.validate()
    assert_plan_is_safe(g, plan)
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert plan.arena_bytes <= greedy_baseline(g)
    no_share = plan_memory(g, inplace=False, reorder=False)
    assert_plan_is_safe(g, no_share)
    assert no_share.inplace == []
    assert plan.arena_bytes <= no_share.arena_bytes


@settings(max_examples=25)
@given(random_graphs(max_blocks=4))
def test_shared_bytes_compute_the_same_result(g):
    """Run each graph in its planned arena, where outputs overwrite dying inputs: the
    result equals the same element-by-element run with no sharing, bit for bit, and the
    reference interpreter."""
    x = np.random.default_rng(1).normal(size=g.tensor("x").shape).astype(np.float32)
    shared = plan_memory(g)
    separate = plan_memory(g, inplace=False, reorder=False)
    got = run_in_arena(g, shared, {"x": x})
    want = run_in_arena(g, separate, {"x": x})
    ref = Interpreter(g).run({"x": x})
    for n in g.outputs:
        np.testing.assert_array_equal(got[n], want[n])
        np.testing.assert_allclose(got[n], ref[n], rtol=1e-4, atol=1e-5)


@st.composite
def small_lifetimes(draw):
    """Abstract buffers (sizes in units of the alignment) with sharing pairs, for brute force."""
    steps = draw(st.integers(1, 5))
    n = draw(st.integers(1, 5))
    bufs = []
    for i in range(n):
        a = draw(st.integers(0, steps - 1))
        b = draw(st.integers(a, steps - 1))
        size = 16 * draw(st.integers(1, 3))
        bufs.append(LiveBuffer(f"b{i}", (f"b{i}",), size, size, a, b))
    sharing = []
    for i, j in itertools.permutations(range(n), 2):
        if bufs[j].last == bufs[i].first and draw(st.integers(0, 3)) == 0:
            if any(s.output == i or s.input == j for s in sharing):
                continue
            shift = 16 * draw(st.integers(0, bufs[i].size // 16 - 1))
            sharing.append(Sharing(f"op{bufs[i].first}", bufs[i].first, i, j, bufs[j].key, shift))
    order = [f"op{t}" for t in range(steps)]
    return Lifetimes(order, bufs, {b.key: k for k, b in enumerate(bufs)}, {}, sharing, 16)


def brute_force_peak(life: Lifetimes) -> int:
    """Smallest peak over every placement on the alignment grid."""
    bufs = life.buffers
    total = sum(b.size for b in bufs)
    best = [total]
    off = [0] * len(bufs)

    def ok(i):
        for j in range(i):
            if not bufs[i].overlaps_in_time(bufs[j]):
                continue
            a0, a1, b0, b1 = off[i], off[i] + bufs[i].size, off[j], off[j] + bufs[j].size
            if a1 <= b0 or b1 <= a0:
                continue
            s = life.sharing_of(i, j) or life.sharing_of(j, i)
            if s is None or off[s.input] - off[s.output] < s.min_shift:
                return False
        return True

    def rec(i, peak):
        if peak >= best[0]:
            return
        if i == len(bufs):
            best[0] = peak
            return
        for o in range(0, best[0] - bufs[i].size + 1, 16):
            off[i] = o
            if ok(i):
                rec(i + 1, max(peak, o + bufs[i].size))

    rec(0, 0)
    return best[0]


@settings(max_examples=150)
@given(small_lifetimes())
def test_exact_search_equals_brute_force(life):
    want = brute_force_peak(life)
    problem = _Problem(life)
    offsets, peak, complete = exact_search(problem, sum(b.size for b in life.buffers) + 1)
    assert complete
    assert peak == want
    assert check_offsets(life, offsets) == []
    placed = place_buffers(life)
    assert placed.peak == want and placed.optimal
    assert life.lower_bound() <= want


@settings(max_examples=40)
@given(random_graphs(max_blocks=3))
def test_exact_order_is_the_best_topological_order(g):
    model = MemoryModel(g)
    names = model.op_names
    if len(names) > 7:
        return
    best = None
    for perm in itertools.permutations(names):
        if is_topological(g, perm):
            peak = model.lifetimes(list(perm)).lower_bound()
            best = peak if best is None else min(best, peak)
    order = exact_order(model)
    assert is_topological(g, order) and is_topological(g, greedy_order(model))
    assert model.lifetimes(order).lower_bound() == best


# --------------------------------------------------------------------------- hand-computed cases


def test_unary_chain_runs_in_place():
    b = Builder((1, 4, 4, 8), DType.INT8)
    y = b.unary("x", OpType.RELU)
    z = b.unary(y, OpType.RELU6)
    g = b.done(z)
    plan = plan_memory(g)
    assert plan.offsets == {"x": 0, y: 0, z: 0}
    assert plan.arena_bytes == plan.lower_bound_bytes == 128
    assert plan.inplace == [("op1_relu", "x"), ("op2_relu6", y)]
    assert [bf.inplace_of for bf in plan.buffers] == [None, "x", y]
    plan_off = plan_memory(g, inplace=False)
    assert plan_off.arena_bytes == 256 and plan_off.inplace == []
    keep = plan_memory(g, preserve_inputs=True)  # x may not be overwritten; y may
    assert keep.arena_bytes == 256 and ("op1_relu", "x") not in keep.inplace


def test_reshape_is_an_alias_and_extends_the_lifetime():
    b = Builder((1, 2, 2, 4), DType.INT8)
    y = b.conv("x", 4, k=1, pad=0)          # 16 B
    r = b.reshape(y, (1, 16))                # alias of y
    z = b.fc(r, 16)                           # reads y's bytes through r
    g = b.done(z)
    plan = plan_memory(g)
    assert plan.offsets[r] == plan.offsets[y]
    (buf,) = [bf for bf in plan.buffers if bf.name == y]
    assert buf.aliases == (r,) and (buf.first, buf.last) == (0, 2)
    # x dies at the conv: with a shift of 3 B (aligned to 16) y could sit
    # below it, but both are 16 B, so no sharing pays; FC reads its whole row: no sharing.
    assert plan.arena_bytes == 32 and plan.lower_bound_bytes == 32


def test_depthwise_3x3_needs_a_shift_of_one_row_and_one_pixel():
    b = Builder((1, 5, 5, 16), DType.INT8)
    y = b.dw("x", k=3, pad=1)
    g = b.done(y)
    op = g.ops[0]
    assert min_shift(g, op, "x") == (5 + 1) * 16  # not in place: later rows read row y-1
    plan = plan_memory(g)
    assert plan.offsets == {"x": 96, y: 0}
    assert plan.arena_bytes == 400 + 96
    assert plan.overlaps[0].shift == 96 and plan.inplace == [(op.name, "x")]


def test_depthwise_and_pool_shift_rules():
    def dw_shift(shape, **kw):
        b = Builder(shape, DType.INT8)
        b.dw("x", **kw)
        g = b.done("t1")
        return min_shift(g, g.ops[0], "x")

    assert dw_shift((1, 4, 4, 8), k=1, pad=0) == 0                       # 1x1: in place
    # Valid 3x3: output (y, x) reads input rows y..y+2 from pixel (y, x) on, and output
    # index (y*4 + x) never passes input index (y*6 + x): in place is safe.
    assert dw_shift((1, 6, 6, 8), k=3, pad=0) == 0
    # Stride 2, pad 1, 6x6 -> 3x3: output (1, 1) ends at byte 5*8; output (1, 2) still
    # reads input pixel (1, 3) = byte 9*8, ...; the worst is (y, 0) -> (y, 1): shift 0.
    # Row y=1 col 0 ends at (3+0+1)*8 = 32 and the next read is pixel (1, 1) = 7*8: fine.
    assert dw_shift((1, 6, 6, 8), k=3, pad=1, stride=2) == 0
    assert dw_shift((1, 4, 4, 8), k=1, pad=0, mult=2) > 0               # output twice as wide
    b = Builder((1, 4, 4, 8), DType.INT8)
    p = b.pool("x", k=2, stride=2)
    g = b.done(p)
    assert min_shift(g, g.ops[0], "x") == 0  # output (y, x) at or before input pixel (2y, 2x)


def brute_force_shift(x_shape, kind, k, stride, dil, pads, mult=1):
    """Smallest shift found by replaying the kernel loop over full read sets: output
    element o reads every input element of its window; writing it at ``o - shift`` (input
    coordinates) must not hit an input element a later output still reads."""
    n, h, w, c = x_shape
    top, left = pads
    oh = (h + 2 * top - ((k - 1) * dil + 1)) // stride + 1
    ow = (w + 2 * left - ((k - 1) * dil + 1)) // stride + 1
    cout = c * mult if kind != "conv" else c
    reads = []
    for y, x_, oc in itertools.product(range(oh), range(ow), range(cout)):
        rs = [y * stride - top + j * dil for j in range(k)]
        cs = [x_ * stride - left + j * dil for j in range(k)]
        chans = range(c) if kind == "conv" else [oc // mult]
        reads.append({(r * w + cc) * c + ch for r in rs for cc in cs for ch in chans
                      if 0 <= r < h and 0 <= cc < w})
    for shift in range(len(reads) + 1):
        later = [set().union(*reads[o + 1:]) for o in range(len(reads))]
        if all(o - shift not in later[o] for o in range(len(reads))):
            return shift
    raise AssertionError


@settings(max_examples=60)
@given(st.sampled_from(["conv", "dw", "pool"]), st.integers(2, 5), st.integers(2, 5), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 2), st.integers(1, 2), st.integers(0, 2), st.integers(0, 2),
       st.integers(1, 2))
def test_window_shift_matches_a_replay_of_the_loop(kind, h, w, c, k, stride, dil, top, left, mult):
    if (h + 2 * top - ((k - 1) * dil + 1)) < 0 or (w + 2 * left - ((k - 1) * dil + 1)) < 0:
        return
    b = Builder((1, h, w, c), DType.INT8)
    attrs = {"strides": (stride, stride), "pads": (top, left, top, left)}
    if kind == "conv":
        wt = b.const((c, k, k, c)).name
        b.op(OpType.CONV_2D, ["x", wt], {**attrs, "dilations": (dil, dil)})
    elif kind == "dw":
        wt = b.const((1, k, k, c * mult)).name
        b.op(OpType.DEPTHWISE_CONV_2D, ["x", wt], {**attrs, "dilations": (dil, dil), "depth_multiplier": mult})
    else:
        if top >= k or left >= k:
            return
        dil, mult = 1, 1
        b.op(OpType.MAX_POOL_2D, ["x"], {**attrs, "kernel": (k, k)})
    g = b.done("t1")
    assert min_shift(g, g.ops[0], "x") == brute_force_shift((1, h, w, c), kind, k, stride, dil, (top, left), mult)


def test_pointwise_conv_shift_is_one_input_pixel():
    b = Builder((1, 3, 3, 32), DType.INT8)
    y = b.conv("x", 32, k=1, pad=0)
    g = b.done(y)
    # Output channel c of pixel p overwrites input byte p*32 + c - shift; channels up to
    # 30 still read pixel p afterwards, so shift = 31 (aligned: 32), not 0.
    assert min_shift(g, g.ops[0], "x") == 31
    plan = plan_memory(g)
    assert plan.offsets == {"x": 32, y: 0} and plan.arena_bytes == 288 + 32


def test_shift_of_mixed_element_sizes_and_unmodeled_ops():
    b = Builder((1, 16), DType.INT8)
    y = b.op(OpType.DEQUANTIZE, ["x"], dtype=F32)
    g = b.done(y)
    assert min_shift(g, g.ops[0], "x") == 3 * 15  # 4-byte outputs over 1-byte inputs
    b = Builder((1, 4, 4, 8), DType.INT8)
    m = b.op(OpType.MEAN, ["x"], {"axes": (1, 2), "keep_dims": True})
    g = b.done(m)
    assert min_shift(g, g.ops[0], "x") is None
    b = Builder((1, 32), DType.INT8)
    f = b.fc("x", 32)
    g = b.done(f)
    assert min_shift(g, g.ops[0], "x") == 31  # reads its whole row: aligned, never shares
    assert plan_memory(g).inplace == []


def test_add_in_place_over_the_input_that_dies():
    b = Builder((1, 4, 4, 4), DType.INT8)   # 64 B each
    y = b.conv("x", 4, k=3, pad=1)
    s = b.add("x", y)                         # x and y both die here
    g = b.done(s)
    plan = plan_memory(g)
    assert plan.arena_bytes == 128            # x and y live together; the sum over one of them
    (o,) = plan.overlaps
    assert o.op == g.ops[1].name and o.shift == 0 and plan.offsets[s] == plan.offsets[o.input]


def test_concat_output_may_start_at_its_first_input():
    b = Builder((1, 2, 2, 4), DType.INT8)    # 16 B
    left = b.unary("x", OpType.RELU)
    right = b.unary("x", OpType.RELU6)
    c = b.concat([left, right], axis=1)       # axis 1: left's bytes then right's bytes
    g = b.done(c)
    assert min_shift(g, g.ops[2], left) == 0
    assert min_shift(g, g.ops[2], right) == 16  # copies in order: right may sit inside at +16
    plan = plan_memory(g)
    assert plan.arena_bytes == 32 == plan.lower_bound_bytes  # zero-copy concat
    assert_plan_is_safe(g, plan)
    # A backend whose concat kernel cannot keep the write contract opts it out: the
    # output then needs its own 32 B beside both 16 B inputs.
    apart = plan_memory(g, no_share={OpType.CONCATENATION})
    assert apart.overlaps == [] and apart.arena_bytes == 64
    assert_plan_is_safe(g, apart)
    assert plan_memory(g, no_share={OpType.PAD}).arena_bytes == 32  # no PAD here: nothing changes


def test_scratch_formulas_and_planning():
    b = Builder((1, 6, 6, 8), DType.INT8)
    y = b.conv("x", 8, k=3, pad=1)
    z = b.conv(y, 8, k=1, pad=0)
    d = b.dw(z, k=3, pad=1)
    g = b.done(d)
    conv3, conv1, dw = g.ops
    assert scratch_bytes(conv3, g) == 0
    assert scratch_bytes(conv3, g, ("dsp",)) == 2 * 3 * 3 * 8 * 2
    assert scratch_bytes(conv1, g, ("dsp",)) == 0
    assert scratch_bytes(dw, g, ("mve",)) == 3 * 3 * 8 * 2
    plan = plan_memory(g, target_features=("dsp",))
    assert set(plan.scratch) == {conv3.name, dw.name}
    scratch = {bf.name: bf for bf in plan.buffers if bf.kind == "scratch"}
    assert scratch[f"{conv3.name}:scratch"].first == scratch[f"{conv3.name}:scratch"].last == 0
    assert scratch[f"{dw.name}:scratch"].size == 144
    assert plan.arena_bytes >= plan_memory(g).arena_bytes
    assert_plan_is_safe(g, plan)


def test_reordering_branches_lowers_the_peak():
    b = Builder((1, 8, 8, 1), DType.INT8)     # 64 B
    a1 = b.conv("x", 16, k=1, pad=0)          # 1 KiB
    b1 = b.conv("x", 16, k=1, pad=0)          # 1 KiB
    a2 = b.pool(a1, k=8, stride=8)            # 16 B
    b2 = b.pool(b1, k=8, stride=8)
    c = b.concat([a2, b2])
    g = b.done(c)
    orig = plan_memory(g, reorder=False)
    assert orig.order == [op.name for op in g.ops] and orig.order_source == "original"
    plan = plan_memory(g)
    assert is_topological(g, plan.order)
    assert plan.order.index("op3_max_pool_2d") < plan.order.index("op2_conv_2d")  # a1 shrinks first
    assert plan.arena_bytes < orig.arena_bytes
    assert_plan_is_safe(g, plan)


def test_chain_keeps_its_order():
    b = Builder((1, 4, 4, 4))
    y = b.conv(b.dw(b.conv("x", 4)), 8)
    g = b.done(y)
    plan = plan_memory(g)
    assert plan.order == [op.name for op in g.ops] and plan.order_source == "original"


def test_timeline_rows():
    b = Builder((1, 4, 4, 4), DType.INT8)
    y = b.conv("x", 4, k=3, pad=1)
    z = b.unary(y)
    g = b.done(z)
    plan = plan_memory(g)
    rows = plan.timeline()
    assert [r["op"] for r in rows] == plan.order and [r["index"] for r in rows] == [0, 1]
    assert {e["name"] for e in rows[0]["live"]} == {"x", y}
    assert {e["name"] for e in rows[1]["live"]} == {y, z}
    assert all(r["bytes"] <= plan.arena_bytes for r in rows)
    assert rows[1]["live"][0]["offset"] == plan.offsets[y]


def test_validate_catches_overlap():
    b = Builder((1, 4, 4, 4), DType.INT8)
    y = b.conv("x", 4, k=3, pad=1)
    g = b.done(y)
    plan = plan_memory(g)
    plan.validate()
    bad = [bf for bf in plan.buffers]
    x_buf = next(bf for bf in bad if bf.name == "x")
    y_buf = next(bf for bf in bad if bf.name == y)
    plan.buffers = [type(x_buf)(**{**x_buf.__dict__, "offset": y_buf.offset}) if bf is x_buf else bf
                    for bf in bad]
    with pytest.raises(MemoryPlanError, match="overlap"):
        plan.validate()


def test_alignment_and_empty_graph():
    b = Builder((1, 3), DType.INT8)
    y = b.unary("x")
    g = b.done(y)
    for a in (1, 4, 16, 64):
        plan = plan_memory(g, alignment=a, inplace=False)
        assert plan.arena_bytes == 2 * align_up(3, a)
        assert all(o % a == 0 for o in plan.offsets.values())
    with pytest.raises(MemoryPlanError):
        plan_memory(g, alignment=0)
    e = Graph("empty")
    e.add_tensor("x", (1, 4), DType.INT8)
    e.inputs, e.outputs = ["x"], ["x"]
    plan = plan_memory(e)
    assert plan.arena_bytes == 16 and plan.order == [] and plan.timeline() == []


# --------------------------------------------------------------------------- MLPerf Tiny

# TFLM's tensor area (print_allocations' "allocation head" on the host interpreter,
# notes/toolchain.md): tensors only, like edgekit's arena. Its arena_used_bytes() (22,772
# and 2,260 B) also holds its runtime structures, which generated code keeps as constants.
TFLM_TENSOR_AREA = {"kws": 16_000, "ad": 768}


def _load(name):
    from edgekit.frontends.tflite import load_tflite

    return load_tflite(shared_file(f"models/mlperf-tiny/{name}"))


def test_kws_arena_vs_tflm():
    g = _load("kws_ref_model_int8.tflite")
    plan = plan_memory(g)
    assert_plan_is_safe(g, plan)
    print(f"\nKWS: {plan.summary().splitlines()[0]}; TFLM tensor area {TFLM_TENSOR_AREA['kws']} B")
    # Without sharing, two 1x25x5x64 int8 tensors (8,000 B) are live at every conv: 16,000 B,
    # which is also TFLM's non-persistent ("head") part on the host.
    assert plan_memory(g, inplace=False).arena_bytes == TFLM_TENSOR_AREA["kws"]
    # In-place outputs: each depthwise output starts (W+1)*C = 384 B below its input and
    # each pointwise output 64 B below, so the chain of 8,000 B tensors descends through
    # 8,000 + 4*384 + 4*64 = 9,792 B: 0.61x TFLM's tensor area.
    assert plan.arena_bytes <= 0.62 * TFLM_TENSOR_AREA["kws"]
    assert plan.arena_bytes == 8000 + 4 * 384 + 4 * 64
    assert plan.lower_bound_bytes <= plan.arena_bytes
    assert len(plan.inplace) >= 8


def test_ad_arena_vs_tflm():
    g = _load("ad01_int8.tflite")
    plan = plan_memory(g)
    assert_plan_is_safe(g, plan)
    print(f"\nAD: {plan.summary().splitlines()[0]}; TFLM tensor area {TFLM_TENSOR_AREA['ad']} B")
    # The 640 B input and the first 128 B activation are live together (and the last
    # 128 B with the 640 B output); fully connected layers read their whole input row
    # before writing, so nothing can share: 768 B is the lower bound, and it is reached.
    # TFLM's tensor area is the same 768 B.
    assert plan.arena_bytes == plan.lower_bound_bytes == TFLM_TENSOR_AREA["ad"]
