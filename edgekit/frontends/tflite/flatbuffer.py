"""A bounds-checked reader for TensorFlow Lite (``.tflite``) flatbuffers.

The generated flatbuffers accessors trust the file: a corrupt offset makes them
raise ``IndexError``/``struct.error``, read garbage, or try to allocate
gigabytes.  This module reads the TFLite schema by hand instead and checks
every offset, length and index against the file before using it, so that any
malformed input ends in :class:`~edgekit.errors.ModelFormatError` with a
message that names the file and the broken part.

Plain ``struct`` and ``numpy`` do the reading; LiteRT and TensorFlow are never
imported.

Field slots and defaults follow ``tflite/schema.fbs`` (schema version 3):

* ``Model``: version(0) operator_codes(1) subgraphs(2) description(3)
  buffers(4) metadata_buffer(5) metadata(6) signature_defs(7)
* ``OperatorCode``: deprecated_builtin_code:int8(0) custom_code(1)
  version:int32=1(2) builtin_code:int32(3)
* ``SubGraph``: tensors(0) inputs(1) outputs(2) operators(3) name(4)
* ``Tensor``: shape(0) type:int8(1) buffer:uint32(2) name(3)
  quantization(4) is_variable(5) sparsity(6) shape_signature(7)
* ``QuantizationParameters``: min(0) max(1) scale(2) zero_point:[int64](3)
  details_type(4) details(5) quantized_dimension(6)
* ``Buffer``: data:[ubyte](0) offset:uint64(1) size:uint64(2)
* ``Metadata``: name(0) buffer:uint32(1)
* ``Operator``: opcode_index:uint32(0) inputs(1) outputs(2)
  builtin_options_type:uint8(3) builtin_options(4) custom_options(5)
  custom_options_format(6) mutating_variable_inputs(7) intermediates(8)
  large_custom_options_offset(9) large_custom_options_size(10)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from edgekit.errors import BadInputError, ModelFormatError
from edgekit.frontends.tflite.schema_enums import (
    ActivationFunctionType,
    BuiltinOptions,
    FullyConnectedOptionsWeightsFormat,
    Padding,
    TensorType,
    numpy_dtype,
    tensor_type_name,
)

__all__ = [
    "TFLITE_FILE_IDENTIFIER",
    "TFLITE_SCHEMA_VERSION",
    "TFLiteModel",
    "OperatorCode",
    "SubGraph",
    "Tensor",
    "Quantization",
    "Operator",
    "read_tflite",
    "read_tflite_file",
]

TFLITE_FILE_IDENTIFIER = b"TFL3"
TFLITE_SCHEMA_VERSION = 3

# Nesting in the TFLite schema is fixed and shallow (Model > SubGraph >
# Operator > options); anything deeper than this is a bug or an attack.
_MAX_DEPTH = 16
# flatbuffers offsets are 32-bit and must be positive as signed values.
_MAX_UOFFSET = 0x7FFFFFFF


# --------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorCode:
    """An entry of ``Model.operator_codes``.

    ``builtin_code`` is ``max(deprecated_builtin_code, builtin_code)``, as the
    schema prescribes for reading files written before and after the switch
    to a 32-bit code.
    """

    builtin_code: int
    custom_code: str | None
    version: int


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``.

    ``scale`` (float32) and ``zero_point`` (int64) have one entry per tensor,
    or one per slice along ``quantized_dimension`` for per-channel tensors.
    ``min``/``max`` are the optional float ranges (``None`` when absent).
    The arrays are read-only.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantization):
            return NotImplemented

        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")

        return (
            self.quantized_dimension == other.quantized_dimension
            and same(self.scale, other.scale)
            and same(self.zero_point, other.zero_point)
            and same(self.min, other.min)
            and same(self.max, other.max)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays


@dataclass(frozen=True)
class Tensor:
    """A tensor of a subgraph. ``type`` is a :class:`TensorType` value."""

    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    type: int
    buffer: int
    quantization: Quantization | None
    is_variable: bool
    has_sparsity: bool = False

    @property
    def type_name(self) -> str:
        return tensor_type_name(self.type)


@dataclass(frozen=True)
class Operator:
    """An operator of a subgraph.

    ``inputs``/``outputs`` are tensor indices, ``-1`` marking an omitted
    optional tensor.  ``options`` holds the parsed builtin options table
    (keys are the schema's field names; padding and activations are given by
    name); it is ``{}`` for option tables this reader does not decode.
    ``custom_options`` holds the raw custom options bytes (custom ops).
    """

    opcode_index: int
    inputs: list[int]
    outputs: list[int]
    builtin_options_type: int
    options: dict[str, Any]
    custom_options: bytes = b""


@dataclass(frozen=True)
class SubGraph:
    name: str
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    operators: list[Operator]


@dataclass(frozen=True)
class TFLiteModel:
    """A parsed ``.tflite`` file.

    ``buffers[i]`` is the content of buffer ``i`` (from the flatbuffer's
    ``data`` vector, or from the region after the flatbuffer that the
    buffer's ``offset``/``size`` point at); ``metadata`` maps each metadata
    entry's name to the content of the buffer it names.
    """

    version: int
    description: str
    operator_codes: list[OperatorCode]
    subgraphs: list[SubGraph]
    buffers: list[bytes]
    metadata: dict[str, bytes]


# --------------------------------------------------------------------------
# Builtin options tables
# --------------------------------------------------------------------------

# kind -> how the raw field is read: (struct format, size)
_SCALAR_KINDS: dict[str, tuple[str, int]] = {
    "i8": ("<b", 1),
    "u8": ("<B", 1),
    "bool": ("<B", 1),
    "i32": ("<i", 4),
    "f32": ("<f", 4),
    "padding": ("<b", 1),
    "act": ("<b", 1),
    "wfmt": ("<b", 1),
}

# (field name, vtable slot, kind, schema default).  Kind "ivec" is a
# [int] vector: a tuple, or the default when absent.
_Field = tuple[str, int, str, Any]

_CONV2D: tuple[_Field, ...] = (
    ("padding", 0, "padding", "SAME"),
    ("stride_w", 1, "i32", 0),
    ("stride_h", 2, "i32", 0),
    ("fused_activation_function", 3, "act", "NONE"),
    ("dilation_w_factor", 4, "i32", 1),
    ("dilation_h_factor", 5, "i32", 1),
    ("quantized_bias_type", 6, "i8", 0),
)
_DEPTHWISE: tuple[_Field, ...] = (
    ("padding", 0, "padding", "SAME"),
    ("stride_w", 1, "i32", 0),
    ("stride_h", 2, "i32", 0),
    ("depth_multiplier", 3, "i32", 0),
    ("fused_activation_function", 4, "act", "NONE"),
    ("dilation_w_factor", 5, "i32", 1),
    ("dilation_h_factor", 6, "i32", 1),
)
_FULLY_CONNECTED: tuple[_Field, ...] = (
    ("fused_activation_function", 0, "act", "NONE"),
    ("weights_format", 1, "wfmt", "DEFAULT"),
    ("keep_num_dims", 2, "bool", False),
    ("asymmetric_quantize_inputs", 3, "bool", False),
    ("quantized_bias_type", 4, "i8", 0),
)
_POOL2D: tuple[_Field, ...] = (
    ("padding", 0, "padding", "SAME"),
    ("stride_w", 1, "i32", 0),
    ("stride_h", 2, "i32", 0),
    ("filter_width", 3, "i32", 0),
    ("filter_height", 4, "i32", 0),
    ("fused_activation_function", 5, "act", "NONE"),
)
_ADD_SUB: tuple[_Field, ...] = (
    ("fused_activation_function", 0, "act", "NONE"),
    ("pot_scale_int16", 1, "bool", True),
)
_ACT_ONLY: tuple[_Field, ...] = (("fused_activation_function", 0, "act", "NONE"),)
_TRANSPOSE_CONV: tuple[_Field, ...] = (
    ("padding", 0, "padding", "SAME"),
    ("stride_w", 1, "i32", 0),
    ("stride_h", 2, "i32", 0),
    ("fused_activation_function", 3, "act", "NONE"),
    ("quantized_bias_type", 4, "i8", 0),
)

_OPTION_FIELDS: dict[int, tuple[_Field, ...]] = {
    BuiltinOptions.Conv2DOptions: _CONV2D,
    BuiltinOptions.DepthwiseConv2DOptions: _DEPTHWISE,
    BuiltinOptions.FullyConnectedOptions: _FULLY_CONNECTED,
    BuiltinOptions.Pool2DOptions: _POOL2D,
    BuiltinOptions.AddOptions: _ADD_SUB,
    BuiltinOptions.SubOptions: _ADD_SUB,
    BuiltinOptions.MulOptions: _ACT_ONLY,  # this schema has no pot_scale_int16 for Mul
    BuiltinOptions.DivOptions: _ACT_ONLY,
    BuiltinOptions.ReshapeOptions: (("new_shape", 0, "ivec", None),),
    BuiltinOptions.SoftmaxOptions: (("beta", 0, "f32", 0.0),),
    BuiltinOptions.ConcatenationOptions: (
        ("axis", 0, "i32", 0),
        ("fused_activation_function", 1, "act", "NONE"),
    ),
    BuiltinOptions.ReducerOptions: (("keep_dims", 0, "bool", False),),
    BuiltinOptions.SqueezeOptions: (("squeeze_dims", 0, "ivec", ()),),
    BuiltinOptions.LeakyReluOptions: (("alpha", 0, "f32", 0.0),),
    BuiltinOptions.GeluOptions: (("approximate", 0, "bool", False),),
    BuiltinOptions.GatherOptions: (("axis", 0, "i32", 0), ("batch_dims", 1, "i32", 0)),
    BuiltinOptions.SplitOptions: (("num_splits", 0, "i32", 0),),
    BuiltinOptions.PackOptions: (("values_count", 0, "i32", 0), ("axis", 1, "i32", 0)),
    BuiltinOptions.UnpackOptions: (("num", 0, "i32", 0), ("axis", 1, "i32", 0)),
    BuiltinOptions.StridedSliceOptions: (
        ("begin_mask", 0, "i32", 0), ("end_mask", 1, "i32", 0), ("ellipsis_mask", 2, "i32", 0),
        ("new_axis_mask", 3, "i32", 0), ("shrink_axis_mask", 4, "i32", 0), ("offset", 5, "bool", False),
    ),
    BuiltinOptions.SplitVOptions: (("num_splits", 0, "i32", 0),),
    BuiltinOptions.DepthToSpaceOptions: (("block_size", 0, "i32", 0),),
    BuiltinOptions.SpaceToDepthOptions: (("block_size", 0, "i32", 0),),
    BuiltinOptions.CastOptions: (("in_data_type", 0, "i8", 0), ("out_data_type", 1, "i8", 0)),
    BuiltinOptions.ResizeBilinearOptions: (
        ("align_corners", 2, "bool", False),
        ("half_pixel_centers", 3, "bool", False),
    ),
    BuiltinOptions.ResizeNearestNeighborOptions: (
        ("align_corners", 0, "bool", False),
        ("half_pixel_centers", 1, "bool", False),
    ),
    BuiltinOptions.TransposeConvOptions: _TRANSPOSE_CONV,
    BuiltinOptions.BatchMatMulOptions: (
        ("adj_x", 0, "bool", False),
        ("adj_y", 1, "bool", False),
        ("asymmetric_quantize_inputs", 2, "bool", False),
    ),
    BuiltinOptions.L2NormOptions: _ACT_ONLY,
    BuiltinOptions.ArgMaxOptions: (("output_type", 0, "i8", 0),),
    BuiltinOptions.ArgMinOptions: (("output_type", 0, "i8", 0),),
    # Tables without fields: decoded as {} like every table not listed here.
    BuiltinOptions.PadOptions: (),
    BuiltinOptions.PadV2Options: (),
    BuiltinOptions.TransposeOptions: (),
    BuiltinOptions.QuantizeOptions: (),
    BuiltinOptions.DequantizeOptions: (),
    BuiltinOptions.HardSwishOptions: (),
    BuiltinOptions.SVDFOptions: (
        ("rank", 0, "i32", 0), ("fused_activation_function", 1, "act", "NONE"),
        ("asymmetric_quantize_inputs", 2, "bool", False),
    ),
    BuiltinOptions.UnidirectionalSequenceLSTMOptions: (
        ("fused_activation_function", 0, "act", "NONE"), ("cell_clip", 1, "f32", 0.0), ("proj_clip", 2, "f32", 0.0),
        ("time_major", 3, "bool", False), ("asymmetric_quantize_inputs", 4, "bool", False),
        ("diagonal_recurrent_tensors", 5, "bool", False),
    ),
}

_PADDING_NAMES = {int(p): p.name for p in Padding}
_ACTIVATION_NAMES = {int(a): a.name for a in ActivationFunctionType}
_WEIGHTS_FORMAT_NAMES = {int(w): w.name for w in FullyConnectedOptionsWeightsFormat}
_ENUM_NAMES = {"padding": _PADDING_NAMES, "act": _ACTIVATION_NAMES, "wfmt": _WEIGHTS_FORMAT_NAMES}
_VALID_TENSOR_TYPES = frozenset(int(t) for t in TensorType)


# --------------------------------------------------------------------------
# Low-level reading
# --------------------------------------------------------------------------


def _format_error(source: str, detail: str) -> ModelFormatError:
    err = ModelFormatError(f"{source}: {detail}")
    err.detail = detail  # type: ignore[attr-defined]  # message without the source prefix
    return err


class _Reader:
    """Checked access to the bytes of one flatbuffer."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.n = len(data)
        self.source = source
        # Total work allowed: a well-formed file reads each byte about once,
        # plus a fixed cost per table.  Corrupt files can make many offsets
        # point at one large vector; the budget stops that from taking
        # quadratic time or memory.
        self.budget = 8 * self.n + (1 << 22)

    def fail(self, detail: str) -> NoReturn:
        raise _format_error(self.source, detail)

    def charge(self, units: int, what: str) -> None:
        self.budget -= units
        if self.budget < 0:
            self.fail(
                f"{what}: the file references far more data than it contains "
                "(overlapping or repeated offsets); it is corrupt"
            )

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            self.fail(
                f"{what} (bytes {pos}..{pos + size}) runs past the end of the file "
                f"({self.n} bytes); the file is truncated or corrupt"
            )

    def unpack(self, fmt: str, size: int, pos: int, what: str) -> Any:
        self.need(pos, size, what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u16(self, pos: int, what: str) -> int:
        return self.unpack("<H", 2, pos, what)

    def u32(self, pos: int, what: str) -> int:
        return self.unpack("<I", 4, pos, what)

    def i32(self, pos: int, what: str) -> int:
        return self.unpack("<i", 4, pos, what)

    def follow(self, pos: int, what: str) -> int:
        """Target of the uoffset stored at ``pos``."""
        off = self.u32(pos, what)
        if off == 0 or off > _MAX_UOFFSET:
            self.fail(f"{what}: invalid offset {off} at byte {pos}")
        target = pos + off
        if target + 4 > self.n:
            self.fail(
                f"{what}: offset at byte {pos} points to byte {target}, past the end of "
                f"the file ({self.n} bytes); the file is truncated or corrupt"
            )
        return target

    def table(self, pos: int, what: str, depth: int) -> _Table:
        if depth > _MAX_DEPTH:
            self.fail(f"{what}: tables nested deeper than {_MAX_DEPTH} levels")
        self.charge(16, what)
        soff = self.i32(pos, f"{what} header")
        vt = pos - soff
        if vt < 0 or vt + 4 > self.n:
            self.fail(
                f"{what} at byte {pos}: its vtable offset points outside the file (byte {vt})"
            )
        vlen = self.u16(vt, f"{what} vtable")
        tlen = self.u16(vt + 2, f"{what} vtable")
        if vlen < 4 or vlen % 2:
            self.fail(f"{what} at byte {pos}: invalid vtable size {vlen}")
        self.need(vt, vlen, f"{what} vtable")
        if tlen < 4:
            self.fail(f"{what} at byte {pos}: invalid table size {tlen}")
        self.need(pos, tlen, what)
        return _Table(self, pos, vt, vlen, what, depth)

    def vector(self, pos: int, elem_size: int, what: str) -> tuple[int, int]:
        """(start, count) of the vector whose length word is at ``pos``."""
        count = self.u32(pos, f"{what} length")
        start = pos + 4
        # Checked before anything is allocated: a length of 2**31 fails here.
        if count * elem_size > self.n - start:
            self.fail(
                f"{what}: vector of {count} elements at byte {pos} runs past the end of "
                f"the file ({self.n} bytes); the file is truncated or corrupt"
            )
        self.charge(max(count * elem_size, 1), what)
        return start, count


class _Table:
    __slots__ = ("r", "pos", "vt", "vlen", "what", "depth")

    def __init__(self, r: _Reader, pos: int, vt: int, vlen: int, what: str, depth: int):
        self.r = r
        self.pos = pos
        self.vt = vt
        self.vlen = vlen
        self.what = what
        self.depth = depth

    def _field(self, slot: int) -> int:
        voff = 4 + 2 * slot
        if voff + 2 > self.vlen:
            return 0
        o = self.r.u16(self.vt + voff, f"{self.what} vtable")
        return self.pos + o if o else 0

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, fmt: str, size: int, default: Any, name: str) -> Any:
        p = self._field(slot)
        if not p:
            return default
        return self.r.unpack(fmt, size, p, f"{self.what}.{name}")

    def u8(self, slot: int, name: str, default: int = 0) -> int:
        return self.scalar(slot, "<B", 1, default, name)

    def i8(self, slot: int, name: str, default: int = 0) -> int:
        return self.scalar(slot, "<b", 1, default, name)

    def bool(self, slot: int, name: str, default: bool = False) -> bool:
        return bool(self.scalar(slot, "<B", 1, default, name))

    def i32(self, slot: int, name: str, default: int = 0) -> int:
        return self.scalar(slot, "<i", 4, default, name)

    def u32(self, slot: int, name: str, default: int = 0) -> int:
        return self.scalar(slot, "<I", 4, default, name)

    def u64(self, slot: int, name: str, default: int = 0) -> int:
        return self.scalar(slot, "<Q", 8, default, name)

    def _target(self, slot: int, name: str) -> int | None:
        p = self._field(slot)
        if not p:
            return None
        return self.r.follow(p, f"{self.what}.{name}")

    def table(self, slot: int, name: str) -> _Table | None:
        t = self._target(slot, name)
        if t is None:
            return None
        return self.r.table(t, f"{self.what}.{name}", self.depth + 1)

    def raw_vector(self, slot: int, elem_size: int, name: str) -> tuple[int, int] | None:
        t = self._target(slot, name)
        if t is None:
            return None
        return self.r.vector(t, elem_size, f"{self.what}.{name}")

    def bytes(self, slot: int, name: str) -> bytes | None:
        v = self.raw_vector(slot, 1, name)
        if v is None:
            return None
        start, count = v
        return self.r.data[start : start + count]

    def string(self, slot: int, name: str) -> str | None:
        b = self.bytes(slot, name)
        if b is None:
            return None
        return b.decode("utf-8", errors="replace")

    def ints(self, slot: int, name: str) -> tuple[int, ...] | None:
        v = self.raw_vector(slot, 4, name)
        if v is None:
            return None
        start, count = v
        return struct.unpack_from(f"<{count}i", self.r.data, start)

    def array(self, slot: int, dtype: str, name: str) -> np.ndarray | None:
        dt = np.dtype(dtype)
        v = self.raw_vector(slot, dt.itemsize, name)
        if v is None:
            return None
        start, count = v
        arr = np.frombuffer(self.r.data, dtype=dt, count=count, offset=start).copy()
        arr.setflags(write=False)
        return arr

    def tables(self, slot: int, name: str) -> list[_Table]:
        v = self.raw_vector(slot, 4, name)
        if v is None:
            return []
        start, count = v
        out = []
        for i in range(count):
            what = f"{self.what}.{name}[{i}]"
            target = self.r.follow(start + 4 * i, what)
            out.append(self.r.table(target, what, self.depth + 1))
        return out


# --------------------------------------------------------------------------
# Schema-level parsing
# --------------------------------------------------------------------------


def _parse_options(r: _Reader, op_type: int, tab: _Table | None, where: str) -> dict[str, Any]:
    spec = _OPTION_FIELDS.get(op_type)
    if not spec:
        return {}
    opts: dict[str, Any] = {}
    for name, slot, kind, default in spec:
        if kind == "ivec":
            value = tab.ints(slot, name) if tab is not None else None
            opts[name] = default if value is None else tuple(value)
            continue
        fmt, size = _SCALAR_KINDS[kind]
        if tab is None:
            opts[name] = default
            continue
        names = _ENUM_NAMES.get(kind)
        if names is not None:
            raw = tab.scalar(slot, fmt, size, None, name)
            if raw is None:
                opts[name] = default
            elif raw in names:
                opts[name] = names[raw]
            else:
                r.fail(f"{where}: unknown {name} value {raw}")
        elif kind == "bool":
            opts[name] = tab.bool(slot, name, default)
        else:
            value = tab.scalar(slot, fmt, size, default, name)
            opts[name] = float(value) if kind == "f32" else int(value)
    return opts


def _parse_buffers(r: _Reader, root: _Table) -> list[bytes]:
    buffers: list[bytes] = []
    for i, bt in enumerate(root.tables(4, "buffers")):
        offset = bt.u64(1, "offset")
        size = bt.u64(2, "size")
        if offset > 1:
            # Data stored outside the flatbuffer (models over 2 GB); the offset
            # counts from the start of the file.
            if offset > r.n or size > r.n - offset:
                r.fail(
                    f"buffer {i}: external data at offset {offset} with size {size} "
                    f"runs past the end of the file ({r.n} bytes)"
                )
            r.charge(size, f"buffer {i}")
            buffers.append(r.data[offset : offset + size])
        else:
            buffers.append(bt.bytes(0, "data") or b"")
    return buffers


def _parse_operator_codes(r: _Reader, root: _Table) -> list[OperatorCode]:
    codes = []
    for i, ct in enumerate(root.tables(1, "operator_codes")):
        deprecated = ct.i8(0, "deprecated_builtin_code")
        builtin = ct.i32(3, "builtin_code")
        code = max(deprecated, builtin)
        if code < 0:
            r.fail(f"operator code {i}: invalid builtin code {code}")
        codes.append(
            OperatorCode(
                builtin_code=code,
                custom_code=ct.string(1, "custom_code"),
                version=ct.i32(2, "version", 1),
            )
        )
    return codes


def _parse_quantization(
    r: _Reader, qt: _Table, shape: tuple[int, ...], where: str
) -> Quantization | None:
    scale = qt.array(2, "<f4", "scale")
    if scale is None or scale.size == 0:
        return None
    zero_point = qt.array(3, "<i8", "zero_point")
    n_zp = 0 if zero_point is None else zero_point.size
    if n_zp != scale.size:
        r.fail(
            f"{where}: quantization has {scale.size} scale value(s) but {n_zp} "
            "zero point(s); they must have the same length"
        )
    qdim = qt.i32(6, "quantized_dimension")
    if qdim < 0:
        r.fail(f"{where}: negative quantized_dimension {qdim}")
    if scale.size > 1:
        if qdim >= len(shape):
            r.fail(
                f"{where}: quantized_dimension {qdim} is out of range for a tensor of "
                f"rank {len(shape)}"
            )
        if shape[qdim] != scale.size:
            r.fail(
                f"{where}: {scale.size} per-channel scales but dimension {qdim} of the "
                f"shape {list(shape)} has size {shape[qdim]}"
            )
    mins = qt.array(0, "<f4", "min")
    maxs = qt.array(1, "<f4", "max")
    assert zero_point is not None
    return Quantization(
        scale=scale,
        zero_point=zero_point,
        quantized_dimension=qdim,
        min=mins if mins is not None and mins.size else None,
        max=maxs if maxs is not None and maxs.size else None,
    )


def _byte_size(shape: tuple[int, ...], itemsize: int, limit: int) -> int:
    """Bytes a dense tensor of ``shape`` needs.

    Exact for ordinary ranks; for absurd ranks (a corrupt file) counting stops
    once the size passes ``limit``, so the result is then only "> limit".
    """
    if len(shape) <= 64 or 0 in shape:
        return itemsize * math.prod(shape)
    size = itemsize
    for d in shape:
        size *= d
        if size > limit:
            break
    return size


def _parse_tensor(r: _Reader, tt: _Table, where: str, buffers: list[bytes]) -> Tensor:
    name = tt.string(3, "name") or ""
    label = f"{where} ({name!r})" if name else where
    shape = tuple(tt.ints(0, "shape") or ())
    for d in shape:
        if d < 0:
            r.fail(f"{label}: negative dimension {d} in shape {list(shape)}")
    sig = tt.ints(7, "shape_signature")
    if sig is not None:
        sig = tuple(sig)
        for d in sig:
            if d < -1:
                r.fail(f"{label}: invalid dimension {d} in shape_signature {list(sig)}")
    ttype = tt.i8(1, "type")
    if ttype not in _VALID_TENSOR_TYPES:
        r.fail(f"{label}: unknown tensor type {ttype}")
    buf = tt.u32(2, "buffer")
    if buf >= len(buffers) and not (buf == 0 and not buffers):
        r.fail(f"{label}: buffer index {buf} out of range (the model has {len(buffers)} buffers)")
    has_sparsity = tt.has(6)
    if buffers and buf < len(buffers) and buffers[buf] and not has_sparsity:
        dt = numpy_dtype(ttype)
        if dt is not None:
            expected = _byte_size(shape, dt.itemsize, len(buffers[buf]))
            if len(buffers[buf]) != expected:
                needs = f"needs {expected}" if len(shape) <= 64 else "needs more"
                r.fail(
                    f"{label}: buffer {buf} holds {len(buffers[buf])} bytes but a "
                    f"{tensor_type_name(ttype)} tensor of shape {list(shape)} {needs}"
                )
    qt = tt.table(4, "quantization")
    quant = _parse_quantization(r, qt, shape, label) if qt is not None else None
    return Tensor(
        name=name,
        shape=shape,
        shape_signature=sig,
        type=ttype,
        buffer=buf,
        quantization=quant,
        is_variable=tt.bool(5, "is_variable"),
        has_sparsity=has_sparsity,
    )


def _check_tensor_indices(
    r: _Reader, indices: tuple[int, ...], n_tensors: int, where: str, allow_absent: bool
) -> list[int]:
    lo = -1 if allow_absent else 0
    for idx in indices:
        if idx < lo or idx >= n_tensors:
            r.fail(
                f"{where}: tensor index {idx} out of range (the subgraph has {n_tensors} tensors)"
            )
    return list(indices)


def _parse_operator(
    r: _Reader, ot: _Table, where: str, n_codes: int, n_tensors: int
) -> Operator:
    opcode_index = ot.u32(0, "opcode_index")
    if opcode_index >= n_codes:
        r.fail(
            f"{where}: opcode_index {opcode_index} out of range "
            f"(the model has {n_codes} operator codes)"
        )
    inputs = _check_tensor_indices(
        r, ot.ints(1, "inputs") or (), n_tensors, f"{where} inputs", True
    )
    outputs = _check_tensor_indices(
        r, ot.ints(2, "outputs") or (), n_tensors, f"{where} outputs", True
    )
    _check_tensor_indices(
        r, ot.ints(8, "intermediates") or (), n_tensors, f"{where} intermediates", True
    )
    op_type = ot.u8(3, "builtin_options_type")
    opts_table = ot.table(4, "builtin_options") if op_type != 0 else None
    options = _parse_options(r, op_type, opts_table, where)
    custom = ot.bytes(5, "custom_options") or b""
    large_off = ot.u64(9, "large_custom_options_offset")
    large_size = ot.u64(10, "large_custom_options_size")
    if large_off > 1:
        if large_off > r.n or large_size > r.n - large_off:
            r.fail(
                f"{where}: custom options at offset {large_off} with size {large_size} "
                f"run past the end of the file ({r.n} bytes)"
            )
        r.charge(large_size, where)
        custom = r.data[large_off : large_off + large_size]
    return Operator(
        opcode_index=opcode_index,
        inputs=inputs,
        outputs=outputs,
        builtin_options_type=op_type,
        options=options,
        custom_options=custom,
    )


def _parse_subgraph(
    r: _Reader, st: _Table, index: int, n_codes: int, buffers: list[bytes]
) -> SubGraph:
    where = f"subgraph {index}"
    tensors = [
        _parse_tensor(r, tt, f"{where} tensor {i}", buffers)
        for i, tt in enumerate(st.tables(0, "tensors"))
    ]
    n = len(tensors)
    inputs = _check_tensor_indices(r, st.ints(1, "inputs") or (), n, f"{where} inputs", False)
    outputs = _check_tensor_indices(r, st.ints(2, "outputs") or (), n, f"{where} outputs", False)
    operators = [
        _parse_operator(r, ot, f"{where} operator {i}", n_codes, n)
        for i, ot in enumerate(st.tables(3, "operators"))
    ]
    return SubGraph(
        name=st.string(4, "name") or "",
        tensors=tensors,
        inputs=inputs,
        outputs=outputs,
        operators=operators,
    )


def _parse_model(r: _Reader) -> TFLiteModel:
    root_pos = r.u32(0, "root table offset")
    if root_pos < 4 or root_pos + 4 > r.n:
        r.fail(f"root table offset {root_pos} is outside the file ({r.n} bytes)")
    root = r.table(root_pos, "Model", 0)
    version = root.u32(0, "version")
    description = root.string(3, "description") or ""
    buffers = _parse_buffers(r, root)
    codes = _parse_operator_codes(r, root)
    subgraph_tables = root.tables(2, "subgraphs")
    if not subgraph_tables:
        r.fail("the model has no subgraphs")
    subgraphs = [
        _parse_subgraph(r, st, i, len(codes), buffers) for i, st in enumerate(subgraph_tables)
    ]
    metadata: dict[str, bytes] = {}
    for i, mt in enumerate(root.tables(6, "metadata")):
        name = mt.string(0, "name") or ""
        buf = mt.u32(1, "buffer")
        if buf >= len(buffers):
            r.fail(
                f"metadata {i} ({name!r}): buffer index {buf} out of range "
                f"(the model has {len(buffers)} buffers)"
            )
        metadata[name] = buffers[buf]
    return TFLiteModel(
        version=version,
        description=description,
        operator_codes=codes,
        subgraphs=subgraphs,
        buffers=buffers,
        metadata=metadata,
    )


def _guess_format(data: bytes) -> str:
    if data.startswith(b"\x89HDF"):
        return " (this looks like an HDF5 / Keras .h5 file)"
    if data.startswith(b"PK\x03\x04"):
        return " (this looks like a zip archive, e.g. a .keras file)"
    return ""


def _parse(data: bytes, source: str) -> TFLiteModel:
    if len(data) < 8:
        raise _format_error(
            source, f"file is too short to be a TFLite model ({len(data)} bytes; need at least 8)"
        )
    ident = data[4:8]
    if ident == TFLITE_FILE_IDENTIFIER:
        return _parse_model(_Reader(data, source))
    # Flatbuffers may omit the file identifier.  Accept such a file only if
    # it parses cleanly as a schema-version-3 model.
    head = f"file identifier is {ident!r}, expected {TFLITE_FILE_IDENTIFIER!r}"
    try:
        model = _parse_model(_Reader(data, source))
    except ModelFormatError as e:
        detail = getattr(e, "detail", str(e))
        raise _format_error(
            source,
            f"not a TFLite model: {head}{_guess_format(data)}, and the data does not "
            f"parse as a TFLite flatbuffer ({detail})",
        ) from e
    if model.version != TFLITE_SCHEMA_VERSION:
        raise _format_error(
            source,
            f"not a TFLite model: {head}, and the root table's schema version is "
            f"{model.version}, not {TFLITE_SCHEMA_VERSION}",
        )
    return model


def read_tflite(data: bytes, source: str = "<bytes>") -> TFLiteModel:
    """Parse the bytes of a ``.tflite`` file.

    ``source`` names the data in error messages.  Raises
    :class:`~edgekit.errors.ModelFormatError` for any truncated, corrupt or
    non-TFLite input.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"read_tflite expects bytes, not {type(data).__name__}")
    try:
        return _parse(data, source)
    except ModelFormatError:
        raise
    except RecursionError as e:
        raise _format_error(source, "malformed TFLite file: structure nested too deeply") from e
    except MemoryError as e:
        raise _format_error(source, "malformed TFLite file: it asks for too much memory") from e
    except Exception as e:  # last line of defence: never leak a low-level error
        raise _format_error(
            source, f"malformed TFLite file ({type(e).__name__}: {e})"
        ) from e


def read_tflite_file(path: str | PathLike[str]) -> TFLiteModel:
    """Read and parse a ``.tflite`` file.

    Raises :class:`~edgekit.errors.BadInputError` if the file cannot be read
    and :class:`~edgekit.errors.ModelFormatError` if it is not a valid model.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BadInputError(f"{p}: cannot read model file: {e.strerror or e}") from e
    return read_tflite(data, source=str(p))

