"""The device side as it ships (SyncQueue, Forwarder, the MQTT and HTTP transports) against
the hub as it ships: every record arrives once, the acks empty the device's queue, and the
fleet view shows what the device's batches reported."""

from __future__ import annotations

import threading

import uvicorn

from edgekit.hub import Database, HubStore
from edgekit.hub.http_app import create_app
from edgekit.hub.ingest import MqttIngestWorker
from edgekit.sync.forwarder import Forwarder
from edgekit.sync.queue import SyncQueue
from edgekit.sync.transports.http import HttpTransport
from edgekit.sync.transports.mqtt import MqttTransport
from tests.hub.batches import result_payload
from tests.support.postgres import free_port


def _fill(queue: SyncQueue, n: int) -> list:
    ids = [queue.enqueue("results", result_payload(i), priority=i % 4) for i in range(n)]
    ids += [queue.enqueue("events", b'{"event": "boot"}', priority=0)]
    return ids


def _drain(forwarder: Forwarder, queue: SyncQueue) -> None:
    for _ in range(50):
        forwarder.run_once()
        if queue.stats()["records"] == 0:
            return
    raise AssertionError(f"queue not drained: {queue.stats()}")


def test_forwarder_over_mqtt_to_two_workers(tmp_path, mosquitto_broker):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    workers = [MqttIngestWorker(HubStore(Database(url)), mosquitto_broker.host, mosquitto_broker.port,
                                index=i).start() for i in range(2)]
    queue = SyncQueue(tmp_path / "queue.db")
    transport = MqttTransport(mosquitto_broker.host, mosquitto_broker.port, "pump-7")
    try:
        ids = _fill(queue, 3000)
        _drain(Forwarder(queue, transport, "pump-7", max_batch_bytes=4096, ack_timeout_s=10), queue)
        store = workers[0].store
        assert sorted(r["id"] for r in store.records(limit=100_000)) == sorted(ids)
        assert sum(w.counters.batches for w in workers) >= 2
        device, = store.devices()
        assert device["device_id"] == "pump-7" and device["records"] == len(ids)
        assert device["counters"]["enqueued"] == {"events": 1, "results": 3000}
        assert device["backlog_records"] is not None and device["dropped"] == 0
    finally:
        transport.close()
        queue.close()
        for w in workers:
            w.stop()
            w.store.db.close()


def test_forwarder_over_http(tmp_path):
    store = HubStore(Database(f"sqlite:///{tmp_path / 'hub.db'}"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, token="tok"), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    queue = SyncQueue(tmp_path / "queue.db")
    try:
        while not server.started:
            thread.join(0.05)
        ids = _fill(queue, 500)
        transport = HttpTransport(f"http://127.0.0.1:{port}", "gate-2", token="tok")
        _drain(Forwarder(queue, transport, "gate-2", max_batch_bytes=2048, ack_timeout_s=10), queue)
        transport.close()
        assert sorted(r["id"] for r in store.records(limit=100_000)) == sorted(ids)
        assert store.devices()[0]["records"] == len(ids)
    finally:
        server.should_exit = True
        thread.join(10)
        queue.close()
        store.db.close()


def test_sneakernet_export_import_acks_back(tmp_path):
    """edgekit sync export -> edgekit hub import (twice) -> edgekit sync import-acks: every
    record stored once, the device's queue empty."""
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    queue_path, usb, db = tmp_path / "queue.db", tmp_path / "usb", f"sqlite:///{tmp_path / 'hub.db'}"
    with SyncQueue(queue_path) as queue:
        ids = _fill(queue, 800)

    def run(*args):
        r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    run("sync", "export", "--queue", queue_path, "--device-id", "field-3", "--to", usb)
    assert list(usb.glob("*.ekbatch"))
    run("hub", "import", usb, "--db", db)
    assert "0 new record(s)" in run("hub", "import", usb, "--db", db)  # the stick plugged in twice
    run("sync", "import-acks", "--queue", queue_path, "--device-id", "field-3", usb)
    with SyncQueue(queue_path) as queue:
        assert queue.stats()["records"] == 0
    with Database(db) as conn:
        store = HubStore(conn)
        assert sorted(r["id"] for r in store.records(limit=100_000)) == sorted(ids)
        assert store.devices()[0]["device_id"] == "field-3"
