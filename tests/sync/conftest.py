"""Fixtures for the sync tests: a real Mosquitto broker on loopback (tests/sync/broker.py),
and a queue in a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sync.broker import MOSQUITTO, MosquittoBroker


@pytest.fixture
def mosquitto_broker(tmp_path_factory):
    """A running broker (host, port, stop(), start(), restart(), kill()); stopped after
    the test."""
    if shutil.which(MOSQUITTO) is None and not Path(MOSQUITTO).exists():
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def sync_queue(tmp_path):
    """A SyncQueue in the test's temporary folder, closed after the test."""
    from edgekit.sync.queue import SyncQueue

    queue = SyncQueue(tmp_path / "queue.db")
    try:
        yield queue
    finally:
        queue.close()
