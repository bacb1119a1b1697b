"""Small self-contained SVG charts for HTML reports (no plotting dependency)."""

from __future__ import annotations

import html
import math
import re
from typing import Sequence

_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str, unit: str = "",
              width: int = 760, bar_height: int = 16, label_width: int = 220) -> str:
    """Horizontal grouped bars: one row per label, one bar per series."""
    names = list(series)
    n = len(labels)
    group_h = bar_height * len(names) + 6
    height = 40 + n * group_h + 30
    vals = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    vmax = _nice_max(max(vals) if vals else 1.0)
    vmin = min(0.0, min(vals) if vals else 0.0)
    plot_w = width - label_width - 70
    scale = plot_w / (vmax - vmin) if vmax > vmin else 1.0
    x0 = label_width + (-vmin) * scale
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for i in range(5):
        v = vmin + (vmax - vmin) * i / 4
        x = label_width + (v - vmin) * scale
        out.append(f'<line x1="{x:.1f}" y1="28" x2="{x:.1f}" y2="{height - 24}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{v:.3g}{_esc(unit)}</text>')
    for r, label in enumerate(labels):
        y = 32 + r * group_h
        out.append(f'<text x="{label_width - 6}" y="{y + group_h / 2 + 3:.1f}" text-anchor="end">{_esc(label)}</text>')
        for k, name in enumerate(names):
            v = series[name][r]
            if v is None or not math.isfinite(v):
                continue
            xa, xb = sorted((x0, label_width + (v - vmin) * scale))
            out.append(f'<rect x="{xa:.1f}" y="{y + k * bar_height:.1f}" width="{max(xb - xa, 0.5):.1f}" '
                       f'height="{bar_height - 2}" fill="{_PALETTE[k % len(_PALETTE)]}">'
                       f'<title>{_esc(label)} {_esc(name)}: {v:.4g}{_esc(unit)}</title></rect>')
            out.append(f'<text x="{xb + 3:.1f}" y="{y + k * bar_height + bar_height - 5:.1f}">{v:.3g}</text>')
    if len(names) > 1:
        for k, name in enumerate(names):
            lx = width - 290  # room for the longest series name
            ly = 30 + k * 14
            out.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{_PALETTE[k % len(_PALETTE)]}"/>')
            out.append(f'<text x="{lx + 14}" y="{ly + 9}">{_esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def html_page(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page: (heading, html body) sections."""
    body = "\n".join(f"<section><h2>{_esc(h)}</h2>\n{b}\n</section>" for h, b in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 980px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 13px;
          max-width: 30em; overflow-wrap: anywhere; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child, td.t {{ text-align: left; }}
section {{ margin-bottom: 2em; }}
</style></head><body>
<h1>{_esc(title)}</h1>
{body}
</body></html>
"""


_NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?\s*(%|x|dB|B|KiB|MiB|ms|s|us)?$")


def _cell(c) -> str:
    # Numbers line up on the right, words read from the left.
    text = str(c)
    cls = "" if isinstance(c, (int, float)) or _NUMBER.match(text) or not text else ' class="t"'
    return f"<td{cls}>{_esc(text)}</td>"


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
