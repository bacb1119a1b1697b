"""Kernel parameters of runtimes/micro, derived from quantization parameters and op
attributes exactly as TensorFlow Lite Micro's ``Prepare`` derives them.

Two layers:

- parameter functions (``conv_params``, ``add_params``, ...) take ``QuantParams`` and
  attribute values and return the C struct values and per-channel arrays of one kernel
  call, with the fixed-point arithmetic of ``edgekit.reference.fixedpoint`` (the same
  derivations ``edgekit.reference.int8_kernels`` uses, so the C kernels reproduce the
  reference bytes);
- ``lower_op(graph, op)`` turns one IR op into a ``KernelCall``: the C function and its
  arguments, each a struct, a constant array (weights, biases, multipliers, shifts), a
  tensor of the arena, or a scalar. The code generator (``codegen.py``) writes these
  out; it knows nothing about quantization.

Unsupported ops and op variants raise ``UnsupportedOpError`` naming the op and the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from edgekit.errors import UnsupportedOpError
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes_movement import MOVEMENT_OPS
from edgekit.reference import elementwise_kernels as ew_kernels
from edgekit.reference import fixedpoint as fp

ADD_LEFT_SHIFT = 20  # TFLM's left shift of int8 ADD / SUB
SUPPORTED_OPS = (
    OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED, OpType.AVERAGE_POOL_2D,
    OpType.MAX_POOL_2D, OpType.ADD, OpType.SUB, OpType.MUL, OpType.RESHAPE, OpType.SOFTMAX,
    OpType.RELU, OpType.RELU6, OpType.PAD, OpType.CONCATENATION, OpType.MEAN, OpType.LOGISTIC,
    OpType.TANH, OpType.QUANTIZE, OpType.DEQUANTIZE, OpType.TRANSPOSE,
    # resampling (edgekit/backends/c/lower_resample.py)
    OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV,
    # data movement (edgekit/backends/c/lower_movement.py)
    OpType.SLICE, OpType.STRIDED_SLICE, OpType.SPLIT, OpType.SQUEEZE, OpType.EXPAND_DIMS, OpType.GATHER,
    OpType.PACK, OpType.UNPACK, OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH, OpType.CAST,
    # reductions, matrix products (edgekit/backends/c/lower_reduction.py)
    OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN, OpType.L2_NORMALIZATION, OpType.BATCH_MATMUL,
    # recurrent (edgekit/backends/c/lower_recurrent.py)
    OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF,
    # elementwise (edgekit/backends/c/lower_elementwise.py)
    OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.PRELU, OpType.ABS, OpType.NEG, OpType.EXP, OpType.LOG,
    OpType.SQRT, OpType.RSQRT, OpType.GELU, OpType.MAXIMUM, OpType.MINIMUM, OpType.DIV, OpType.SQUARED_DIFFERENCE,
)
_REDUCTION_OPS = ("REDUCE_MAX", "SUM", "ARG_MAX", "ARG_MIN", "L2_NORMALIZATION", "BATCH_MATMUL")
SOFTMAX_OUT = (np.float32(1.0 / 256), -128)
LOGISTIC_OUT = SOFTMAX_OUT
TANH_OUT = (np.float32(1.0 / 128), 0)


# ----------------------------------------------------------------------------- call model


@dataclass(frozen=True)
class Struct:
    """A parameter struct of kernels.h, passed by address (``&name``)."""

    ctype: str
    values: dict  # field -> int, or a list of ints for array fields


@dataclass
class ConstArray:
    """A constant array placed in flash; ``role`` says what it holds (for the reports)."""

    ctype: str             # "int8_t", "int32_t" or "float"
    data: np.ndarray
    role: str              # "weights", "bias", "multiplier", "shift", "constant", "table"
    tensor: str | None = None  # the IR tensor it comes from

    @property
    def nbytes(self) -> int:
        return int(self.data.size) * {"int8_t": 1, "int32_t": 4, "float": 4}[self.ctype]


@dataclass(frozen=True)
class TensorRef:
    """An activation tensor of the arena (read, or written when ``output``)."""

    name: str
    ctype: str = "int8_t"
    output: bool = False


@dataclass(frozen=True)
class F32:
    """A float scalar argument (emitted as an exact hexadecimal literal)."""

    value: float


@dataclass
class PointerList:
    """``const int8_t *const name[]``: the inputs of CONCATENATION; with ``output``,
    ``int8_t *const name[]``: the outputs of SPLIT / UNPACK."""

    items: list  # TensorRef or ConstArray
    output: bool = False


Arg = Union[Struct, ConstArray, TensorRef, F32, PointerList, int, None]


@dataclass
class KernelCall:
    """One call of a kernel of runtimes/micro for one IR op."""

    op: str              # IR op name
    op_type: str         # IR op type
    kernel: str          # key of kernels.json ("conv2d", ...)
    function: str        # C function ("ek_conv2d_s8", ...)
    args: list           # one Arg per parameter, in the C signature's order
    notes: dict = field(default_factory=dict)

    def const_arrays(self) -> list[ConstArray]:
        out = []
        for a in self.args:
            if isinstance(a, ConstArray):
                out.append(a)
            elif isinstance(a, PointerList):
                out += [i for i in a.items if isinstance(i, ConstArray)]
        return out


# ----------------------------------------------------------------------------- parameters


def _pt(qp: QuantParams) -> tuple[float, int]:
    return float(np.float32(qp.scale[0])), int(qp.zero_point[0])


def dims4(shape) -> Struct:
    n, h, w, c = (int(v) for v in shape)
    return Struct("ek_dims4", {"n": n, "h": h, "w": w, "c": c})


def as4d(shape) -> tuple[int, ...]:
    """A shape of rank <= 4 with leading 1s up to rank 4."""
    shape = tuple(int(s) for s in shape)
    return (1,) * (4 - len(shape)) + shape


def filter_scales(w_qp: QuantParams, channels: int) -> np.ndarray:
    """One float32 scale per output channel (a per-tensor scale repeated)."""
    if w_qp.is_per_tensor or len(w_qp.scale) == 1:
        return np.full(channels, w_qp.scale[0], np.float32)
    return w_qp.scales


def conv_params(x_qp, w_qp, out_qp, channels: int, *, stride, pads, dilation, activation,
                depth_multiplier: int | None = None):
    """(``ek_conv_params`` or ``ek_depthwise_params`` when ``depth_multiplier`` is given,
    per-channel multipliers, shifts) of CONV_2D / DEPTHWISE_CONV_2D."""
    s_in, zp_in = _pt(x_qp)
    s_out, zp_out = _pt(out_qp)
    mult, shift = fp.conv_per_channel_multipliers(s_in, filter_scales(w_qp, channels), s_out)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    values = {"stride_h": stride[0], "stride_w": stride[1], "dilation_h": dilation[0],
              "dilation_w": dilation[1], "pad_top": pads[0], "pad_left": pads[1]}
    if depth_multiplier is not None:
        values["depth_multiplier"] = depth_multiplier
    values.update(input_offset=-zp_in, output_offset=zp_out, act_min=act_min, act_max=act_max)
    ctype = "ek_conv_params" if depth_multiplier is None else "ek_depthwise_params"
    return Struct(ctype, _ints(values)), _i32(mult), _i32(shift)


def fc_params(x_qp, w_qp, out_qp, channels: int, *, activation):
    """(``ek_fc_params``, multipliers, shifts) of FULLY_CONNECTED: per channel when the
    weights have several scales, else one multiplier and the weights' zero point."""
    s_in, zp_in = _pt(x_qp)
    s_out, zp_out = _pt(out_qp)
    per_channel = not (w_qp.is_per_tensor or len(w_qp.scale) == 1)
    if per_channel:
        mult, shift = fp.fc_per_channel_multipliers(s_in, filter_scales(w_qp, channels), s_out)
        filter_offset = 0
    else:
        m, s = fp.fc_per_tensor_multiplier(s_in, w_qp.scale[0], s_out)
        mult, shift = np.array([m]), np.array([s])
        filter_offset = -int(w_qp.zero_point[0])
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    values = {"input_offset": -zp_in, "filter_offset": filter_offset, "output_offset": zp_out,
              "act_min": act_min, "act_max": act_max, "per_channel": int(per_channel)}
    return Struct("ek_fc_params", _ints(values)), _i32(mult), _i32(shift)


