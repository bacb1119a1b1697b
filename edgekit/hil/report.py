"""HIL results as JUnit XML (one test case per vector, plus the flash) and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from edgekit.hil.rig import HilResult


def write_json(result: HilResult, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return p


def junit_tree(result: HilResult) -> ET.ElementTree:
    suite_name = f"hil.{result.model}.{result.device}"
    failures = result.failed + (1 if result.error else 0)
    per_vector = result.run_seconds / result.vectors if result.vectors else 0.0
    suites = ET.Element("testsuites", name="edgekit hil", tests=str(result.vectors + 1),
                        failures=str(failures), errors="0",
                        time=f"{result.flash_seconds + result.run_seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(result.vectors + 1),
                          failures=str(failures), errors="0", skipped="0",
                          time=f"{result.flash_seconds + result.run_seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("target", "board", "firmware", "package_bytes", "package_hash", "tick_hz",
                "arena_size", "arena_used", "stack_size", "stack_high_water"):
        ET.SubElement(props, "property", name=key, value=str(getattr(result, key)))
    if result.ticks:
        ET.SubElement(props, "property", name="ticks_median", value=f"{result.ticks_median:g}")
    if result.instructions_median is not None:
        ET.SubElement(props, "property", name="instructions_median",
                      value=f"{result.instructions_median:g}")
    flash = ET.SubElement(suite, "testcase", classname=suite_name, name="flash",
                          time=f"{result.flash_seconds:.3f}")
    if result.error:
        ET.SubElement(flash, "failure", message=result.error, type="DeviceError").text = result.error
    by_index = {}
    for m in result.mismatches:
        by_index.setdefault(m.index, []).append(m)
    failed = set(result.failed_indices)
    for i in range(result.vectors):
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=f"vector[{i}]",
                             time=f"{per_vector:.4f}")
        if i in failed:
            ms = by_index.get(i)
            msg = "; ".join(m.describe() for m in ms) if ms else \
                f"vector {i}: the device output differs from the reference"
            fail = ET.SubElement(case, "failure", message=msg, type="Mismatch")
            fail.text = "\n".join(f"{m.output}: expected {m.expected}\n{' ' * len(m.output)}  got      "
                                  f"{m.got}" for m in ms) if ms else msg
        elif i < len(result.ticks):
            ET.SubElement(case, "system-out").text = f"ticks {result.ticks[i]}"
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(result: HilResult, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(result).write(p, encoding="utf-8", xml_declaration=True)
    return p


def html_report(result: HilResult) -> str:
    """A self-contained HTML page: the verdict and device facts, the mismatches, and with
    a profile the per-op table and a chart of where the instructions (or ticks) go."""
    from edgekit.report.svg import bar_chart, html_page, html_table

    verdict = "PASS" if result.passed else "FAIL"
    facts = [("result", f"{verdict}: {result.vectors - result.failed} of {result.vectors} vectors bit-exact"),
             ("device", f"{result.device} ({result.board}, target {result.target}, firmware {result.firmware})"),
             ("package", f"{result.package_bytes:,} B (sha256 {result.package_hash})"),
             ("arena", f"{result.arena_used:,} of {result.arena_size:,} B"),
             ("stack", f"{result.stack_high_water:,} of {result.stack_size:,} B (high water)")]
    if result.ticks:
        line = f"{result.ticks_median:,.0f} ticks median at {result.tick_hz:,} Hz"
        if result.instructions_median is not None:
            line += f" = {result.instructions_median:,.0f} instructions"
        facts.append(("per inference", line))
    if result.error:
        facts.append(("error", result.error))
    sections = [("Run", html_table(("", ""), facts))]
    if result.mismatches:
        sections.append(("Mismatches", html_table(("vector", "output", "differing", "message"), [
            (m.index, m.output, m.differing, m.describe()) for m in result.mismatches])))
    if result.profile is not None:
        unit = "instructions" if result.instructions_per_tick else "ticks"
        costs = [row.instructions if result.instructions_per_tick else row.ticks for row in result.profile]
        total = sum(costs) or 1.0
        rows = [(row.index, row.name, row.op_type, row.kernel, f"{cost:,.0f}", f"{100 * cost / total:.1f}",
                 f"{row.macs:,}" if row.macs else "", f"{cost / row.macs:.2f}" if row.macs else "")
                for row, cost in zip(result.profile, costs)]
        macs = sum(row.macs for row in result.profile)
        rows.append(("", "all ops", "", "", f"{sum(costs):,.0f}", "100.0", f"{macs:,}",
                     f"{sum(costs) / macs:.2f}" if macs else ""))
        note = (f"<p>Median of {len(result.op_ticks)} vectors; the ops timed are those that run code, in run "
                "order. The whole inference also copies the inputs in and the outputs out.</p>")
        chart = bar_chart([f"{row.index} {row.op_type}" for row in result.profile], {unit: costs},
                          title=f"{unit} per op")
        sections.append(("Per-op profile", note + html_table(
            ("#", "op", "type", "kernel", unit, "%", "MACs", f"{unit}/MAC"), rows) + chart))
    return html_page(f"edgekit hil: {result.model} on {result.device}", sections)
