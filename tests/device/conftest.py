"""Fixtures of the device tests: the protocol test double and the fault proxy."""

from __future__ import annotations

import pytest

from edgekit.device.link import open_link
from tests.device.fault_proxy import FaultProxy
from tests.device.reference_device import ReferenceDevice


@pytest.fixture
def device():
    with ReferenceDevice() as dev:
        yield dev


@pytest.fixture
def make_device():
    made = []

    def make(**kwargs) -> ReferenceDevice:
        dev = ReferenceDevice(**kwargs)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


@pytest.fixture
def make_proxy():
    made = []

    def make(dev: ReferenceDevice, **kwargs) -> FaultProxy:
        px = FaultProxy(lambda timeout: open_link(dev.url), **kwargs)
        made.append(px)
        return px

    yield make
    for px in made:
        px.close()