def pool_params(qp, *, pool, stride, pads, activation) -> Struct:
    s, zp = _pt(qp)
    act_min, act_max = fp.activation_range_quantized(activation, s, zp)
    return Struct("ek_pool_params", _ints({
        "stride_h": stride[0], "stride_w": stride[1], "filter_h": pool[0], "filter_w": pool[1],
        "pad_top": pads[0], "pad_left": pads[1], "act_min": act_min, "act_max": act_max}))


def add_params(kind: str, a_qp, b_qp, out_qp, *, activation) -> Struct:
    """``ek_add_params`` of ADD (``kind="add"``) or SUB (``"sub"``)."""
    (s1, z1), (s2, z2), (so, zo) = _pt(a_qp), _pt(b_qp), _pt(out_qp)
    derive = fp.add_multipliers if kind == "add" else fp.sub_multipliers
    (m1, sh1), (m2, sh2), (mo, sho) = derive(s1, s2, so, ADD_LEFT_SHIFT)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    return Struct("ek_add_params", _ints({
        "input1_offset": -z1, "input2_offset": -z2, "left_shift": ADD_LEFT_SHIFT,
        "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho, "output_offset": zo,
        "act_min": act_min, "act_max": act_max}))


def mul_params(a_qp, b_qp, out_qp, *, activation) -> Struct:
    (s1, z1), (s2, z2), (so, zo) = _pt(a_qp), _pt(b_qp), _pt(out_qp)
    m, s = fp.mul_multiplier(s1, s2, so)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    return Struct("ek_mul_params", _ints({
        "input1_offset": -z1, "input2_offset": -z2, "output_multiplier": m, "output_shift": s,
        "output_offset": zo, "act_min": act_min, "act_max": act_max}))


