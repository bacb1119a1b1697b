"""Post-training int8 quantization of a float graph (the TFLite int8 scheme, see
``scheme``): calibrate activation ranges, quantize weights and biases, and build the
int8 graph with the float graph's tensor names.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.passes import run_passes
from edgekit.ir.verify import verify
from edgekit.quantize.elementwise import rewrite_for_int8
from edgekit.quantize import recurrent, scheme
from edgekit.quantize.calibrate import METHODS, Range, activation_tensors, as_input_list, calibrate
from edgekit.quantize.plan import ActivationPlan, plan_activations
from edgekit.reference import int8_kernels as ik

IO_MODES = ("int8", "float")


@dataclass
class QuantizeResult:
    graph: Graph                    # the int8 graph
    ranges: dict[str, Range]        # per activation tensor: the range its parameters come from
    methods: dict[str, str]         # per activation tensor: calibration method, "shared" or "fixed"
    float_graph: Graph              # the float graph that was calibrated (same tensor names)
    stats: dict = field(default_factory=dict)


@dataclass
class _Weights:
    q: np.ndarray
    scales: np.ndarray
    axis: int | None
    bias: np.ndarray | None         # float bias after correction (None: the op has none and needs none)
    input_scale: float

    @property
    def weight_qparams(self) -> QuantParams:
        if self.axis is None:
            return QuantParams.per_tensor(float(self.scales[0]), 0)
        return QuantParams.per_axis(self.scales, np.zeros(len(self.scales), np.int64), self.axis)

    def bias_tensor(self, n_out: int) -> tuple[np.ndarray, QuantParams]:
        data = scheme.quantize_bias(self.bias, self.input_scale, self.scales, n_out)
        bs = scheme.bias_scales(self.input_scale, self.scales)
        if self.axis is None:
            return data, QuantParams.per_tensor(float(bs[0]), 0)
        return data, QuantParams.per_axis(bs, np.zeros(len(bs), np.int64), 0)


# -- the float graph ------------------------------------------------------------------

def prepare_float_graph(graph: Graph) -> tuple[Graph, bool]:
    """A float copy ready to calibrate: hybrid weights dequantized, default passes run,
    every op checked to be quantizable. Returns it and whether the input was hybrid."""
    for n in graph.inputs:
        if graph.tensor(n).dtype is not DType.FLOAT32:
            raise BadInputError(f"the model is already quantized (input {n!r} is "
                                f"{graph.tensor(n).dtype.value}); quantize takes a float model")
    g = graph.copy()
    hybrid = any(op.type in scheme.WEIGHT_AXIS and op.input(1) and g.tensor(op.inputs[1]).dtype is DType.INT8
                 for op in g.ops)
    run_passes(g, ["dequantize_weights"])
    rewrite_for_int8(g)
    run_passes(g)
    supported = sorted(t.value for t in scheme.QUANTIZABLE)
    for op in g.ops:
        detail = _unquantizable(g, op)
        if detail:
            raise UnsupportedOpError(op.type.value, op.name, supported, detail)
    return g, hybrid


def _unquantizable(g: Graph, op: Op) -> str:
    t = op.type
    if t is OpType.BATCH_NORM:
        return ("BATCH_NORM has no int8 kernel; the fold_batchnorm pass folds it into the conv before it "
                "or into MUL + ADD, which needs constant statistics, and this one's are not constant")
    if t in (OpType.QUANTIZE, OpType.DEQUANTIZE):
        return "the model is already partly quantized"
    if t not in scheme.QUANTIZABLE:
        return "no int8 kernel"
    attrs = normalize_attrs(t, op.attrs)
    if t is OpType.CONCATENATION and attrs.get("activation", "NONE") != "NONE":
        return "int8 CONCATENATION cannot apply a fused activation"
    for name in op.inputs + op.outputs:
        if not name:
            continue
        tensor = g.tensor(name)
        if t in scheme.INDEX_OUTPUT and name in op.outputs and tensor.dtype is DType.INT32:
            continue  # int32 indices, not an activation
        if not tensor.is_const and tensor.dtype is not DType.FLOAT32:
            return f"tensor {name!r} is {tensor.dtype.value}; only float32 activations can be quantized"
    if t in recurrent.RECURRENT_QUANTIZABLE:
        return recurrent.unquantizable_reason(g, op)
    if t in scheme.WEIGHT_AXIS:
        if not g.tensor(op.inputs[1]).is_const:
            return "its weights are not constant"
        if op.input(2) and not g.tensor(op.inputs[2]).is_const:
            return "its bias is not constant"
    return ""


def _normalize_ranges(ranges: dict) -> dict[str, Range]:
    out = {}
    for name, r in ranges.items():
        if isinstance(r, Range):
            out[name] = r
        elif isinstance(r, dict):
            out[name] = Range(float(r["min"]), float(r["max"]), r.get("method", "given"))
        else:
            lo, hi = r
            out[name] = Range(float(lo), float(hi), "given")
        if not (np.isfinite(out[name].min) and np.isfinite(out[name].max)) or out[name].min > out[name].max:
            raise BadInputError(f"range of tensor {name!r} is invalid: [{out[name].min}, {out[name].max}]")
    return out


# -- weights --------------------------------------------------------------------------

def _quantize_weights(g: Graph, plan: ActivationPlan, per_channel: bool) -> dict[str, _Weights]:
    out = {}
    for op in g.ops:
        if op.type not in scheme.WEIGHT_AXIS:
            continue
        w = g.const(op.inputs[1]).astype(np.float32)
        axis = scheme.WEIGHT_AXIS[op.type] if per_channel else None
        s_in = plan.qparams[op.inputs[0]].scale[0]
        bias = g.const(op.input(2))
        scales = scheme.weight_scales(w, axis)
        if bias is not None:
            scales = scheme.fit_bias(bias, s_in, scales)
        q = scheme.quantize_weights(w, scales, axis)
        out[op.name] = _Weights(q, scales, axis, None if bias is None else bias.astype(np.float32), s_in)
    return out


def _apply_bias_correction(g: Graph, weights: dict[str, _Weights], arrays, batch_size: int) -> dict[str, float]:
    from edgekit.quantize.bias_correction import bias_corrections

    ops = {op.name: op for op in g.ops if op.name in weights}
    errors = {}
    for name, wq in weights.items():
        w = g.const(ops[name].inputs[1]).astype(np.float32)
        errors[name] = scheme.dequantize_weights(wq.q, wq.scales, wq.axis) - w
    corrections = bias_corrections(g, arrays, errors, batch_size=batch_size)
    applied = {}
    for name, corr in corrections.items():
        wq = weights[name]
        if not np.any(corr):
            applied[name] = 0.0
            continue
        base = wq.bias if wq.bias is not None else np.zeros_like(corr)
        wq.bias = (base.astype(np.float64) - corr).astype(np.float32)
        new_scales = scheme.fit_bias(wq.bias, wq.input_scale, wq.scales)
        if not np.array_equal(new_scales, wq.scales):
            wq.scales = new_scales
            wq.q = scheme.quantize_weights(g.const(ops[name].inputs[1]), new_scales, wq.axis)
        applied[name] = float(np.abs(corr).max())
    return applied


# -- the int8 graph ---------------------------------------------------------------------

def _build(g: Graph, plan: ActivationPlan, weights: dict[str, _Weights], io: str) -> Graph:
    q = Graph(g.name)
    q.metadata = copy.deepcopy(g.metadata)
    acts = activation_tensors(g)
    names = {n: n for n in acts}  # float-graph tensor -> its int8 tensor in q
    taken = set(g.tensors)
    if io == "float":
        for n in list(g.inputs) + list(g.outputs):
            alias = f"{n}_int8"
            while alias in taken:
                alias += "_"
            taken.add(alias)
            names[n] = alias
    for n in acts:
        t = g.tensor(n)
        q.add_tensor(names[n], t.shape, DType.INT8, plan.qparams[n])
    for op in g.ops:  # integer outputs (ARG_MAX's indices) keep their type and name
        for o in op.outputs:
            if o not in acts and not g.tensor(o).is_const:
                q.add_tensor(o, g.tensor(o).shape, g.tensor(o).dtype)
                names[o] = o
    if io == "float":
        for n in g.inputs:
            t = g.tensor(n)
            q.add_tensor(n, t.shape, DType.FLOAT32)
            q.add_op(OpType.QUANTIZE, [n], [names[n]], name=q.unique_name(f"quantize_{n}", ops=True))

    for op in g.ops:
        if op.type in recurrent.RECURRENT_QUANTIZABLE:
            ins = recurrent.operands(q, g, op, plan.qparams[op.inputs[0]].scale[0])
            ins[0] = names[op.inputs[0]]
            q.add_op(op.type, ins, [names[o] for o in op.outputs], dict(op.attrs), op.name)
            continue
        ins: list[str] = []
        for j, name in enumerate(op.inputs):
            if not name:
                ins.append(name)
            elif op.type in scheme.WEIGHT_AXIS and j in (1, 2):
                ins.append(_weight_or_bias(q, op, j, weights[op.name]))
            elif op.type is OpType.GATHER and j == 1:  # integer indices stay as they are
                ins.append(q.add_const(name, g.const(name), dtype=g.tensor(name).dtype).name)
            elif g.tensor(name).is_const:
                ins.append(_const_input(q, g, op, name, plan))
            elif (op.name, j) in plan.requantize:
                target = plan.qparams[op.outputs[0]]
                rq = q.add_tensor(q.unique_name(f"{name}_requantized"), g.tensor(name).shape, DType.INT8, target).name
                q.add_op(OpType.QUANTIZE, [names[name]], [rq], name=q.unique_name(f"requantize_{name}", ops=True))
                ins.append(rq)
            else:
                ins.append(names[name])
        if op.type in scheme.WEIGHT_AXIS and not op.input(2) and weights[op.name].bias is not None:
            ins = ins[:2] + [_weight_or_bias(q, op, 2, weights[op.name])]
        q.add_op(op.type, ins, [names[o] for o in op.outputs], dict(op.attrs), op.name)

    if io == "float":
        for n in g.outputs:
            if n in g.inputs or g.tensor(n).dtype is not DType.FLOAT32:
                continue
            t = g.tensor(n)
            q.add_tensor(n, t.shape, DType.FLOAT32)
            q.add_op(OpType.DEQUANTIZE, [names[n]], [n], name=q.unique_name(f"dequantize_{n}", ops=True))
    else:
        q.metadata["io_quant"] = {
            n: {"dtype": "int8", "scale": plan.qparams[n].scale[0], "zero_point": plan.qparams[n].zero_point[0]}
            for n in list(g.inputs) + [o for o in g.outputs if o not in g.inputs] if n in plan.qparams}
    q.inputs = list(g.inputs)
    q.outputs = list(g.outputs)
    q.toposort()
    return q


def _weight_or_bias(q: Graph, op: Op, j: int, wq: _Weights) -> str:
    if j == 1:
        return q.add_const(op.inputs[1], wq.q, wq.weight_qparams, DType.INT8).name
    n_out = wq.q.shape[3 if op.type is OpType.DEPTHWISE_CONV_2D else 0]
    data, qp = wq.bias_tensor(n_out)
    base = op.input(2) or f"{op.name}_bias"
    return q.add_const(base, data, qp, DType.INT32).name


def _const_input(q: Graph, g: Graph, op: Op, name: str, plan: ActivationPlan) -> str:
    """A constant operand of a non-weighted op: int8 with its own range, or with the
    op's shared parameters (CONCATENATION, PAD, ...)."""
    data = g.const(name).astype(np.float32)
    if op.type in scheme.PACKS_INPUTS or op.type in scheme.SHARES_INPUT:
        qp = plan.qparams[op.outputs[0]]
    elif op.type is OpType.BATCH_MATMUL:  # a constant operand is a weight: symmetric, per tensor
        qp = QuantParams.per_tensor(float(scheme.weight_scales(data, None)[0]), 0)
        return q.add_const(name, scheme.quantize_weights(data, [qp.scale[0]], None), qp, DType.INT8).name
    else:
        qp = scheme.activation_qparams(float(data.min()) if data.size else 0.0,
                                       float(data.max()) if data.size else 0.0)
    return q.add_const(name, ik.quantize(data, qp), qp, DType.INT8).name


