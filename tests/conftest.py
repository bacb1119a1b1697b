"""Session fixtures over the ../shared test material (skipped cleanly when absent)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.support.shared import shared_file


@pytest.fixture(scope="session")
def kws_data():
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return z["x_int8"], z["y"]


@pytest.fixture(scope="session")
def ad_windows():
    return np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))


# Property tests run the same examples on every machine, so CI is repeatable;
# `pytest --hypothesis-profile=explore` searches new examples.
try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("explore", deadline=None, print_blob=True)
    settings.load_profile("ci")
except ImportError:  # hypothesis is a dev dependency; tests that need it skip
    pass


def test_seed(nodeid: str) -> int:
    """A seed that depends only on the test's id: the same on every run and machine,
    whatever ran before it in the same worker."""
    return zlib.crc32(nodeid.encode())


@pytest.fixture
def rng(request) -> np.random.Generator:
    return np.random.default_rng(test_seed(request.node.nodeid))


@pytest.fixture(autouse=True)
def _module_rng_per_test(request, monkeypatch):
    """Modules that keep a module-level generator (`rng` or `RNG`) get it reseeded for
    each test, so a test's data never depends on test order or on xdist's split."""
    module = getattr(request, "module", None)
    for name in ("rng", "RNG"):
        if isinstance(getattr(module, name, None), np.random.Generator):
            monkeypatch.setattr(module, name, np.random.default_rng(test_seed(request.node.nodeid)))
