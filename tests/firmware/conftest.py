"""Fixtures of the firmware tests."""

from __future__ import annotations

import pytest

from tests.firmware import support


@pytest.fixture(scope="session")
def host_fw(tmp_path_factory):
    """The sanitized host build of the firmware's protocol, slots and executor."""
    return support.host_firmware(tmp_path_factory)