# -- the API ------------------------------------------------------------------------------

def quantize(graph: Graph, calib, *, method: str = "minmax", per_channel: bool = True, io: str = "int8",
             bias_correction: bool = False, percentile: float = 99.99, ranges: dict | None = None,
             progress: Callable[[int, int], None] | None = None, batch_size: int = 64) -> QuantizeResult:
    """Quantize a float (or hybrid) ``graph`` to int8 with calibration data ``calib``
    (an array [N, ...] in the model's source layout, or one per input).

    ``ranges`` (tensor -> ``Range`` or (min, max)) skips calibration. ``io="int8"`` gives
    int8 graph inputs/outputs (parameters in ``metadata["io_quant"]``); ``io="float"``
    keeps float I/O with QUANTIZE/DEQUANTIZE at the edges.
    """
    if io not in IO_MODES:
        raise BadInputError(f"io must be 'int8' or 'float', not {io!r}")
    if method not in METHODS:
        raise BadInputError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    t0 = time.perf_counter()
    fg, hybrid = prepare_float_graph(graph)
    arrays = as_input_list(fg, calib)
    for name, a in zip(fg.inputs, arrays):
        if a.dtype.kind not in "iuf":
            raise BadInputError(f"calibration data for input {name!r} must be numeric, got {a.dtype}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise BadInputError(f"calibration data for input {name!r} holds {int((~np.isfinite(a)).sum())} "
                                "NaN/inf values")
    t_cal = time.perf_counter()
    if ranges is None:
        calib_ranges = calibrate(fg, arrays, method=method, percentile=percentile, batch_size=batch_size,
                                 progress=progress)
    else:
        calib_ranges = _normalize_ranges(ranges)
    cal_seconds = time.perf_counter() - t_cal
    plan = plan_activations(fg, calib_ranges)
    recurrent.set_state_params(fg, arrays, batch_size)
    weights = _quantize_weights(fg, plan, per_channel)
    corrected: dict[str, float] = {}
    t_bc = time.perf_counter()
    if bias_correction and weights:
        corrected = _apply_bias_correction(fg, weights, arrays, batch_size)
    bc_seconds = time.perf_counter() - t_bc
    qg = _build(fg, plan, weights, io)
    qg.metadata["quantization"] = {"method": method, "per_channel": bool(per_channel), "io": io,
                                   "bias_correction": bool(bias_correction),
                                   "calibration_samples": int(len(arrays[0]))}
    verify(qg)
    stats = {
        "method": method, "per_channel": bool(per_channel), "io": io, "bias_correction": bool(bias_correction),
        "hybrid_input": hybrid, "calibration_samples": int(len(arrays[0])),
        "calibration_seconds": round(cal_seconds, 3), "bias_correction_seconds": round(bc_seconds, 3),
        "seconds": round(time.perf_counter() - t0, 3),
        "bias_correction_max_abs": corrected,
        "calibration_ranges": calib_ranges,
        "requantized_concat_inputs": sorted(plan.requantize),
        "method_counts": _count(plan.methods),
    }
    return QuantizeResult(graph=qg, ranges=plan.ranges, methods=plan.methods, float_graph=fg, stats=stats)


def _count(methods: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in methods.values():
        out[m] = out.get(m, 0) + 1
    return out
