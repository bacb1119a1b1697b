"""Compression: accuracy against size for int8 only, prune + fine-tune + int8 and
prune + distill + int8, at three pruning ratios, on two tasks.

    .venv/bin/python bench/compression.py [--seeds 3] [--ratios 0.3,0.5,0.7] [--out bench/results]

- digits: edgekit's digits CNN teacher (``edgekit.compress.digits``) on scikit-learn's
  8x8 digits, test = the 450 held-out digits of tools/train_digits_model.py.
- breast cancer: a 30-256-128-2 MLP (a model edgekit does not ship) on scikit-learn's
  breast cancer data (569 samples, standardized), 25% held out for test.

Both data sets ship inside scikit-learn (no download). For every seed the teacher is
trained once; each ratio then runs ``edgekit.compress.compress``, which prunes in two
steps with fine-tuning between them and trains the pruned model twice from the same
weights for the same epochs: with hard labels (fine-tune) and with distillation. Each
result is quantized to int8 by edgekit and evaluated with the reference interpreter.
Writes ``compression.md`` (markdown tables), ``compression_pareto.svg`` and, where the
system has librsvg and cairo, ``compression_pareto.png`` to --out.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekit.compress import compress  # noqa: E402
from edgekit.compress import distill as kd  # noqa: E402
from edgekit.compress import prune as pr  # noqa: E402
from edgekit.compress.data import TrainData  # noqa: E402
from edgekit.compress.digits import load_digits_data, train_digits_teacher  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.quantize.report import run_model  # noqa: E402

METHODS = ("int8 only", "prune + fine-tune + int8", "prune + distill + int8")


# -- tasks ------------------------------------------------------------------------------

def cancer_data(seed: int) -> TrainData:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    x, y = d.data.astype(np.float32), d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    xtr, xva, ytr, yva = train_test_split(xtr, ytr, test_size=0.2, random_state=seed, stratify=ytr)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    f = lambda a: ((a - mu) / sd).astype(np.float32)
    return TrainData(f(xtr), ytr, f(xva), yva, f(xte), yte, metric="top1", source="sklearn breast cancer")


def cancer_teacher(seed: int, data: TrainData):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 2))
    kd.train(model, data, kd.TrainConfig(epochs=60, lr=1e-3, batch_size=32, patience=15, seed=seed))
    return model.eval()


TASKS = {
    "digits": dict(data=load_digits_data,
                   teacher=lambda seed, data: train_digits_teacher(seed=seed, epochs=25, data=data)[0],
                   compress=dict(epochs=20, lr=2e-3, steps=2, step_epochs=3, batch_size=64)),
    "breast cancer": dict(data=cancer_data, teacher=cancer_teacher,
                          compress=dict(epochs=40, lr=1e-3, steps=2, step_epochs=5, batch_size=32, patience=12)),
}


# -- runs ---------------------------------------------------------------------------------

def int8_only(teacher, data: TrainData) -> dict:
    import torch

    ex = (torch.from_numpy(data.x_train[:1]),)
    g = pr.float_graph_of(teacher, ex)
    q = quantize(g, data.x_train[:500]).graph
    x, y, _ = data.eval_split
    out = run_model(q, x)[q.outputs[0]]
    costs = pr.deploy_costs(q, ("dsp", "fpu"))
    return {"acc": kd.metric_value(out, y, x, "top1"), "fp32": kd.evaluate(teacher, x, y, "top1"),
            "flash": costs.flash_bytes, "macs": costs.macs, "params": costs.params}


def run_task(name: str, seeds: list[int], ratios: list[float], log) -> list[dict]:
    task = TASKS[name]
    rows = []
    for seed in seeds:
        data = task["data"](seed)
        t0 = time.perf_counter()
        teacher = task["teacher"](seed, data)
        base = int8_only(teacher, data)
        rows.append({"task": name, "seed": seed, "method": METHODS[0], "ratio": 0.0, **base})
        log(f"{name} seed {seed}: teacher fp32 {base['fp32']:.4f}, int8 {base['acc']:.4f} "
            f"({time.perf_counter() - t0:.1f} s)")
        for ratio in ratios:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                r = compress(copy.deepcopy(teacher), data, ratio=ratio, distill=True, out_dir=out, seed=seed,
                             resume=False, **task["compress"])
            size = r.row("int8")
            acc = r.accuracies
            common = {"task": name, "seed": seed, "ratio": ratio, "flash": size.flash_bytes, "macs": size.macs,
                      "params": size.params}
            rows.append({**common, "method": METHODS[1], "acc": acc["int8_pruned"], "fp32": acc["pruned"]})
            rows.append({**common, "method": METHODS[2], "acc": acc["int8_distilled"], "fp32": acc["distilled"]})
            log(f"{name} seed {seed} ratio {ratio}: fine-tune {acc['pruned']:.4f} / int8 {acc['int8_pruned']:.4f}, "
                f"distill {acc['distilled']:.4f} / int8 {acc['int8_distilled']:.4f}, "
                f"{size.flash_bytes / 1024:.1f} KiB ({time.perf_counter() - t0:.1f} s)")
    return rows


# -- tables ---------------------------------------------------------------------------------

def _agg(rows, task, method, ratio, key):
    vals = [r[key] for r in rows if r["task"] == task and r["method"] == method and r["ratio"] == ratio]
    return float(np.mean(vals)), float(np.std(vals)), len(vals)


def markdown(rows: list[dict], seeds: list[int], ratios: list[float], seconds: float) -> str:
    lines = ["# Compression: accuracy against size", "",
             f"Command: `.venv/bin/python bench/compression.py --seeds {len(seeds)} "
             f"--ratios {','.join(str(r) for r in ratios)}` ({seconds / 60:.1f} min on the development machine)",
             "",
             f"Accuracy is the test top-1 of the int8 model (edgekit quantize, reference interpreter), mean ± std "
             f"over seeds {', '.join(map(str, seeds))}; fp32 is the same model before quantization. Flash is "
             "edgekit's int8 estimate (weights + code per kernel kind + per-op and per-channel parameters, "
             "calibrated on what `edgekit compile` measures), MACs per inference. Fine-tune and distill start from "
             "the same pruned weights and train for the same epochs.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        n_test = {"digits": 450, "breast cancer": 143}.get(task)
        lines += [f"## {task}" + (f" ({n_test} test samples: one sample = {100 / n_test:.2f} points)"
                                  if n_test else ""), "",
                  "| method | ratio | flash (KiB) | MACs | int8 top-1 | fp32 top-1 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for method in METHODS:
            for ratio in ([0.0] if method == METHODS[0] else ratios):
                a, s, _ = _agg(rows, task, method, ratio, "acc")
                f32, _, _ = _agg(rows, task, method, ratio, "fp32")
                fl, _, _ = _agg(rows, task, method, ratio, "flash")
                mc, _, _ = _agg(rows, task, method, ratio, "macs")
                lines.append(f"| {method} | {ratio:g} | {fl / 1024:.1f} | {mc:,.0f} | {a * 100:.2f} ± {s * 100:.2f} "
                             f"| {f32 * 100:.2f} |")
        lines.append("")
        lines += verdict(rows, task) + [""]
    lines += ["![accuracy against flash](compression_pareto.png)", "",
              "(`compression_pareto.svg` is the same plot as SVG.)", ""]
    return "\n".join(lines)


def verdict(rows, task) -> list[str]:
    """Per (seed, ratio) pair: did distillation beat plain fine-tuning, in int8?"""
    ft = {(r["seed"], r["ratio"]): r["acc"] for r in rows if r["task"] == task and r["method"] == METHODS[1]}
    kd_ = {(r["seed"], r["ratio"]): r["acc"] for r in rows if r["task"] == task and r["method"] == METHODS[2]}
    diffs = np.array([kd_[k] - ft[k] for k in ft])
    wins, ties, losses = int((diffs > 0).sum()), int((diffs == 0).sum()), int((diffs < 0).sum())
    mean = diffs.mean() * 100
    if wins > losses and mean > 0:
        word = "beat"
    elif losses > wins and mean < 0:
        word = "did not beat"
    else:
        word = "did not clearly beat"
    return [f"Distillation {word} plain fine-tuning on {task}: better in {wins}, equal in {ties}, worse in "
            f"{losses} of {len(diffs)} (seed, ratio) runs; mean difference {mean:+.2f} points of int8 top-1 "
            f"(largest {diffs.max() * 100:+.2f}, smallest {diffs.min() * 100:+.2f})."]


# -- the Pareto plot (SVG) -------------------------------------------------------------------

_COLORS = {METHODS[0]: "#e15759", METHODS[1]: "#4e79a7", METHODS[2]: "#59a14f"}


def pareto_front(points):
    """Points not beaten in both size (smaller) and accuracy (higher), by size."""
    front, best = [], -1.0
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= raw:
            return float(m * exp)
    return float(10 * exp)


def svg(rows: list[dict]) -> str:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    pw, ph, ml, mt, mb = 420, 300, 60, 40, 50
    width, height = len(tasks) * (pw + ml + 20) + 20, ph + mt + mb + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="11">']
    for t, task in enumerate(tasks):
        ox = 20 + t * (pw + ml + 20) + ml
        pts = {}
        for m in METHODS:
            ratios = sorted({r["ratio"] for r in rows if r["task"] == task and r["method"] == m})
            pts[m] = [(_agg(rows, task, m, q, "flash")[0] / 1024, _agg(rows, task, m, q, "acc")[0] * 100,
                       _agg(rows, task, m, q, "acc")[1] * 100, q) for q in ratios]
        allp = [p for v in pts.values() for p in v]
        xstep = _nice_step(max(p[0] for p in allp) * 1.05 / 5)
        x0, x1 = 0.0, xstep * np.ceil(max(p[0] for p in allp) * 1.05 / xstep)
        lo = min(p[1] - p[2] for p in allp)
        hi = max(p[1] + p[2] for p in allp)
        y0, y1 = np.floor(lo - 0.5), min(100.0, np.ceil(hi + 0.5))
        sx = lambda v, ox=ox, x0=x0, x1=x1: ox + (v - x0) / (x1 - x0) * pw
        sy = lambda v, y0=y0, y1=y1: mt + ph - (v - y0) / (y1 - y0) * ph
        out.append(f'<text x="{ox + pw / 2}" y="20" text-anchor="middle" font-size="13" font-weight="bold">'
                   f'{html.escape(task)}: int8 top-1 against flash</text>')
        out.append(f'<rect x="{ox}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        for xv in np.arange(x0, x1 + xstep / 2, xstep):
            out.append(f'<line x1="{sx(xv):.1f}" y1="{mt}" x2="{sx(xv):.1f}" y2="{mt + ph}" stroke="#eee"/>')
            out.append(f'<text x="{sx(xv):.1f}" y="{mt + ph + 14}" text-anchor="middle">{xv:g}</text>')
        ystep = _nice_step((y1 - y0) / 5)
        for yv in np.arange(np.ceil(y0 / ystep) * ystep, y1 + ystep / 2, ystep):
            out.append(f'<line x1="{ox}" y1="{sy(yv):.1f}" x2="{ox + pw}" y2="{sy(yv):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{ox - 4}" y="{sy(yv) + 3:.1f}" text-anchor="end">{yv:g}</text>')
        out.append(f'<text x="{ox + pw / 2}" y="{mt + ph + 30}" text-anchor="middle">estimated int8 flash (KiB)</text>')
        out.append(f'<text x="{ox - 42}" y="{mt + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {ox - 42} {mt + ph / 2})">test top-1 (%)</text>')
        front = pareto_front([(p[0], p[1]) for p in allp])
        out.append('<polyline fill="none" stroke="#888" stroke-dasharray="4 3" points="'
                   + " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in front) + '"/>')
        for m, ps in pts.items():
            c = _COLORS[m]
            if len(ps) > 1:
                out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="'
                           + " ".join(f"{sx(p[0]):.1f},{sy(p[1]):.1f}" for p in ps) + '"/>')
            for x, y, s, q in ps:
                out.append(f'<line x1="{sx(x):.1f}" y1="{sy(y - s):.1f}" x2="{sx(x):.1f}" y2="{sy(y + s):.1f}" '
                           f'stroke="{c}"/>')
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{c}"><title>{html.escape(m)} '
                           f'ratio {q:g}: {y:.2f}% at {x:.1f} KiB</title></circle>')
                if q:  # fine-tune labels below the point, distill labels above
                    dy = 14 if m == METHODS[1] else -6
                    out.append(f'<text x="{sx(x) + 5:.1f}" y="{sy(y) + dy:.1f}" fill="{c}">{q:g}</text>')
    ly = mt + ph + 48
    for i, m in enumerate(METHODS):
        lx = 20 + ml + i * 200
        out.append(f'<circle cx="{lx}" cy="{ly}" r="4" fill="{_COLORS[m]}"/>')
        out.append(f'<text x="{lx + 8}" y="{ly + 4}">{html.escape(m)}</text>')
    out.append(f'<text x="{20 + ml + 3 * 200}" y="{ly + 4}" fill="#666">dashed: Pareto front; labels: ratio; '
               'bars: ± std</text>')
    out.append("</svg>")
    return "\n".join(out)


def svg_to_png(svg_path: Path, png_path: Path, width: int, height: int) -> bool:
    """Render the SVG with the system's librsvg and cairo through ctypes, when they are
    installed (no Python plotting dependency); False when they are not."""
    import ctypes
    import ctypes.util

    try:
        rsvg = ctypes.CDLL(ctypes.util.find_library("rsvg-2") or "librsvg-2.so.2")
        cairo = ctypes.CDLL(ctypes.util.find_library("cairo") or "libcairo.so.2")
    except OSError:
        return False
    vp, cp, d = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double
    rsvg.rsvg_handle_new_from_file.restype, rsvg.rsvg_handle_new_from_file.argtypes = vp, [cp, vp]
    rsvg.rsvg_handle_render_cairo.argtypes = [vp, vp]
    cairo.cairo_image_surface_create.restype = vp
    cairo.cairo_create.restype, cairo.cairo_create.argtypes = vp, [vp]
    cairo.cairo_set_source_rgb.argtypes = [vp, d, d, d]
    cairo.cairo_paint.argtypes = [vp]
    cairo.cairo_surface_write_to_png.argtypes = [vp, cp]
    cairo.cairo_destroy.argtypes = [vp]
    cairo.cairo_surface_destroy.argtypes = [vp]
    handle = rsvg.rsvg_handle_new_from_file(str(svg_path).encode(), None)
    if not handle:
        return False
    surface = cairo.cairo_image_surface_create(0, width, height)  # CAIRO_FORMAT_ARGB32
    cr = cairo.cairo_create(surface)
    cairo.cairo_set_source_rgb(cr, 1.0, 1.0, 1.0)
    cairo.cairo_paint(cr)
    ok = rsvg.rsvg_handle_render_cairo(handle, cr)
    status = cairo.cairo_surface_write_to_png(surface, str(png_path).encode())
    cairo.cairo_destroy(cr)
    cairo.cairo_surface_destroy(surface)
    return bool(ok) and status == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ratios", default="0.3,0.5,0.7")
    ap.add_argument("--tasks", default="digits,breast cancer")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    ratios = [float(r) for r in args.ratios.split(",")]
    t0 = time.perf_counter()
    rows = []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        rows += run_task(task, seeds, ratios, lambda m: print(m, flush=True))
    md = markdown(rows, seeds, ratios, time.perf_counter() - t0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression.md").write_text(md)
    picture = svg(rows)
    (out / "compression_pareto.svg").write_text(picture)
    w, h = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', picture).groups())
    png = svg_to_png(out / "compression_pareto.svg", out / "compression_pareto.png", w, h)
    print()
    print(md)
    print(f"wrote {out / 'compression.md'}, {out / 'compression_pareto.svg'}"
          + (f" and {out / 'compression_pareto.png'}" if png else " (no librsvg/cairo here: no PNG)"))


if __name__ == "__main__":
    main()
