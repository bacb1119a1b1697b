"""``auto`` calibration: for each tensor, the candidate range (minmax, percentile, mse,
entropy) that hurts the model output least when only that tensor is quantized.

Each candidate is tried by inserting QUANTIZE + DEQUANTIZE after the tensor in a
copy of the float graph and comparing the model outputs with the float outputs
(mean squared error) on a subset of the calibration data. Only the part of the
graph after the tensor is re-run; the values it reads from earlier layers come
from one float run of the subset.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.quantize.calibrate import Range, activation_tensors
from edgekit.quantize.histogram import ESTIMATORS, TensorHistogram, estimate_range
from edgekit.quantize.scheme import FIXED_OUTPUT, SHARES_INPUT, activation_qparams


def selectable_tensors(graph: Graph) -> list[str]:
    """Tensors whose range the quantizer takes from calibration: graph inputs and outputs of
    ops with a range of their own (not fixed, not shared with the input, not concatenations)."""
    producers = graph.producers()
    skip = set(FIXED_OUTPUT) | SHARES_INPUT | {OpType.CONCATENATION}
    return [n for n in activation_tensors(graph)
            if n not in producers or producers[n].type not in skip]


def _subset(arrays: list[np.ndarray], max_samples: int) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= max_samples:
        return arrays
    idx = np.unique(np.linspace(0, n - 1, max_samples).round().astype(int))
    return [a[idx] for a in arrays]


def _ir_graph_and_inputs(graph: Graph, arrays: list[np.ndarray]) -> tuple[Graph, dict[str, np.ndarray]]:
    """A copy that runs in the IR layout, and the inputs converted to it."""
    g = graph.copy()
    layouts = g.metadata.pop("io_layout", {}) or {}
    feeds = {}
    for name, a in zip(g.inputs, arrays):
        a = np.asarray(a, dtype=np.float32)
        want = g.tensor(name).shape
        if layouts.get(name) == "NCHW" and len(want) == 4:
            if a.ndim == 3:
                a = a[None]
            a = np.ascontiguousarray(a.transpose(0, 2, 3, 1))
        feeds[name] = a
    return g, feeds


def _suffix_graph(g: Graph, tensor: str) -> tuple[Graph, str, list[str]]:
    """The ops after ``tensor``'s producer, with QUANTIZE + DEQUANTIZE on ``tensor``.
    Returns the graph, the name of its int8 tensor and the original output names
    (in the suffix graph's output order)."""
    producers = g.producers()
    start = 0 if tensor not in producers else g.ops.index(producers[tensor]) + 1
    ops = g.ops[start:]
    sub = Graph(f"{g.name}_after_{tensor}")
    produced = {o for op in ops for o in op.outputs}
    needed = []
    for op in ops:
        for i in op.inputs:
            if i and i not in produced and i not in needed and not g.tensor(i).is_const:
                needed.append(i)
    if tensor not in needed:
        needed.append(tensor)
    referenced = set(needed) | produced | {i for op in ops for i in op.inputs if i}
    for name in referenced:
        t = g.tensor(name)
        sub.add_tensor(name, t.shape, t.dtype, t.quant, t.data)
    src = g.tensor(tensor)
    q = sub.add_tensor(sub.unique_name(f"{tensor}__q"), src.shape, DType.INT8, activation_qparams(0, 1)).name
    dq = sub.add_tensor(sub.unique_name(f"{tensor}__dq"), src.shape, DType.FLOAT32).name
    sub.add_op(OpType.QUANTIZE, [tensor], [q], name="__edgekit_fake_quantize__")
    sub.add_op(OpType.DEQUANTIZE, [q], [dq], name="__edgekit_fake_dequantize__")
    for op in ops:
        sub.add_op(op.type, [dq if i == tensor else i for i in op.inputs], list(op.outputs), dict(op.attrs), op.name)
    originals = [o for o in g.outputs if o in produced or o == tensor]
    sub.outputs = [dq if o == tensor else o for o in originals]
    sub.inputs = needed
    return sub, q, originals


def select_ranges(graph: Graph, arrays: list[np.ndarray], hists: dict[str, TensorHistogram], *,
                  percentile: float = 99.99, max_samples: int = 64,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Range]:
    from edgekit.reference.interpreter import Interpreter

    g, feeds = _ir_graph_and_inputs(graph, _subset(arrays, max_samples))
    ref = Interpreter(g).run(feeds, dump=True)
    chosen: dict[str, Range] = {n: Range(*estimate_range(h, "minmax"), "minmax") for n, h in hists.items()}
    todo = [n for n in selectable_tensors(graph) if n in hists]
    for k, name in enumerate(todo):
        cands: dict[tuple, Range] = {}
        for method in ESTIMATORS:
            lo, hi = estimate_range(hists[name], method, percentile)
            key = activation_qparams(lo, hi)
            if key not in cands:  # methods giving the same int8 grid need one trial
                cands[key] = Range(lo, hi, method)
        if len(cands) > 1:
            errors = _candidate_errors(g, name, list(cands), ref)
            best = int(np.argmin(errors))  # ties keep the earlier (simpler) method
            chosen[name] = list(cands.values())[best]
        else:
            chosen[name] = next(iter(cands.values()))
        if progress:
            progress(k + 1, len(todo))
    return chosen


def _candidate_errors(g: Graph, tensor: str, qparams: list, ref: dict[str, np.ndarray]) -> list[float]:
    from edgekit.reference.interpreter import Interpreter

    sub, q, originals = _suffix_graph(g, tensor)
    try:
        interp = Interpreter(sub)
        feeds = {n: ref[n] for n in sub.inputs}
        errors = []
        for qp in qparams:
            sub.tensors[q].quant = qp
            out = interp.run(feeds)
            errors.append(sum(float(np.mean((out[s].astype(np.float64) - ref[o]) ** 2))
                              for s, o in zip(sub.outputs, originals)))
        return errors
    except BadInputError:
        # An intermediate tensor that cannot carry a batch: run the whole graph per candidate.
        return _candidate_errors_full(g, tensor, qparams, ref)


def _candidate_errors_full(g: Graph, tensor: str, qparams: list, ref: dict[str, np.ndarray]) -> list[float]:
    from edgekit.reference.interpreter import Interpreter

    fq = g.copy()
    src = fq.tensor(tensor)
    q = fq.add_tensor(fq.unique_name(f"{tensor}__q"), src.shape, DType.INT8, qparams[0]).name
    dq = fq.add_tensor(fq.unique_name(f"{tensor}__dq"), src.shape, DType.FLOAT32).name
    originals = list(fq.outputs)
    fq.replace_uses(tensor, dq)
    fq.add_op(OpType.QUANTIZE, [tensor], [q])
    fq.add_op(OpType.DEQUANTIZE, [q], [dq])
    fq.toposort()
    interp = Interpreter(fq)
    feeds = {n: ref[n] for n in fq.inputs}
    errors = []
    for qp in qparams:
        fq.tensors[q].quant = qp
        out = interp.run(feeds)
        errors.append(sum(float(np.mean((out[s].astype(np.float64) - ref[o]) ** 2))
                          for s, o in zip(fq.outputs, originals)))
    return errors
