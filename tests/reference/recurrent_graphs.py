"""Graph builders of the recurrent ops' tests: one-op UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF
graphs, float or int8, with random weights and quantization parameters."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, QuantParams


def f32(v) -> float:
    return float(np.float32(v))


def lstm_graph(rng, b, t, n_in, hidden, *, int8: bool, time_major=False, clip=0.0, exponent=-11,
               w_scale=0.5) -> Graph:
    g = Graph("lstm")
    xs = (t, b, n_in) if time_major else (b, t, n_in)
    ys = (t, b, hidden) if time_major else (b, t, hidden)
    attrs = {"time_major": time_major, "cell_clip": clip}
    if not int8:
        g.add_tensor("x", xs, DType.FLOAT32)
        names = [g.add_const(f"w{k}", rng.normal(0, w_scale, (hidden, n_in)).astype(np.float32)).name
                 for k in range(4)]
        names += [g.add_const(f"r{k}", rng.normal(0, w_scale, (hidden, hidden)).astype(np.float32)).name
                  for k in range(4)]
        names += [g.add_const(f"b{k}", rng.normal(0, w_scale, (hidden,)).astype(np.float32)).name for k in range(4)]
        g.add_tensor("y", ys, DType.FLOAT32)
    else:
        xq = QuantParams.per_tensor(f32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)))
        oq = QuantParams.per_tensor(f32(10 ** rng.uniform(-4.5, -1.5)), int(rng.integers(-128, 128)))
        g.add_tensor("x", xs, DType.INT8, xq)
        names, w_scales = [], []
        for k in range(8):
            s = f32(10 ** rng.uniform(-3, -1))
            shape = (hidden, n_in) if k < 4 else (hidden, hidden)
            w = rng.integers(-127, 128, shape).astype(np.int8)
            names.append(g.add_const(f"w{k}", w, QuantParams.per_tensor(s, 0)).name)
            w_scales.append(s)
        for k in range(4):
            bs = f32(np.float32(xq.scale[0]) * np.float32(w_scales[k]))
            bias = rng.integers(-20000, 20000, (hidden,)).astype(np.int32)
            names.append(g.add_const(f"b{k}", bias, QuantParams.per_tensor(bs, 0)).name)
        g.add_tensor("y", ys, DType.INT8, oq)
        attrs["cell_state_exponent"] = exponent
    g.add_op(OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, ["x"] + names, ["y"], attrs)
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def svdf_graph(rng, batch, n_in, features, memory, rank, *, int8: bool, act="NONE") -> Graph:
    g = Graph("svdf")
    units = features // rank
    attrs = {"rank": rank, "activation": act}
    if not int8:
        g.add_tensor("x", (batch, n_in), DType.FLOAT32)
        wf = g.add_const("wf", rng.normal(0, .5, (features, n_in)).astype(np.float32)).name
        wt = g.add_const("wt", rng.normal(0, .5, (features, memory)).astype(np.float32)).name
        b = g.add_const("b", rng.normal(0, .5, (units,)).astype(np.float32)).name
        g.add_tensor("y", (batch, units), DType.FLOAT32)
    else:
        xq = QuantParams.per_tensor(f32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)))
        s_wf, s_wt, s_state = (f32(10 ** rng.uniform(-3, -1)), f32(10 ** rng.uniform(-5, -3)),
                               f32(10 ** rng.uniform(-3, -1)))
        g.add_tensor("x", (batch, n_in), DType.INT8, xq)
        wf = g.add_const("wf", rng.integers(-127, 128, (features, n_in)).astype(np.int8),
                         QuantParams.per_tensor(s_wf, 0)).name
        wt = g.add_const("wt", rng.integers(-32767, 32768, (features, memory)).astype(np.int16),
                         QuantParams.per_tensor(s_wt, 0)).name
        b = g.add_const("b", rng.integers(-2**20, 2**20, (units,)).astype(np.int32),
                        QuantParams.per_tensor(f32(np.float32(s_state) * np.float32(s_wt)), 0)).name
        g.add_tensor("y", (batch, units), DType.INT8,
                     QuantParams.per_tensor(f32(10 ** rng.uniform(-2, 0)), int(rng.integers(-128, 128))))
        attrs["state_scale"] = s_state
    g.add_op(OpType.SVDF, ["x", wf, wt, b], ["y"], attrs)
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def run_direct(g: Graph, x):
    """The reference kernel of the graph's one op on the whole input (as TFLM sees it:
    no interpreter batching, so time-major inputs work too)."""
    from edgekit.ir.ops import normalize_attrs
    from edgekit.reference.recurrent_kernels import run_recurrent

    op = g.ops[0]
    return run_recurrent(g, op, normalize_attrs(op.type, op.attrs), [x] + [g.tensor(n).data for n in op.inputs[1:]])[0]
