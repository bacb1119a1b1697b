"""Session fixtures over the ../shared test material (skipped cleanly when absent)."""

from __future__ import annotations

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
