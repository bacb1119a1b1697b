"""docs/operators.md is generated from the code by tools/generate_operators_doc.py and
must match what the code gives now; every IR op has a one-op sample graph to probe."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    path = ROOT / "tools" / "generate_operators_doc.py"
    spec = importlib.util.spec_from_file_location("generate_operators_doc", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_ir_op_has_a_sample_graph():
    from edgekit.ir.ops import OpType

    gen = _generator()
    missing = [t.value for t in OpType if t.value not in gen.SAMPLES and t.value not in ("QUANTIZE", "DEQUANTIZE")]
    assert not missing, f"add a one-op sample to tools/generate_operators_doc.py SAMPLES for {missing}"
    for name, sample in gen.SAMPLES.items():
        g, _ = gen._build(name, sample)  # the op's own shape rule accepts the sample
        assert [op.type.value for op in g.ops] == [name]


def test_operators_doc_is_current():
    gen = _generator()
    text = gen.render()
    current = (ROOT / "docs" / "operators.md").read_text()
    assert current == text, "docs/operators.md is stale: run python tools/generate_operators_doc.py"
    # The table covers every IR op and every TFLM builtin.
    from edgekit.ir.ops import OpType

    for name in [t.value for t in OpType] + list(gen.TFLM_BUILTINS):
        assert f"\n| {name} |" in text
