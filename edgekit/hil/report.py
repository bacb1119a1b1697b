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
