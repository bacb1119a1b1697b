"""The op set of the IR: one enum, and for each op its inputs and typed attributes.

Conventions (all NHWC, weights as TFLite stores them, so the MCU kernels read them
as-is):
- CONV_2D: inputs (x [N,H,W,Cin], filter [Cout,KH,KW,Cin], bias [Cout]?)
- DEPTHWISE_CONV_2D: inputs (x, filter [1,KH,KW,Cin*depth_multiplier], bias?)
- FULLY_CONNECTED: inputs (x [..., K], weights [Cout, K], bias?)
- pads are explicit ``(top, left, bottom, right)``; PAD takes ``[[before, after], ...]``
- ``activation`` is a fused clamp: NONE, RELU, RELU6 or RELU_N1_TO_1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class OpType(str, Enum):
    CONV_2D = "CONV_2D"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    ADD = "ADD"
    SUB = "SUB"
    MUL = "MUL"
    RESHAPE = "RESHAPE"
    SOFTMAX = "SOFTMAX"
    RELU = "RELU"
    RELU6 = "RELU6"
    PAD = "PAD"
    CONCATENATION = "CONCATENATION"
    MEAN = "MEAN"
    LOGISTIC = "LOGISTIC"
    TANH = "TANH"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    TRANSPOSE = "TRANSPOSE"
    BATCH_NORM = "BATCH_NORM"  # float only; folded into the conv before quantization
    # data movement
    SLICE = "SLICE"
    STRIDED_SLICE = "STRIDED_SLICE"
    SPLIT = "SPLIT"
    SQUEEZE = "SQUEEZE"
    EXPAND_DIMS = "EXPAND_DIMS"
    GATHER = "GATHER"
    PACK = "PACK"
    UNPACK = "UNPACK"
    DEPTH_TO_SPACE = "DEPTH_TO_SPACE"
    SPACE_TO_DEPTH = "SPACE_TO_DEPTH"
    CAST = "CAST"
    # elementwise
    HARD_SWISH = "HARD_SWISH"
    LEAKY_RELU = "LEAKY_RELU"
    PRELU = "PRELU"
    ABS = "ABS"
    NEG = "NEG"
    EXP = "EXP"
    LOG = "LOG"
    SQRT = "SQRT"
    RSQRT = "RSQRT"
    GELU = "GELU"
    MAXIMUM = "MAXIMUM"
    MINIMUM = "MINIMUM"
    DIV = "DIV"
    SQUARED_DIFFERENCE = "SQUARED_DIFFERENCE"
    # reductions, normalization, matrix products
    REDUCE_MAX = "REDUCE_MAX"
    SUM = "SUM"
    ARG_MAX = "ARG_MAX"
    ARG_MIN = "ARG_MIN"
    L2_NORMALIZATION = "L2_NORMALIZATION"
    BATCH_MATMUL = "BATCH_MATMUL"
    # resampling and transposed convolution
    RESIZE_NEAREST_NEIGHBOR = "RESIZE_NEAREST_NEIGHBOR"
    RESIZE_BILINEAR = "RESIZE_BILINEAR"
    TRANSPOSE_CONV = "TRANSPOSE_CONV"
    # recurrent
    UNIDIRECTIONAL_SEQUENCE_LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
    SVDF = "SVDF"


ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")

_REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    kind: str  # "int", "float", "bool", "str", "ints"
    default: Any = _REQUIRED
    length: int | None = None  # for "ints"
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class OpDef:
    inputs: tuple[str, ...]  # input names; a trailing "?" marks optional ones
    attrs: dict[str, Attr] = field(default_factory=dict)
    num_outputs: int = 1
    variadic: bool = False  # any number (>=1) of inputs, e.g. CONCATENATION
    variadic_outputs: bool = False  # any number (>=1) of outputs, e.g. SPLIT

    @property
    def min_inputs(self) -> int:
        return sum(1 for i in self.inputs if not i.endswith("?"))


_ACT = Attr("str", "NONE", choices=ACTIVATIONS)
_CONV_ATTRS = {
    "strides": Attr("ints", (1, 1), 2),
    "dilations": Attr("ints", (1, 1), 2),
    "pads": Attr("ints", (0, 0, 0, 0), 4),
    "activation": _ACT,
}
_POOL_ATTRS = {
    "kernel": Attr("ints", _REQUIRED, 2),
    "strides": Attr("ints", (1, 1), 2),
    "pads": Attr("ints", (0, 0, 0, 0), 4),
    "activation": _ACT,
}

OP_DEFS: dict[OpType, OpDef] = {
    OpType.CONV_2D: OpDef(("input", "filter", "bias?"), dict(_CONV_ATTRS)),
    OpType.DEPTHWISE_CONV_2D: OpDef(
        ("input", "filter", "bias?"), {**_CONV_ATTRS, "depth_multiplier": Attr("int", 1)}),
    OpType.FULLY_CONNECTED: OpDef(
        ("input", "weights", "bias?"), {"activation": _ACT, "keep_num_dims": Attr("bool", False)}),
    OpType.AVERAGE_POOL_2D: OpDef(("input",), dict(_POOL_ATTRS)),
    OpType.MAX_POOL_2D: OpDef(("input",), dict(_POOL_ATTRS)),
    OpType.ADD: OpDef(("a", "b"), {"activation": _ACT}),
    OpType.SUB: OpDef(("a", "b"), {"activation": _ACT}),
    OpType.MUL: OpDef(("a", "b"), {"activation": _ACT}),
    OpType.RESHAPE: OpDef(("input",), {"shape": Attr("ints")}),
    OpType.SOFTMAX: OpDef(("input",), {"beta": Attr("float", 1.0)}),
    OpType.RELU: OpDef(("input",)),
    OpType.RELU6: OpDef(("input",)),
    OpType.PAD: OpDef(("input",), {"pads": Attr("ints"), "value": Attr("float", 0.0)}),
    OpType.CONCATENATION: OpDef(("input",), {"axis": Attr("int"), "activation": _ACT}, variadic=True),
    OpType.MEAN: OpDef(("input",), {"axes": Attr("ints"), "keep_dims": Attr("bool", False)}),
    OpType.LOGISTIC: OpDef(("input",)),
    OpType.TANH: OpDef(("input",)),
    OpType.QUANTIZE: OpDef(("input",)),
    OpType.DEQUANTIZE: OpDef(("input",)),
    OpType.TRANSPOSE: OpDef(("input",), {"perm": Attr("ints")}),
    OpType.BATCH_NORM: OpDef(("input", "scale", "bias", "mean", "var"), {"epsilon": Attr("float", 1e-5)}),
    # Data movement. Axes are non-negative after import; begin/end/size are resolved per axis.
    OpType.SLICE: OpDef(("input",), {"begin": Attr("ints"), "size": Attr("ints")}),
    OpType.STRIDED_SLICE: OpDef(("input",), {
        "begin": Attr("ints"), "end": Attr("ints"), "strides": Attr("ints"),
        "shrink_axis_mask": Attr("int", 0)}),
    OpType.SPLIT: OpDef(("input",), {"axis": Attr("int"), "sizes": Attr("ints")}, variadic_outputs=True),
    OpType.SQUEEZE: OpDef(("input",), {"axes": Attr("ints")}),
    OpType.EXPAND_DIMS: OpDef(("input",), {"axis": Attr("int")}),
    OpType.GATHER: OpDef(("input", "indices"), {"axis": Attr("int", 0), "batch_dims": Attr("int", 0)}),
    OpType.PACK: OpDef(("input",), {"axis": Attr("int", 0)}, variadic=True),
    OpType.UNPACK: OpDef(("input",), {"axis": Attr("int", 0)}, variadic_outputs=True),
    OpType.DEPTH_TO_SPACE: OpDef(("input",), {"block_size": Attr("int")}),
    OpType.SPACE_TO_DEPTH: OpDef(("input",), {"block_size": Attr("int")}),
    OpType.CAST: OpDef(("input",)),  # to the output tensor's dtype
    # Elementwise.
    OpType.HARD_SWISH: OpDef(("input",)),
    OpType.LEAKY_RELU: OpDef(("input",), {"alpha": Attr("float", 0.2)}),
    OpType.PRELU: OpDef(("input", "alpha")),
    OpType.ABS: OpDef(("input",)),
    OpType.NEG: OpDef(("input",)),
    OpType.EXP: OpDef(("input",)),
    OpType.LOG: OpDef(("input",)),
    OpType.SQRT: OpDef(("input",)),
    OpType.RSQRT: OpDef(("input",)),
    OpType.GELU: OpDef(("input",), {"approximate": Attr("bool", False)}),
    OpType.MAXIMUM: OpDef(("a", "b")),
    OpType.MINIMUM: OpDef(("a", "b")),
    OpType.DIV: OpDef(("a", "b"), {"activation": _ACT}),
    OpType.SQUARED_DIFFERENCE: OpDef(("a", "b")),
    # Reductions, normalization, matrix products.
    OpType.REDUCE_MAX: OpDef(("input",), {"axes": Attr("ints"), "keep_dims": Attr("bool", False)}),
    OpType.SUM: OpDef(("input",), {"axes": Attr("ints"), "keep_dims": Attr("bool", False)}),
    OpType.ARG_MAX: OpDef(("input",), {"axis": Attr("int")}),  # output int32
    OpType.ARG_MIN: OpDef(("input",), {"axis": Attr("int")}),
    OpType.L2_NORMALIZATION: OpDef(("input",), {"activation": _ACT}),  # over the last axis
    OpType.BATCH_MATMUL: OpDef(("a", "b"), {"adj_x": Attr("bool", False), "adj_y": Attr("bool", False)}),
    # Resampling (NHWC) and transposed convolution (filter [Cout, KH, KW, Cin] as TFLite stores it).
    # TRANSPOSE_CONV: pads (top, left, bottom, right) are cropped from the full (H-1)*stride+K
    # result; bottom/right may be negative (extra rows/columns holding the bias alone, ONNX's
    # output_padding); output_shape must equal what they give.
    OpType.RESIZE_NEAREST_NEIGHBOR: OpDef(("input",), {
        "size": Attr("ints", _REQUIRED, 2), "align_corners": Attr("bool", False),
        "half_pixel_centers": Attr("bool", False)}),
    OpType.RESIZE_BILINEAR: OpDef(("input",), {
        "size": Attr("ints", _REQUIRED, 2), "align_corners": Attr("bool", False),
        "half_pixel_centers": Attr("bool", False)}),
    OpType.TRANSPOSE_CONV: OpDef(("input", "filter", "bias?"), {
        "output_shape": Attr("ints", _REQUIRED, 4), "strides": Attr("ints", (1, 1), 2),
        "pads": Attr("ints", (0, 0, 0, 0), 4), "activation": _ACT}),
    # Recurrent. LSTM: input [B, T, I] ([T, B, I] when time_major), gates in TFLite's order
    # (input, forget, cell, output), weights [H, I] and recurrent weights [H, H], biases [H];
    # states start at zero; output [B, T, H]. int8: the cell state is int16 with scale
    # 2^cell_state_exponent, the hidden state shares the output's parameters.
    OpType.UNIDIRECTIONAL_SEQUENCE_LSTM: OpDef(
        ("input", "w_input_gate", "w_forget_gate", "w_cell_gate", "w_output_gate",
         "r_input_gate", "r_forget_gate", "r_cell_gate", "r_output_gate",
         "b_input_gate", "b_forget_gate", "b_cell_gate", "b_output_gate"),
        {"time_major": Attr("bool", False), "cell_clip": Attr("float", 0.0),
         "cell_state_exponent": Attr("int", 0)}),
    # SVDF: input [B, I], weights_feature [F, I], weights_time [F, M], bias [F / rank]?;
    # state [B, M * F] starts at zero; output [B, F / rank]. int8: the state is int16.
    OpType.SVDF: OpDef(("input", "weights_feature", "weights_time", "bias?"),
                       {"rank": Attr("int"), "activation": _ACT, "state_scale": Attr("float", 0.0)}),
}

# Ops that work elementwise on one input: candidates for in-place execution.
UNARY_ELEMENTWISE = {OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH,
                     OpType.QUANTIZE, OpType.DEQUANTIZE}
BINARY_ELEMENTWISE = {OpType.ADD, OpType.SUB, OpType.MUL}
# Ops that take a fused activation.
FUSABLE = {OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED,
           OpType.ADD, OpType.SUB, OpType.MUL, OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D,
           OpType.CONCATENATION, OpType.TRANSPOSE_CONV}


def normalize_attrs(op_type: OpType, attrs: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and coerce types; raises ValueError naming the bad attribute."""
    spec = OP_DEFS[op_type].attrs
    out: dict[str, Any] = {}
    unknown = set(attrs) - set(spec)
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)} for {op_type.value}")
    for key, a in spec.items():
        if key not in attrs:
            if a.required:
                raise ValueError(f"{op_type.value} needs attribute {key!r}")
            value = a.default
        else:
            value = attrs[key]
        out[key] = _coerce(op_type, key, a, value)
    return out


def _coerce(op_type: OpType, key: str, a: Attr, value: Any) -> Any:
    where = f"{op_type.value}.{key}"
    if a.kind == "int":
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if a.kind == "float":
        return float(value)
    if a.kind == "bool":
        return bool(value)
    if a.kind == "str":
        value = str(value)
        if a.choices and value not in a.choices:
            raise ValueError(f"{where} must be one of {', '.join(a.choices)}, got {value!r}")
        return value
    if a.kind == "ints":
        try:
            flat = [int(v) for v in _flatten(value)]
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a list of integers, got {value!r}") from None
        if a.length is not None and len(flat) != a.length:
            raise ValueError(f"{where} must have {a.length} values, got {len(flat)}")
        return tuple(flat)
    raise AssertionError(a.kind)


def _flatten(v):
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _flatten(x)
    else:
        yield v
