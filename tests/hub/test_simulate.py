"""edgekit hub simulate: a small fleet against a real Mosquitto and a real `edgekit hub serve`,
checked against the hub's own database; and the command's exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.hub.db import Database
from edgekit.hub.simulate import SimulationConfig, inference_result
from edgekit.hub.store import HubStore
from tests.sync.broker import MOSQUITTO, MosquittoBroker

EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]


def _edgekit(*args, **kwargs):
    return subprocess.run([*EDGEKIT, *args], capture_output=True, text=True, **kwargs)


@pytest.fixture
def broker(tmp_path):
    if shutil.which(MOSQUITTO) is None and not Path(MOSQUITTO).exists():
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    b = MosquittoBroker(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def hub(broker, tmp_path):
    """`edgekit hub serve` with one MQTT worker on the broker, SQLite in tmp_path."""
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    proc = subprocess.Popen([*EDGEKIT, "hub", "serve", "--db", db_url, "--mqtt", f"{broker.host}:{broker.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The simulator itself waits until the hub acks a probe record (--hub-wait).
    yield db_url
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_five_devices_with_outages_reach_the_hub_exactly_once(broker, hub):
    result = _edgekit("hub", "simulate", "--devices", "5", "--mqtt", f"{broker.host}:{broker.port}",
                      "--duration", "4", "--rate-per-device", "20", "--outage-prob", "0.3", "--link-kbps", "32",
                      "--drain", "60", "--seed", "3", "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["devices"] == 5
    assert summary["produced"] >= 5 * 20 * 3
    assert summary["acked"] == summary["produced"] and summary["backlog"] == 0 and summary["drained"]
    assert summary["outages"] >= 1
    assert summary["wire_bytes_up"] > summary["batch_bytes"] > 0
    # The hub's database is the oracle: every produced record once, from each device.
    store = HubStore(Database(hub))
    try:
        assert store.record_count(stream="results") == summary["produced"]
        devices = {d["device_id"] for d in store.devices()}
        assert devices == {f"sim-{i:05d}" for i in range(5)} | {"sim-probe"}
        # Each device numbers its results 0, 1, 2, ...: no gap means nothing was lost.
        seqs: dict = {}
        rows = store.db.execute("SELECT device_id, payload FROM hub_records WHERE stream = ?", ["results"])
        for device_id, payload in rows:
            seqs.setdefault(device_id, []).append(json.loads(bytes(payload))["seq"])
        for device_id, numbers in seqs.items():
            assert sorted(numbers) == list(range(len(numbers))), device_id
    finally:
        store.db.close()


def test_rich_summary_names_the_figures(broker, hub):
    result = _edgekit("hub", "simulate", "--devices", "2", "--mqtt", f"{broker.host}:{broker.port}",
                      "--duration", "1", "--unlimited-link", "--drain", "30", timeout=120,
                      env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    for words in ("2 simulated device(s)", "records acked by the hub", "hub ingest"):
        assert words in result.stdout


def test_no_hub_on_the_broker_exits_1(broker):
    result = _edgekit("hub", "simulate", "--devices", "1", "--mqtt", f"{broker.host}:{broker.port}",
                      "--hub-wait", "2", timeout=60)
    assert result.returncode == 1
    assert "no hub answers" in result.stderr


def test_undrained_queues_exit_1(broker):
    # No hub on the broker and no probe: nothing is acked, the queues cannot drain.
    result = _edgekit("hub", "simulate", "--devices", "1", "--mqtt", f"{broker.host}:{broker.port}",
                      "--duration", "0.5", "--rate-per-device", "10", "--drain", "1", "--hub-wait", "0", "--json",
                      timeout=60)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["acked"] == 0 and summary["backlog"] == summary["produced"] > 0


@pytest.mark.parametrize("args, words", [
    (["--devices", "0"], "--devices 0"),
    (["--devices", "2", "--outage-prob", "1.5"], "--outage-prob"),
    (["--devices", "2", "--link-kbps", "0"], "--link-kbps"),
    (["--devices", "2", "--hub-wait", "-1"], "--hub-wait"),
    (["--devices", "100001"], "--devices"),
    (["--devices", "2", "--devices-per-process", "81"], "--devices-per-process"),
    (["--devices", "2", "--id-prefix", "a/b"], "--id-prefix"),
    (["--devices", "2", "--mqtt", "no-port"], "--mqtt"),
])
def test_bad_options_exit_2(args, words):
    full = ["hub", "simulate", *args]
    if "--mqtt" not in args:
        full += ["--mqtt", "127.0.0.1:1883"]
    result = _edgekit(*full, timeout=60)
    assert result.returncode == 2
    assert words in result.stderr


def test_unreachable_broker_exits_1():
    from tests.sync.broker import free_port

    result = _edgekit("hub", "simulate", "--devices", "1", "--mqtt", f"127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr


def test_inference_results_are_typical_size():
    import random

    rng = random.Random(1)
    sizes = [len(inference_result(rng, i, 1_765_000_000_000 + i)) for i in range(200)]
    assert 115 <= sum(sizes) / len(sizes) <= 130
    json.loads(inference_result(rng, 0, 0))


def test_config_is_checked():
    from edgekit.errors import BadInputError

    with pytest.raises(BadInputError):
        SimulationConfig(devices=1, mqtt_host="h", mqtt_port=1, drain_s=-1).check()


def test_a_fleet_split_over_processes_adds_up(broker, hub):
    result = _edgekit("hub", "simulate", "--devices", "5", "--devices-per-process", "2", "--mqtt",
                      f"{broker.host}:{broker.port}", "--duration", "2", "--rate-per-device", "10",
                      "--batch-interval", "0.5", "--unlimited-link", "--drain", "60", "--json", timeout=240)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["processes"] == 3 and summary["devices"] == 5
    assert summary["acked"] == summary["produced"] > 0 and summary["backlog"] == 0
    store = HubStore(Database(hub))
    try:
        assert store.record_count(stream="results") == summary["produced"]
        assert {d["device_id"] for d in store.devices()} == {f"sim-{i:05d}" for i in range(5)} | {"sim-probe"}
    finally:
        store.db.close()
