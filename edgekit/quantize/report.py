"""Accuracy report of a quantized model: the float and int8 metric on evaluation
data, per-layer SQNR, a layer sensitivity ranking and the size before and after.

Layers are matched by tensor name: the quantizer keeps the float graph's names.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir import DType, Graph, OpType
from edgekit.ir.stats import graph_stats
from edgekit.reference import int8_kernels as ik
from edgekit.reference.interpreter import Interpreter

_WEIGHTED = (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)


@dataclass
class LayerError:
    index: int
    op: str
    tensor: str
    sqnr_db: float            # this layer's output, int8 graph vs float graph
    solo_output_sqnr_db: float | None = None  # model output SQNR with only this layer in int8
    method: str | None = None  # calibration method of its output range


@dataclass
class QuantReport:
    model: str
    metric: str
    float_metric: float | None
    int8_metric: float | None
    agreement: float | None    # share of samples with the same top-1 (classifiers)
    output_sqnr_db: float
    float_bytes: int
    int8_bytes: int
    eval_samples: int
    eval_source: str
    layers: list[LayerError] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sensitivity_ranking"] = [l.tensor for l in self.ranking()]
        return d

    def ranking(self) -> list[LayerError]:
        scored = [l for l in self.layers if l.solo_output_sqnr_db is not None]
        return sorted(scored, key=lambda l: l.solo_output_sqnr_db)


# -- running float and int8 graphs on float data ---------------------------------

def run_model(graph: Graph, x: np.ndarray, dump: bool = False) -> dict[str, np.ndarray]:
    """Run ``graph`` on float data in the source layout; int8 graph inputs are quantized
    with their parameters and every int8 tensor comes back dequantized."""
    feeds = {}
    name = graph.inputs[0]
    t = graph.tensor(name)
    feeds[name] = ik.quantize(x, t.quant) if t.dtype is DType.INT8 and x.dtype != np.int8 else x
    out = Interpreter(graph).run(feeds, layout="source", dump=dump)
    res = {}
    for k, v in out.items():
        tk = graph.tensors.get(k)
        if tk is not None and tk.dtype is DType.INT8 and tk.quant is not None and tk.quant.is_per_tensor:
            v = ik.dequantize(v, tk.quant)
        res[k] = v
    return res


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    noise = float(((ref - np.asarray(got, np.float64)) ** 2).sum())
    signal = float((ref ** 2).sum())
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return 10 * math.log10(signal / noise)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties get average ranks)."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = np.asarray(scores)[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def choose_metric(graph: Graph, y: np.ndarray | None, metric: str = "auto") -> str:
    if metric != "auto":
        return metric
    out = graph.output_tensors()[0]
    inp = graph.input_tensors()[0]
    if out.size == inp.size and out.rank >= 2 and out.shape[-1] == inp.shape[-1]:
        return "auc" if y is not None and set(np.unique(y)) <= {0, 1} and len(np.unique(y)) == 2 else "recon_mse"
    if y is not None and out.shape[-1] > 1 and np.issubdtype(np.asarray(y).dtype, np.integer):
        return "top1"
    return "output_mse"


def check_labels(graph: Graph, y: np.ndarray | None, metric: str) -> None:
    """For top-1, every label must name one of the model's classes (0 .. outputs - 1):
    a label outside them can never match and would show as a silent 0% accuracy."""
    if y is None or metric != "top1":
        return
    classes = int(graph.output_tensors()[0].shape[-1])
    labels = np.asarray(y).reshape(-1)
    if labels.dtype.kind == "f" and labels.size and not np.array_equal(labels, np.round(labels)):
        raise BadInputError(f"top-1 labels must be class indices 0..{classes - 1}; got non-integer labels "
                            f"such as {labels[labels != np.round(labels)][0]:g}")
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        shown = ", ".join(str(v) for v in np.unique(labels[bad])[:8].tolist())
        raise BadInputError(f"{int(bad.sum())} of {labels.size} labels are outside the model's classes "
                            f"0..{classes - 1} (the output has {classes} values): {shown}"
                            + (" ..." if len(np.unique(labels[bad])) > 8 else ""))


def _metric(metric: str, x: np.ndarray, out: np.ndarray, y, ref_out: np.ndarray | None) -> float:
    if metric == "top1":
        return float((out.reshape(len(out), -1).argmax(-1) == np.asarray(y).reshape(-1)).mean())
    if metric == "output_mse":
        return 0.0 if ref_out is None else float(((out - ref_out) ** 2).mean())
    score = ((out.reshape(len(out), -1) - x.reshape(len(x), -1)) ** 2).mean(-1)
    if metric == "recon_mse":
        return float(score.mean())
    if metric == "auc":
        return auc(score, y)
    raise ValueError(f"unknown metric {metric!r}")


# -- the report ---------------------------------------------------------------------

def _fake_quant_one_layer(float_graph: Graph, int8_graph: Graph, tensor: str) -> Graph:
    """The float graph with one layer as the int8 graph computes it: its weights
    replaced by the dequantized int8 weights and its output rounded to int8."""
    g = float_graph.copy()
    producer = g.producers()[tensor]
    q_op = int8_graph.producers().get(tensor)
    if q_op is not None and producer.type in _WEIGHTED:
        wq = int8_graph.tensor(q_op.inputs[1])
        if wq.dtype is DType.INT8:
            producer.inputs[1] = g.add_const(f"{tensor}__wdq", ik.dequantize(wq.data, wq.quant)).name
    qt = int8_graph.tensor(tensor)
    if qt.dtype is DType.INT8 and qt.quant is not None:
        t = g.tensor(tensor)
        dq = g.add_tensor(g.unique_name(f"{tensor}__dq"), t.shape, DType.FLOAT32).name
        g.replace_uses(tensor, dq)
        q = g.add_tensor(g.unique_name(f"{tensor}__q"), t.shape, DType.INT8, qt.quant).name
        g.add_op(OpType.QUANTIZE, [tensor], [q])
        g.add_op(OpType.DEQUANTIZE, [q], [dq])
        g.toposort()
    return g


def build_report(float_graph: Graph, int8_graph: Graph, x: np.ndarray, y: np.ndarray | None = None, *,
                 metric: str = "auto", model: str = "", source: str = "", methods: dict | None = None,
                 sensitivity: bool = True, max_layer_samples: int = 256, progress=None) -> QuantReport:
    t0 = time.perf_counter()
    metric = choose_metric(float_graph, y, metric)
    check_labels(float_graph, y, metric)
    f_out = run_model(float_graph, x)[float_graph.outputs[0]]
    q_out = run_model(int8_graph, x)[int8_graph.outputs[0]]
    f_m = _metric(metric, x, f_out, y, None) if (y is not None or metric in ("recon_mse",)) else None
    q_m = _metric(metric, x, q_out, y, f_out) if (y is not None or metric in ("recon_mse", "output_mse")) else None
    if metric == "output_mse":
        f_m = 0.0
    agreement = None
    if f_out.ndim == 2 and f_out.shape[-1] > 1 and metric != "recon_mse" and metric != "auc":
        agreement = float((f_out.argmax(-1) == q_out.argmax(-1)).mean())
    extra = {}
    if metric in ("recon_mse", "auc"):
        fs = ((f_out.reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2).mean(-1)
        qs = ((q_out.reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2).mean(-1)
        extra["score_correlation"] = float(np.corrcoef(fs, qs)[0, 1]) if len(x) > 1 else None
        extra["float_mean_score"] = float(fs.mean())
        extra["int8_mean_score"] = float(qs.mean())

    xs = x[:max_layer_samples]
    f_dump = run_model(float_graph, xs, dump=True)
    q_dump = run_model(int8_graph, xs, dump=True)
    layers: list[LayerError] = []
    f_ref = f_dump[float_graph.outputs[0]]
    ops = [op for op in int8_graph.ops if op.outputs[0] in f_dump and op.outputs[0] in q_dump
           and op.type not in (OpType.QUANTIZE, OpType.DEQUANTIZE)]
    for i, op in enumerate(ops):
        name = op.outputs[0]
        layer = LayerError(index=i, op=op.type.value, tensor=name,
                           sqnr_db=sqnr_db(f_dump[name], q_dump[name]),
                           method=(methods or {}).get(name))
        if sensitivity and name in float_graph.tensors and name in float_graph.producers():
            solo = _fake_quant_one_layer(float_graph, int8_graph, name)
            out = Interpreter(solo).run({solo.inputs[0]: xs}, layout="source")[solo.outputs[0]]
            layer.solo_output_sqnr_db = sqnr_db(f_ref, out)
        layers.append(layer)
        if progress:
            progress(i + 1, len(ops))
    return QuantReport(
        model=model, metric=metric, float_metric=f_m, int8_metric=q_m, agreement=agreement,
        output_sqnr_db=sqnr_db(f_out, q_out),
        float_bytes=graph_stats(float_graph).param_bytes, int8_bytes=graph_stats(int8_graph).param_bytes,
        eval_samples=len(x), eval_source=source, layers=layers, extra=extra,
        seconds=time.perf_counter() - t0)


# -- presentation -------------------------------------------------------------------

_METRIC_NAMES = {"top1": "top-1 accuracy", "recon_mse": "reconstruction MSE (anomaly score)",
                 "auc": "AUC", "output_mse": "output MSE vs float"}


def _fmt_metric(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.2f}%" if metric == "top1" else f"{v:.5g}"


def print_report(r: QuantReport, console, top: int = 5) -> None:
    from rich.table import Table

    t = Table(title=f"quantization report: {r.model}")
    t.add_column("")
    t.add_column("float32", justify="right")
    t.add_column("int8", justify="right")
    t.add_row(_METRIC_NAMES.get(r.metric, r.metric) + f" ({r.eval_samples} samples)",
              _fmt_metric(r.metric, r.float_metric), _fmt_metric(r.metric, r.int8_metric))
    if r.agreement is not None:
        t.add_row("same top-1 as float", "", f"{r.agreement * 100:.2f}%")
    for k, v in r.extra.items():
        if v is not None:
            t.add_row(k.replace("_", " "), "", f"{v:.5g}")
    t.add_row("output SQNR", "", f"{r.output_sqnr_db:.1f} dB")
    t.add_row("weights + biases", f"{r.float_bytes:,} B", f"{r.int8_bytes:,} B "
              f"({r.float_bytes / max(r.int8_bytes, 1):.2f}x smaller)")
    console.print(t)
    lt = Table(title="per-layer error (int8 vs float, by tensor)")
    for col in ("#", "op", "tensor", "SQNR dB", "model output SQNR dB with only this layer int8", "range"):
        lt.add_column(col, justify="right" if "dB" in col or col == "#" else "left")
    for layer in r.layers:
        lt.add_row(str(layer.index), layer.op, layer.tensor[-40:], f"{layer.sqnr_db:.1f}",
                   "-" if layer.solo_output_sqnr_db is None else f"{layer.solo_output_sqnr_db:.1f}",
                   layer.method or "")
    console.print(lt)
    ranking = r.ranking()[:top]
    if ranking:
        console.print("most sensitive layers: " + ", ".join(
            f"#{l.index} {l.op} ({l.solo_output_sqnr_db:.1f} dB)" for l in ranking))


def report_html(r: QuantReport) -> str:
    from edgekit.report.svg import bar_chart, html_page, html_table

    summary = [["metric", _METRIC_NAMES.get(r.metric, r.metric), ""],
               ["float32", _fmt_metric(r.metric, r.float_metric), ""],
               ["int8", _fmt_metric(r.metric, r.int8_metric), ""]]
    if r.agreement is not None:
        summary.append(["same top-1 as float", f"{r.agreement * 100:.2f}%", ""])
    summary.append(["output SQNR", f"{r.output_sqnr_db:.1f} dB", ""])
    summary.append(["weights + biases", f"{r.float_bytes:,} B float32", f"{r.int8_bytes:,} B int8"])
    summary.append(["evaluation data", f"{r.eval_samples} samples", r.eval_source])
    labels = [f"#{l.index} {l.op}" for l in r.layers]
    finite = lambda v: None if v is None or not math.isfinite(v) else v  # noqa: E731
    chart = bar_chart(labels, {"layer SQNR": [finite(l.sqnr_db) for l in r.layers],
                               "model output SQNR, only this layer int8":
                                   [finite(l.solo_output_sqnr_db) for l in r.layers]},
                      title="Per-layer SQNR (higher is better)", unit=" dB")
    rows = [[l.index, l.op, l.tensor, f"{l.sqnr_db:.1f}",
             "-" if l.solo_output_sqnr_db is None else f"{l.solo_output_sqnr_db:.1f}", l.method or ""]
            for l in r.layers]
    ranking = [[i + 1, f"#{l.index} {l.op}", l.tensor, f"{l.solo_output_sqnr_db:.1f}"]
               for i, l in enumerate(r.ranking())]
    return html_page(f"edgekit quantization report: {r.model}", [
        ("Summary", html_table(["", "value", ""], summary)),
        ("Per-layer error", chart + html_table(
            ["#", "op", "tensor", "SQNR dB", "output SQNR dB (only this layer int8)", "range method"], rows)),
        ("Layer sensitivity (most sensitive first)", html_table(
            ["rank", "layer", "tensor", "output SQNR dB"], ranking)),
    ])
