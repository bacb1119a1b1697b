"""``.tflite`` -> IR.

Reads float, int8 and hybrid (int8 weights, float activations) models through
edgekit's own flatbuffer reader; no TensorFlow or LiteRT needed. TFLite is NHWC
and its weight layouts are the IR's, so tensors map one to one.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError
from edgekit.frontends.tflite.import_recurrent import convert_lstm, convert_svdf
from edgekit.frontends.tflite.import_resample import RESAMPLE_MIN_INPUTS, RESAMPLE_TFLITE, resample_attrs
from edgekit.frontends.tflite.movement import MIN_INPUTS as MOVEMENT_MIN_INPUTS
from edgekit.frontends.tflite.movement import MULTI_OUTPUT, TFLITE_MOVEMENT, convert_movement
from edgekit.frontends.tflite.flatbuffer import TFLiteModel, read_tflite, read_tflite_file
from edgekit.frontends.tflite.import_elementwise import (ELEMENTWISE_MIN_INPUTS, TFLITE_ELEMENTWISE,
                                                       elementwise_attrs)
from edgekit.frontends.tflite.schema_enums import TensorType, builtin_name, numpy_dtype
from edgekit.ir import DType, Graph, OpType, QuantParams, verify
from edgekit.ir.passes import run_passes
from edgekit.ir.shapes import same_pads

_DTYPES = {
    TensorType.FLOAT32: DType.FLOAT32,
    TensorType.INT8: DType.INT8,
    TensorType.INT16: DType.INT16,
    TensorType.INT32: DType.INT32,
    TensorType.INT64: DType.INT64,
    TensorType.BOOL: DType.BOOL,
}

# TFLite builtin name -> IR op, for the ops that map directly.
_DIRECT = {
    "CONV_2D": OpType.CONV_2D,
    "DEPTHWISE_CONV_2D": OpType.DEPTHWISE_CONV_2D,
    "FULLY_CONNECTED": OpType.FULLY_CONNECTED,
    "AVERAGE_POOL_2D": OpType.AVERAGE_POOL_2D,
    "MAX_POOL_2D": OpType.MAX_POOL_2D,
    "ADD": OpType.ADD,
    "SUB": OpType.SUB,
    "MUL": OpType.MUL,
    "RESHAPE": OpType.RESHAPE,
    "SQUEEZE": OpType.RESHAPE,
    "EXPAND_DIMS": OpType.RESHAPE,
    "SOFTMAX": OpType.SOFTMAX,
    "RELU": OpType.RELU,
    "RELU6": OpType.RELU6,
    "PAD": OpType.PAD,
    "PADV2": OpType.PAD,
    "CONCATENATION": OpType.CONCATENATION,
    "MEAN": OpType.MEAN,
    "LOGISTIC": OpType.LOGISTIC,
    "TANH": OpType.TANH,
    "QUANTIZE": OpType.QUANTIZE,
    "DEQUANTIZE": OpType.DEQUANTIZE,
    "TRANSPOSE": OpType.TRANSPOSE,
    "REDUCE_MAX": OpType.REDUCE_MAX,
    "SUM": OpType.SUM,
    "ARG_MAX": OpType.ARG_MAX,
    "ARG_MIN": OpType.ARG_MIN,
    "L2_NORMALIZATION": OpType.L2_NORMALIZATION,
    "BATCH_MATMUL": OpType.BATCH_MATMUL,
}
_DIRECT.update(RESAMPLE_TFLITE)
_DIRECT.update(TFLITE_MOVEMENT)
_DIRECT.update(TFLITE_ELEMENTWISE)
_DIRECT["UNIDIRECTIONAL_SEQUENCE_LSTM"] = OpType.UNIDIRECTIONAL_SEQUENCE_LSTM
_DIRECT["SVDF"] = OpType.SVDF
SUPPORTED_TFLITE_OPS = tuple(sorted(_DIRECT))
_ACTIVATIONS = {"NONE", "RELU", "RELU6", "RELU_N1_TO_1"}


def load_tflite(model: str | PathLike | bytes) -> Graph:
    """Import a ``.tflite`` file (path or bytes) into a verified IR graph."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        source = "<bytes>"
        fb = read_tflite(bytes(model), source)
    else:
        source = str(model)
        fb = read_tflite_file(model)
    graph = _convert(fb, source)
    run_passes(graph)
    verify(graph)
    return graph


