"""Generate docs/operators.md: every operator against TFLM's builtin list and ONNX's op list.

Every cell is derived from the code, not written by hand:

- reference float / int8 and the quantizer: a one-op graph of each IR op (``SAMPLES``)
  run by the reference interpreter, quantized by ``edgekit.quantize.quantize`` and
  the int8 graph run again;
- ``.tflite`` and ONNX write / import: that graph (int8 where it quantizes, and
  float) written by edgekit's writer and read back by edgekit's importer; import
  counts when the op comes back;
- torch: the ATen ops the torch importer registers (``SUPPORTED_TORCH_OPS``), looked
  up through ``TORCH_ATEN`` (which ATen ops lower to which IR op);
- C portable / DSP kernel: the C backend's lowering (``SUPPORTED_OPS``) and the
  variants ``runtimes/micro/kernels.json`` lists for the op;
- ONNX import per ONNX op: the ONNX frontend's converters, the ops it evaluates only
  on constants, and ONNX's function definitions it imports through.

TFLM's builtins are the ``BuiltinOperator_*`` registrations of tflite-micro's
``tensorflow/lite/micro/micro_mutable_op_resolver.h`` at ``TFLM_COMMIT`` (``TFLM_BUILTINS``).

``python tools/generate_operators_doc.py`` rewrites docs/operators.md;
``--check`` exits 1 when the file differs from what the code gives now.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "operators.md"

TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"  # tflite-micro main, 2026-08-20
TFLM_BUILTINS = (
    "ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS "
    "BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD "
    "FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU "
    "LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM "
    "MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN "
    "RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE "
    "SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE "
    "SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE"
).split()

# TFLite builtins that edgekit's IR expresses under another name or as part of an op.
TFLM_TO_IR = {"SPLIT_V": "SPLIT", "PADV2": "PAD"}

# Which ATen ops the torch importer lowers to each IR op.
TORCH_ATEN = {
    "CONV_2D": ["aten.conv2d", "aten.convolution"], "DEPTHWISE_CONV_2D": ["aten.conv2d", "aten.convolution"],
    "FULLY_CONNECTED": ["aten.linear", "aten.addmm", "aten.mm"], "AVERAGE_POOL_2D": ["aten.avg_pool2d"],
    "MAX_POOL_2D": ["aten.max_pool2d", "aten.max_pool2d_with_indices"], "ADD": ["aten.add.Tensor", "aten.add"],
    "SUB": ["aten.sub.Tensor", "aten.sub"], "MUL": ["aten.mul.Tensor", "aten.mul"],
    "RESHAPE": ["aten.view", "aten.reshape", "aten.flatten"], "SOFTMAX": ["aten.softmax", "aten._softmax"],
    "RELU": ["aten.relu"], "RELU6": ["aten.hardtanh", "aten.relu6"], "PAD": ["aten.pad", "aten.constant_pad_nd"],
    "CONCATENATION": ["aten.cat"], "MEAN": ["aten.mean.dim", "aten.mean", "aten.adaptive_avg_pool2d"],
    "LOGISTIC": ["aten.sigmoid"], "TANH": ["aten.tanh"], "TRANSPOSE": ["aten.permute", "aten.transpose"],
    "BATCH_NORM": ["aten._native_batch_norm_legit_no_training", "aten.batch_norm"],
    "SLICE": ["aten.slice", "aten.narrow"], "STRIDED_SLICE": ["aten.slice", "aten.select"],
    "SPLIT": ["aten.split", "aten.split_with_sizes", "aten.chunk"], "SQUEEZE": ["aten.squeeze"],
    "EXPAND_DIMS": ["aten.unsqueeze"], "GATHER": ["aten.index_select", "aten.embedding"], "PACK": ["aten.stack"],
    "UNPACK": ["aten.unbind"], "DEPTH_TO_SPACE": ["aten.pixel_shuffle"], "SPACE_TO_DEPTH": ["aten.pixel_unshuffle"],
    "CAST": ["aten._to_copy", "aten.to"], "HARD_SWISH": ["aten.hardswish"], "LEAKY_RELU": ["aten.leaky_relu"],
    "PRELU": ["aten.prelu", "aten._prelu_kernel"], "ABS": ["aten.abs"], "NEG": ["aten.neg"], "EXP": ["aten.exp"],
    "LOG": ["aten.log"], "SQRT": ["aten.sqrt"], "RSQRT": ["aten.rsqrt"], "GELU": ["aten.gelu"],
    "MAXIMUM": ["aten.maximum"], "MINIMUM": ["aten.minimum"], "DIV": ["aten.div.Tensor", "aten.div"],
    "SQUARED_DIFFERENCE": [], "REDUCE_MAX": ["aten.amax", "aten.max.dim"], "SUM": ["aten.sum.dim_IntList", "aten.sum"],
    "ARG_MAX": ["aten.argmax"], "ARG_MIN": ["aten.argmin"], "L2_NORMALIZATION": [],
    "BATCH_MATMUL": ["aten.bmm", "aten.matmul"], "RESIZE_NEAREST_NEIGHBOR": ["aten.upsample_nearest2d"],
    "RESIZE_BILINEAR": ["aten.upsample_bilinear2d"], "TRANSPOSE_CONV": ["aten.conv_transpose2d"],
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ["aten.lstm"], "SVDF": [],
}


@dataclass
class Sample:
    """A one-op graph: float run-time inputs (shapes) or constants (arrays), in order."""

    inputs: list
    attrs: dict = field(default_factory=dict)
    n_outputs: int = 1
    out_dtype: str | None = None


def _w(*shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.5).astype(np.float32)


X4 = (1, 6, 6, 4)
SAMPLES: dict[str, Sample] = {
    "CONV_2D": Sample([X4, _w(3, 3, 3, 4), _w(3)]),
    "DEPTHWISE_CONV_2D": Sample([X4, _w(1, 3, 3, 4), _w(4)]),
    "FULLY_CONNECTED": Sample([(1, 8), _w(5, 8), _w(5)]),
    "AVERAGE_POOL_2D": Sample([X4], {"kernel": (2, 2), "strides": (2, 2)}),
    "MAX_POOL_2D": Sample([X4], {"kernel": (2, 2), "strides": (2, 2)}),
    "ADD": Sample([X4, X4]), "SUB": Sample([X4, X4]), "MUL": Sample([X4, X4]),
    "RESHAPE": Sample([X4], {"shape": (1, 144)}),
    "SOFTMAX": Sample([(1, 10)]), "RELU": Sample([X4]), "RELU6": Sample([X4]),
    "PAD": Sample([X4], {"pads": (0, 0, 1, 1, 1, 1, 0, 0)}),
    "CONCATENATION": Sample([X4, X4], {"axis": 3}),
    "MEAN": Sample([X4], {"axes": (1, 2), "keep_dims": True}),
    "LOGISTIC": Sample([X4]), "TANH": Sample([X4]),
    "TRANSPOSE": Sample([X4], {"perm": (0, 3, 1, 2)}),
    "BATCH_NORM": Sample([X4, _w(4), _w(4), _w(4), np.abs(_w(4)) + 0.5]),
    "SLICE": Sample([X4], {"begin": (0, 1, 1, 0), "size": (1, 4, 4, 4)}),
    "STRIDED_SLICE": Sample([X4], {"begin": (0, 0, 0, 0), "end": (1, 6, 6, 4), "strides": (1, 2, 2, 1)}),
    "SPLIT": Sample([X4], {"axis": 3, "sizes": (1, 3)}, n_outputs=2),
    "SQUEEZE": Sample([(1, 6, 1, 4)], {"axes": (2,)}),
    "EXPAND_DIMS": Sample([(1, 6, 4)], {"axis": 1}),
    "GATHER": Sample([(1, 6, 4), np.asarray([0, 2, 5], np.int32)], {"axis": 1}),
    "PACK": Sample([(1, 6), (1, 6)], {"axis": 0}),
    "UNPACK": Sample([(2, 6)], {"axis": 0}, n_outputs=2),
    "DEPTH_TO_SPACE": Sample([X4], {"block_size": 2}),
    "SPACE_TO_DEPTH": Sample([X4], {"block_size": 2}),
    "CAST": Sample([X4], out_dtype="int32"),
    "HARD_SWISH": Sample([X4]), "LEAKY_RELU": Sample([X4]), "PRELU": Sample([X4, _w(4)]),
    "ABS": Sample([X4]), "NEG": Sample([X4]), "EXP": Sample([X4]), "LOG": Sample([X4]), "SQRT": Sample([X4]),
    "RSQRT": Sample([X4]), "GELU": Sample([X4]),
    "MAXIMUM": Sample([X4, X4]), "MINIMUM": Sample([X4, X4]), "DIV": Sample([X4, X4]),
    "SQUARED_DIFFERENCE": Sample([X4, X4]),
    "REDUCE_MAX": Sample([X4], {"axes": (1, 2), "keep_dims": True}),
    "SUM": Sample([X4], {"axes": (1, 2), "keep_dims": True}),
    "ARG_MAX": Sample([(1, 10)], {"axis": 1}, out_dtype="int32"),
    "ARG_MIN": Sample([(1, 10)], {"axis": 1}, out_dtype="int32"),
    "L2_NORMALIZATION": Sample([(1, 10)]),
    "BATCH_MATMUL": Sample([(1, 4, 8), (1, 8, 3)]),
    "RESIZE_NEAREST_NEIGHBOR": Sample([X4], {"size": (12, 12)}),
    "RESIZE_BILINEAR": Sample([X4], {"size": (12, 12)}),
    "TRANSPOSE_CONV": Sample([X4, _w(3, 3, 3, 4), _w(3)], {"output_shape": (1, 13, 13, 3), "strides": (2, 2)}),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Sample([(1, 5, 3)] + [_w(4, 3, seed=i) for i in range(4)]
                                           + [_w(4, 4, seed=4 + i) for i in range(4)] + [_w(4, seed=8 + i)
                                                                                          for i in range(4)]),
    "SVDF": Sample([(1, 6), _w(4, 6), _w(4, 5), _w(2)], {"rank": 2}),
}

YES, NO = "yes", "—"


def _build(op_name: str, sample: Sample):
    from edgekit.ir.dtypes import DType
    from edgekit.ir.graph import Graph
    from edgekit.ir.ops import OpType, normalize_attrs
    from edgekit.ir.shapes import infer_op_shapes

    t = OpType(op_name)
    g = Graph(op_name.lower())
    names, feeds = [], {}
    for i, v in enumerate(sample.inputs):
        name = f"in{i}"
        if isinstance(v, tuple):
            g.add_tensor(name, v, DType.FLOAT32)
            g.inputs.append(name)
            feeds[name] = np.random.default_rng(i).uniform(0.1, 2.0, v).astype(np.float32)
        else:
            g.add_tensor(name, v.shape, DType.from_numpy(v.dtype), None, v)
        names.append(name)
    shapes = infer_op_shapes(t, [g.tensor(n).shape for n in names], normalize_attrs(t, sample.attrs))
    outs = []
    for k in range(sample.n_outputs):
        g.add_tensor(f"out{k}", shapes[k], DType(sample.out_dtype) if sample.out_dtype else DType.FLOAT32)
        outs.append(f"out{k}")
    g.add_op(t, names, outs, dict(sample.attrs), name=op_name.lower())
    g.outputs.extend(outs)
    return g, feeds


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _ok(fn, *args, **kwargs) -> bool:
    try:
        _quiet(fn, *args, **kwargs)
        return True
    except Exception:  # noqa: BLE001 - any refusal means "not supported" for this cell
        return False


def _has_op(graph, op_name: str) -> bool:
    return any(op.type.value == op_name for op in graph.ops)


def _both(f: bool, i: bool) -> str:
    return "float, int8" if f and i else "float" if f else "int8" if i else NO


def probe_ir_op(op_name: str) -> dict[str, str]:
    """The cells of one IR op, each from running that layer on the op's sample graph."""
    from edgekit.backends.onnx.writer import to_onnx
    from edgekit.backends.tflite.writer import tflite_bytes
    from edgekit.frontends.onnx_importer import load_onnx
    from edgekit.frontends.tflite.importer import load_tflite
    from edgekit.quantize.quantizer import quantize
    from edgekit.reference.interpreter import Interpreter

    edge = op_name in ("QUANTIZE", "DEQUANTIZE")  # probed on a graph quantized with float I/O
    sample = SAMPLES["RELU"] if edge else SAMPLES.get(op_name)
    if sample is None:
        return {}
    g, feeds = _build("RELU" if edge else op_name, sample)
    cells = {"ref_float": YES if _ok(lambda: Interpreter(g).run(feeds)) else NO}
    qg = None
    try:
        calib = [np.stack([feeds[n]] * 4).reshape((4,) + feeds[n].shape[1:]) if feeds[n].shape[0] == 1
                 else feeds[n] for n in g.inputs]
        qg = _quiet(quantize, g, calib if len(calib) > 1 else calib[0], io="float" if edge else "int8").graph
        if not _has_op(qg, op_name):
            qg = None
    except Exception:  # noqa: BLE001
        qg = None
    cells["quantizer"] = YES if qg is not None else NO
    if qg is not None:
        qfeeds = {n: (feeds[n] if edge else np.zeros(qg.tensor(n).shape, qg.tensor(n).dtype.np)) for n in qg.inputs}
        cells["ref_int8"] = YES if _ok(lambda: Interpreter(qg).run(qfeeds)) else NO
    else:
        cells["ref_int8"] = NO
    if edge:
        cells["ref_float"] = "float to/from int8"
        g = None
    for fmt, write, read in (("tflite", tflite_bytes, load_tflite), ("onnx", to_onnx, load_onnx)):
        wrote, read_back = [], []
        for graph in (g, qg):
            data = None
            if graph is not None:
                try:
                    data = _quiet(write, graph)
                except Exception:  # noqa: BLE001
                    data = None
            wrote.append(data is not None)
            try:
                read_back.append(data is not None and _has_op(_quiet(read, data), op_name))
            except Exception:  # noqa: BLE001
                read_back.append(False)
        cells[f"{fmt}_write"] = _both(*wrote)
        cells[f"{fmt}_import"] = _both(*read_back)
    return cells


