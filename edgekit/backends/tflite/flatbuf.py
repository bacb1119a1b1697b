"""Serialize a lowered model to TFLite flatbuffer bytes with ``flatbuffers.Builder``.

This module knows the schema's tables and field slots (the same facts the reader in
``edgekit.frontends.tflite.flatbuffer`` documents) and nothing about the IR; the
lowering in ``writer.py`` fills the plain records below.

Layout rules kept here:

* file identifier ``TFL3``, ``Model.version`` 3;
* every non-empty buffer's data starts on a 16-byte boundary of the file (TFLite
  Micro reads int32 / float constants in place);
* scalars are always written, defaults included, so a reader never depends on a
  schema default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import flatbuffers
import numpy as np

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
DATA_ALIGNMENT = 16

# Table slots (tflite/schema.fbs, schema version 3).
_MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4,
          "metadata": 6}
_OPCODE = {"deprecated_builtin_code": 0, "version": 2, "builtin_code": 3}
_SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
_TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5}
_QUANT = {"scale": 2, "zero_point": 3, "quantized_dimension": 6}
_BUFFER = {"data": 0}
_METADATA = {"name": 0, "buffer": 1}
_OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3,
             "builtin_options": 4}


@dataclass
class QuantSpec:
    scale: Sequence[float]
    zero_point: Sequence[int]
    quantized_dimension: int = 0


@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    type: int  # schema TensorType
    buffer: int = 0
    quant: QuantSpec | None = None
    is_variable: bool = False  # a state tensor the runtime keeps between invocations (LSTM, SVDF)


@dataclass
class OperatorSpec:
    opcode_index: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0  # schema BuiltinOptions
    # (slot, kind, value) of the options table; kind: bool, i8, i32, f32 or ivec.
    options: list[tuple[int, str, Any]] | None = None


@dataclass
class ModelSpec:
    description: str
    subgraph_name: str
    opcodes: list[tuple[int, int]] = field(default_factory=list)  # (builtin code, version)
    tensors: list[TensorSpec] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    operators: list[OperatorSpec] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])  # buffer 0: the empty sentinel
    metadata: list[tuple[str, int]] = field(default_factory=list)  # (name, buffer index)


class _Builder:
    """Thin helpers over ``flatbuffers.Builder``."""

    def __init__(self, size_hint: int):
        self.b = flatbuffers.Builder(max(1024, size_hint))

    def aligned_bytes(self, data: bytes, alignment: int = DATA_ALIGNMENT) -> int:
        """A ``[ubyte]`` vector whose first element is ``alignment``-aligned."""
        b = self.b
        n = len(data)
        b.StartVector(1, n, alignment)
        b.head = b.head - n
        b.Bytes[b.head:b.head + n] = data
        return b.EndVector()

    def array(self, values, dtype: str) -> int:
        return self.b.CreateNumpyVector(np.asarray(values, dtype=np.dtype(dtype)).reshape(-1))

    def string(self, s: str) -> int:
        return self.b.CreateString(s)

    def tables(self, offsets: Sequence[int]) -> int:
        b = self.b
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def table(self, n_slots: int, fields: Sequence[tuple[int, str, Any]]) -> int:
        """A table from ``(slot, kind, value)``; kind ``off`` is an already built object.

        Wide fields go first so the table packs without padding.
        """
        b = self.b
        order = {"off": 0, "u32": 0, "i32": 0, "f32": 0, "i8": 1, "u8": 1, "bool": 1}
        b.StartObject(n_slots)
        for slot, kind, value in sorted(fields, key=lambda f: order[f[1]]):
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, None)
            elif kind == "i32":
                b.PrependInt32Slot(slot, int(value), None)
            elif kind == "u32":
                b.PrependUint32Slot(slot, int(value), None)
            elif kind == "f32":
                b.PrependFloat32Slot(slot, float(value), None)
            elif kind == "i8":
                b.PrependInt8Slot(slot, int(value), None)
            elif kind == "u8":
                b.PrependUint8Slot(slot, int(value), None)
            elif kind == "bool":
                b.PrependBoolSlot(slot, bool(value), None)
            else:  # pragma: no cover - programming error
                raise AssertionError(kind)
        return b.EndObject()


def _n_slots(slots: dict[str, int]) -> int:
    return max(slots.values()) + 1


def serialize(model: ModelSpec) -> bytes:
    """The ``.tflite`` bytes of ``model``."""
    data_bytes = sum(len(d) + DATA_ALIGNMENT + 16 for d in model.buffers)
    fb = _Builder(data_bytes + 4096 + 256 * (len(model.tensors) + len(model.operators)))
    b = fb.b

    # Buffers first: the builder writes back to front, so the large constant data
    # ends up at the end of the file, after the tables that describe it.
    buffer_offsets = []
    data_vectors = [fb.aligned_bytes(bytes(d)) if d else None for d in model.buffers]
    for vec in data_vectors:
        fields = [] if vec is None else [(_BUFFER["data"], "off", vec)]
        buffer_offsets.append(fb.table(1, fields))
    buffers_vec = fb.tables(buffer_offsets)

    tensor_offsets = []
    for t in model.tensors:
        name = fb.string(t.name)
        shape = fb.array(t.shape, "<i4")
        fields = [(_TENSOR["shape"], "off", shape), (_TENSOR["type"], "i8", t.type),
                  (_TENSOR["buffer"], "u32", t.buffer), (_TENSOR["name"], "off", name)]
        if t.quant is not None:
            scale = fb.array(t.quant.scale, "<f4")
            zp = fb.array(t.quant.zero_point, "<i8")
            q = fb.table(_n_slots(_QUANT), [(_QUANT["scale"], "off", scale),
                                                (_QUANT["zero_point"], "off", zp),
                                                (_QUANT["quantized_dimension"], "i32",
                                                 t.quant.quantized_dimension)])
            fields.append((_TENSOR["quantization"], "off", q))
        if t.is_variable:
            fields.append((_TENSOR["is_variable"], "bool", True))
        tensor_offsets.append(fb.table(_n_slots(_TENSOR), fields))
    tensors_vec = fb.tables(tensor_offsets)

    op_offsets = []
    for op in model.operators:
        ins = fb.array(op.inputs, "<i4")
        outs = fb.array(op.outputs, "<i4")
        fields = [(_OPERATOR["opcode_index"], "u32", op.opcode_index), (_OPERATOR["inputs"], "off", ins),
                  (_OPERATOR["outputs"], "off", outs)]
        if op.options_type:
            opt_fields = []
            for slot, kind, value in op.options or []:
                if kind == "ivec":
                    opt_fields.append((slot, "off", fb.array(value, "<i4")))
                else:
                    opt_fields.append((slot, kind, value))
            n = max([s for s, _, _ in opt_fields] + [-1]) + 1
            opts = fb.table(max(n, 1), opt_fields)
            fields += [(_OPERATOR["builtin_options_type"], "u8", op.options_type),
                       (_OPERATOR["builtin_options"], "off", opts)]
        op_offsets.append(fb.table(_n_slots(_OPERATOR), fields))
    ops_vec = fb.tables(op_offsets)

    sg_name = fb.string(model.subgraph_name)
    sg_inputs = fb.array(model.inputs, "<i4")
    sg_outputs = fb.array(model.outputs, "<i4")
    subgraph = fb.table(_n_slots(_SUBGRAPH), [
        (_SUBGRAPH["tensors"], "off", tensors_vec), (_SUBGRAPH["inputs"], "off", sg_inputs),
        (_SUBGRAPH["outputs"], "off", sg_outputs), (_SUBGRAPH["operators"], "off", ops_vec),
        (_SUBGRAPH["name"], "off", sg_name)])
    subgraphs_vec = fb.tables([subgraph])

    code_offsets = []
    for code, version in model.opcodes:
        code_offsets.append(fb.table(_n_slots(_OPCODE), [
            (_OPCODE["deprecated_builtin_code"], "i8", min(code, 127)),
            (_OPCODE["version"], "i32", version),
            (_OPCODE["builtin_code"], "i32", code)]))
    codes_vec = fb.tables(code_offsets)

    meta_offsets = []
    for name, buf in model.metadata:
        s = fb.string(name)
        meta_offsets.append(fb.table(_n_slots(_METADATA), [(_METADATA["name"], "off", s),
                                                           (_METADATA["buffer"], "u32", buf)]))
    meta_vec = fb.tables(meta_offsets) if meta_offsets else None

    description = fb.string(model.description)
    fields = [(_MODEL["version"], "u32", SCHEMA_VERSION), (_MODEL["operator_codes"], "off", codes_vec),
              (_MODEL["subgraphs"], "off", subgraphs_vec), (_MODEL["description"], "off", description),
              (_MODEL["buffers"], "off", buffers_vec)]
    if meta_vec is not None:
        fields.append((_MODEL["metadata"], "off", meta_vec))
    root = fb.table(_n_slots(_MODEL), fields)
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())
