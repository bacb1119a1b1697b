"""Arena timeline chart: where each buffer of a memory plan lives, op by op (SVG).

The x axis is the op index (execution order), the y axis the byte offset in the arena;
a buffer is a rectangle from its first to its last op, at its offset and as tall as its
size. Outputs written over their input (in place or shifted) show as overlapping
rectangles; scratch buffers are hatched. Input: ``MemoryPlan.timeline()`` rows.
"""

from __future__ import annotations

import html
import zlib
from typing import Sequence

_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
            "#ff9da7", "#9c755f", "#bab0ac")


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _spans(rows: Sequence[dict]) -> list[dict]:
    """One span per buffer: its name, offset, size, kind, first and last op index."""
    spans: dict[tuple, dict] = {}
    for row in rows:
        t = row["index"]
        for b in row["live"]:
            key = (b["name"], b["offset"], b["size"])
            s = spans.get(key)
            if s is None:
                spans[key] = dict(b, first=t, last=t)
            else:
                s["last"] = max(s["last"], t)
                s["first"] = min(s["first"], t)
    return sorted(spans.values(), key=lambda s: (s["first"], s["offset"]))


def _short(name: str, n: int = 48) -> str:
    return name if len(name) <= n else name[: n - 3] + "..."


def arena_timeline_svg(rows: Sequence[dict], arena_bytes: int, *, title: str = "Arena timeline",
                       op_labels: Sequence[str] | None = None, width: int = 900,
                       height: int = 360) -> str:
    """SVG of the arena over time; ``rows`` as ``MemoryPlan.timeline()`` returns them."""
    n = max(len(rows), 1)
    left, right, top, bottom = 70, 20, 34, 70
    pw, ph = width - left - right, height - top - bottom
    total = max(arena_bytes, 1)
    col = pw / n

    def y(off: float) -> float:  # offset 0 at the bottom
        return top + ph - off / total * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           '<defs><pattern id="ek-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#666" '
           'stroke-width="2"/></pattern></defs>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" '
           f'font-weight="bold">{_esc(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    for k in range(5):  # byte grid
        off = total * k / 4
        yy = y(off)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{int(off):,}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
               'text-anchor="middle">arena offset (bytes)</text>')
    for s in _spans(rows):
        x0 = left + s["first"] * col + 1
        w = (s["last"] - s["first"] + 1) * col - 2
        y_top, y_bot = y(s["offset"] + s["size"]), y(s["offset"])
        color = _PALETTE[zlib.crc32(s["name"].encode()) % len(_PALETTE)]
        fill = "url(#ek-hatch)" if s.get("kind") == "scratch" else color
        tip = (f"{s['name']}: {s['size']:,} bytes at offset {s['offset']:,}, ops "
               f"{s['first']}..{s['last']}")
        if s.get("inplace_of"):
            tip += f" (over its input {s['inplace_of']})"
        out.append(f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{max(w, 1):.1f}" '
                   f'height="{max(y_bot - y_top, 1):.1f}" fill="{fill}" fill-opacity="0.75" '
                   f'stroke="#333" stroke-width="0.5"><title>{_esc(tip)}</title></rect>')
        if w > 60 and y_bot - y_top > 12:
            out.append(f'<text x="{x0 + 3:.1f}" y="{y_top + 11:.1f}" fill="#111">'
                       f'{_esc(_short(s["name"], int(w / 6)))}</text>')
    for t in range(n):  # op axis
        xx = left + (t + 0.5) * col
        label = str(t) if op_labels is None else f"{t} {op_labels[t]}"
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 12}" text-anchor="end" font-size="9" '
                   f'transform="rotate(-40 {xx:.1f} {top + ph + 12})">{_esc(_short(label, 22))}</text>')
    peak = max((r.get("bytes", 0) for r in rows), default=0)
    yy = y(peak)
    out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#d62728" '
               'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{left + pw - 4}" y="{yy - 4:.1f}" text-anchor="end" fill="#d62728">'
               f'arena {arena_bytes:,} bytes</text>')
    out.append("</svg>")
    return "\n".join(out)
