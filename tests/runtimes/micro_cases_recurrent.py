"""Kernel cases of ek_lstm_s8 and ek_svdf_s8: random int8 operands and quantization, the
C parameters exactly as edgekit.backends.c lowers the op, and the bytes
edgekit.reference.recurrent_kernels produces (the definition, bit-exact with TFLM)."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import lower_op
from edgekit.backends.c.params import ConstArray, Struct as CStruct, TensorRef
from edgekit.ir.ops import normalize_attrs
from edgekit.reference.recurrent_kernels import run_recurrent
from tests.reference.recurrent_graphs import lstm_graph, svdf_graph
from tests.runtimes.micro_abi import KernelCall, Struct


def _case(name, g, x) -> KernelCall:
    op = g.ops[0]
    call = lower_op(g, op)
    args = []
    for a in call.args:
        if isinstance(a, CStruct):
            args.append(Struct(a.ctype, dict(a.values)))
        elif isinstance(a, ConstArray):
            args.append(np.ascontiguousarray(a.data))
        elif isinstance(a, TensorRef):
            if not a.output:
                args.append(x)
        else:
            args.append(a)
    expected = run_recurrent(g, op, normalize_attrs(op.type, op.attrs),
                             [x] + [g.tensor(n).data for n in op.inputs[1:]])[0]
    return KernelCall(name, call.function, args, expected)


def sample_lstm(d, name="lstm"):
    rng = d.rng()
    time_major = d.bool("time_major")
    g = lstm_graph(rng, d.int("b", 1, 3), d.int("t", 1, 6), d.int("i", 1, 9), d.int("h", 1, 9), int8=True,
                   time_major=time_major, clip=d.choice("clip", (0.0, 0.0, 0.3, 2.0)),
                   exponent=d.int("e", -15, -8))
    x = rng.integers(-128, 128, g.tensor("x").shape).astype(np.int8)
    return _case(name, g, x)


def sample_svdf(d, name="svdf"):
    rng = d.rng()
    rank = d.int("rank", 1, 3)
    g = svdf_graph(rng, d.int("b", 1, 3), d.int("i", 1, 12), rank * d.int("u", 1, 5), d.int("m", 1, 6), rank,
                   int8=True, act=d.choice("act", ("NONE", "RELU")))
    x = rng.integers(-128, 128, g.tensor("x").shape).astype(np.int8)
    return _case(name, g, x)


SAMPLERS = {"lstm": sample_lstm, "svdf": sample_svdf}
