"""Make ``edgekit`` (the repository root) and the oracle helper importable, and
register the hypothesis profile the reference tests use."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
for p in (str(_ROOT), str(_HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "edgekit-reference",
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
