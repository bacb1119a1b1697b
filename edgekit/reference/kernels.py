"""Binds IR ops to the numpy kernels: float, hybrid (float activations with int8
weights, as LiteRT runs them) and int8 (TensorFlow Lite Micro semantics)."""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType
from edgekit.ir.shapes_movement import MOVEMENT_OPS
from edgekit.reference import float_kernels as fk
from edgekit.reference import int8_kernels as ik
from edgekit.reference import reduction_kernels as red
from edgekit.reference import movement_kernels as mk
from edgekit.reference import elementwise_kernels as ew

_CONV_KW = ("strides", "dilations", "pads", "activation")


def _conv_kwargs(attrs: dict) -> dict:
    return {"stride": attrs["strides"], "dilation": attrs["dilations"], "pads": attrs["pads"],
            "activation": attrs["activation"]}


def _pool_kwargs(attrs: dict) -> dict:
    return {"pool": attrs["kernel"], "stride": attrs["strides"], "pads": attrs["pads"],
            "activation": attrs["activation"]}


def _pairs(flat) -> list[tuple[int, int]]:
    return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


def _reshape_target(graph: Graph, op: Op, x: np.ndarray, attrs: dict) -> tuple[int, ...]:
    """The declared shape, with the leading dim scaled when running a batch of N."""
    shape = tuple(graph.tensor(op.outputs[0]).shape)
    declared_in = graph.tensor(op.inputs[0]).shape
    if x.shape == tuple(declared_in) or not shape:
        return shape
    rest = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if rest and x.size % rest == 0:
        return (x.size // rest,) + shape[1:]
    raise BadInputError(f"op {op.name!r}: cannot run a batch of {x.shape[0]} through reshape to {list(shape)}")


def run_op(graph: Graph, op: Op, attrs: dict, args: list, batch: int | None) -> list[np.ndarray]:
    t = op.type
    x = args[0]
    xt = graph.tensor(op.inputs[0])
    out_t = graph.tensor(op.outputs[0])
    xq, oq = xt.quant, out_t.quant

    # Type-independent data movement first.
    if t is OpType.RESHAPE:
        return [np.reshape(x, _reshape_target(graph, op, x, attrs))]
    if t is OpType.TRANSPOSE:
        return [np.ascontiguousarray(np.transpose(x, attrs["perm"]))]
    if t is OpType.QUANTIZE:
        if out_t.dtype is not DType.INT8:
            raise BadInputError(f"op {op.name!r}: quantize to {out_t.dtype.value} is not supported")
        if x.dtype == np.int8:
            return [ik.requantize(x, xq, oq)]
        return [ik.quantize(x, oq)]
    if t is OpType.DEQUANTIZE:
        return [ik.dequantize(x, xq)]
    if t in MOVEMENT_OPS:
        return mk.run_movement(graph, op, attrs, args)

    if t in _RESAMPLE_OPS:
        return [_run_resample(graph, op, attrs, args)]
    if t.value in red.OPS:
        return [_run_reduction(graph, op, attrs, args)]
    if t.value in ew.OPS:
        return [_run_elementwise(graph, op, attrs, args)]
    if t in (OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF):
        from edgekit.reference.recurrent_kernels import run_recurrent

        return run_recurrent(graph, op, attrs, args)
    if xt.dtype is DType.FLOAT32:
        return [_run_float(graph, op, attrs, args)]
    if xt.dtype is DType.INT8:
        return [_run_int8(graph, op, attrs, args)]
    raise BadInputError(f"op {op.name!r} ({t.value}): {xt.dtype.value} inputs are not supported "
                        "by the reference interpreter")


def _run_float(graph: Graph, op: Op, attrs: dict, args: list) -> np.ndarray:
    t = op.type
    x = args[0]
    if t in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
        w, b = args[1], args[2] if len(args) > 2 else None
        wt = graph.tensor(op.inputs[1])
        if wt.dtype is DType.INT8:  # hybrid: int8 weights, float activations
            if t is OpType.CONV_2D:
                return fk.conv2d_hybrid(x, w, wt.quant, b, **_conv_kwargs(attrs))
            if t is OpType.FULLY_CONNECTED:
                return fk.fully_connected_hybrid(x, w, wt.quant, b, activation=attrs["activation"],
                                                 keep_num_dims=attrs["keep_num_dims"])
            # LiteRT's hybrid depthwise: same arithmetic as dequantizing the weights first.
            w = ik.dequantize(w, wt.quant)
        if t is OpType.CONV_2D:
            return fk.conv2d(x, w, b, **_conv_kwargs(attrs))
        if t is OpType.DEPTHWISE_CONV_2D:
            return fk.depthwise_conv2d(x, w, b, depth_multiplier=attrs["depth_multiplier"], **_conv_kwargs(attrs))
        return fk.fully_connected(x, w, b, activation=attrs["activation"], keep_num_dims=attrs["keep_num_dims"])
    if t is OpType.AVERAGE_POOL_2D:
        return fk.average_pool2d(x, **_pool_kwargs(attrs))
    if t is OpType.MAX_POOL_2D:
        return fk.max_pool2d(x, **_pool_kwargs(attrs))
    if t is OpType.ADD:
        return fk.add(x, args[1], activation=attrs["activation"])
    if t is OpType.SUB:
        return fk.sub(x, args[1], activation=attrs["activation"])
    if t is OpType.MUL:
        return fk.mul(x, args[1], activation=attrs["activation"])
    if t is OpType.SOFTMAX:
        return fk.softmax(x, beta=attrs["beta"])
    if t is OpType.RELU:
        return fk.relu(x)
    if t is OpType.RELU6:
        return fk.relu6(x)
    if t is OpType.LOGISTIC:
        return fk.logistic(x)
    if t is OpType.TANH:
        return fk.tanh(x)
    if t is OpType.PAD:
        return fk.pad(x, _pairs(attrs["pads"]), constant=attrs["value"])
    if t is OpType.CONCATENATION:
        return fk.concatenation(args, axis=attrs["axis"], activation=attrs["activation"])
    if t is OpType.MEAN:
        return fk.mean(x, axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    if t is OpType.BATCH_NORM:
        gamma, beta, mean, var = args[1:5]
        return fk.batch_norm(x, mean, var, gamma, beta, epsilon=attrs["epsilon"])
    raise BadInputError(f"op {op.name!r}: no float kernel for {t.value}")


def _run_int8(graph: Graph, op: Op, attrs: dict, args: list) -> np.ndarray:
    t = op.type
    x = args[0]
    q = [graph.tensor(i).quant if i else None for i in op.inputs]
    oq = graph.tensor(op.outputs[0]).quant
    if t in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
        w, b = args[1], args[2] if len(args) > 2 else None
        if t is OpType.CONV_2D:
            return ik.conv2d(x, w, b, q[0], q[1], oq, **_conv_kwargs(attrs))
        if t is OpType.DEPTHWISE_CONV_2D:
            return ik.depthwise_conv2d(x, w, b, q[0], q[1], oq, depth_multiplier=attrs["depth_multiplier"],
                                       **_conv_kwargs(attrs))
        return ik.fully_connected(x, w, b, q[0], q[1], oq, activation=attrs["activation"],
                                  keep_num_dims=attrs["keep_num_dims"])
    if t is OpType.AVERAGE_POOL_2D:
        return ik.average_pool2d(x, q[0], oq, **_pool_kwargs(attrs))
    if t is OpType.MAX_POOL_2D:
        return ik.max_pool2d(x, q[0], oq, **_pool_kwargs(attrs))
    if t is OpType.ADD:
        return ik.add(x, args[1], q[0], q[1], oq, activation=attrs["activation"])
    if t is OpType.SUB:
        return ik.sub(x, args[1], q[0], q[1], oq, activation=attrs["activation"])
    if t is OpType.MUL:
        return ik.mul(x, args[1], q[0], q[1], oq, activation=attrs["activation"])
    if t is OpType.SOFTMAX:
        return ik.softmax(x, q[0], oq, beta=attrs["beta"])
    if t is OpType.RELU:
        return ik.relu(x, q[0], oq)
    if t is OpType.RELU6:
        return ik.relu6(x, q[0], oq)
    if t is OpType.LOGISTIC:
        return ik.logistic(x, q[0], oq)
    if t is OpType.TANH:
        return ik.tanh(x, q[0], oq)
    if t is OpType.PAD:
        value = attrs["value"]
        const = None
        if value != 0.0:
            const = int(np.clip(np.round(value / oq.scale[0]) + oq.zero_point[0], -128, 127))
        return ik.pad(x, q[0], oq, _pairs(attrs["pads"]), constant=const)
    if t is OpType.CONCATENATION:
        if attrs["activation"] != "NONE":
            raise BadInputError(f"op {op.name!r}: int8 concatenation with a fused activation is not supported")
        return ik.concatenation(args, q, oq, axis=attrs["axis"])
    if t is OpType.MEAN:
        return ik.mean(x, q[0], oq, axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    raise BadInputError(f"op {op.name!r}: no int8 kernel for {t.value}")


_RESAMPLE_OPS = (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV)


def _run_resample(graph: Graph, op: Op, attrs: dict, args: list) -> np.ndarray:
    """RESIZE_* and TRANSPOSE_CONV (edgekit.reference.resample_kernels), float32 and int8."""
    from edgekit.reference import resample_kernels as rk

    t = op.type
    x = args[0]
    xt = graph.tensor(op.inputs[0])
    q = [graph.tensor(i).quant if i else None for i in op.inputs]
    oq = graph.tensor(op.outputs[0]).quant
    if xt.dtype not in (DType.FLOAT32, DType.INT8):
        raise BadInputError(f"op {op.name!r} ({t.value}): {xt.dtype.value} inputs are not supported")
    int8 = xt.dtype is DType.INT8
    flags = {"align_corners": attrs.get("align_corners", False),
             "half_pixel_centers": attrs.get("half_pixel_centers", False)}
    if t is OpType.RESIZE_NEAREST_NEIGHBOR:
        if int8:
            rk.same_quant(q[0], oq, f"op {op.name!r} (RESIZE_NEAREST_NEIGHBOR)")
        return rk.resize_nearest_neighbor(x, attrs["size"], **flags)
    if t is OpType.RESIZE_BILINEAR:
        if int8:
            return rk.resize_bilinear_int8(x, attrs["size"], q[0], oq, **flags)
        return rk.resize_bilinear(x, attrs["size"], **flags)
    w, b = args[1], args[2] if len(args) > 2 else None
    kw = {"strides": attrs["strides"], "pads": attrs["pads"], "activation": attrs["activation"]}
    if int8:
        return rk.transpose_conv_int8(x, w, b, q[0], q[1], oq, **kw)
    if graph.tensor(op.inputs[1]).dtype is DType.INT8:
        raise BadInputError(f"op {op.name!r}: hybrid TRANSPOSE_CONV (int8 filter, float input) is not supported")
    return rk.transpose_conv(x, w, b, **kw)


def _run_reduction(graph: Graph, op: Op, attrs: dict, args: list) -> np.ndarray:
    """REDUCE_MAX, SUM, ARG_MAX/MIN, L2_NORMALIZATION, BATCH_MATMUL (reduction_kernels)."""
    xt = graph.tensor(op.inputs[0])
    try:
        if xt.dtype is DType.FLOAT32:
            return red.run_float(op.type, attrs, args)
        if xt.dtype is DType.INT8:
            q = [graph.tensor(i).quant if i else None for i in op.inputs]
            return red.run_int8(op.type, attrs, args, q, graph.tensor(op.outputs[0]).quant)
    except BadInputError as exc:
        raise BadInputError(f"op {op.name!r} ({op.type.value}): {exc}") from None
    raise BadInputError(f"op {op.name!r} ({op.type.value}): {xt.dtype.value} inputs are not supported")


def _run_elementwise(graph: Graph, op: Op, attrs: dict, args: list) -> np.ndarray:
    """HARD_SWISH ... SQUARED_DIFFERENCE (edgekit.reference.elementwise_kernels)."""
    xt = graph.tensor(op.inputs[0])
    try:
        if xt.dtype is DType.FLOAT32:
            return ew.run_float(op.type.value, attrs, args)
        if xt.dtype is DType.INT8:
            q = [graph.tensor(i).quant if i else None for i in op.inputs]
            return ew.run_int8(op.type.value, attrs, args, q, graph.tensor(op.outputs[0]).quant)
    except BadInputError as exc:
        raise BadInputError(f"op {op.name!r} ({op.type.value}): {exc}") from None
    raise BadInputError(f"op {op.name!r} ({op.type.value}): {xt.dtype.value} inputs are not supported")
