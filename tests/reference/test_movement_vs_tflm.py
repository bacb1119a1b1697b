"""The data-movement ops (SLICE, STRIDED_SLICE, SPLIT, SQUEEZE, EXPAND_DIMS, GATHER,
PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, CAST) of edgekit's reference interpreter
against TFLite Micro (int8 and float32, every output byte) and LiteRT's reference kernels
(float32).

Each example is a one-op IR graph with random shapes and attributes, written to .tflite by
edgekit's writer (so the writer's spelling of each op is checked too), then imported back:
the re-imported graph must compute the same bytes. STRIDED_SLICE is also checked from the
TensorFlow side: a hand-built model with random begin/end masks, negative indices and
shrink axes, imported by edgekit (which resolves them) and run by TFLite Micro as written.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.errors import BadInputError, VerifyError  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.ir import DType, OpType, QuantParams  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.reference.movement_cases import one_op  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import profile  # noqa: E402

needs_tflm = pytest.mark.skipif(not orc.HAVE_TFLM,
                                reason="tflite_micro (the TFLite Micro Python interpreter) is not installed")
S = orc.schema


def _outputs(graph, xs):
    got = Interpreter(graph).run(xs)
    return [got[n] for n in graph.outputs]


def _values(d, shape, dtype: DType) -> np.ndarray:
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    if dtype is DType.INT8:
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    return rng.normal(0, 3, size=shape).astype(np.float32)


def _dtype_and_quant(d):
    dtype = d(st.sampled_from([DType.INT8, DType.FLOAT32]))
    q = QuantParams.per_tensor(float(np.float32(10 ** d(st.floats(-3, 0)))), d(st.integers(-128, 127))) \
        if dtype is DType.INT8 else None
    return dtype, q


def check_against_tflite(case) -> None:
    """Reference == TFLM (== LiteRT reference kernels for float) == the re-imported graph."""
    g, xs = case.graph, case.inputs
    ref = _outputs(g, xs)
    model = tflite_bytes(g)
    tflm = orc.run_tflm(model, xs, n_outputs=len(ref))
    for r, t in zip(ref, tflm):
        assert r.dtype == t.dtype and r.shape == t.shape, (r.shape, t.shape)
        assert np.array_equal(r, t, equal_nan=True), "TFLM computes other bytes"
    if g.tensor(g.inputs[0]).dtype is DType.FLOAT32:
        lite = orc.run_litert(model, xs)
        for r, t in zip(ref, lite):
            assert np.array_equal(r, t, equal_nan=True), "LiteRT's reference kernel computes other bytes"
    back = load_tflite(model)
    as_reshape = {OpType.SQUEEZE: OpType.RESHAPE, OpType.EXPAND_DIMS: OpType.RESHAPE}  # the importer's choice
    assert [op.type for op in back.ops] == [as_reshape.get(op.type, op.type) for op in g.ops]
    for r, t in zip(ref, _outputs(back, xs)):
        assert np.array_equal(r, t, equal_nan=True)


def _shape(d, rank_lo=1, rank_hi=4, dim_hi=5):
    return tuple(d(st.integers(1, dim_hi)) for _ in range(d(st.integers(rank_lo, rank_hi))))


# ------------------------------------------------------------------------------ the ops


@needs_tflm
@profile(25)
@given(st.data())
def test_slice(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = _shape(d)
    begin = [d(st.integers(0, n - 1)) for n in shape]
    size = [d(st.integers(0, n - b)) for n, b in zip(shape, begin)]
    size = [max(s, 1) for s in size]
    check_against_tflite(one_op(OpType.SLICE, {"begin": begin, "size": size}, [_values(d, shape, dtype)], dtype, q))


def _strided_axis(d, n: int) -> tuple[int, int, int]:
    s = d(st.sampled_from([-3, -2, -1, 1, 2, 3]))
    if s > 0:
        b = d(st.integers(0, n - 1))
        return b, d(st.integers(b + 1, n)), s
    b = d(st.integers(0, n - 1))
    return b, d(st.integers(-1, b - 1)), s


@needs_tflm
@profile(30)
@given(st.data())
def test_strided_slice(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = _shape(d, dim_hi=6)
    axes = [_strided_axis(d, n) for n in shape]
    shrink = 0
    for i, (b, e, s) in enumerate(axes):
        if len(range(b, e, s)) == 1 and d(st.booleans()):
            shrink |= 1 << i
    attrs = {"begin": [a[0] for a in axes], "end": [a[1] for a in axes], "strides": [a[2] for a in axes],
             "shrink_axis_mask": shrink}
    check_against_tflite(one_op(OpType.STRIDED_SLICE, attrs, [_values(d, shape, dtype)], dtype, q))


@needs_tflm
@profile(40)
@given(st.data())
def test_strided_slice_import_resolves_tensorflow_masks(data):
    """begin/end as TensorFlow writes them (negative, out of range, masked, shrink axes):
    edgekit's import resolves them as TFLite Micro interprets them."""
    d = data.draw
    shape = _shape(d, dim_hi=6)
    rank = len(shape)
    strides = [d(st.sampled_from([-2, -1, 1, 1, 2, 3])) for _ in range(rank)]
    begin = [d(st.integers(-n - 1, n + 1)) for n in shape]
    end = [d(st.integers(-n - 1, n + 1)) for n in shape]
    begin_mask, end_mask = d(st.integers(0, 2**rank - 1)), d(st.integers(0, 2**rank - 1))
    shrink = 0
    for i, n in enumerate(shape):
        if d(st.integers(0, 3)) == 0:  # a shrink axis takes begin only, which must be in range
            shrink |= 1 << i
            begin[i] = d(st.integers(-n, n - 1))
            strides[i] = 1
            begin_mask &= ~(1 << i)
    from edgekit.frontends.tflite.movement import resolve_strided_slice

    rb, re_, rs = resolve_strided_slice(shape, begin, end, strides, begin_mask, end_mask, shrink)
    out_shape = [len(range(b, e, s)) for i, (b, e, s) in enumerate(zip(rb, re_, rs)) if not shrink >> i & 1]
    assume(all(out_shape))  # TFLite Micro cannot allocate an empty output
    x = _values(d, shape, DType.INT8)
    q = QuantParams.per_tensor(0.1, 2)
    opt = S.StridedSliceOptionsT()
    opt.beginMask, opt.endMask, opt.shrinkAxisMask = begin_mask, end_mask, shrink
    i32 = lambda v: {"shape": (rank,), "dtype": np.int32, "data": np.array(v, np.int32)}  # noqa: E731
    model = orc.single_op_model(
        S.BuiltinOperator.STRIDED_SLICE,
        [{"shape": shape, "dtype": np.int8, "quant": q}, i32(begin), i32(end), i32(strides)],
        [{"shape": out_shape, "dtype": np.int8, "quant": q}], S.BuiltinOptions.StridedSliceOptions, opt)
    g = load_tflite(model)
    ours = _outputs(g, [x])[0]
    tflm = orc.run_tflm(model, [x])[0]
    assert ours.shape == tflm.shape and np.array_equal(ours, tflm)