class _Builder:
    def __init__(self, fb: TFLiteModel, source: str):
        if not fb.subgraphs:
            raise ModelFormatError(f"{source}: the model has no subgraph")
        self.fb = fb
        self.source = source
        self.sg = fb.subgraphs[0]
        name = Path(source).stem if source != "<bytes>" else "model"
        self.g = Graph(name)
        self.names: dict[int, str] = {}

    def fail(self, msg: str) -> ModelFormatError:
        return ModelFormatError(f"{self.source}: {msg}")

    def data(self, idx: int) -> np.ndarray | None:
        t = self.sg.tensors[idx]
        buf = self.fb.buffers[t.buffer] if 0 <= t.buffer < len(self.fb.buffers) else b""
        if not buf:
            return None
        dt = numpy_dtype(t.type)
        if dt is None:
            raise self.fail(f"tensor {t.name!r} has unsupported type {TensorType(t.type).name}")
        count = int(np.prod(t.shape)) if t.shape else 1
        if len(buf) != count * dt.itemsize:
            raise self.fail(f"tensor {t.name!r}: buffer holds {len(buf)} bytes, shape {list(t.shape)} "
                            f"of {dt.name} needs {count * dt.itemsize}")
        return np.frombuffer(buf, dtype=dt).reshape(t.shape)

    def tensor(self, idx: int) -> str:
        """IR name of TFLite tensor ``idx``, creating the IR tensor on first use."""
        if idx in self.names:
            return self.names[idx]
        t = self.sg.tensors[idx]
        data = self.data(idx)
        if t.type == TensorType.FLOAT16 and data is not None:
            data = data.astype(np.float32)  # float16 weights are widened; the IR has no f16
            dtype = DType.FLOAT32
        elif t.type == TensorType.UINT8:
            raise BadInputError(f"{self.source}: tensor {t.name!r} is uint8: legacy uint8-quantized "
                                "models are not supported; re-export with int8 quantization")
        elif t.type not in _DTYPES:
            raise BadInputError(f"{self.source}: tensor {t.name!r} has type "
                                f"{TensorType(t.type).name}, which edgekit does not support")
        else:
            dtype = _DTYPES[TensorType(t.type)]
        quant = None
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            zp = q.zero_point if q.zero_point is not None and len(q.zero_point) else np.zeros(len(q.scale), np.int64)
            if len(q.scale) == 1:
                quant = QuantParams.per_tensor(float(q.scale[0]), int(zp[0]))
            else:
                quant = QuantParams.per_axis(q.scale, zp, q.quantized_dimension)
        name = self.g.unique_name(t.name or f"tensor_{idx}")
        self.g.add_tensor(name, t.shape, dtype, quant, data)
        self.names[idx] = name
        return name

    def const_input(self, op, i: int, what: str) -> np.ndarray:
        if i >= len(op.inputs) or op.inputs[i] < 0:
            raise self.fail(f"{what}: missing input {i}")
        d = self.data(op.inputs[i])
        if d is None:
            raise BadInputError(f"{self.source}: {what} must be a constant (dynamic shapes are not supported)")
        return d


