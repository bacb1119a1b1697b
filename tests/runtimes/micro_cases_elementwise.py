"""Kernel cases of the elementwise kernels (ek_lut_s8 for HARD_SWISH, LEAKY_RELU, ABS,
NEG, EXP, LOG, SQRT, RSQRT, GELU; ek_maximum_s8, ek_minimum_s8, ek_prelu_s8,
ek_squared_difference_s8, ek_div_s8): a one-op int8 graph with random operands and
quantization, lowered by the C backend (``lower_op``: the parameters the generated C
passes) and run by the reference interpreter (the bytes it must produce)."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import lower_op
from edgekit.backends.c import params as P
from edgekit.ir import DType, Graph, OpType, QuantParams
from edgekit.reference.interpreter import Interpreter
from tests.runtimes.micro_abi import KernelCall, Struct

UNARY = ("HARD_SWISH", "LEAKY_RELU", "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "GELU")
BINARY = ("MAXIMUM", "MINIMUM", "PRELU", "SQUARED_DIFFERENCE", "DIV")


def one_op_graph(op: str, shapes, qps, attrs, const=None) -> Graph:
    """int8 inputs ``in0``, ``in1`` (``const``: in1 is that constant) -> ``op`` -> ``y``."""
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


def kernel_case(name: str, g: Graph, feeds: dict) -> KernelCall:
    """The lowered call of the graph's one op, expecting the reference interpreter's output."""
    kc = lower_op(g, g.ops[0])
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
    return KernelCall(name, kc.function, args, expected)


def _qp(d, name, lo=1e-3, hi=1.0) -> QuantParams:
    return QuantParams.per_tensor(d.scale(f"{name}_s", lo, hi), d.int(f"{name}_z", -128, 127))


def _shape(d, prefix="d"):
    rank = d.int(f"{prefix}_rank", 1, 4)
    return tuple(d.int(f"{prefix}{i}", 1, 5) for i in range(rank))


def _sample_unary(d, op, name):
    shape = _shape(d)
    q_in, q_out = _qp(d, "in"), _qp(d, "out")
    if op == "HARD_SWISH" and q_out.scale[0] < q_in.scale[0] / 128:  # TFLM's Prepare refuses these
        q_out = QuantParams.per_tensor(float(np.float32(q_in.scale[0] / 64)), int(q_out.zero_point[0]))
    if op == "NEG":  # int8 NEG negates raw values: the output has the input's scale, minus its zero point
        z = d.int("neg_z", -127, 127)
        q_in = QuantParams.per_tensor(q_in.scale[0], z)
        q_out = QuantParams.per_tensor(q_in.scale[0], -z)
    attrs = {}
    if op == "LEAKY_RELU":
        attrs = {"alpha": d.choice("alpha", (0.01, 0.1, 0.2, 0.3, -0.25, 1.5))}
    elif op == "GELU":
        attrs = {"approximate": d.bool("approximate")}
    lo = int(q_in.zero_point[0]) if op in ("SQRT", "RSQRT") else (-127 if op == "NEG" else -128)
    x = d.rng().integers(lo, 128, size=shape).astype(np.int8)
    return kernel_case(name, one_op_graph(op, [shape, shape], [q_in, q_out], attrs), {"in0": x})


def _sample_binary(d, op, name):
    out = _shape(d)
    a_shape = out if op == "PRELU" else tuple(1 if d.bool(f"a_b{i}") and d.bool(f"a_c{i}") else s
                                              for i, s in enumerate(out))
    b_full = tuple(1 if d.bool(f"b_b{i}") else s for i, s in enumerate(out))
    b_shape = b_full[d.int("b_drop", 0, len(out) - 1):]
    out = tuple(np.broadcast_shapes(a_shape, b_shape))
    qa, qb, qo = _qp(d, "a", 3e-3, 1.0), _qp(d, "b", 3e-3, 1.0), _qp(d, "o", 3e-3, 3.0)
    if op in ("MAXIMUM", "MINIMUM"):
        qb = qo = qa
    rng = d.rng()
    a = rng.integers(-128, 128, size=a_shape).astype(np.int8)
    b = rng.integers(-128, 128, size=b_shape).astype(np.int8)
    attrs = {}
    if op == "DIV":
        zb = int(qb.zero_point[0])
        b = np.where(b == zb, np.int8(zb - 1 if zb > -128 else zb + 1), b).astype(np.int8)
        attrs = {"activation": d.choice("act", ("NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1"))}
    const = b if op == "PRELU" else None
    g = one_op_graph(op, [a_shape, b_shape, out], [qa, qb, qo], attrs, const)
    feeds = {"in0": a} if const is not None else {"in0": a, "in1": b}
    return kernel_case(name, g, feeds)


def _unary_sampler(op):
    def sample(d, name=None):
        return _sample_unary(d, op, name or op.lower())
    return sample


def _binary_sampler(op):
    def sample(d, name=None):
        return _sample_binary(d, op, name or op.lower())
    return sample


SAMPLERS = {**{f"lut_{op.lower()}": _unary_sampler(op) for op in UNARY},
            **{op.lower(): _binary_sampler(op) for op in BINARY}}
