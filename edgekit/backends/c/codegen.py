"""Emit ``model.c`` / ``model.h`` from the kernel calls of a graph and its arena plan.

The generated C is plain C99 (GCC attributes behind ``__GNUC__``):

- every constant (weights, biases, per-channel multipliers and shifts, constant
  operands, tables) is a ``static const`` array in the flash section
  ``.rodata.edgekit_weights``; parameter structs and dimensions are ``static const`` too;
- the activations live in one ``static uint8_t ek_arena[N]`` (section
  ``.bss.edgekit_arena``, 16-byte aligned) at the offsets of the memory plan;
- ``edgekit_model_invoke(in, out)`` copies the input into its arena slot, calls the
  kernels in the plan's order (RESHAPE is an alias and emits nothing), copies the
  output out and returns 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from edgekit.backends.c.packed import Scratch
from edgekit.backends.c.params import ConstArray, F32, KernelCall, PointerList, Struct, TensorRef
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.memory import MemoryPlan

WEIGHTS_SECTION = ".rodata.edgekit_weights"
ARENA_SECTION = ".bss.edgekit_arena"
_CTYPE = {DType.INT8: "int8_t", DType.FLOAT32: "float", DType.INT32: "int32_t"}


# ----------------------------------------------------------------------------- literals


def c_int(v) -> str:
    v = int(v)
    if v == -(2**31):
        return "(-2147483647 - 1)"
    return str(v)


def c_float(v: float) -> str:
    """An exact C99 literal of a float32 value (hexadecimal)."""
    v = float(np.float32(v))
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"no C constant for {v}")
    return v.hex() + "f"


def c_float_readable(v: float) -> str:
    """A decimal literal that reads back as the same float32."""
    return f"{float(np.float32(v)):.9g}f".replace("inf", "INFINITY")


def comment(text: str) -> str:
    """Text safe inside a C block comment."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("*/", "* /")


