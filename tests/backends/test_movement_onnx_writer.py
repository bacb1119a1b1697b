"""The data-movement ops through edgekit's ONNX writer: each one-op graph (float32 and
int8, 4-D tensors in NCHW inside the written model) run by onnxruntime's exact session
equals edgekit's reference interpreter, every output of SPLIT / UNPACK included."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgekit.backends.onnx import to_onnx  # noqa: E402
from edgekit.ir import DType, OpType, QuantParams  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.reference.movement_cases import one_op  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402

RNG = np.random.default_rng(5)
X4 = RNG.normal(size=(1, 4, 6, 8)).astype(np.float32)
X3 = RNG.normal(size=(1, 6, 5)).astype(np.float32)

CASES = [
    ("slice", OpType.SLICE, {"begin": (0, 1, 2, 3), "size": (1, 2, 3, 4)}, [X4], {}),
    ("strided_slice", OpType.STRIDED_SLICE, {"begin": (0, 3, 5, 1), "end": (1, -1, -1, 8),
                                             "strides": (1, -1, -2, 3)}, [X4], {}),
    ("strided_slice_shrink", OpType.STRIDED_SLICE, {"begin": (0, 2, 0, 0), "end": (1, 3, 6, 8),
                                                    "strides": (1, 1, 2, 1), "shrink_axis_mask": 3}, [X4], {}),
    ("split", OpType.SPLIT, {"axis": 3, "sizes": (2, 5, 1)}, [X4], {}),
    ("split_h", OpType.SPLIT, {"axis": 1, "sizes": (1, 3)}, [X4], {}),
    ("unpack", OpType.UNPACK, {"axis": 1}, [X3], {}),
    ("unpack_4d", OpType.UNPACK, {"axis": 2}, [X4], {}),
    ("squeeze", OpType.SQUEEZE, {"axes": (0,)}, [X4], {}),
    ("expand_dims", OpType.EXPAND_DIMS, {"axis": 3}, [X3], {}),
    ("gather", OpType.GATHER, {"axis": 3}, [X4], {1: np.array([7, 0, 3], np.int32)}),
    ("gather_2d_indices", OpType.GATHER, {"axis": 1}, [X3], {1: np.array([[5, 0], [1, 1]], np.int32)}),
    ("pack", OpType.PACK, {"axis": 1}, [X3, X3[:, ::-1].copy()], {}),
    ("depth_to_space", OpType.DEPTH_TO_SPACE, {"block_size": 2}, [X4], {}),
    ("space_to_depth", OpType.SPACE_TO_DEPTH, {"block_size": 2}, [X4], {}),
]


@pytest.mark.parametrize("dtype", [DType.FLOAT32, DType.INT8])
@pytest.mark.parametrize("name,op_type,attrs,xs,consts", CASES, ids=[c[0] for c in CASES])
def test_movement_op_in_onnxruntime_equals_reference(name, op_type, attrs, xs, consts, dtype):
    q = QuantParams.per_tensor(0.02, -5) if dtype is DType.INT8 else None
    if dtype is DType.INT8:
        xs = [np.clip(np.round(x / 0.02) - 5, -128, 127).astype(np.int8) for x in xs]
    case = one_op(op_type, attrs, xs, dtype, q, consts=consts)
    g = case.graph
    ref = Interpreter(g).run(xs)
    model = to_onnx(g, layout="ir")
    sess = exact_session(model)
    got = sess.run(None, {n: x for n, x in zip(g.inputs, xs)})
    assert [o.name for o in sess.get_outputs()] == g.outputs
    for n, y in zip(g.outputs, got):
        assert y.dtype == ref[n].dtype and y.shape == ref[n].shape, (n, y.shape, ref[n].shape)
        assert np.array_equal(y, ref[n]), n


def test_cast_in_onnxruntime_equals_reference():
    x = (RNG.normal(size=(2, 5)) * 40).astype(np.float32)
    case = one_op(OpType.CAST, {}, [x], DType.FLOAT32, None, out_dtype=DType.INT8,
                  out_quant=QuantParams.per_tensor(1.0, 0))
    model = to_onnx(case.graph, layout="ir")
    got = exact_session(model).run(None, {"x0": x})[0]
    assert np.array_equal(got, Interpreter(case.graph).run([x])["y0"])
