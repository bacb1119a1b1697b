"""onnxruntime as an oracle: its exact QDQ semantics, not its CPU-specific fast path.

With the default graph optimizations onnxruntime fuses QDQ graphs into its own int8
kernels, and those give different results on CPUs with and without VNNI (up to 0.34
on the shared KWS model; ../shared/notes/toolchain.md). ORT_DISABLE_ALL runs each
DequantizeLinear / op / QuantizeLinear as written, the same on every CPU. Benchmarks
time the default path users run; tests compare against this one.
"""

from __future__ import annotations

import pytest


def exact_session(model):
    """An onnxruntime session with graph optimizations off and one thread, for a
    ModelProto, serialized bytes or a path."""
    ort = pytest.importorskip("onnxruntime")
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])
