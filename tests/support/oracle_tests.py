"""What the property tests against the TFLite oracles share: their skip marks and one
bounded, deterministic hypothesis profile. Import it after ``pytest.importorskip("hypothesis")``."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.support import tflite_oracle as orc

needs_tflm = pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
needs_litert = pytest.mark.skipif(not orc.HAVE_LITERT, reason="ai_edge_litert is not installed")


def profile(n: int):
    """Deterministic, bounded hypothesis settings: ``n`` examples, no deadline, no database."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
