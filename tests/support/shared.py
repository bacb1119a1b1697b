"""Paths to the ../shared test material (skipped cleanly when absent) and the
TFLM / LiteRT runners used as oracles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO.parent / "shared").resolve()
MLPERF = SHARED / "models" / "mlperf-tiny"


def shared_file(rel: str) -> Path:
    p = SHARED / rel
    if not p.is_file():
        pytest.skip(f"test data {p} is absent (it lives in ../shared next to the checkout)")
    return p


def tflm_runtime():
    try:
        from tflite_micro import runtime
    except ImportError:
        pytest.skip("tflite-micro is not installed: pip install 'edgekit[tflite]'")
    return runtime


def tflm_outputs(model_path: Path, xs: np.ndarray) -> np.ndarray:
    """Run each sample through the tflite_micro interpreter (TFLM's own kernels)."""
    runtime = tflm_runtime()
    interp = runtime.Interpreter.from_file(str(model_path))
    outs = []
    for i in range(len(xs)):
        interp.set_input(xs[i:i + 1], 0)  # TFLM reuses the input buffer: set it every time
        interp.invoke()
        outs.append(interp.get_output(0).copy())
    return np.concatenate(outs)


def litert_outputs(model_path: Path, xs: np.ndarray, reference: bool = False) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        pytest.skip("ai-edge-litert is not installed: pip install 'edgekit[tflite]'")
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_path=str(model_path), experimental_op_resolver_type=kind)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    outs = []
    for k in range(len(xs)):
        it.set_tensor(i, xs[k:k + 1])
        it.invoke()
        outs.append(it.get_tensor(o).copy())
    return np.concatenate(outs)