def _convert(fb: TFLiteModel, source: str) -> Graph:
    b = _Builder(fb, source)
    g = b.g
    g.metadata.update({"source_format": "tflite", "description": fb.description,
                       "tflite_schema_version": fb.version})
    if len(fb.subgraphs) > 1:
        g.metadata["ignored_subgraphs"] = len(fb.subgraphs) - 1
    for i in b.sg.inputs:
        g.inputs.append(b.tensor(i))
    for n, op in enumerate(b.sg.operators):
        code = fb.operator_codes[op.opcode_index]
        opname = builtin_name(code.builtin_code) if code.custom_code is None else f"CUSTOM:{code.custom_code}"
        out_name = b.sg.tensors[op.outputs[0]].name if op.outputs else ""
        node = f"#{n} {opname}" + (f" -> {out_name}" if out_name else "")
        if opname not in _DIRECT:
            raise UnsupportedOpError(opname, node, SUPPORTED_TFLITE_OPS)
        _check_arity(b, op, opname, node)
        try:
            _convert_op(b, op, opname, node, f"op_{n}_{opname.lower()}")
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            # Last line of defence: a malformed operator that the checks above missed.
            raise b.fail(f"{node}: malformed operator ({type(exc).__name__}: {exc})") from None
    for o in b.sg.outputs:
        g.outputs.append(b.tensor(o))
    return g


# Inputs each TFLite op needs (constant operands such as PAD's paddings included).
_MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "ADD": 2, "SUB": 2, "MUL": 2,
               "PAD": 2, "PADV2": 2, "MEAN": 2, "TRANSPOSE": 2,
               "REDUCE_MAX": 2, "SUM": 2, "ARG_MAX": 2, "ARG_MIN": 2, "BATCH_MATMUL": 2}


_MIN_INPUTS.update(RESAMPLE_MIN_INPUTS)
_MIN_INPUTS.update(MOVEMENT_MIN_INPUTS)
_MIN_INPUTS.update(ELEMENTWISE_MIN_INPUTS)


def _check_arity(b: _Builder, op, opname: str, node: str) -> None:
    need = _MIN_INPUTS.get(opname, 1)
    if len(op.inputs) < need or any(i < 0 for i in op.inputs[:need]):
        raise b.fail(f"{node}: needs {need} input(s), has {[i for i in op.inputs]}")
    if opname in MULTI_OUTPUT:  # SPLIT, SPLIT_V, UNPACK: one or more outputs
        if not op.outputs or any(o < 0 for o in op.outputs):
            raise b.fail(f"{node}: needs one or more outputs, has {list(op.outputs)}")
    elif len(op.outputs) != 1 or op.outputs[0] < 0:
        raise b.fail(f"{node}: needs exactly one output, has {list(op.outputs)}")


def _act(opts: dict, node: str, opname: str) -> str:
    act = opts.get("fused_activation_function", "NONE")
    if act not in _ACTIVATIONS:
        raise UnsupportedOpError(opname, node, SUPPORTED_TFLITE_OPS, f"fused activation {act} is not supported")
    return act


