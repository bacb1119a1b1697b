"""runtimes/micro's elementwise kernels (ek_lut_s8 for the unary ops, ek_maximum_s8,
ek_minimum_s8, ek_prelu_s8, ek_squared_difference_s8, ek_div_s8; the portable variant,
the only one they have) on the host against edgekit.reference.elementwise_kernels, byte
for byte. Each case is a one-op IR graph lowered by the C backend (lower_op), so the
parameters are the ones the generated C passes."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import lower_op
from edgekit.backends.c import params as P
from edgekit.ir import DType, Graph, OpType, QuantParams
from edgekit.reference.interpreter import Interpreter
from tests.runtimes.micro_abi import KernelCall, Struct, call

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

UNARY = ["HARD_SWISH", "LEAKY_RELU", "ABS", "EXP", "LOG", "SQRT", "RSQRT", "GELU"]
BINARY = ["MAXIMUM", "MINIMUM", "PRELU", "SQUARED_DIFFERENCE", "DIV"]


def profile(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def qp(d, lo=-3.0, hi=0.0) -> QuantParams:
    return QuantParams.per_tensor(float(np.float32(10.0 ** d(st.floats(lo, hi)))), d(st.integers(-128, 127)))


def kernel_case(g: Graph, feeds: dict) -> KernelCall:
    """The lowered call of the graph's one op, with the reference interpreter's output."""
    op = g.ops[0]
    kc = lower_op(g, op)
    expected = Interpreter(g).run(feeds)[g.outputs[0]]
    args = []
    for a in kc.args:
        if isinstance(a, P.Struct):
            args.append(Struct(a.ctype, dict(a.values)))
        elif isinstance(a, P.ConstArray):
            args.append(a.data)
        elif isinstance(a, P.TensorRef):
            if not a.output:
                args.append(feeds[a.name] if a.name in feeds else g.tensor(a.name).data)
        else:
            args.append(a)
    return KernelCall(op.type.value.lower(), kc.function, args, expected)


def one_op_graph(op: str, shapes, qps, attrs, const=None) -> Graph:
    g = Graph(op.lower())
    names = []
    for i, (shape, q) in enumerate(zip(shapes[:-1], qps[:-1])):
        n = f"in{i}"
        if const is not None and i == 1:
            g.add_const(n, const, q, DType.INT8)
        else:
            g.add_tensor(n, shape, DType.INT8, q)
            g.inputs.append(n)
        names.append(n)
    g.add_tensor("y", shapes[-1], DType.INT8, qps[-1])
    g.add_op(OpType[op], names, ["y"], attrs)
    g.outputs = ["y"]
    return g


@pytest.mark.parametrize("op", UNARY)
@profile(25)
@given(data=st.data())
def test_unary_lut_matches_reference(micro_lib, op, data):
    d = data.draw
    shape = tuple(d(st.integers(1, 5)) for _ in range(d(st.integers(1, 4))))
    q_in, q_out = qp(d), qp(d)
    if op == "HARD_SWISH" and q_out.scale[0] < q_in.scale[0] / 128:
        q_out = QuantParams.per_tensor(float(np.float32(q_in.scale[0] / 64)), int(q_out.zero_point[0]))
    attrs = {"alpha": d(st.floats(-1, 1))} if op == "LEAKY_RELU" else (
        {"approximate": d(st.booleans())} if op == "GELU" else {})
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    lo = int(q_in.zero_point[0]) if op in ("SQRT", "RSQRT") else -128
    x = rng.integers(lo, 128, size=shape).astype(np.int8)
    kc = kernel_case(one_op_graph(op, [shape, shape], [q_in, q_out], attrs), {"in0": x})
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


@pytest.mark.parametrize("op", BINARY)
@profile(40)
@given(data=st.data())
def test_binary_matches_reference(micro_lib, op, data):
    d = data.draw
    out = tuple(d(st.integers(1, 5)) for _ in range(d(st.integers(1, 4))))
    sa = out if op == "PRELU" else tuple(1 if d(st.booleans()) and d(st.booleans()) else s for s in out)
    sb = tuple(1 if d(st.booleans()) else s for s in out)[d(st.integers(0, len(out) - 1)):]
    out = tuple(np.broadcast_shapes(sa, sb))
    qa, qb, qo = qp(d, -2.5), qp(d, -2.5), qp(d, -2.5, 0.5)
    if op in ("MAXIMUM", "MINIMUM"):
        qb = qo = qa
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    a = rng.integers(-128, 128, size=sa).astype(np.int8)
    b = rng.integers(-128, 128, size=sb).astype(np.int8)
    if op == "DIV":
        zb = int(qb.zero_point[0])
        b = np.where(b == zb, np.int8(zb - 1 if zb > -128 else zb + 1), b).astype(np.int8)
    attrs = {"activation": d(st.sampled_from(["NONE", "RELU", "RELU6"]))} if op == "DIV" else {}
    const = b if op == "PRELU" else None
    g = one_op_graph(op, [sa, sb, out], [qa, qb, qo], attrs, const)
    feeds = {"in0": a} if const is not None else {"in0": a, "in1": b}
    kc = kernel_case(g, feeds)
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


def test_div_far_below_one_output_step_rounds_to_zero(micro_lib):
    """Quotients where TFLM's last shift would reach 32 bits: the kernel and the reference
    agree (both round correctly to the zero point)."""
    q = QuantParams.per_tensor(1.0, 0)
    a = np.arange(-128, 128, dtype=np.int8).repeat(255).reshape(1, -1)
    b = np.tile(np.array([v for v in range(-128, 128) if v != 0], np.int8), 256).reshape(1, -1)
    g = one_op_graph("DIV", [a.shape, b.shape, a.shape], [q, q, q], {"activation": "NONE"})
    kc = kernel_case(g, {"in0": a, "in1": b})
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)
    small = np.abs(a.astype(np.int32)) * 2 < np.abs(b.astype(np.int32))
    assert np.all(kc.expected[small] == 0)
