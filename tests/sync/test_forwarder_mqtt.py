"""The forwarder over MQTT with a real Mosquitto on loopback and a stand-in hub that
decodes batches with edgekit.sync.wire: records arrive once, most urgent first, and are
deleted only after the hub's ack; a broker restart or a link that goes down loses nothing."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edgekit.sync.forwarder import Forwarder
from edgekit.sync.transports import LinkDownError
from edgekit.sync.transports.mqtt import MqttTransport
from edgekit.sync.wire import decode_ack, encode_batch
from tests.sync.hub_standin import MqttHubStandIn

pytest.importorskip("paho.mqtt")


def result_payload(i: int) -> bytes:
    """A typical inference result, about 120 bytes of JSON."""
    return json.dumps({"model": "kws", "version": 3, "ts": 1765000000000 + i * 37, "label": "yes" if i % 3 else "no",
                       "score": round(0.5 + (i % 50) / 100, 3), "latency_ms": 4.2 + (i % 7) / 10}).encode()


@pytest.fixture
def hub(mosquitto_broker):
    standin = MqttHubStandIn(mosquitto_broker.host, mosquitto_broker.port)
    yield standin
    standin.close()


def transport_for(broker, device="dev-1", **kw) -> MqttTransport:
    t = MqttTransport(broker.host, broker.port, device, reconnect_delay_s=(0.1, 1), **kw)
    assert t.wait_connected(10)
    return t


@pytest.mark.parametrize("protocol", [5, 311])
def test_records_arrive_once_most_urgent_first_and_are_deleted_after_the_ack(mosquitto_broker, hub, sync_queue,
                                                                            protocol):
    ids = {}
    for i in range(600):
        priority = (3, 2, 0, 1)[i % 4]
        ids[sync_queue.enqueue("results", result_payload(i), priority=priority)] = priority
    transport = transport_for(mosquitto_broker, protocol=protocol)
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=2048)
    try:
        result = fwd.run_once()
    finally:
        fwd.close()
        transport.close()
    assert result["stopped"] == "empty" and result["link"] == "up"
    assert result["records"] == result["acked"] == 600
    assert result["batches"] > 3                       # 2 KiB batches: the backlog took several
    assert sync_queue.stats()["records"] == 0
    arrivals = hub.arrivals
    assert arrivals.duplicates() == 0 and set(arrivals.ids) == set(ids)
    # Independent oracle for the order: priority first, then the queue's time-ordered ids.
    assert arrivals.ids == sorted(ids, key=lambda i: (ids[i], i))
    for rid, record in arrivals.records.items():
        assert record.priority == ids[rid]
    # Every batch reported the queue's counters upstream.
    assert all(b.counters["enqueued"]["results"] == 600 for b in arrivals.batches)


def test_batches_respect_the_size_limit(mosquitto_broker, hub, sync_queue):
    for i in range(2000):
        sync_queue.enqueue("results", result_payload(i))
    transport = transport_for(mosquitto_broker)
    sizes = []
    real_send = transport.send
    transport.send = lambda data, timeout_s: (sizes.append(len(data)), real_send(data, timeout_s=timeout_s))[1]
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=1500)
    try:
        result = fwd.run_once()
    finally:
        fwd.close()
        transport.close()
    assert result["acked"] == 2000 and len(sizes) == result["batches"]
    assert max(sizes) <= 1500
    # The ratio guess adapts: batches are mostly full, not a few records each.
    assert sum(sizes) / len(sizes) > 1500 * 0.6
    assert result["bytes"] == sum(sizes)
    assert hub.arrivals.duplicates() == 0 and len(hub.arrivals.records) == 2000


def test_no_ack_keeps_the_records_and_marks_the_link_down(mosquitto_broker, sync_queue):
    silent = MqttHubStandIn(mosquitto_broker.host, mosquitto_broker.port, ack_batches=False, client_id="silent")
    for i in range(10):
        sync_queue.enqueue("results", result_payload(i))
    transport = transport_for(mosquitto_broker)
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, ack_timeout_s=0.5)
    try:
        result = fwd.run_once()
        assert result["stopped"] == "link down" and "no ack" in result["error"]
        assert sync_queue.stats()["records"] == 10          # custody stays on the device
        assert silent.arrivals.wait_for(10)                 # although the hub got them
        assert fwd.state.get("link") == "down" and fwd.failures == 1
    finally:
        fwd.close()
        transport.close()
        silent.close()


def test_broker_restarts_mid_run_lose_nothing(mosquitto_broker, hub, sync_queue):
    transport = transport_for(mosquitto_broker)
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=1024,
                    ack_timeout_s=2.0, backoff=(0.05, 0.3), idle_s=0.05)
    stop = threading.Event()
    worker = threading.Thread(target=fwd.run, args=(stop,))
    worker.start()
    enqueued = []
    try:
        for round_ in range(3):
            for i in range(300):
                enqueued.append(sync_queue.enqueue("results", result_payload(round_ * 1000 + i)))
                if i % 100 == 0:
                    time.sleep(0.01)
            mosquitto_broker.restart()   # a clean stop and start: sessions and queued acks survive
        assert hub.arrivals.wait_for(len(enqueued), timeout_s=60)
        deadline = time.monotonic() + 30
        while sync_queue.stats()["records"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(30)
        fwd.close()
        transport.close()
    assert not worker.is_alive()
    assert set(hub.arrivals.records) == set(enqueued)    # nothing lost
    assert sync_queue.stats()["records"] == 0           # every record acked and deleted
    assert sync_queue.counters()["acked"]["results"] == len(enqueued)


def test_link_down_through_the_proxy_then_back(mosquitto_broker, hub, sync_queue):
    from edgekit.hub.linksim import LinkProxy

    proxy = LinkProxy(mosquitto_broker.host, mosquitto_broker.port).start()
    for i in range(50):
        sync_queue.enqueue("results", result_payload(i))
    transport = MqttTransport("127.0.0.1", proxy.port, "dev-1", reconnect_delay_s=(0.1, 0.2))
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, ack_timeout_s=1.0)
    try:
        assert transport.wait_connected(10)
        proxy.set_down(True)
        down = fwd.run_once()
        assert down["stopped"] == "link down" and down["records"] == 0
        assert sync_queue.stats()["records"] == 50
        with pytest.raises(LinkDownError):
            transport.send(encode_batch("dev-1", 1, sync_queue.peek_batch(1000)), timeout_s=0.2)
        proxy.set_down(False)
        assert transport.wait_connected(10)      # paho's loop thread reconnected by itself
        up = fwd.run_once()
        assert up["stopped"] == "empty" and up["acked"] == 50 and fwd.failures == 0
        assert fwd.state.get("link") == "up"
    finally:
        fwd.close()
        transport.close()
        proxy.stop()
    assert set(hub.arrivals.records) == set(hub.arrivals.ids) and len(hub.arrivals.records) == 50


def test_downlink_messages_reach_the_device_while_offline_and_across_a_broker_restart(mosquitto_broker, hub):
    first = transport_for(mosquitto_broker, device="dev-2", groups=("pumps",))
    first.close()                                   # offline; the persistent session stays at the broker
    hub.send_down("edgekit/v1/dev-2/down", b"update for dev-2")
    hub.send_down("edgekit/v1/group/pumps/down", b"update for pumps")
    hub.send_down("edgekit/v1/group/fans/down", b"not for us")
    mosquitto_broker.restart()                      # the session and its queued messages are persisted
    again = transport_for(mosquitto_broker, device="dev-2", groups=("pumps",))
    try:
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            got += again.poll_downlink(timeout_s=0.5)
    finally:
        again.close()
    assert sorted(got) == [b"update for dev-2", b"update for pumps"]


def test_the_real_hub_ingest_worker_acks_and_dedupes(mosquitto_broker, sync_queue, tmp_path):
    from edgekit.hub.db import Database
    from edgekit.hub.ingest import MqttIngestWorker
    from edgekit.hub.store import HubStore

    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.apply_schemas()
    store = HubStore(db)
    worker = MqttIngestWorker(store, mosquitto_broker.host, mosquitto_broker.port).start()
    ids = [sync_queue.enqueue("results", result_payload(i), priority=i % 4) for i in range(300)]
    transport = transport_for(mosquitto_broker, device="dev-3")
    fwd = Forwarder(sync_queue, transport, "dev-3", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=2048)
    try:
        resent = sync_queue.peek_batch(1 << 20, max_records=40)
        first = fwd.run_once()
        # The same records once more, as after an ack that got lost: stored once, acked again.
        ack = decode_ack(transport.send(encode_batch("dev-3", 10 ** 6, resent), timeout_s=10))
    finally:
        fwd.close()
        transport.close()
        worker.stop()
    assert first["acked"] == 300 and sync_queue.stats()["records"] == 0
    assert sorted(ack.record_ids) == sorted(r.id for r in resent)
    assert store.record_count(device="dev-3") == 300
    assert {r["id"] for r in store.records(device="dev-3")} == set(ids)


def test_batches_compressed_with_a_trained_dictionary(mosquitto_broker, sync_queue):
    from edgekit.sync.wire import dictionary_id, train_dictionary

    zdict = train_dictionary([result_payload(i) for i in range(10_000, 11_000)], size=4096)
    hub = MqttHubStandIn(mosquitto_broker.host, mosquitto_broker.port, client_id="dict-hub",
                         zstd_dicts={dictionary_id(zdict): zdict})
    ids = [sync_queue.enqueue("results", result_payload(i)) for i in range(300)]
    transport = transport_for(mosquitto_broker)
    fwd = Forwarder(sync_queue, transport, "dev-1", rate_bytes_s=None, daily_bytes=None, zstd_dict=zdict)
    try:
        result = fwd.run_once()
    finally:
        fwd.close()
        transport.close()
        hub.close()
    assert result["acked"] == 300 and sync_queue.stats()["records"] == 0
    assert set(hub.arrivals.records) == set(ids)
    assert {b.dict_id for b in hub.arrivals.batches} == {dictionary_id(zdict)}
