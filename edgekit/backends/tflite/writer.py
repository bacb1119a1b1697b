"""IR -> ``.tflite``: lower a verified graph to TFLite builtin operators.

Every IR op maps onto one TFLite builtin, except:

* CONV_2D / DEPTHWISE_CONV_2D whose pads are neither SAME nor VALID get an explicit
  PAD op in front (float pads with 0.0, int8 with the input zero point; TFLite Micro
  adds ``input_offset = -zero_point`` to every tap, so a padded zero point
  contributes exactly what an implicit pad does: nothing) and then run VALID;
* MAX_POOL_2D likewise, padding with the lowest value (PADV2) so a pad never wins
  (int8: -128, as the IR's kernel; float: -inf, refused where a whole window would
  lie in the padding, since TFLite then outputs the lowest finite float);
* AVERAGE_POOL_2D cannot: TFLite divides by the count of in-bounds taps, a PAD
  would add taps. Such a graph is refused with an error naming the op;
* CONCATENATION's fused activation becomes its own op (RELU, RELU6, RELU_N1_TO_1)
  after it: neither TFLite Micro nor LiteRT accepts one fused there;
* BATCH_NORM has no TFLite builtin: it must be folded first (refused, naming the op).

Conventions of the written file: schema version 3, file identifier ``TFL3``,
buffer 0 the empty sentinel, one buffer per constant tensor with its data 16-byte
aligned, activations on buffer 0. Tensor names, graph inputs and outputs are
kept; the metadata holds ``edgekit_version``. Hybrid ops (float activations with
int8 weights) are written as they are; LiteRT runs them with its dynamic-range
kernels (a hybrid DEPTHWISE_CONV_2D's per-tensor filter scale is repeated per
channel: LiteRT's kernel reads one scale per channel). Operator versions are the
ones the TFLite converter assigns for the same types and options (LiteRT checks them
against its registrations; TFLite Micro ignores them).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from edgekit.backends.tflite.flatbuf import ModelSpec, OperatorSpec, QuantSpec, TensorSpec, serialize
from edgekit.backends.tflite.resample import RESAMPLE_OPS, lower_resample
from edgekit.backends.tflite.writer_recurrent import lower_recurrent
from edgekit.backends.tflite.writer_reduction import REDUCTION_IR_OPS, lower_reduction
from edgekit.backends.tflite.writer_elementwise import ELEMENTWISE_IR_OPS, lower_elementwise
from edgekit.errors import BadInputError, EdgekitError
from edgekit.files import write_atomic
from edgekit.frontends.tflite.schema_enums import (
    ActivationFunctionType,
    BuiltinOperator,
    BuiltinOptions,
    Padding,
    TensorType,
)
from edgekit.ir import DType, Graph, Op, OpType, QuantParams, verify
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import conv_output_hw, same_pads
from edgekit.ir.shapes_movement import MOVEMENT_OPS
from edgekit.backends.tflite.movement import lower_movement

__all__ = ["tflite_bytes", "write_tflite", "SUPPORTED_IR_OPS"]

_TENSOR_TYPES = {
    DType.FLOAT32: TensorType.FLOAT32,
    DType.INT8: TensorType.INT8,
    DType.INT16: TensorType.INT16,
    DType.INT32: TensorType.INT32,
    DType.INT64: TensorType.INT64,
    DType.BOOL: TensorType.BOOL,
}

# Extended by each op family as its writer lands; BATCH_NORM is folded before writing.
SUPPORTED_IR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                    "ADD", "SUB", "MUL", "RESHAPE", "SOFTMAX", "RELU", "RELU6", "PAD", "CONCATENATION",
                    "MEAN", "LOGISTIC", "TANH", "QUANTIZE", "DEQUANTIZE", "TRANSPOSE",
                    # data movement
                    "SLICE", "STRIDED_SLICE", "SPLIT", "SQUEEZE", "EXPAND_DIMS", "GATHER", "PACK", "UNPACK",
                    "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "CAST") + REDUCTION_IR_OPS
SUPPORTED_IR_OPS += tuple(t.value for t in RESAMPLE_OPS)
SUPPORTED_IR_OPS += ("UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF")
SUPPORTED_IR_OPS += ELEMENTWISE_IR_OPS

# Options slots (tflite/schema.fbs).
_CONV_SLOTS = {"padding": 0, "stride_w": 1, "stride_h": 2, "act": 3, "dil_w": 4, "dil_h": 5}
_DW_SLOTS = {"padding": 0, "stride_w": 1, "stride_h": 2, "depth_multiplier": 3, "act": 4,
             "dil_w": 5, "dil_h": 6}
_POOL_SLOTS = {"padding": 0, "stride_w": 1, "stride_h": 2, "filter_w": 3, "filter_h": 4, "act": 5}


def _act(name: str) -> int:
    return int(ActivationFunctionType[name])


class _Lowering:
    def __init__(self, graph: Graph, description: str):
        self.g = graph
        self.m = ModelSpec(description=description, subgraph_name=graph.name or "main")
        self.index: dict[str, int] = {}
        self.taken: set[str] = set(graph.tensors)
        self.opcode_index: dict[tuple[int, int], int] = {}

    # -- tensors ------------------------------------------------------------
    def _new_name(self, base: str) -> str:
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def _add(self, name: str, shape, dtype: DType, quant: QuantParams | None, data: np.ndarray | None) -> int:
        buf = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype.np.newbyteorder("<")))
            self.m.buffers.append(arr.tobytes())
            buf = len(self.m.buffers) - 1
        q = None
        if quant is not None:
            q = QuantSpec([float(s) for s in quant.scale], [int(z) for z in quant.zero_point],
                          int(quant.axis or 0))
        self.m.tensors.append(TensorSpec(name, tuple(int(d) for d in shape), int(_TENSOR_TYPES[dtype]), buf, q))
        return len(self.m.tensors) - 1

    def tensor(self, name: str, quant: QuantParams | None = None) -> int:
        """Index of IR tensor ``name`` in the TFLite subgraph (added on first use).

        ``quant`` replaces the tensor's quantization parameters in the file (an
        equivalent spelling of them, see the hybrid depthwise case).
        """
        if name in self.index:
            return self.index[name]
        t = self.g.tensor(name)
        if t.dtype not in _TENSOR_TYPES:  # pragma: no cover - every IR dtype maps today
            raise BadInputError(f"tensor {name!r}: element type {t.dtype.value} has no TFLite equivalent")
        idx = self._add(name, t.shape, t.dtype, quant or t.quant, t.data)
        self.index[name] = idx
        return idx

    def const(self, base: str, data: np.ndarray, dtype: DType, quant: QuantParams | None = None) -> int:
        arr = np.asarray(data, dtype=dtype.np)
        return self._add(self._new_name(base), arr.shape, dtype, quant, arr)

    def activation(self, base: str, shape, dtype: DType, quant: QuantParams | None) -> int:
        return self._add(self._new_name(base), shape, dtype, quant, None)

    # -- operators ----------------------------------------------------------
    def emit(self, code: BuiltinOperator, version: int, inputs: list[int], outputs: list[int],
             options_type: BuiltinOptions = BuiltinOptions.NONE, options=None) -> None:
        key = (int(code), int(version))
        if key not in self.opcode_index:
            self.opcode_index[key] = len(self.m.opcodes)
            self.m.opcodes.append(key)
        self.m.operators.append(OperatorSpec(self.opcode_index[key], list(inputs), list(outputs),
                                             int(options_type), options))

    # -- whole graph ----------------------------------------------------------
    def run(self) -> ModelSpec:
        g = self.g
        for name in g.inputs:
            self.tensor(name)
        for op in g.ops:
            _lower_op(self, op)
        self.m.inputs = [self.tensor(n) for n in g.inputs]
        self.m.outputs = [self.tensor(n) for n in g.outputs]
        from edgekit import __version__

        self.m.buffers.append(__version__.encode())
        self.m.metadata.append(("edgekit_version", len(self.m.buffers) - 1))
        return self.m


# ------------------------------------------------------------------------------ per op


def _where(op: Op) -> str:
    return f"op {op.name!r} ({op.type.value})"


def _dtype(low: _Lowering, name: str | None) -> DType | None:
    return low.g.tensor(name).dtype if name else None


def _implicit_padding(in_hw, kernel_hw, strides, dilations, pads) -> int | None:
    """Padding.VALID / Padding.SAME when ``pads`` equal it for this geometry, else None."""
    pads = tuple(int(p) for p in pads)
    if pads == (0, 0, 0, 0):
        return int(Padding.VALID)
    if pads == tuple(same_pads(in_hw, kernel_hw, strides, dilations)):
        return int(Padding.SAME)
    return None


def _explicit_pad(low: _Lowering, op: Op, x: str, pads, value: str) -> int:
    """A PAD (or PADV2) op in front of ``op`` padding H and W of ``x``; returns the padded tensor.

    ``value``: "zero" (float 0.0, int8 the zero point) or "lowest" (the smallest value
    of the element type, for max pooling).
    """
    xt = low.g.tensor(x)
    top, left, bottom, right = (int(p) for p in pads)
    n, h, w, c = xt.shape
    paddings = np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32)
    out = low.activation(f"{op.name}/pad", (n, h + top + bottom, w + left + right, c), xt.dtype, xt.quant)
    pad_t = low.const(f"{op.name}/paddings", paddings, DType.INT32)
    int8 = xt.dtype is DType.INT8
    version = 2 if int8 else 1
    if value == "zero":
        low.emit(BuiltinOperator.PAD, version, [low.tensor(x), pad_t], [out], BuiltinOptions.PadOptions, [])
    else:
        if int8:
            cval = low.const(f"{op.name}/pad_value", np.array(-128, np.int8), DType.INT8, xt.quant)
        elif xt.dtype is DType.FLOAT32:
            cval = low.const(f"{op.name}/pad_value", np.array(-np.inf, np.float32), DType.FLOAT32)
        else:
            raise BadInputError(f"{_where(op)}: explicit pads on {xt.dtype.value} inputs cannot be "
                                "expressed in TFLite")
        low.emit(BuiltinOperator.PADV2, version, [low.tensor(x), pad_t, cval], [out],
                 BuiltinOptions.PadV2Options, [])
    return out


def _is_per_channel(q: QuantParams | None) -> bool:
    return q is not None and len(q.scale) > 1


def _lower_conv(low: _Lowering, op: Op, a: dict) -> None:
    g = low.g
    x, w = op.inputs[0], op.inputs[1]
    xt, wt = g.tensor(x), g.tensor(w)
    if xt.rank != 4:  # pragma: no cover - the verifier checks this
        raise BadInputError(f"{_where(op)}: expects a 4-D input")
    kernel = (wt.shape[1], wt.shape[2])
    padding = _implicit_padding(xt.shape[1:3], kernel, a["strides"], a["dilations"], a["pads"])
    x_idx = low.tensor(x)
    if padding is None:
        x_idx = _explicit_pad(low, op, x, a["pads"], "zero")
        padding = int(Padding.VALID)
    bias = low.tensor(op.inputs[2]) if op.input(2) else -1
    hybrid = xt.dtype is DType.FLOAT32 and wt.dtype is DType.INT8
    w_quant = None
    if hybrid and op.type is OpType.DEPTHWISE_CONV_2D and wt.quant is not None and wt.quant.is_per_tensor:
        # LiteRT's hybrid depthwise kernel reads one filter scale per output channel
        # (the converter only makes per-channel ones): spell the per-tensor scale per channel.
        c = wt.shape[3]
        w_quant = QuantParams.per_axis([wt.quant.scale[0]] * c, [wt.quant.zero_point[0]] * c, 3)
    ins = [x_idx, low.tensor(w, w_quant), bias]
    out = [low.tensor(op.outputs[0])]
    sh, sw = a["strides"]
    dh, dw = a["dilations"]
    if op.type is OpType.CONV_2D:
        s = _CONV_SLOTS
        opts = [(s["padding"], "i8", padding), (s["stride_w"], "i32", sw), (s["stride_h"], "i32", sh),
                (s["act"], "i8", _act(a["activation"])), (s["dil_w"], "i32", dw), (s["dil_h"], "i32", dh)]
        if xt.dtype is DType.INT8:
            version = 3
        elif xt.dtype is DType.INT16:
            version = 4
        elif hybrid:
            version = 5 if _is_per_channel(wt.quant) else 2
        else:
            version = 1
        low.emit(BuiltinOperator.CONV_2D, version, ins, out, BuiltinOptions.Conv2DOptions, opts)
    else:
        s = _DW_SLOTS
        opts = [(s["padding"], "i8", padding), (s["stride_w"], "i32", sw), (s["stride_h"], "i32", sh),
                (s["depth_multiplier"], "i32", a["depth_multiplier"]), (s["act"], "i8", _act(a["activation"])),
                (s["dil_w"], "i32", dw), (s["dil_h"], "i32", dh)]
        if xt.dtype is DType.INT8:
            version = 3
        elif xt.dtype is DType.INT16:
            version = 5
        elif hybrid:
            version = 6  # always written per channel (above)
        else:
            version = 2 if (dh, dw) != (1, 1) else 1
        low.emit(BuiltinOperator.DEPTHWISE_CONV_2D, version, ins, out, BuiltinOptions.DepthwiseConv2DOptions, opts)


def _lower_fc(low: _Lowering, op: Op, a: dict) -> None:
    g = low.g
    xt, wt = g.tensor(op.inputs[0]), g.tensor(op.inputs[1])
    bias = low.tensor(op.inputs[2]) if op.input(2) else -1
    ins = [low.tensor(op.inputs[0]), low.tensor(op.inputs[1]), bias]
    keep = bool(a["keep_num_dims"])
    opts = [(0, "i8", _act(a["activation"])), (1, "i8", 0), (2, "bool", keep), (3, "bool", False)]
    if xt.dtype is DType.INT16:
        version = 7
    elif keep:
        version = 5
    elif xt.dtype is DType.INT8:
        version = 4
    elif wt.dtype is DType.INT8:
        version = 3  # hybrid
    else:
        version = 1
    low.emit(BuiltinOperator.FULLY_CONNECTED, version, ins, [low.tensor(op.outputs[0])],
             BuiltinOptions.FullyConnectedOptions, opts)


def _lower_pool(low: _Lowering, op: Op, a: dict) -> None:
    g = low.g
    x = op.inputs[0]
    xt = g.tensor(x)
    kh, kw = a["kernel"]
    sh, sw = a["strides"]
    padding = _implicit_padding(xt.shape[1:3], (kh, kw), (sh, sw), (1, 1), a["pads"])
    x_idx = low.tensor(x)
    if padding is None:
        if op.type is OpType.AVERAGE_POOL_2D:
            raise BadInputError(
                f"{_where(op)}: pads {list(a['pads'])} are neither TFLite's SAME "
                f"({list(same_pads(xt.shape[1:3], (kh, kw), (sh, sw)))}) nor VALID for this input; "
                "TFLite's AVERAGE_POOL_2D divides by the number of in-bounds taps, so an explicit "
                "PAD op cannot reproduce it. Use SAME- or VALID-equivalent pads.")
        if xt.dtype is not DType.INT8 and _window_in_padding(xt.shape[1:3], (kh, kw), (sh, sw), a["pads"]):
            raise BadInputError(
                f"{_where(op)}: with pads {list(a['pads'])} some pooling windows lie entirely in the "
                "padding; the IR gives -inf there, TFLite's MAX_POOL_2D the lowest finite float. "
                "Use pads smaller than the window.")
        x_idx = _explicit_pad(low, op, x, a["pads"], "lowest")
        padding = int(Padding.VALID)
    s = _POOL_SLOTS
    opts = [(s["padding"], "i8", padding), (s["stride_w"], "i32", sw), (s["stride_h"], "i32", sh),
            (s["filter_w"], "i32", kw), (s["filter_h"], "i32", kh), (s["act"], "i8", _act(a["activation"]))]
    version = {DType.INT8: 2, DType.INT16: 3}.get(xt.dtype, 1)
    code = BuiltinOperator.AVERAGE_POOL_2D if op.type is OpType.AVERAGE_POOL_2D else BuiltinOperator.MAX_POOL_2D
    low.emit(code, version, [x_idx], [low.tensor(op.outputs[0])], BuiltinOptions.Pool2DOptions, opts)


def _window_in_padding(in_hw, kernel_hw, strides, pads) -> bool:
    """Whether some window of a pool over ``in_hw`` with explicit ``pads`` has no input tap."""
    top, left, bottom, right = (int(p) for p in pads)
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, strides, (1, 1), pads)
    (h, w), (kh, kw), (sh, sw) = in_hw, kernel_hw, strides
    return (top >= kh or left >= kw or (out_h - 1) * sh >= top + h or (out_w - 1) * sw >= left + w)


def _lower_pad(low: _Lowering, op: Op, a: dict) -> None:
    g = low.g
    xt, ot = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    pads = np.asarray(a["pads"], np.int64).reshape(-1, 2).astype(np.int32)
    value = float(a["value"])
    ins = [low.tensor(op.inputs[0]), low.const(f"{op.name}/paddings", pads, DType.INT32)]
    out = [low.tensor(op.outputs[0])]
    version = {DType.INT8: 2, DType.INT16: 3}.get(xt.dtype, 1)
    cval = None
    if value != 0.0:
        if xt.dtype is DType.FLOAT32:
            cval = low.const(f"{op.name}/constant_value", np.array(value, np.float32), DType.FLOAT32)
        elif xt.dtype is DType.INT8 and ot.quant is not None:
            # The IR's value is a real number; the int8 kernel pads with its quantized code.
            s, z = ot.quant.scale[0], ot.quant.zero_point[0]
            q = int(np.clip(np.round(value / s) + z, -128, 127))
            if q != z:
                cval = low.const(f"{op.name}/constant_value", np.array(q, np.int8), DType.INT8, ot.quant)
        else:
            raise BadInputError(f"{_where(op)}: a pad value of {value} on a {xt.dtype.value} tensor "
                                "cannot be expressed in TFLite")
    if cval is None:
        low.emit(BuiltinOperator.PAD, version, ins, out, BuiltinOptions.PadOptions, [])
    else:
        low.emit(BuiltinOperator.PADV2, version, ins + [cval], out, BuiltinOptions.PadV2Options, [])


_SIMPLE = {
    OpType.RELU: BuiltinOperator.RELU,
    OpType.RELU6: BuiltinOperator.RELU6,
    OpType.LOGISTIC: BuiltinOperator.LOGISTIC,
    OpType.TANH: BuiltinOperator.TANH,
}
# Neither TFLite Micro's nor LiteRT's CONCATENATION accepts a fused activation (the
# schema has the field): it is written as its own op after the concatenation.
_SPLIT_ACTIVATIONS = {"RELU": BuiltinOperator.RELU, "RELU6": BuiltinOperator.RELU6,
                      "RELU_N1_TO_1": BuiltinOperator.RELU_N1_TO_1}
_BINARY = {
    OpType.ADD: (BuiltinOperator.ADD, BuiltinOptions.AddOptions),
    OpType.SUB: (BuiltinOperator.SUB, BuiltinOptions.SubOptions),
    OpType.MUL: (BuiltinOperator.MUL, BuiltinOptions.MulOptions),
}


def _lower_op(low: _Lowering, op: Op) -> None:
    t = op.type
    if t is OpType.BATCH_NORM:
        raise BadInputError(f"{_where(op)}: TFLite has no BATCH_NORM operator; fold it into the "
                            "preceding convolution first (the 'fold_batchnorm' pass)")
    try:
        a = normalize_attrs(t, op.attrs)
    except ValueError as exc:  # pragma: no cover - verify() has checked the attributes
        raise BadInputError(f"{_where(op)}: {exc}") from None
    g = low.g
    xdt = _dtype(low, op.inputs[0])
    int8 = xdt is DType.INT8
    x = op.inputs[0]
    out = [low.tensor(o) for o in op.outputs]

    if t.value in REDUCTION_IR_OPS:
        lower_reduction(low, op, a)
    elif t.value in ELEMENTWISE_IR_OPS:
        lower_elementwise(low, op, a)
    elif t in RESAMPLE_OPS:
        lower_resample(low, op, a)
    elif t in (OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF):
        lower_recurrent(low, op, a)
    elif t in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
        _lower_conv(low, op, a)
    elif t is OpType.FULLY_CONNECTED:
        _lower_fc(low, op, a)
    elif t in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        _lower_pool(low, op, a)
    elif t in _BINARY:
        code, opt_type = _BINARY[t]
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        if t is OpType.MUL and int8:
            q1, q2 = g.tensor(op.inputs[0]).quant, g.tensor(op.inputs[1]).quant
            qo = g.tensor(op.outputs[0]).quant
            if q1 and q2 and qo and q1.scale[0] * q2.scale[0] / qo.scale[0] >= 1.0:
                version = 3
        low.emit(code, version, [low.tensor(x), low.tensor(op.inputs[1])], out, opt_type,
                 [(0, "i8", _act(a["activation"]))])
    elif t is OpType.RESHAPE:
        shape = np.asarray(g.tensor(op.outputs[0]).shape, np.int32)
        shape_t = low.const(f"{op.name}/shape", shape, DType.INT32)
        low.emit(BuiltinOperator.RESHAPE, 1, [low.tensor(x), shape_t], out, BuiltinOptions.ReshapeOptions,
                 [(0, "ivec", shape.tolist())])
    elif t is OpType.SOFTMAX:
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        low.emit(BuiltinOperator.SOFTMAX, version, [low.tensor(x)], out, BuiltinOptions.SoftmaxOptions,
                 [(0, "f32", a["beta"])])
    elif t in _SIMPLE:
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        low.emit(_SIMPLE[t], version, [low.tensor(x)], out)
    elif t is OpType.PAD:
        _lower_pad(low, op, a)
    elif t is OpType.CONCATENATION:
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        act = a["activation"]
        cat_out = out
        if act in _SPLIT_ACTIVATIONS:
            ot = g.tensor(op.outputs[0])
            cat_out = [low.activation(f"{op.name}/concat", ot.shape, ot.dtype, ot.quant)]
        low.emit(BuiltinOperator.CONCATENATION, version, [low.tensor(i) for i in op.inputs], cat_out,
                 BuiltinOptions.ConcatenationOptions,
                 [(0, "i32", a["axis"]), (1, "i8", _act("NONE" if act in _SPLIT_ACTIVATIONS else act))])
        if act in _SPLIT_ACTIVATIONS:
            low.emit(_SPLIT_ACTIVATIONS[act], version, cat_out, out)
    elif t is OpType.MEAN:
        axes = low.const(f"{op.name}/axes", np.asarray(a["axes"], np.int32), DType.INT32)
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        low.emit(BuiltinOperator.MEAN, version, [low.tensor(x), axes], out, BuiltinOptions.ReducerOptions,
                 [(0, "bool", a["keep_dims"])])
    elif t is OpType.QUANTIZE:
        odt = _dtype(low, op.outputs[0])
        version = 2 if (xdt is not DType.FLOAT32 or odt is DType.INT16) else 1
        low.emit(BuiltinOperator.QUANTIZE, version, [low.tensor(x)], out, BuiltinOptions.QuantizeOptions, [])
    elif t is OpType.DEQUANTIZE:
        version = 3 if xdt is DType.INT16 else 2
        low.emit(BuiltinOperator.DEQUANTIZE, version, [low.tensor(x)], out, BuiltinOptions.DequantizeOptions, [])
    elif t is OpType.TRANSPOSE:
        perm = low.const(f"{op.name}/perm", np.asarray(a["perm"], np.int32), DType.INT32)
        version = 2 if int8 else (3 if xdt is DType.INT16 else 1)
        low.emit(BuiltinOperator.TRANSPOSE, version, [low.tensor(x), perm], out, BuiltinOptions.TransposeOptions, [])
    elif t in MOVEMENT_OPS:
        lower_movement(low, op, a)
    else:  # pragma: no cover - every IR op is handled above
        raise BadInputError(f"{_where(op)}: no TFLite lowering for this op")


# ------------------------------------------------------------------------------ public API


def tflite_bytes(graph: Graph, description: str = "edgekit") -> bytes:
    """The ``.tflite`` flatbuffer of ``graph`` (verified first).

    Raises :class:`~edgekit.errors.VerifyError` for an invalid graph and
    :class:`~edgekit.errors.BadInputError` naming the op for anything TFLite cannot
    express (BATCH_NORM, AVERAGE_POOL_2D with pads that are neither SAME nor VALID).
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"tflite_bytes expects an edgekit Graph, not {type(graph).__name__}")
    verify(graph)
    model = _Lowering(graph, description).run()
    try:
        return serialize(model)
    except (ValueError, TypeError, OverflowError) as exc:  # pragma: no cover - defensive
        raise EdgekitError(f"graph {graph.name!r}: cannot serialize to TFLite: {exc}") from exc


def write_tflite(graph: Graph, path: str | PathLike) -> int:
    """Write ``graph`` as a ``.tflite`` file atomically; returns the number of bytes written."""
    data = tflite_bytes(graph)
    p = Path(path)
    try:
        write_atomic(p, lambda f: f.write(data))
    except OSError as exc:
        raise BadInputError(f"{p}: cannot write the model: {exc.strerror or exc}") from exc
    return len(data)
