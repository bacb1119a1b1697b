"""Instructions per layer on an emulated board: each op of a graph as a one-op model,
compiled for the target, run on its QEMU board under ``-icount shift=0`` with the op's
real inputs, and checked byte for byte against the reference interpreter.

    rows = time_layers(graph, x, "cortex-m4")      # [LayerTiming, ...]

A one-op model copies its input into the arena and its output out (about one instruction
per 4 bytes each way, with memcpy); ``LayerTiming.instructions`` is the whole
``edgekit_model_invoke`` call, the copies included. The calibration of the packed kernels'
cost model (``edgekit.backends.c.packed``) and bench/mcu_layers.py use it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import op_macs


@dataclass
class LayerTiming:
    index: int
    name: str
    op_type: str
    kernel: str
    macs: int
    instructions: float
    shape: dict

    @property
    def per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None


def layer_graph(graph: Graph, op: Op) -> Graph:
    """``op`` alone: its activation input as the graph input, its constants, its output."""
    g = Graph(f"{graph.name}.{op.name}")
    for name in op.inputs:
        if name and name not in g.tensors:
            t = graph.tensor(name)
            g.add_tensor(name, t.shape, t.dtype, t.quant, t.data)
    out = graph.tensor(op.outputs[0])
    g.add_tensor(out.name, out.shape, out.dtype, out.quant)
    g.add_op(op.type, list(op.inputs), [out.name], dict(op.attrs), op.name)
    g.inputs = [n for n in op.inputs if n and not graph.tensor(n).is_const][:1]
    g.outputs = [out.name]
    return g


def conv_layer(h: int, w: int, cin: int, cout: int, kh: int = 1, kw: int = 1, *, stride=(1, 1),
               pads=(0, 0, 0, 0), activation: str = "RELU", seed: int = 0) -> Graph:
    """A one-op int8 CONV_2D model with random weights and per-channel scales (what the
    quantizer gives a trained conv), for timing kernels on chosen shapes."""
    from edgekit.ir import DType, OpType, QuantParams

    rng = np.random.default_rng(seed)
    oh = (h + pads[0] + pads[2] - kh) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - kw) // stride[1] + 1
    g = Graph(f"conv{kh}x{kw}_{h}x{w}x{cin}_to_{cout}")
    s_in, s_w = 0.05, rng.uniform(0.002, 0.01, cout).astype(np.float32)
    g.add_tensor("x", (1, h, w, cin), DType.INT8, QuantParams.per_tensor(s_in, -7))
    g.add_tensor("w", (cout, kh, kw, cin), DType.INT8, QuantParams.per_axis(s_w, [0] * cout, 0),
                 rng.integers(-127, 128, size=(cout, kh, kw, cin)).astype(np.int8))
    g.add_tensor("b", (cout,), DType.INT32, QuantParams.per_axis(s_in * s_w, [0] * cout, 0),
                 rng.integers(-3000, 3000, cout).astype(np.int32))
    s_out = float(s_in * s_w.max() * np.sqrt(kh * kw * cin) * 60)
    g.add_tensor("y", (1, oh, ow, cout), DType.INT8, QuantParams.per_tensor(s_out, -128))
    g.add_op(OpType.CONV_2D, ["x", "w", "b"], ["y"],
             {"strides": tuple(stride), "pads": tuple(pads), "activation": activation}, "conv")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def fc_layer(k: int, cout: int, *, activation: str = "RELU", seed: int = 0) -> Graph:
    """A one-op int8 FULLY_CONNECTED model (per-tensor weights, zero point 0)."""
    from edgekit.ir import DType, OpType, QuantParams

    rng = np.random.default_rng(seed)
    g = Graph(f"fc_{k}_to_{cout}")
    g.add_tensor("x", (1, k), DType.INT8, QuantParams.per_tensor(0.05, 5))
    g.add_tensor("w", (cout, k), DType.INT8, QuantParams.per_tensor(0.006, 0),
                 rng.integers(-127, 128, size=(cout, k)).astype(np.int8))
    g.add_tensor("b", (cout,), DType.INT32, QuantParams.per_tensor(0.05 * 0.006, 0),
                 rng.integers(-3000, 3000, cout).astype(np.int32))
    g.add_tensor("y", (1, cout), DType.INT8, QuantParams.per_tensor(float(0.05 * 0.006 * np.sqrt(k) * 60), -128))
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["y"], {"activation": activation}, "fc")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def op_shape(graph: Graph, op: Op) -> dict:
    """The dimensions the cost model takes."""
    x = graph.tensor(op.inputs[0])
    y = graph.tensor(op.outputs[0])
    d = {"input": list(x.shape), "output": list(y.shape)}
    if op.inputs[1:] and op.inputs[1]:
        d["weights"] = list(graph.tensor(op.inputs[1]).shape)
    return d


def time_layers(graph: Graph, x: np.ndarray, target, *, variant: str = "auto", ops=None,
                work: Path | None = None) -> list[LayerTiming]:
    """Time each op of ``graph`` (or those named in ``ops``) with one activation input on
    ``target``'s board, with the activations ``x`` (N samples of the graph input) produce;
    raises when a layer's output differs from the reference interpreter's."""
    from edgekit.backends.c import build, compile_model
    from edgekit.reference.interpreter import Interpreter
    from edgekit.targets import Target, load_target

    tgt = target if isinstance(target, Target) else load_target(target)
    env = Interpreter(graph).run([x], dump=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work) if work is not None else Path(tmp)
        for idx, op in enumerate(graph.ops):
            if ops is not None and op.name not in ops:
                continue
            acts = {n for n in op.inputs if n and not graph.tensor(n).is_const}
            if len(acts) != 1:  # one-input models only (ADD of two activations: not timed)
                continue
            g = layer_graph(graph, op)
            xin, ref = env[g.inputs[0]], env[g.outputs[0]]
            d = base / f"layer{idx}"
            res = compile_model(g, tgt, d / "model", variant=variant, measure=False)
            vec = build.write_vectors(xin, ref, d / "vectors.c")
            elf = build.build_firmware(res.out_dir, tgt, vec, d / "layer.elf")
            run = build.run_qemu(tgt, elf, icount=True)
            if run.returncode != 0 or run.mismatching_bytes:
                raise RuntimeError(f"layer {op.name} ({op.type.value}) on {tgt.name}: "
                                   f"{run.mismatching_bytes} mismatching bytes\n{run.output}")
            macs = int(op_macs(op.type, [graph.tensor(i).shape if i else None for i in op.inputs],
                               [graph.tensor(o).shape for o in op.outputs],
                               normalize_attrs(op.type, op.attrs)))
            rows.append(LayerTiming(idx, op.name, op.type.value, res.ops[0]["kernel"] or "-", macs,
                                    run.instructions_per_inference(tgt.clock_hz), op_shape(graph, op)))
    return rows