def _convert_op(b: _Builder, op, opname: str, node: str, name: str) -> None:
    g = b.g
    opts = op.options
    ir = _DIRECT[opname]
    if opname in TFLITE_MOVEMENT:
        return convert_movement(b, op, opname, node, name, SUPPORTED_TFLITE_OPS)
    if opname == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return convert_lstm(b, op, node, name, SUPPORTED_TFLITE_OPS)
    if opname == "SVDF":
        return convert_svdf(b, op, node, name, SUPPORTED_TFLITE_OPS)
    shape_of = lambda i: tuple(b.sg.tensors[op.inputs[i]].shape)  # noqa: E731
    ins = [b.tensor(i) if i >= 0 else "" for i in op.inputs]
    outs = [b.tensor(o) for o in op.outputs]
    attrs: dict = {}
    if ir in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
        strides = (opts.get("stride_h") or 1, opts.get("stride_w") or 1)
        dil = (opts.get("dilation_h_factor") or 1, opts.get("dilation_w_factor") or 1)
        x, w = shape_of(0), shape_of(1)
        if len(x) != 4 or len(w) != 4:
            raise b.fail(f"{node}: expects 4-D input and filter, got {list(x)} and {list(w)}")
        k = (w[1], w[2])
        pads = same_pads(x[1:3], k, strides, dil) if opts.get("padding", "SAME") == "SAME" else (0, 0, 0, 0)
        attrs = {"strides": strides, "dilations": dil, "pads": pads, "activation": _act(opts, node, opname)}
        if ir is OpType.DEPTHWISE_CONV_2D:
            if x[3] == 0 or w[3] % x[3]:
                raise b.fail(f"{node}: filter channels {w[3]} not a multiple of input channels {x[3]}")
            attrs["depth_multiplier"] = w[3] // x[3]
        ins = ins[:3]
    elif ir is OpType.FULLY_CONNECTED:
        if opts.get("weights_format", "DEFAULT") != "DEFAULT":
            raise UnsupportedOpError(opname, node, SUPPORTED_TFLITE_OPS, "shuffled weights format")
        attrs = {"activation": _act(opts, node, opname), "keep_num_dims": bool(opts.get("keep_num_dims", False))}
        ins = ins[:3]
    elif ir in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        strides = (opts.get("stride_h") or 1, opts.get("stride_w") or 1)
        k = (opts.get("filter_height") or 1, opts.get("filter_width") or 1)
        x = shape_of(0)
        pads = same_pads(x[1:3], k, strides) if opts.get("padding", "SAME") == "SAME" else (0, 0, 0, 0)
        attrs = {"kernel": k, "strides": strides, "pads": pads, "activation": _act(opts, node, opname)}
    elif ir in (OpType.ADD, OpType.SUB, OpType.MUL, OpType.CONCATENATION):
        attrs = {"activation": _act(opts, node, opname)}
        if ir is OpType.CONCATENATION:
            attrs["axis"] = opts.get("axis", 0)
    elif ir is OpType.RESHAPE:
        # The output tensor's shape is authoritative (new_shape and the shape input may hold -1).
        attrs = {"shape": tuple(b.sg.tensors[op.outputs[0]].shape)}
        ins = ins[:1]
    elif ir is OpType.SOFTMAX:
        attrs = {"beta": opts.get("beta", 1.0) or 1.0}
    elif ir is OpType.PAD:
        p = b.const_input(op, 1, f"{node} paddings").astype(np.int64)
        attrs = {"pads": tuple(p.reshape(-1).tolist())}
        if opname == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            v = b.const_input(op, 2, f"{node} constant value").reshape(-1)[0]
            t = b.sg.tensors[op.inputs[0]]
            if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) \
                    and t.type != TensorType.FLOAT32:
                if int(v) != int(t.quantization.zero_point[0]):
                    raise UnsupportedOpError(opname, node, SUPPORTED_TFLITE_OPS,
                                             "int8 PADV2 with a value other than the zero point")
                v = 0.0
            attrs["value"] = float(v)
        ins = ins[:1]
    elif ir is OpType.MEAN:
        axes = b.const_input(op, 1, f"{node} axes").astype(np.int64).reshape(-1)
        attrs = {"axes": tuple(int(a) for a in axes), "keep_dims": bool(opts.get("keep_dims", False))}
        ins = ins[:1]
    elif ir is OpType.TRANSPOSE:
        perm = b.const_input(op, 1, f"{node} permutation").astype(np.int64).reshape(-1)
        attrs = {"perm": tuple(int(a) for a in perm)}
        ins = ins[:1]
    elif ir in (OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN, OpType.L2_NORMALIZATION,
                OpType.BATCH_MATMUL):
        from edgekit.frontends.tflite.importer_reduction import reduction_attrs

        ins, attrs = reduction_attrs(b, op, ir, node, ins, shape_of(0))
    elif opname in TFLITE_ELEMENTWISE:
        attrs = elementwise_attrs(opname, opts, lambda: _act(opts, node, opname))
        ins = ins[:2] if ir is OpType.PRELU or len(ins) > 1 else ins[:1]
    elif opname in RESAMPLE_TFLITE:
        act = _act(opts, node, opname) if ir is OpType.TRANSPOSE_CONV else "NONE"
        ins, attrs = resample_attrs(b, op, ir, node, ins, act)
    g.add_op(ir, ins, outs, attrs, name)
