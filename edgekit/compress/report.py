"""The compression report: one row per model (teacher, pruned, distilled, int8 student),
as JSON, a terminal table and a self-contained HTML page."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

# Instructions per MAC of edgekit's int8 kernels, measured on QEMU mps2-an386 (Cortex-M4,
# -icount shift=0, GCC 12 -O2, requantization included; runtimes/micro/README.md): a 3x3
# conv 16x16x32 -> 32 runs 2.7 instructions per MAC with the Armv7E-M DSP variant and 6.7
# with the portable C. Applied to every MAC as a first-order estimate (fully connected and
# 1x1 conv cost about the same per MAC; depthwise costs more). Cortex-M cores retire about
# one instruction per cycle, so cycles ~ instructions.
INSTR_PER_MAC_DSP = 2.7
INSTR_PER_MAC_PORTABLE = 6.7


def instructions_per_mac(features) -> float:
    return INSTR_PER_MAC_DSP if "dsp" in set(features or ()) else INSTR_PER_MAC_PORTABLE


@dataclass
class ReportRow:
    name: str                  # teacher, pruned, distilled, int8, ...
    precision: str             # fp32 or int8
    metric: float | None       # top1 accuracy in [0, 1], or MSE
    params: int
    macs: int
    flash_bytes: int
    arena_bytes: int
    est_cycles: int | None     # int8 rows: MACs x instructions per MAC on the target
    est_ms: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def fmt_metric(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * 100:.2f}%" if metric == "top1" else f"{v:.5g}"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


HEADER = ("model", "precision", "metric", "params", "MACs", "flash", "arena", "est. cycles", "est. ms")


def table_rows(rows: list[ReportRow], metric: str) -> list[list[str]]:
    out = []
    for r in rows:
        out.append([r.name + (f" ({r.note})" if r.note else ""), r.precision, fmt_metric(metric, r.metric),
                    f"{r.params:,}", _count(r.macs), _kib(r.flash_bytes), _kib(r.arena_bytes),
                    "-" if r.est_cycles is None else _count(r.est_cycles),
                    "-" if r.est_ms is None else f"{r.est_ms:.2f}"])
    return out


def print_table(result, console) -> None:
    from rich.table import Table

    metric = result.metric
    label = "top-1" if metric == "top1" else "MSE"
    t = Table(title=f"compression of {result.model_name} ({label} on {result.eval_split}, "
                    f"estimates for {result.target_name})")
    for h in HEADER:
        t.add_column(h.replace("metric", label), justify="left" if h in ("model", "precision") else "right")
    for row in table_rows(result.rows, metric):
        t.add_row(*row)
    console.print(t)
    for note in result.notes:
        console.print(f"- {note}")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(doc: dict) -> str:
    return json.dumps(_finite(doc), indent=1, default=str)


def report_html(result) -> str:
    from edgekit.report.svg import bar_chart, html_page, html_table

    metric = result.metric
    label = "top-1" if metric == "top1" else "MSE"
    rows = result.rows
    names = [r.name for r in rows]
    sections = [
        ("Models", html_table([h.replace("metric", label) for h in HEADER], table_rows(rows, metric))),
        (f"{label} on {result.eval_split}", bar_chart(
            names, {label: [(r.metric * 100 if metric == "top1" else r.metric) if r.metric is not None else None
                            for r in rows]}, title=f"{label} per model", unit="%" if metric == "top1" else "")),
        ("Size", bar_chart(names, {"flash KiB": [r.flash_bytes / 1024 for r in rows],
                                   "arena KiB": [r.arena_bytes / 1024 for r in rows]},
                           title="estimated flash and planned arena", unit=" KiB")),
    ]
    if result.notes:
        sections.append(("Notes", "<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in result.notes) + "</ul>"))
    if result.prune_info:
        info = result.prune_info
        chan = [[", ".join(k.split("|")), str(info["channels_before"].get(k, "")), str(v)]
                for k, v in info.get("channels_after", {}).items()]
        sections.append(("Pruned channels", html_table(["layers", "before", "after"], chan)))
    return html_page(f"edgekit compress: {result.model_name}", sections)


def _esc(s) -> str:
    import html

    return html.escape(str(s), quote=True)