def static_cells(op_name: str) -> dict[str, str]:
    from edgekit.backends.c.params import SUPPORTED_OPS
    from edgekit.frontends.torch_importer import SUPPORTED_TORCH_OPS

    kernels = json.loads((ROOT / "runtimes" / "micro" / "kernels.json").read_text())["kernels"]
    variants = set()
    for k in kernels.values():
        if op_name in k.get("ir_ops", ()):
            variants |= set(k.get("variants", {}))
    lowered = op_name in {t.value for t in SUPPORTED_OPS}
    aten = set(SUPPORTED_TORCH_OPS)
    torch = any(a in aten or any(s.startswith(a + ".") for s in aten) for a in TORCH_ATEN.get(op_name, ()))
    return {"c_portable": YES if lowered and "portable" in variants else NO,
            "c_dsp": YES if lowered and "dsp" in variants else NO,
            "torch": YES if torch else NO}


COLUMNS = [("ref_float", "ref float"), ("ref_int8", "ref int8"), ("quantizer", "quantizer"),
           ("tflite_import", ".tflite import"), ("tflite_write", ".tflite write"),
           ("onnx_import", "ONNX import"), ("onnx_write", "ONNX write"), ("torch", "torch"),
           ("c_portable", "C portable"), ("c_dsp", "C DSP")]