def broadcast_strides(shape, out_rank: int = 4) -> Struct:
    """Element strides of an operand (right-aligned against a rank-4 output) in the
    output's index space: its dense strides, 0 along dimensions of size 1 (broadcast)."""
    s4 = as4d(shape)
    packed = [int(np.prod(s4[i + 1:], dtype=np.int64)) for i in range(4)]
    strides = [0 if s4[i] == 1 else packed[i] for i in range(4)]
    return Struct("ek_strides4", dict(zip("nhwc", strides)))


def pad_params(paddings4, value: int) -> Struct:
    return Struct("ek_pad_params", {"before": [int(p[0]) for p in paddings4],
                                    "after": [int(p[1]) for p in paddings4], "value": int(value)})


def mean_multiplier(s_in: float, s_out: float, count: int) -> tuple[int, int]:
    """MEAN's (multiplier, shift): double(s_in) / double(s_out) folded with 1 / count as
    TFLM's QuantizedMeanOrSum folds it."""
    mult, shift = fp.requantize_multiplier(s_in, s_out)
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return int(fp.wrap_int32((mult << k) // count)), int(shift - k)


def mean_params(x_qp, out_qp, count: int) -> Struct:
    (s_in, zp_in), (s_out, zp_out) = _pt(x_qp), _pt(out_qp)
    m, s = mean_multiplier(s_in, s_out, count)
    return Struct("ek_mean_params", _ints({"input_offset": -zp_in, "output_offset": zp_out,
                                           "multiplier": m, "shift": s}))


def softmax_params(x_qp, beta: float) -> Struct:
    mult, left_shift = fp.preprocess_softmax_scaling(float(np.float32(beta)), _pt(x_qp)[0], 5)
    diff_min = -fp.calculate_input_radius(5, left_shift, 31)
    return Struct("ek_softmax_params", _ints({"input_multiplier": mult,
                                              "input_left_shift": left_shift,
                                              "diff_min": diff_min}))


def sigmoid_params(x_qp) -> Struct:
    """``ek_sigmoid_params`` of LOGISTIC and TANH."""
    s_in, zp_in = _pt(x_qp)
    mult, shift, radius = fp.logistic_tanh_input_params(s_in, 4)
    return Struct("ek_sigmoid_params", _ints({"input_offset": -zp_in, "input_multiplier": mult,
                                              "input_left_shift": shift,
                                              "input_range_radius": radius}))


def requant_params(x_qp, out_qp, *, act_min: int = -128, act_max: int = 127) -> Struct:
    """``ek_requant_params`` of int8 QUANTIZE (and RELU with its clamp)."""
    (s_in, zp_in), (s_out, zp_out) = _pt(x_qp), _pt(out_qp)
    m, s = fp.requantize_multiplier(s_in, s_out)
    return Struct("ek_requant_params", _ints({"input_offset": -zp_in, "output_offset": zp_out,
                                              "multiplier": m, "shift": s,
                                              "act_min": act_min, "act_max": act_max}))


def relu_params(x_qp, out_qp) -> Struct:
    zp_out = _pt(out_qp)[1]
    return requant_params(x_qp, out_qp, act_min=max(-128, zp_out), act_max=127)


def relu6_bounds(x_qp) -> tuple[int, int]:
    """RELU6's clamp of the raw values: [zp_in, quantized 6]."""
    s_in, zp_in = _pt(x_qp)
    six_q = fp.round_half_away(float(np.float32(6.0) / np.float32(s_in)))
    return zp_in, int(np.clip(six_q + zp_in, -128, 127))


def pad_value(value: float, out_qp) -> int:
    """The raw int8 fill of PAD: the output zero point, or the quantized constant as the
    reference interpreter computes it."""
    s, zp = _pt(out_qp)
    if value == 0.0:
        return zp
    return int(np.clip(np.round(value / out_qp.scale[0]) + zp, -128, 127))


def resize_bilinear_params(in_hw, out_hw, align_corners: bool, half_pixel_centers: bool) -> Struct:
    """``ek_resize_bilinear_params``: TFLM's 10-bit size ratios."""
    from edgekit.reference.resample_kernels import bilinear_scale_10

    return Struct("ek_resize_bilinear_params", _ints({
        "scale_10_h": bilinear_scale_10(in_hw[0], out_hw[0], align_corners),
        "scale_10_w": bilinear_scale_10(in_hw[1], out_hw[1], align_corners),
        "half_pixel_centers": int(bool(half_pixel_centers))}))


def _ints(values: dict) -> dict:
    return {k: (int(v) if not isinstance(v, list) else [int(x) for x in v]) for k, v in values.items()}


def _i32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(np.int32)


# ----------------------------------------------------------------------------- IR ops


class _Lowering:
    """Lowers one op; every failed check raises UnsupportedOpError naming op and node."""

    def __init__(self, graph: Graph, op: Op):
        self.g = graph
        self.op = op
        try:
            self.attrs = normalize_attrs(op.type, op.attrs)
        except ValueError as exc:
            raise self.unsupported(str(exc)) from None

    def unsupported(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.op.type.value, self.op.name,
                                  [t.value for t in SUPPORTED_OPS], detail)

    # -- tensors ------------------------------------------------------------
    def t(self, i: int):
        name = self.op.input(i)
        return None if name is None else self.g.tensor(name)

    @property
    def out(self):
        return self.g.tensor(self.op.outputs[0])

    def qp(self, tensor) -> QuantParams:
        q = tensor.quant
        if q is None:
            raise self.unsupported(f"tensor {tensor.name!r} has no quantization parameters")
        return q

    def per_tensor(self, tensor) -> QuantParams:
        q = self.qp(tensor)
        if not (q.is_per_tensor or len(q.scale) == 1):
            raise self.unsupported(f"tensor {tensor.name!r} must be quantized per tensor")
        return q

    def int8(self, tensor, what: str = "tensor"):
        if tensor.dtype is not DType.INT8:
            raise self.unsupported(f"{what} {tensor.name!r} is {tensor.dtype.value}; the MCU "
                                   "kernels take int8")
        return tensor

    def operand(self, tensor, ctype: str = "int8_t"):
        """An input: a constant array when the tensor is a constant, else an arena tensor."""
        if tensor.is_const:
            np_t = {"int8_t": np.int8, "float": np.float32}[ctype]
            return ConstArray(ctype, np.ascontiguousarray(tensor.data, np_t), "constant", tensor.name)
        return TensorRef(tensor.name, ctype)

    def output(self, ctype: str = "int8_t") -> TensorRef:
        return TensorRef(self.out.name, ctype, output=True)

    def require_4d(self, tensor):
        if len(tensor.shape) != 4:
            raise self.unsupported(f"tensor {tensor.name!r} must be 4-D (NHWC), got {list(tensor.shape)}")

    def rank_le4(self, tensor):
        if len(tensor.shape) > 4:
            raise self.unsupported(f"tensor {tensor.name!r} has rank {len(tensor.shape)}; the "
                                   "kernels take at most 4 dimensions")

    def call(self, kernel: str, function: str, args: list, **notes) -> KernelCall:
        return KernelCall(self.op.name, self.op.type.value, kernel, function, args, dict(notes))

    # -- ops ----------------------------------------------------------------
    def lower(self) -> KernelCall | None:
        t = self.op.type
        if t not in SUPPORTED_OPS:
            raise self.unsupported("no MCU kernel for this operator")
        if t in MOVEMENT_OPS:  # SPLIT / UNPACK write several outputs
            from edgekit.backends.c.lower_movement import lower_movement

            return lower_movement(self)
        if len(self.op.outputs) != 1:
            raise self.unsupported("ops with several outputs are not supported")
        if t in (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV):
            from edgekit.backends.c.lower_resample import lower_resample

            return lower_resample(self)
        if t is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
            from edgekit.backends.c.lower_recurrent import lower_lstm

            return lower_lstm(self)
        if t is OpType.SVDF:
            from edgekit.backends.c.lower_recurrent import lower_svdf

            return lower_svdf(self)
        if t.value in _REDUCTION_OPS:
            from edgekit.backends.c.lower_reduction import lower_reduction

            return lower_reduction(self)
        if t.value in ew_kernels.OPS:
            from edgekit.backends.c.lower_elementwise import lower_elementwise

            return lower_elementwise(self)
        method = getattr(self, "_" + t.value.lower())
        return method()

    def _conv_like(self, depthwise: bool) -> KernelCall:
        x, w, b = self.int8(self.t(0), "input"), self.int8(self.t(1), "filter"), self.t(2)
        y = self.int8(self.out, "output")
        self.require_4d(x)
        if not w.is_const:
            raise self.unsupported("the filter must be a constant")
        w_qp = self.qp(w)
        if any(z != 0 for z in w_qp.zero_point):
            raise self.unsupported("int8 convolutions need filter zero points of 0")
        a = self.attrs
        channels = w.shape[3] if depthwise else w.shape[0]
        struct, mult, shift = conv_params(
            self.per_tensor(x), w_qp, self.per_tensor(y), channels, stride=a["strides"],
            pads=a["pads"], dilation=a["dilations"], activation=a["activation"],
            depth_multiplier=a["depth_multiplier"] if depthwise else None)
        bias = self._bias(b, channels)
        args = [struct, ConstArray("int32_t", mult, "multiplier"), ConstArray("int32_t", shift, "shift"),
                dims4(x.shape), TensorRef(x.name), dims4(w.shape),
                ConstArray("int8_t", np.ascontiguousarray(w.data, np.int8), "weights", w.name),
                bias, dims4(y.shape), self.output()]
        if depthwise:
            return self.call("depthwise_conv2d", "ek_depthwise_conv2d_s8", args)
        return self.call("conv2d", "ek_conv2d_s8", args)

    def _bias(self, b, channels: int):
        if b is None:
            return None
        if not b.is_const or b.dtype is not DType.INT32 or tuple(b.shape) != (channels,):
            raise self.unsupported(f"the bias must be a constant int32 [{channels}] tensor")
        return ConstArray("int32_t", np.ascontiguousarray(b.data, np.int32), "bias", b.name)

    def _conv_2d(self):
        return self._conv_like(depthwise=False)

    def _depthwise_conv_2d(self):
        return self._conv_like(depthwise=True)

    def _fully_connected(self):
        x, w, b = self.int8(self.t(0), "input"), self.int8(self.t(1), "weights"), self.t(2)
        y = self.int8(self.out, "output")
        if not w.is_const or len(w.shape) != 2:
            raise self.unsupported("the weights must be a constant [Cout, K] tensor")
        cout, k = w.shape
        if x.size % k:
            raise self.unsupported(f"input {list(x.shape)} cannot be flattened to rows of {k}")
        w_qp = self.qp(w)
        struct, mult, shift = fc_params(self.per_tensor(x), w_qp, self.per_tensor(y), cout,
                                        activation=self.attrs["activation"])
        return self.call("fully_connected", "ek_fully_connected_s8", [
            struct, ConstArray("int32_t", mult, "multiplier"), ConstArray("int32_t", shift, "shift"),
            x.size // k, k, cout, TensorRef(x.name),
            ConstArray("int8_t", np.ascontiguousarray(w.data, np.int8), "weights", w.name),
            self._bias(b, cout), self.output()])

    def _pool(self, kind: str):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        self.require_4d(x)
        xq, yq = self.per_tensor(x), self.per_tensor(y)
        if np.float32(xq.scale[0]) != np.float32(yq.scale[0]) or xq.zero_point[0] != yq.zero_point[0]:
            raise self.unsupported("int8 pooling needs equal input and output quantization")
        a = self.attrs
        struct = pool_params(yq, pool=a["kernel"], stride=a["strides"], pads=a["pads"],
                             activation=a["activation"])
        return self.call(f"{kind}_pool2d", f"ek_{kind}_pool2d_s8",
                         [struct, dims4(x.shape), TensorRef(x.name), dims4(y.shape), self.output()])

    def _average_pool_2d(self):
        return self._pool("avg")

    def _max_pool_2d(self):
        return self._pool("max")

    def _binary(self, kind: str):
        a, b, y = self.int8(self.t(0), "input"), self.int8(self.t(1), "input"), self.int8(self.out, "output")
        for tt in (a, b, y):
            self.rank_le4(tt)
        if len(a.shape) > len(y.shape) or len(b.shape) > len(y.shape):
            raise self.unsupported("an input has a higher rank than the output")
        qa, qb, qy = self.per_tensor(a), self.per_tensor(b), self.per_tensor(y)
        act = self.attrs["activation"]
        struct = mul_params(qa, qb, qy, activation=act) if kind == "mul" else \
            add_params(kind, qa, qb, qy, activation=act)
        return self.call(kind, f"ek_{kind}_s8", [
            struct, dims4(as4d(y.shape)), self.operand(a), broadcast_strides(a.shape),
            self.operand(b), broadcast_strides(b.shape), self.output()])

    def _add(self):
        return self._binary("add")

    def _sub(self):
        return self._binary("sub")

    def _mul(self):
        return self._binary("mul")

    def _reshape(self):
        return None  # an alias of its input: no code (codegen copies when the plan did not alias)

    def _softmax(self):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        s_out, zp_out = _pt(self.per_tensor(y))
        if zp_out != SOFTMAX_OUT[1] or np.float32(s_out) != SOFTMAX_OUT[0]:
            raise self.unsupported("int8 softmax needs output scale 1/256 and zero point -128")
        depth = x.shape[-1] if x.shape else 1
        return self.call("softmax", "ek_softmax_s8", [
            softmax_params(self.per_tensor(x), self.attrs["beta"]), x.size // depth, depth,
            TensorRef(x.name), self.output()])

    def _relu(self):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        return self.call("relu", "ek_relu_s8", [relu_params(self.per_tensor(x), self.per_tensor(y)),
                                                x.size, TensorRef(x.name), self.output()])

    def _relu6(self):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        xq, yq = self.per_tensor(x), self.per_tensor(y)
        if np.float32(xq.scale[0]) != np.float32(yq.scale[0]) or xq.zero_point[0] != yq.zero_point[0]:
            raise self.unsupported("int8 relu6 needs equal input and output quantization")
        lo, hi = relu6_bounds(xq)
        return self.call("relu6", "ek_relu6_s8", [lo, hi, x.size, TensorRef(x.name), self.output()])

    def _sigmoid(self, kind: str, want):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        s_out, zp_out = _pt(self.per_tensor(y))
        if zp_out != want[1] or np.float32(s_out) != want[0]:
            raise self.unsupported(f"int8 {kind} needs output scale 1/{round(1 / float(want[0]))} "
                                   f"and zero point {want[1]}")
        return self.call(kind, f"ek_{kind}_s8", [sigmoid_params(self.per_tensor(x)), x.size,
                                                 TensorRef(x.name), self.output()])

    def _logistic(self):
        return self._sigmoid("logistic", LOGISTIC_OUT)

    def _tanh(self):
        return self._sigmoid("tanh", TANH_OUT)

    def _pad(self):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        self.rank_le4(x)
        xq, yq = self.per_tensor(x), self.per_tensor(y)
        if np.float32(xq.scale[0]) != np.float32(yq.scale[0]) or xq.zero_point[0] != yq.zero_point[0]:
            raise self.unsupported("int8 pad needs equal input and output quantization")
        flat = self.attrs["pads"]
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        if len(pairs) != len(x.shape) or any(v < 0 for p in pairs for v in p):
            raise self.unsupported(f"bad paddings {pairs} for a rank-{len(x.shape)} input")
        pairs4 = [(0, 0)] * (4 - len(pairs)) + pairs
        struct = pad_params(pairs4, pad_value(self.attrs["value"], yq))
        return self.call("pad", "ek_pad_s8", [struct, dims4(as4d(x.shape)), self.operand(x),
                                              self.output()])

    def _concatenation(self):
        y = self.int8(self.out, "output")
        if self.attrs["activation"] != "NONE":
            raise self.unsupported("int8 concatenation with a fused activation")
        yq = self.per_tensor(y)
        axis = self.attrs["axis"] % max(len(y.shape), 1)
        items, sizes = [], []
        for i in range(len(self.op.inputs)):
            x = self.int8(self.t(i), "input")
            q = self.per_tensor(x)
            if np.float32(q.scale[0]) != np.float32(yq.scale[0]) or q.zero_point[0] != yq.zero_point[0]:
                raise self.unsupported(f"input {x.name!r} is quantized unlike the output (insert a "
                                       "requantize)")
            items.append(self.operand(x))
            sizes.append(x.shape[axis])
        outer = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
        return self.call("concatenation", "ek_concatenation_s8", [
            len(items), PointerList(items), ConstArray("int32_t", np.array(sizes, np.int32), "table"),
            outer, inner, self.output()])

    def _mean(self):
        x, y = self.int8(self.t(0), "input"), self.int8(self.out, "output")
        self.rank_le4(x)
        rank = len(x.shape)
        axes = sorted({(int(a) + rank) % rank for a in self.attrs["axes"]})
        shift = 4 - rank
        mask = sum(1 << (a + shift) for a in axes)
        count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) if axes else 1
        if count == 0:
            raise self.unsupported("MEAN over an empty axis")
        return self.call("mean", "ek_mean_s8", [
            mean_params(self.per_tensor(x), self.per_tensor(y), count), dims4(as4d(x.shape)), mask,
            TensorRef(x.name), self.output()])

    def _quantize(self):
        x, y = self.t(0), self.int8(self.out, "output")
        yq = self.per_tensor(y)
        if x.dtype is DType.INT8:
            return self.call("requantize", "ek_requantize_s8", [
                requant_params(self.per_tensor(x), yq), x.size, TensorRef(x.name), self.output()])
        if x.dtype is not DType.FLOAT32:
            raise self.unsupported(f"QUANTIZE from {x.dtype.value}")
        s, zp = _pt(yq)
        return self.call("quantize", "ek_quantize_f32_s8", [
            F32(s), zp, x.size, TensorRef(x.name, "float"), self.output()])

    def _dequantize(self):
        x, y = self.int8(self.t(0), "input"), self.out
        if y.dtype is not DType.FLOAT32:
            raise self.unsupported(f"DEQUANTIZE to {y.dtype.value}")
        s, zp = _pt(self.per_tensor(x))
        return self.call("dequantize", "ek_dequantize_s8_f32", [
            F32(s), zp, x.size, TensorRef(x.name), self.output("float")])

    def _transpose(self):
        x = self.int8(self.t(0), "input")
        self.int8(self.out, "output")
        self.rank_le4(x)
        perm = [int(p) for p in self.attrs["perm"]]
        k = 4 - len(x.shape)
        perm4 = list(range(k)) + [p + k for p in perm]
        return self.call("transpose", "ek_transpose_s8", [
            dims4(as4d(x.shape)), ConstArray("int32_t", np.array(perm4, np.int32), "table"),
            self.operand(x), self.output()])


def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError for the first op whose type has no MCU kernel."""
    for op in graph.ops:
        if op.type not in SUPPORTED_OPS:
            raise UnsupportedOpError(op.type.value, op.name, [t.value for t in SUPPORTED_OPS],
                                     "no MCU kernel for this operator")


def lower_op(graph: Graph, op: Op, features=None, variant: str = "auto") -> KernelCall | None:
    """The kernel call of ``op`` (None for RESHAPE, an alias); raises UnsupportedOpError.
    With the target's ``features`` (and kernel ``variant``), a conv or fully-connected layer
    may get the packed kernel instead (``edgekit.backends.c.packed``: weights in the
    kernel's layout, chosen per layer by a cost model); without them (model packages) the
    generic kernels of every target."""
    call = _Lowering(graph, op).lower()
    if features is None:
        return call
    from edgekit.backends.c.mve_fold import fold_input_offset
    from edgekit.backends.c.packed import prefer_packed

    return fold_input_offset(prefer_packed(call, features, variant=variant), features, variant)