@needs_tflm
@profile(25)
@given(st.data())
def test_split(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = list(_shape(d))
    axis = d(st.integers(0, len(shape) - 1))
    if d(st.booleans()):  # equal parts: written as SPLIT
        n = d(st.integers(1, 4))
        shape[axis] = n * d(st.integers(1, 3))
        sizes = [shape[axis] // n] * n
    else:  # SPLIT_V
        sizes = [d(st.integers(1, 3)) for _ in range(d(st.integers(1, 4)))]
        shape[axis] = sum(sizes)
    check_against_tflite(one_op(OpType.SPLIT, {"axis": axis, "sizes": sizes},
                                [_values(d, tuple(shape), dtype)], dtype, q))


@needs_tflm
@profile(20)
@given(st.data())
def test_squeeze_and_expand_dims(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = list(_shape(d))
    ones = sorted({d(st.integers(0, len(shape))) for _ in range(d(st.integers(1, 2)))})
    for a in ones:
        shape.insert(a, 1)
    x = _values(d, tuple(shape), dtype)
    check_against_tflite(one_op(OpType.SQUEEZE, {"axes": ones}, [x], dtype, q))
    check_against_tflite(one_op(OpType.EXPAND_DIMS, {"axis": d(st.integers(0, len(shape)))}, [x], dtype, q))


@needs_tflm
@profile(30)
@given(st.data())
def test_gather(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = _shape(d, 1, 4)
    axis = d(st.integers(0, len(shape) - 1))
    batch_dims = d(st.integers(0, min(axis, 1)))
    idx_shape = tuple(shape[:batch_dims]) + _shape(d, 0 if batch_dims == 0 else 0, 2, 4)
    if not idx_shape:
        idx_shape = (1,)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    idx = rng.integers(0, shape[axis], size=idx_shape).astype(np.int32)
    check_against_tflite(one_op(OpType.GATHER, {"axis": axis, "batch_dims": batch_dims},
                                [_values(d, shape, dtype)], dtype, q, consts={1: idx}))


@needs_tflm
@profile(25)
@given(st.data())
def test_pack_and_unpack(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    shape = _shape(d, 1, 3)
    n = d(st.integers(1, 4))
    xs = [_values(d, shape, dtype) for _ in range(n)]
    check_against_tflite(one_op(OpType.PACK, {"axis": d(st.integers(0, len(shape)))}, xs, dtype, q))
    check_against_tflite(one_op(OpType.UNPACK, {"axis": d(st.integers(0, len(shape) - 1))}, xs[:1], dtype, q))


@needs_tflm
@profile(20)
@given(st.data())
def test_depth_to_space_and_space_to_depth(data):
    d = data.draw
    dtype, q = _dtype_and_quant(d)
    b = d(st.integers(1, 3))
    n, h, w, c = d(st.integers(1, 2)), d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    x = _values(d, (n, h, w, c * b * b), dtype)
    check_against_tflite(one_op(OpType.DEPTH_TO_SPACE, {"block_size": b}, [x], dtype, q))
    y = _values(d, (n, h * b, w * b, c), dtype)
    check_against_tflite(one_op(OpType.SPACE_TO_DEPTH, {"block_size": b}, [y], dtype, q))


_CASTS = [(DType.INT8, DType.FLOAT32), (DType.FLOAT32, DType.INT8), (DType.INT8, DType.INT32),
          (DType.INT32, DType.INT8), (DType.FLOAT32, DType.INT32), (DType.INT32, DType.FLOAT32),
          (DType.INT16, DType.INT32), (DType.INT8, DType.INT16), (DType.INT16, DType.FLOAT32),
          (DType.FLOAT32, DType.INT16)]


@needs_tflm
@profile(30)
@given(st.data())
def test_cast(data):
    """In-range values only: C leaves float -> narrower integer outside the range undefined."""
    d = data.draw
    src, dst = d(st.sampled_from(_CASTS))
    shape = _shape(d, 1, 3)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    lo, hi = {DType.INT8: (-128, 127), DType.INT16: (-32768, 32767)}.get(dst, (-1000, 1000))
    if src is DType.FLOAT32:
        x = rng.uniform(lo, hi, size=shape).astype(np.float32)
    else:
        info = np.iinfo(src.np)
        x = rng.integers(max(info.min, lo), min(info.max, hi) + 1, size=shape).astype(src.np)
    q = QuantParams.per_tensor(0.1, 0)
    case = one_op(OpType.CAST, {}, [x], src, q if src in (DType.INT8, DType.INT16) else None,
                  out_dtype=dst, out_quant=q if dst in (DType.INT8, DType.INT16) else None)
    check_against_tflite(case)


# ------------------------------------------------------------------------------ refusals


def test_shape_rules_name_the_problem():
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="leave the dimension"):
        one_op(OpType.SLICE, {"begin": (0, 3, 0, 0), "size": (1, 2, 4, 2)}, [x], DType.FLOAT32, None)
    with pytest.raises(ValueError, match="do not add up"):
        one_op(OpType.SPLIT, {"axis": 1, "sizes": (1, 2)}, [x], DType.FLOAT32, None)
    with pytest.raises(ValueError, match="cannot squeeze axis 1"):
        one_op(OpType.SQUEEZE, {"axes": (1,)}, [x], DType.FLOAT32, None)
    with pytest.raises(ValueError, match="shrink_axis_mask but selects 2"):
        one_op(OpType.STRIDED_SLICE, {"begin": (0, 0, 0, 0), "end": (1, 2, 4, 2), "strides": (1, 1, 1, 1),
                                      "shrink_axis_mask": 2}, [x], DType.FLOAT32, None)
    with pytest.raises(ValueError, match="not a multiple of block_size"):
        one_op(OpType.DEPTH_TO_SPACE, {"block_size": 2}, [x], DType.FLOAT32, None)


def test_gather_out_of_range_index_is_a_clear_error():
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    case = one_op(OpType.GATHER, {"axis": 1}, [x], DType.FLOAT32, None, consts={1: np.array([0, 8], np.int32)})
    with pytest.raises(BadInputError, match="gather index out of range"):
        Interpreter(case.graph).run([x])


def test_int8_movement_with_different_quantization_is_refused():
    x = np.zeros((1, 4), np.int8)
    case = one_op(OpType.SPLIT, {"axis": 1, "sizes": (2, 2)}, [x], DType.INT8, QuantParams.per_tensor(0.1, 0))
    case.graph.tensor("y1").quant = QuantParams.per_tensor(0.2, 0)
    with pytest.raises(VerifyError, match="share the input's quantization"):
        Interpreter(case.graph)


def test_batch_runs_through_slices_but_not_axis0_moves():
    x = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    g = one_op(OpType.STRIDED_SLICE, {"begin": (0, 3, 0), "end": (1, -1, 2), "strides": (1, -2, 1)},
               [x[:1]], DType.FLOAT32, None).graph
    assert np.array_equal(Interpreter(g).run([x])["y0"], x[:, 3::-2])
    g = one_op(OpType.UNPACK, {"axis": 0}, [x[:1]], DType.FLOAT32, None).graph
    with pytest.raises(BadInputError, match="axis 0"):
        Interpreter(g).run([x])