def ir_table() -> list[str]:
    from edgekit.ir.ops import OpType

    ir_ops = [t.value for t in OpType]
    covered = set(ir_ops) | set(TFLM_TO_IR)
    rows = ["| op | in IR | TFLM builtin | " + " | ".join(h for _, h in COLUMNS) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |"]
    for name in sorted(set(ir_ops) | set(TFLM_BUILTINS)):
        tflm = YES if name in TFLM_BUILTINS else NO
        if name in ir_ops:
            cells = {**probe_ir_op(name), **static_cells(name)}
            vals = [cells.get(k, NO) for k, _ in COLUMNS]
            rows.append(f"| {name} | {YES} | {tflm} | " + " | ".join(vals) + " |")
        elif name in covered:
            rows.append(f"| {name} | as {TFLM_TO_IR[name]} | {tflm} | " + " | ".join("" for _ in COLUMNS) + " |")
        else:
            rows.append(f"| {name} | {NO} | {tflm} | " + " | ".join(NO for _ in COLUMNS) + " |")
    return rows


def onnx_table() -> tuple[list[str], str]:
    import onnx

    from edgekit.frontends.onnx import convert
    from edgekit.frontends.onnx.handlers_composite import CONST_ONLY_OPS

    schemas = {}
    for s in onnx.defs.get_all_schemas():
        if s.domain in ("", "ai.onnx") and not s.deprecated:
            schemas[s.name] = s
    handled = set(convert.handled_ops())
    const_only = set(CONST_ONLY_OPS)
    rows = ["| ONNX op | edgekit import |", "| --- | --- |"]
    counts = {"converter": 0, "constants": 0, "function": 0, "none": 0}
    for name in sorted(schemas):
        s = schemas[name]
        if name in const_only:
            how, key = "on constant inputs only (folded at import)", "constants"
        elif name in handled:
            how, key = YES, "converter"
        elif s.has_function or s.has_context_dependent_function:
            how, key = "through its ONNX function definition (when edgekit imports every op of the body)", \
                "function"
        else:
            how, key = NO, "none"
        counts[key] += 1
        rows.append(f"| {name} | {how} |")
    summary = (f"{len(schemas)} ONNX operators (onnx {onnx.__version__}, default domain): {counts['converter']} "
               f"with a converter, {counts['constants']} evaluated on constants only, {counts['function']} "
               f"through their ONNX function definition, {counts['none']} not imported.")
    return rows, summary


def render() -> str:
    ir_rows = ir_table()
    onnx_rows, onnx_summary = onnx_table()
    lines = [
        "# Operators",
        "",
        "Generated by `tools/generate_operators_doc.py` from the code (do not edit by hand;",
        "`tests/test_operators_doc.py` fails when this file is stale). Each cell of the first",
        "table comes from running that layer on a one-op graph of the op: the reference",
        "interpreter in float32 and, after edgekit's quantizer, in int8; edgekit's `.tflite`",
        "and ONNX writers on it (float and int8), and its importers on what they wrote (the",
        "op must come back); the torch importer's registered ATen ops; the C backend's",
        "lowering and the kernel variants of `runtimes/micro/kernels.json`. \"float, int8\"",
        "names the element types a layer takes. Semantics notes (rules where TFLM lacks an",
        "op, decompositions): `docs/ops-notes.md`.",
        "",
        f"TFLM builtins: the `BuiltinOperator_*` registrations of tflite-micro's "
        f"`micro_mutable_op_resolver.h` at commit `{TFLM_COMMIT}`.",
        "",
        "## IR operators and TFLM builtins",
        "",
        *ir_rows,
        "",
        "## ONNX operators",
        "",
        onnx_summary + " Ops with a converter or a function definition can still reject a variant "
        "(an attribute value, a run-time input that must be constant); the ONNX node-test counts per op: "
        "`python tests/frontends/test_onnx_node_conformance.py`.",
        "",
        *onnx_rows,
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/operators.md is stale")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = render()
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print("docs/operators.md is stale: run python tools/generate_operators_doc.py", file=sys.stderr)
            return 1
        return 0
    from edgekit.files import write_atomic

    write_atomic(DOC, lambda f: f.write(text.encode()))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
