"""Writing model packages for the model-slot firmware (format: docs/model-package.md).

A package is one self-contained binary blob: a header, the input/output table, the op
table, then a data region holding each op's parameter block and the constants
(weights, biases, multipliers, shifts). The firmware checks it and runs it in place
with the runtimes/micro kernels, so uploading a new model needs no firmware rebuild.

    data = pack_model(graph, "cortex-m4")

Each op is lowered exactly as the C code generator lowers it
(``edgekit.backends.c.lower_op``: the kernel parameters TFLite Micro's
``Prepare`` would derive) and the arena is planned with the C backend's rules
(``edgekit.backends.c.plan_arena``), so a package computes the same bytes as the
generated C model and as edgekit's reference interpreter. Reading one back is
``edgekit.bundle.micro_package_reader``, which needs none of this.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from edgekit.bundle.micro_package_reader import (
    ALIGN,
    DTYPE_NAMES,
    FORMAT_MAJOR,
    FORMAT_MINOR,
    HEADER_BYTES,
    HEADER_LAYOUT,
    IO_ENTRY_BYTES,
    MAGIC,
    MAX_CONCAT,
    MAX_SPLIT,
    MAX_IO,
    MAX_OPS,
    NAME_BYTES,
    OP_ENTRY_BYTES,
    OP_KINDS,
    REF_CONST,
    REF_NONE,
    TARGET_BYTES,
    stamp_header_crc,
)
from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.verify import verify

DTYPE_CODES = {DType(name): code for code, name in DTYPE_NAMES.items()}

# Field order of the kernels.h parameter structs (the words of a parameter block).
STRUCT_FIELDS = {
    "ek_conv_params": ("stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left",
                       "input_offset", "output_offset", "act_min", "act_max"),
    "ek_depthwise_params": ("stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top",
                            "pad_left", "depth_multiplier", "input_offset", "output_offset",
                            "act_min", "act_max"),
    "ek_fc_params": ("input_offset", "filter_offset", "output_offset", "act_min", "act_max",
                     "per_channel"),
    "ek_pool_params": ("stride_h", "stride_w", "filter_h", "filter_w", "pad_top", "pad_left",
                       "act_min", "act_max"),
    "ek_add_params": ("input1_offset", "input2_offset", "left_shift", "input1_multiplier",
                      "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier",
                      "output_shift", "output_offset", "act_min", "act_max"),
    "ek_mul_params": ("input1_offset", "input2_offset", "output_multiplier", "output_shift",
                      "output_offset", "act_min", "act_max"),
    "ek_pad_params": ("before", "after", "value"),
    "ek_mean_params": ("input_offset", "output_offset", "multiplier", "shift"),
    "ek_softmax_params": ("input_multiplier", "input_left_shift", "diff_min"),
    "ek_sigmoid_params": ("input_offset", "input_multiplier", "input_left_shift",
                          "input_range_radius"),
    "ek_requant_params": ("input_offset", "output_offset", "multiplier", "shift", "act_min",
                          "act_max"),
    "ek_slice_params": ("begin", "stride", "size"),
    "ek_gather_params": ("batch_size", "outer_size", "axis_size", "inner_size", "num_indices"),
    "ek_resize_bilinear_params": ("scale_10_h", "scale_10_w", "half_pixel_centers"),
    "ek_prelu_params": ("input_offset", "alpha_offset", "output_offset", "output_multiplier_1",
                        "output_shift_1", "output_multiplier_2", "output_shift_2"),
    "ek_dims4": ("n", "h", "w", "c"),
    "ek_strides4": ("n", "h", "w", "c"),
    "ek_lstm_params": ("batches", "steps", "input_size", "hidden", "time_major", "input_offset", "hidden_offset",
                       "output_offset", "input_mult", "input_shift", "recurrent_mult", "recurrent_shift",
                       "forget_mult", "forget_shift", "input_gate_mult", "input_gate_shift", "output_mult",
                       "output_shift", "cell_tanh_multiplier", "cell_tanh_shift", "use_clip", "cell_clip"),
    "ek_batch_matmul_params": ("lhs_offset", "rhs_offset", "output_offset", "multiplier", "shift", "adj_x",
                               "adj_y"),
    "ek_svdf_params": ("batches", "input_size", "features", "rank", "input_offset", "feature_mult",
                       "feature_shift", "output_mult", "output_shift", "output_offset"),
}

def _cstr(text: str, size: int) -> bytes:
    raw = text.encode("utf-8")[:size]
    while raw:
        try:
            raw.decode("utf-8")
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return raw.ljust(size, b"\0")


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


class _Data:
    """The data region: parameter blocks and constants, each ALIGN-aligned; identical
    constants are stored once."""

    def __init__(self, start: int):
        self.start = start
        self.buf = bytearray()
        self._seen: dict[bytes, int] = {}

    def add(self, blob: bytes, dedupe: bool = True) -> int:
        """Package offset of ``blob``."""
        key = hashlib.sha256(blob).digest() if dedupe else None
        if key is not None and key in self._seen:
            return self._seen[key]
        self.buf += b"\0" * (_align(len(self.buf)) - len(self.buf))
        off = self.start + len(self.buf)
        self.buf += blob
        if key is not None:
            self._seen[key] = off
        return off


def _i32_words(values) -> list[int]:
    out = []
    for v in values:
        v = int(v)
        if not -(2**31) <= v < 2**32:
            raise BadInputError(f"parameter {v} does not fit 32 bits")
        out.append(v & 0xFFFFFFFF)
    return out


def _struct_words(s) -> list[int]:
    vals = []
    for f in STRUCT_FIELDS[s.ctype]:
        v = s.values[f]
        vals += list(v) if isinstance(v, (list, tuple)) else [v]
    return vals


class _Packer:
    def __init__(self, graph: Graph, plan, data: _Data):
        self.g = graph
        self.plan = plan
        self.data = data

    def ref(self, arg) -> int:
        from edgekit.backends.c import ConstArray, TensorRef

        if arg is None:
            return REF_NONE
        if isinstance(arg, TensorRef):
            t = self.g.tensor(arg.name)
            if t.is_const:
                return self.const(t.data, {"int8_t": np.int8, "float": np.float32}[arg.ctype])
            off = self.plan.offsets.get(arg.name)
            if off is None:
                raise BadInputError(f"tensor {arg.name!r} has no place in the arena plan")
            return int(off)
        if isinstance(arg, ConstArray):
            dtype = {"int8_t": np.int8, "int32_t": np.int32, "float": np.float32}[arg.ctype]
            return self.const(arg.data, dtype)
        raise TypeError(f"not a tensor argument: {arg!r}")

    def const(self, array, dtype) -> int:
        little = np.dtype(dtype).newbyteorder("<")
        blob = np.ascontiguousarray(np.asarray(array), dtype=little).tobytes()
        return REF_CONST | self.data.add(blob)

    def elems(self, arg) -> int:
        from edgekit.backends.c import ConstArray

        if isinstance(arg, ConstArray):
            return int(arg.data.size)
        return self.g.tensor(arg.name).size

    def words(self, call) -> list[int]:
        """The parameter words of one kernel call (layouts: docs/model-package.md)."""
        from edgekit.backends.c import F32

        f, a = call.function, call.args
        r, sw = self.ref, _struct_words
        if f in ("ek_conv2d_s8", "ek_depthwise_conv2d_s8", "ek_transpose_conv_s8"):
            s, mult, shift, din, x, dw, w, b, dout, y = a
            return sw(s) + sw(din) + sw(dw) + sw(dout) + [r(x), r(w), r(b), r(mult), r(shift), r(y)]
        if f == "ek_fully_connected_s8":
            s, mult, shift, batches, k, cout, x, w, b, y = a
            return sw(s) + [batches, k, cout, r(x), r(w), r(b), r(mult), r(shift), r(y)]
        if f in ("ek_avg_pool2d_s8", "ek_max_pool2d_s8"):
            s, din, x, dout, y = a
            return sw(s) + sw(din) + sw(dout) + [r(x), r(y)]
        if f == "ek_lut_s8":
            table, size, x, y = a
            return [r(table), size, r(x), r(y)]
        if f in ("ek_maximum_s8", "ek_minimum_s8"):
            dout, x1, s1, x2, s2, y = a
            return sw(dout) + sw(s1) + sw(s2) + [self.elems(x1), self.elems(x2), r(x1), r(x2), r(y)]
        if f in ("ek_add_s8", "ek_sub_s8", "ek_mul_s8", "ek_prelu_s8", "ek_squared_difference_s8", "ek_div_s8"):
            s, dout, x1, s1, x2, s2, y = a
            return sw(s) + sw(dout) + sw(s1) + sw(s2) + [self.elems(x1), self.elems(x2), r(x1),
                                                          r(x2), r(y)]
        if f == "ek_pad_s8":
            s, din, x, y = a
            return sw(s) + sw(din) + [r(x), r(y)]
        if f == "ek_concatenation_s8":
            n, items, sizes, outer, inner, y = a
            if n > MAX_CONCAT:
                raise UnsupportedOpError(call.op_type, call.op, list(OP_KINDS),
                                         f"concatenation of {n} inputs (the package takes "
                                         f"at most {MAX_CONCAT})")
            out = [n, outer, inner, r(y)]
            for size, item in zip(sizes.data.tolist(), items.items):
                out += [size, r(item)]
            return out
        if f == "ek_split_s8":
            n, outs, sizes, outer, inner, x = a
            if n > MAX_SPLIT:
                raise UnsupportedOpError(call.op_type, call.op, list(OP_KINDS),
                                         f"split into {n} outputs (the package takes at most {MAX_SPLIT})")
            out = [n, outer, inner, r(x)]
            for size, item in zip(sizes.data.tolist(), outs.items):
                out += [size, r(item)]
            return out
        if f == "ek_resize_nearest_s8":
            din, rows, cols, dout, x, y = a
            return sw(din) + sw(dout) + [r(rows), r(cols), r(x), r(y)]
        if f == "ek_resize_bilinear_s8":
            s, din, dout, x, y = a
            return sw(s) + sw(din) + sw(dout) + [r(x), r(y)]
        if f == "ek_lstm_s8":
            s, x, w_in, w_rec, b, y = a
            return sw(s) + [r(x), r(w_in), r(w_rec), r(b), r(y)]
        if f == "ek_svdf_s8":
            s, x, wf, wt_last, b, y = a
            return sw(s) + [r(x), r(wf), r(wt_last), r(b), r(y)]
        if f == "ek_slice_s8":
            s, din, x, y = a
            return sw(s) + sw(din) + [r(x), r(y)]
        if f == "ek_gather_s8":
            s, idx, x, y = a
            return sw(s) + [r(idx), r(x), r(y)]
        if f in ("ek_depth_to_space_s8", "ek_space_to_depth_s8"):
            din, block, x, y = a
            return sw(din) + [block, r(x), r(y)]
        if f in ("ek_cast_s8_f32", "ek_cast_f32_s8"):
            size, x, y = a
            return [size, r(x), r(y)]
        if f == "ek_transpose_s8":
            din, perm, x, y = a
            return sw(din) + [int(p) for p in perm.data.tolist()] + [r(x), r(y)]
        if f == "ek_mean_s8":  # MEAN, and SUM (its multiplier without the 1/count)
            s, din, mask, x, y = a
            return sw(s) + sw(din) + [mask, r(x), r(y)]
        if f == "ek_reduce_max_s8":
            din, mask, x, y = a
            return sw(din) + [mask, r(x), r(y)]
        if f == "ek_arg_min_max_s8":
            outer, axis, inner, is_min, x, y = a
            return [outer, axis, inner, is_min, r(x), r(y)]
        if f == "ek_l2_normalization_s8":
            offset, outer, depth, x, y = a
            return [offset, outer, depth, r(x), r(y)]
        if f == "ek_batch_matmul_s8":
            s, dl, lhs, dr, rhs, dout, y = a
            return sw(s) + sw(dl) + sw(dr) + sw(dout) + [r(lhs), r(rhs), r(y)]
        if f == "ek_softmax_s8":
            s, outer, depth, x, y = a
            return sw(s) + [outer, depth, r(x), r(y)]
        if f in ("ek_logistic_s8", "ek_tanh_s8", "ek_relu_s8", "ek_requantize_s8"):
            s, size, x, y = a
            return sw(s) + [size, r(x), r(y)]
        if f == "ek_relu6_s8":
            lo, hi, size, x, y = a
            return [lo, hi, size, r(x), r(y)]
        if f in ("ek_quantize_f32_s8", "ek_dequantize_s8_f32"):
            scale, zp, size, x, y = a
            value = scale.value if isinstance(scale, F32) else scale
            bits = struct.unpack("<I", struct.pack("<f", float(value)))[0]
            return [bits, zp, size, r(x), r(y)]
        raise UnsupportedOpError(call.op_type, call.op, list(OP_KINDS),
                                 f"kernel {f} has no op kind in the model package")


def _io_entry(g: Graph, name: str, offset: int) -> bytes:
    t = g.tensor(name)
    if t.dtype not in DTYPE_CODES:
        raise BadInputError(f"graph input/output {name!r} is {t.dtype.value}; a model package "
                            "takes int8, int32 or float32")
    if len(t.shape) > 4:
        raise BadInputError(f"graph input/output {name!r} has rank {len(t.shape)}; a model "
                            "package takes at most 4 dimensions")
    q = t.quant
    scale = float(q.scale[0]) if q is not None else 0.0
    zp = int(q.zero_point[0]) if q is not None else 0
    dims = list(t.shape) + [0] * (4 - len(t.shape))
    return struct.pack("<IIfiBBH4II", offset, t.nbytes, scale, zp, DTYPE_CODES[t.dtype],
                       len(t.shape), 0, *dims, 0)


def pack_model(graph: Graph, target, *, name: str | None = None) -> bytes:
    """The model package of an int8 IR ``graph`` for an MCU ``target`` (a name or a
    ``Target``). Raises UnsupportedOpError naming the op and node the firmware cannot
    run, BadInputError for a float graph or unsupported inputs/outputs."""
    from edgekit.backends.c import check_supported, lower_op, plan_arena
    from edgekit.ir.shapes import op_macs
    from edgekit.ir.ops import normalize_attrs
    from edgekit.targets import Target, load_target

    tgt = target if isinstance(target, Target) else load_target(target)
    if not tgt.is_mcu:
        raise BadInputError(f"target {tgt.name!r} is a {tgt.family} target; model packages are "
                            "for microcontrollers (family mcu)")
    if len(tgt.name.encode()) > TARGET_BYTES:
        raise BadInputError(f"target name {tgt.name!r} is longer than {TARGET_BYTES} bytes")
    if not any(graph.tensor(t).dtype is DType.INT8 and not graph.tensor(t).is_const
               for op in graph.ops for t in op.inputs + op.outputs if t):
        raise BadInputError(f"model {graph.name!r} is a float model: quantize it to int8 first "
                            "(edgekit quantize)")
    verify(graph)
    check_supported(graph)
    n_io = len(graph.inputs) + len(graph.outputs)
    if not graph.inputs or not graph.outputs or n_io > MAX_IO:
        raise BadInputError(f"model {graph.name!r} has {len(graph.inputs)} inputs and "
                            f"{len(graph.outputs)} outputs; a package takes 1 to {MAX_IO - 1} "
                            f"inputs and at least one output, {MAX_IO} in all")
    calls = {op.name: lower_op(graph, op) for op in graph.ops}
    plan = plan_arena(graph)
    ops_by_name = {op.name: op for op in graph.ops}

    io_table = HEADER_BYTES
    entries = []
    for n in graph.inputs + graph.outputs:
        if n not in plan.offsets:
            raise BadInputError(f"graph input/output {n!r} has no place in the arena (a constant?)")
        entries.append(_io_entry(graph, n, plan.offsets[n]))

    # Op list in the plan's order; RESHAPE is an alias, or a copy when the plan kept two
    # buffers.
    op_list: list[tuple[int, object]] = []
    for op_name in plan.order:
        call = calls[op_name]
        if call is not None:
            op_list.append((OP_KINDS.get(call.function, 0), call))
            if op_list[-1][0] == 0:
                raise UnsupportedOpError(call.op_type, call.op, [], f"no op kind for {call.function}")
            continue
        op = ops_by_name[op_name]
        src, dst = op.inputs[0], op.outputs[0]
        if graph.tensor(src).is_const or plan.offsets.get(src) != plan.offsets.get(dst):
            op_list.append((OP_KINDS["copy"], (src, dst)))
    if len(op_list) > MAX_OPS:
        raise BadInputError(f"model {graph.name!r} has {len(op_list)} ops; a package takes at "
                            f"most {MAX_OPS}")

    op_table = _align(io_table + len(entries) * IO_ENTRY_BYTES)
    data_start = _align(op_table + len(op_list) * OP_ENTRY_BYTES)
    data = _Data(data_start)
    packer = _Packer(graph, plan, data)
    op_entries = []
    for kind, call in op_list:
        if kind == OP_KINDS["copy"]:
            src, dst = call
            t = graph.tensor(src)
            src_ref = packer.const(t.data, t.dtype.np) if t.is_const else plan.offsets[src]
            words = [t.nbytes, src_ref, plan.offsets[dst]]
        else:
            words = packer.words(call)
        block = struct.pack(f"<{len(words)}I", *_i32_words(words))
        off = data.add(block, dedupe=False)
        op_entries.append(struct.pack("<HHIII", kind, 0, off, len(block), 0))

    macs = 0
    for op in graph.ops:
        try:
            macs += int(op_macs(op.type, [graph.tensor(i).shape if i else None for i in op.inputs],
                                [graph.tensor(o).shape for o in op.outputs],
                                normalize_attrs(op.type, op.attrs)))
        except Exception:  # noqa: BLE001 - MACs are informative only
            pass

    body = bytearray(data_start - HEADER_BYTES + len(data.buf))

    def put(at: int, blob: bytes) -> None:
        body[at - HEADER_BYTES:at - HEADER_BYTES + len(blob)] = blob
    for i, e in enumerate(entries):
        put(io_table + i * IO_ENTRY_BYTES, e)
    for i, e in enumerate(op_entries):
        put(op_table + i * OP_ENTRY_BYTES, e)
    put(data_start, bytes(data.buf))
    total = HEADER_BYTES + len(body)
    model_hash = hashlib.sha256(bytes(body)).digest()
    header = HEADER_LAYOUT.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, HEADER_BYTES, total,
                          _cstr(tgt.name, TARGET_BYTES), _cstr(name or graph.name, NAME_BYTES),
                          model_hash, plan.arena_bytes, plan.alignment, 0, len(graph.inputs),
                          len(graph.outputs), 0, io_table, len(op_list), op_table, data_start,
                          len(data.buf), min(macs, 0xFFFFFFFF), 0, b"\0" * 28)
    header = stamp_header_crc(header)
    return header + bytes(body)
