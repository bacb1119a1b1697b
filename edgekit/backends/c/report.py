"""The compile report: ``report.json`` and a self-contained ``report.html`` (layer table,
arena timeline, memory fit table)."""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.report.svg import html_page, html_table
from edgekit.report.timeline import arena_timeline_svg


def build_report(manifest: dict, timeline: list[dict]) -> dict:
    return {
        "model": manifest["model"], "target": manifest["target"], "variant": manifest["variant"],
        "arena_bytes": manifest["arena_bytes"], "stack_bytes": manifest["stack_bytes"],
        "flash": manifest["flash"], "fit": manifest["fit"], "layers": manifest["ops"],
        "kernels": manifest["kernels"], "plan": manifest["plan"], "timeline": timeline,
        "macs": manifest["macs"],
    }


def report_html(report: dict) -> str:
    layers = report["layers"]
    rows = [(o["index"], o["name"], o["type"], o["kernel"] or "alias", o.get("variant") or "-",
             "x".join(map(str, o["output_shape"])), f"{o['macs']:,}", f"{o['weight_bytes']:,}",
             f"{o['offset']:,}", f"{o['output_bytes']:,}", o["inplace_of"] or "")
            for o in layers]
    layer_table = html_table(("#", "op", "type", "kernel", "variant", "output", "MACs",
                              "weight bytes", "arena offset", "bytes", "written over"), rows)
    labels = [o["type"] for o in layers]
    svg = arena_timeline_svg(report["timeline"], report["arena_bytes"],
                             title=f"Arena of {report['model']}: {report['arena_bytes']:,} bytes",
                             op_labels=labels)
    plan = report["plan"]
    plan_text = (f"<p>Arena {report['arena_bytes']:,} bytes; lower bound "
                 f"{plan['lower_bound_bytes']:,} bytes; without sharing {plan['naive_bytes']:,} "
                 f"bytes. Placement strategy {plan['strategy']}, op order {plan['order_source']}. "
                 f"Ops that never write over their input here: "
                 f"{', '.join(plan['no_share_ops']) or 'none'}.</p>")
    fit = report["fit"]
    part_rows = [(p["label"], f"{p['nbytes']:,}", p["region"] or "does not fit") for p in fit["parts"]]
    region_rows = [(r["name"] + (" (override)" if r["override"] else ""), r["kind"], f"{r['size']:,}",
                    f"{r['used']:,}", f"{r['free']:,}" if r["free"] >= 0 else f"over by {-r['free']:,}",
                    ", ".join(r["parts"]))
                   for r in fit["regions"]]
    flash = report["flash"]
    flash_note = ("measured with the target's compiler (size -A of the objects)"
                  if flash["measured"] else "estimated (the target's compiler is not installed)")
    memory = (html_table(("part", "bytes", "placed in"), part_rows)
              + html_table(("region", "kind", "size", "used", "free", "holds"), region_rows)
              + f"<p>Flash figures {flash_note}. Stack: {report['stack_bytes']:,} bytes "
              f"({'measured with -fstack-usage' if flash['measured'] else 'default estimate'}).</p>")
    kernels = html_table(("kernel", "function", "variant", "sources"),
                         [(k["kernel"], k["function"], k["variant"], " ".join(k["sources"]))
                          for k in report["kernels"]])
    summary = (f"<p>Target {report['target']}, kernels {report['variant']}; "
               f"{report['macs']:,} MACs; arena {report['arena_bytes']:,} bytes; flash "
               f"{flash['total']:,} bytes (code {flash['code']:,}, weights {flash['weights']:,}, "
               f"constants {flash['constants']:,}).</p>")
    return html_page(f"edgekit compile: {report['model']} for {report['target']}", [
        ("Summary", summary), ("Memory fit", memory), ("Arena timeline", svg + plan_text),
        ("Layers", layer_table), ("Kernels", kernels)])


def write_reports(out_dir: Path, report: dict) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "report.html").write_text(report_html(report))