def _array_body(values, per_line: int = 24) -> str:
    items = [c_int(v) for v in values] if values.dtype.kind in "iu" else [c_float(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n  " + ",\n  ".join(lines) + "\n}"


def _fast_int_body(values: np.ndarray, per_line: int = 32) -> str:
    """``_array_body`` for large int8 / int32 arrays (no INT32_MIN inside)."""
    flat = values.ravel().tolist()
    lines = [",".join(map(str, flat[i:i + per_line])) for i in range(0, len(flat), per_line)]
    return "{\n  " + ",\n  ".join(lines) + "\n}"


def _struct_init(s: Struct) -> str:
    parts = []
    for k, v in s.values.items():
        if isinstance(v, list):
            parts.append(f".{k} = {{" + ", ".join(c_int(x) for x in v) + "}")
        else:
            parts.append(f".{k} = {c_int(v)}")
    return "{" + ", ".join(parts) + "}"


# ----------------------------------------------------------------------------- output


@dataclass
class Symbol:
    """One constant object of model.c (for the flash table and the reports)."""

    name: str
    op: str
    kind: str      # "weights", "bias", "multiplier", "shift", "constant", "table", "params"
    nbytes: int
    tensor: str | None = None


@dataclass
class GeneratedModel:
    model_c: str
    model_h: str
    symbols: list[Symbol] = field(default_factory=list)
    io: dict = field(default_factory=dict)

    def bytes_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.symbols:
            out[s.kind] = out.get(s.kind, 0) + s.nbytes
        return out


@dataclass
class _IOInfo:
    name: str
    ctype: str
    shape: tuple[int, ...]
    size: int
    nbytes: int
    offset: int
    scale: float | None
    zero_point: int | None


def _io(graph: Graph, name: str, plan: MemoryPlan) -> _IOInfo:
    t = graph.tensor(name)
    q = t.quant
    scale = zp = None
    if q is not None and (q.is_per_tensor or len(q.scale) == 1):
        scale, zp = float(q.scale[0]), int(q.zero_point[0])
    return _IOInfo(name, _CTYPE[t.dtype], tuple(t.shape), t.size, t.nbytes, plan.offsets[name],
                   scale, zp)


def runs_code(graph: Graph, plan: MemoryPlan, call: KernelCall | None, op) -> bool:
    """Whether ``op`` emits code: everything but a RESHAPE the plan made an alias. These
    are the ops a profiling build times (``edgekit_profile_mark`` after each), in the
    model package as in model.c."""
    if call is not None:
        return True
    src, dst = op.inputs[0], op.outputs[0]
    return graph.tensor(src).is_const or plan.offsets.get(src) != plan.offsets.get(dst)


class _Emitter:
    def __init__(self, graph: Graph, plan: MemoryPlan, calls: dict[str, KernelCall | None],
                 variants: dict[str, str], name: str, target: str):
        self.g = graph
        self.plan = plan
        self.calls = calls
        self.variants = variants
        self.name = name
        self.target = target
        self.defs: list[str] = []
        self.symbols: list[Symbol] = []
        self.taken: set[str] = set()
        self.ops = {op.name: op for op in graph.ops}
        self.scratch_bytes = 0  # the largest Scratch of any call: one buffer serves them all
        self.shared_arrays: dict[tuple, str] = {}  # (ctype, role, bytes) -> symbol of a large array

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    # -- constants -----------------------------------------------------------
    def const_array(self, idx: int, a: ConstArray, op: str) -> str:
        short = {"weights": "weights", "bias": "bias", "multiplier": "mult", "shift": "shift",
                 "constant": "const", "table": "table"}[a.role]
        data = np.ascontiguousarray(a.data).ravel()
        # Large arrays with equal bytes are stored once (an unrolled recurrent layer repeats
        # its recurrent weights at every time step).
        key = (a.ctype, a.role, data.tobytes()) if a.nbytes >= 64 else None
        if key is not None and key in self.shared_arrays:
            return self.shared_arrays[key]
        name = self.unique(f"ek_op{idx}_{short}")
        if key is not None:
            self.shared_arrays[key] = name
        attr = "EK_WEIGHTS" if a.role in ("weights", "constant") else "EK_PARAMS"
        if a.ctype == "float":
            body = _array_body(data.astype(np.float32))
        elif data.size and data.dtype.kind in "iu" and int(data.min()) > -(2**31):
            body = _fast_int_body(data)
        else:
            body = _array_body(data)
        src = f" /* {comment(a.tensor)} */" if a.tensor else ""
        self.defs.append(f"static const {a.ctype} {name}[{max(data.size, 1)}] {attr} ={src}\n"
                         f"{body if data.size else '{0}'};")
        self.symbols.append(Symbol(name, op, a.role, a.nbytes, a.tensor))
        return name

    def struct(self, idx: int, s: Struct, op: str) -> str:
        base = {"ek_dims4": "dims", "ek_strides4": "strides"}.get(s.ctype, "params")
        name = self.unique(f"ek_op{idx}_{base}")
        self.defs.append(f"static const {s.ctype} {name} = {_struct_init(s)};")
        words = sum(len(v) if isinstance(v, list) else 1 for v in s.values.values())
        self.symbols.append(Symbol(name, op, "params", 4 * words))
        return "&" + name

    # -- arguments -----------------------------------------------------------
    def tensor(self, ref: TensorRef) -> str:
        off = self.plan.offsets[ref.name]
        macro = {"float": "EK_F32", "int32_t": "EK_I32"}.get(ref.ctype, "EK_I8")
        return f"{macro}({off})"

    def arg(self, idx: int, a, op: str, pre: list[str]) -> str:
        if isinstance(a, Struct):
            return self.struct(idx, a, op)
        if isinstance(a, ConstArray):
            return self.const_array(idx, a, op)
        if isinstance(a, TensorRef):
            return self.tensor(a)
        if isinstance(a, F32):
            return c_float(a.value)
        if isinstance(a, PointerList):
            items = [self.const_array(idx, i, op) if isinstance(i, ConstArray) else self.tensor(i)
                     for i in a.items]
            if a.output:  # SPLIT / UNPACK: the kernel writes through these
                local = f"ek_outputs{idx}"
                pre.append(f"int8_t *const {local}[{len(items)}] = {{{', '.join(items)}}};")
                return local
            local = f"ek_inputs{idx}"
            pre.append(f"const int8_t *const {local}[{len(items)}] = {{{', '.join(items)}}};")
            return local
        if isinstance(a, Scratch):
            self.scratch_bytes = max(self.scratch_bytes, a.nbytes)
            return "EK_SCRATCH"
        if a is None:
            return "0"
        if isinstance(a, (int, np.integer)):
            return c_int(a)
        raise TypeError(f"cannot emit argument {a!r}")

    def op_code(self, idx: int, name: str) -> list[str]:
        op = self.ops[name]
        call = self.calls[name]
        head = f"  /* {idx}: {comment(name)} ({op.type.value})"
        if call is None:  # RESHAPE: an alias, or a copy when the plan kept two buffers
            src, dst = op.inputs[0], op.outputs[0]
            st = self.g.tensor(src)
            if st.is_const:
                arr = ConstArray(_CTYPE.get(st.dtype, "int8_t"), np.ascontiguousarray(st.data), "constant", src)
                cname = self.const_array(idx, arr, name)
                return [head + " */", f"  memcpy(&ek_arena[{self.plan.offsets[dst]}], {cname}, {st.nbytes}u);"]
            if self.plan.offsets[src] == self.plan.offsets[dst]:
                return [head + ": an alias, no code */"]
            return [head + " */", f"  memmove(&ek_arena[{self.plan.offsets[dst]}], "
                          f"&ek_arena[{self.plan.offsets[src]}], {st.nbytes}u);"]
        if name in getattr(self.plan, "reversed_rows", ()):
            return self.rows_in_reverse(idx, name, head)
        pre: list[str] = []
        args = [self.arg(idx, a, name, pre) for a in call.args]
        text = f"{call.function}({', '.join(args)});"
        if pre:
            return [head + " */", "  {", *("    " + p for p in pre), "    " + text, "  }"]
        return [head + " */", "  " + text]

    def rows_in_reverse(self, idx: int, name: str, head: str) -> list[str]:
        """An op whose output the plan put above its input (edgekit.memory.lifetimes
        .reverse_rows_shift: a conv or depthwise conv, batch 1): one kernel call per output
        row, from the last row up. Row ``r`` gets a one-row output view, the input from the
        first row its window reads (``top = r*stride_h - pad_top``, at least 0) and the
        params with ``pad_top`` left for the rows above that view (never negative)."""
        from edgekit.ir.ops import normalize_attrs

        op, call = self.ops[name], self.calls[name]
        x, y = self.g.tensor(op.inputs[0]), self.g.tensor(op.outputs[0])
        rows, height = int(y.shape[1]), int(x.shape[1])
        row_in, row_out = x.nbytes // height, y.nbytes // rows
        attrs = normalize_attrs(op.type, op.attrs)
        stride, pad_top = int(attrs["strides"][0]), int(attrs["pads"][0])
        args = list(call.args)
        pos = {}
        for i, a in enumerate(args):
            if isinstance(a, TensorRef) and a.name in (op.inputs[0], op.outputs[0]) and a.name not in pos:
                pos[a.name] = i
        xi, yi = pos[op.inputs[0]], pos[op.outputs[0]]
        params = args[0]
        for i, want in ((xi - 1, height), (yi - 1, rows)):  # each tensor's dims come just before it
            d = args[i]
            if not (isinstance(d, Struct) and d.ctype == "ek_dims4" and d.values.get("h") == want):
                raise ValueError(f"{name}: cannot run {call.function} by rows (argument {i} is not its dims)")
        if not (isinstance(params, Struct) and params.values.get("pad_top") == pad_top
                and params.values.get("stride_h") == stride):
            raise ValueError(f"{name}: cannot run {call.function} by rows (no params with pad_top first)")
        if "reverse" in params.values:  # the kernel itself can run its pixels from the last
            pre = []
            rev_args = [Struct(params.ctype, {**params.values, "reverse": 1}), *call.args[1:]]
            text = f"{call.function}({', '.join(self.arg(idx, a, name, pre) for a in rev_args)});"
            return [head + ": its output sits above its input: pixels from the last (reverse = 1) */",
                    *(["  {", *("    " + p for p in pre), "    " + text, "  }"] if pre else ["  " + text])]
        pre: list[str] = []
        text = []
        for i, a in enumerate(args):
            if i == 0:
                text.append("&p_r")
            elif i == xi - 1:
                text.append("&in_r")
            elif i == yi - 1:
                text.append("&out_r")
            elif i == xi:
                text.append(f"EK_I8({self.plan.offsets[op.inputs[0]]} + skip * {row_in})")
            elif i == yi:
                text.append(f"EK_I8({self.plan.offsets[op.outputs[0]]} + r * {row_out})")
            else:
                text.append(self.arg(idx, a, name, pre))
        p_ref = self.struct(idx, params, name)
        in_ref = self.struct(idx, args[xi - 1], name)
        out_ref = self.struct(idx, Struct("ek_dims4", {**args[yi - 1].values, "h": 1}), name)
        return [head + ": its output sits above its input: rows from the last up */", "  {",
                *("    " + p for p in pre), "    int32_t r;",
                f"    for (r = {rows - 1}; r >= 0; r--) {{",
                f"      const int32_t top = r * {stride} - {pad_top};",
                "      const int32_t skip = top > 0 ? top : 0;",
                f"      {params.ctype} p_r = *{p_ref};",
                f"      ek_dims4 in_r = *{in_ref};",
                f"      const ek_dims4 out_r = *{out_ref};",
                "      p_r.pad_top = skip - top;",
                f"      in_r.h = {height} - skip;",
                f"      {call.function}({', '.join(text)});", "    }", "  }"]

    # -- files ---------------------------------------------------------------
    def emit(self) -> GeneratedModel:
        g, plan = self.g, self.plan
        inp = _io(g, g.inputs[0], plan)
        out = _io(g, g.outputs[0], plan)
        body = ["  EK_PROFILE_START();"]
        for idx, name in enumerate(plan.order):
            body += self.op_code(idx, name)
            if runs_code(g, plan, self.calls[name], self.ops[name]):
                body.append("  EK_PROFILE_MARK();")
        arena = max(plan.arena_bytes, 1)
        layer_rows = []
        for idx, name in enumerate(plan.order):
            op = self.ops[name]
            call = self.calls[name]
            kern = f"{call.function} ({self.variants.get(call.kernel, '-')})" if call else "alias"
            o = op.outputs[0]
            layer_rows.append(f" *  {idx:3d}  {comment(op.type.value):18s} {kern:40s} "
                              f"@{plan.offsets.get(o, 0):<7d} {comment(name)}")
        c = [
            f"/* Generated by edgekit for target {comment(self.target)}: {comment(self.name)}.",
            " * Do not edit: regenerate with `edgekit compile`.",
            " *",
            f" * Arena {plan.arena_bytes} bytes. Ops in execution order (output offset in the arena):",
            *layer_rows,
            " */",
            "#include <stdint.h>",
            "#include <string.h>",
            "",
            '#include "edgekit/kernels.h"',
            '#include "model.h"',
            "",
            "#if defined(__GNUC__)",
            f'#define EK_WEIGHTS __attribute__((section("{WEIGHTS_SECTION}"), aligned(16)))',
            f'#define EK_PARAMS __attribute__((section("{WEIGHTS_SECTION}"), aligned(4)))',
            f'#define EK_ARENA __attribute__((section("{ARENA_SECTION}"), aligned(16)))',
            "#else",
            "#define EK_WEIGHTS",
            "#define EK_PARAMS",
            "#define EK_ARENA",
            "#endif",
            "",
            "/* Profiling builds (-DEDGEKIT_PROFILE) read the timer after every op. */",
            "#ifdef EDGEKIT_PROFILE",
            "void edgekit_profile_start(void);",
            "void edgekit_profile_mark(void);",
            "#define EK_PROFILE_START() edgekit_profile_start()",
            "#define EK_PROFILE_MARK() edgekit_profile_mark()",
            "#else",
            "#define EK_PROFILE_START() ((void)0)",
            "#define EK_PROFILE_MARK() ((void)0)",
            "#endif",
            "",
            f"static uint8_t ek_arena[{arena}] EK_ARENA;",
            *(["/* work buffer of the packed kernels (one call at a time; int32_t: 4-byte aligned) */",
               f"static int32_t ek_scratch[{(self.scratch_bytes + 3) // 4}];",
               "#define EK_SCRATCH ((int16_t *)(void *)ek_scratch)"]
              if self.scratch_bytes else []),
            "",
            "#define EK_I8(offset) ((int8_t *)(void *)&ek_arena[(offset)])",
            "#define EK_F32(offset) ((float *)(void *)&ek_arena[(offset)])",
            "#define EK_I32(offset) ((int32_t *)(void *)&ek_arena[(offset)])",
            "",
            *self.defs,
            "",
            f"int edgekit_model_invoke(const {inp.ctype} *in, {out.ctype} *out) {{",
            f"  memcpy(&ek_arena[{inp.offset}], in, {inp.nbytes}u);",
            *body,
            f"  memcpy(out, &ek_arena[{out.offset}], {out.nbytes}u);",
            "  return 0;",
            "}",
            "",
        ]
        return GeneratedModel("\n".join(c), self.header(inp, out), self.symbols,
                              {"input": inp.__dict__, "output": out.__dict__})

    def header(self, inp: _IOInfo, out: _IOInfo) -> str:
        guard = "EDGEKIT_MODEL_H"
        lines = [
            f"/* Generated by edgekit for target {comment(self.target)}: {comment(self.name)}.",
            " *",
            " * int edgekit_model_invoke(in, out): one inference. Copies the input",
            " * (EDGEKIT_MODEL_INPUT_BYTES bytes) into the model's static arena, runs every op",
            " * and writes EDGEKIT_MODEL_OUTPUT_BYTES bytes to out; returns 0. Not reentrant:",
            " * the arena is one static buffer. Constants live in the flash section",
            f" * {WEIGHTS_SECTION}, the arena in {ARENA_SECTION}.",
            " */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#include <stdint.h>",
            "",
            "#ifdef __cplusplus",
            'extern "C" {',
            "#endif",
            "",
            f'#define EDGEKIT_MODEL_NAME "{comment(self.name)}"',
            f"#define EDGEKIT_MODEL_ARENA_BYTES {self.plan.arena_bytes}u",
            "",
        ]
        for tag, io in (("INPUT", inp), ("OUTPUT", out)):
            layout = self.g.metadata.get("io_layout", {}).get(io.name, "NHWC")
            note = "" if len(io.shape) != 4 else (
                ", NHWC" + (f" (the source model's layout was {comment(layout)})"
                            if layout != "NHWC" else ""))
            lines += [
                f"/* {tag.lower()} tensor {comment(io.name)}{note} */",
                f"typedef {io.ctype} edgekit_{tag.lower()}_t;",
                f"#define EDGEKIT_MODEL_{tag}_RANK {len(io.shape)}",
                f"#define EDGEKIT_MODEL_{tag}_SHAPE {{{', '.join(str(d) for d in io.shape)}}}",
                f"#define EDGEKIT_MODEL_{tag}_SIZE {io.size}u",
                f"#define EDGEKIT_MODEL_{tag}_BYTES {io.nbytes}u",
            ]
            if io.scale is not None:
                lines += [f"#define EDGEKIT_MODEL_{tag}_SCALE {c_float_readable(io.scale)}",
                          f"#define EDGEKIT_MODEL_{tag}_ZERO_POINT ({io.zero_point})"]
            lines.append("")
        lines += [
            f"int edgekit_model_invoke(const {inp.ctype} *in, {out.ctype} *out);",
            "",
            "#ifdef __cplusplus",
            "}",
            "#endif",
            "",
            f"#endif /* {guard} */",
            "",
        ]
        return "\n".join(lines)


def generate(graph: Graph, plan: MemoryPlan, calls: dict[str, KernelCall | None],
             variants: dict[str, str], *, name: str, target: str) -> GeneratedModel:
    """model.c and model.h of ``graph`` (one input, one output) under ``plan``;
    ``variants`` maps each kernel to its variant (for the comments)."""
    return _Emitter(graph, plan, calls, variants, name, target).emit()
