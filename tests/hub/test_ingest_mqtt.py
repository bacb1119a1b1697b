"""MQTT ingest workers on a real Mosquitto: the shared subscription spreads batches over the
workers, a worker killed in the middle of a batch loses nothing, bad batches are dropped
and counted without stopping the worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edgekit.hub import Database, HubStore
from edgekit.hub.ingest import MqttIngestWorker
from tests.hub.batches import batch_bytes, make_records
from tests.hub.mqtt_device import AckCollector


@pytest.fixture
def device(mosquitto_broker):
    d = AckCollector(mosquitto_broker.host, mosquitto_broker.port)
    yield d
    d.close()


def _worker(url: str, broker, index: int) -> MqttIngestWorker:
    return MqttIngestWorker(HubStore(Database(url)), broker.host, broker.port, index=index).start()


def _stop(*workers) -> None:
    for w in workers:
        w.stop()
        w.store.db.close()


def test_two_workers_share_the_load_and_store_each_record_once(hub_db_url, mosquitto_broker, device):
    workers = [_worker(hub_db_url, mosquitto_broker, i) for i in range(2)]
    try:
        sent = {}
        for seq in range(1, 31):
            dev = f"dev-{seq % 3}"
            records = make_records(40, start=seq * 100)
            sent[(dev, seq)] = [r.id for r in records]
            device.publish(dev, batch_bytes(dev, seq, records))
        # A batch with no records (counters only) is acknowledged with no ids.
        device.publish("dev-0", batch_bytes("dev-0", 500, [], {"backlog": {"records": 0, "bytes": 0}}))
        sent[("dev-0", 500)] = []
        # The same batch twice (a device that missed the ack): stored once, acked twice.
        dup = make_records(5, start=99_000)
        for _ in range(2):
            device.publish("dev-2", batch_bytes("dev-2", 99, dup))
        sent[("dev-2", 99)] = [r.id for r in dup]
        assert device.wait(lambda: all(k in device.acks for k in sent) and len(device.acks[("dev-2", 99)]) == 2)
        for key, ids in sent.items():
            assert all(acked == ids for acked in device.acks[key]), key
        counts = [w.counters.batches for w in workers]
        assert all(c > 0 for c in counts), counts  # the broker handed batches to both
        assert sum(counts) == 33  # 30, the empty one, the duplicated one twice
        assert sum(w.counters.records_new for w in workers) == 30 * 40 + 5
        assert sum(w.counters.duplicates for w in workers) == 5
        store = workers[0].store
        assert store.record_count() == 30 * 40 + 5
        assert sorted(r["id"] for r in store.records(limit=100_000)) == sorted(i for ids in sent.values() for i in ids)
    finally:
        _stop(*workers)


_STALLING_WORKER = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from edgekit.hub import Database, HubStore
    from edgekit.hub.ingest import MqttIngestWorker

    url, host, port, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])

    class StallingStore(HubStore):
        # Stores the batch's records, then stalls inside the transaction, uncommitted:
        # the test kills the process there.
        def _ingest(self, db, batch):
            result = super()._ingest(db, batch)
            marker.write_text(str(batch.seq))
            threading.Event().wait()
            return result

    MqttIngestWorker(StallingStore(Database(url)), host, port, index=0).start()
    print("subscribed", flush=True)
    threading.Event().wait()
""")


def test_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(hub_db_url, mosquitto_broker, device,
                                                                      tmp_path):
    marker = tmp_path / "holding"
    victim = subprocess.Popen([sys.executable, "-c", _STALLING_WORKER, hub_db_url, mosquitto_broker.host,
                               str(mosquitto_broker.port), str(marker)], stdout=subprocess.PIPE, text=True)
    survivor = restarted = None
    try:
        assert victim.stdout.readline().strip() == "subscribed"
        survivor = _worker(hub_db_url, mosquitto_broker, 1)
        sent, held = {}, None
        for seq in range(1, 21):
            records = make_records(25, start=seq * 100)
            sent[seq] = (records, batch_bytes("dev-k", seq, records))
            device.publish("dev-k", sent[seq][1])
            # One batch at a time, so the survivor never waits on the victim's write lock for long.
            assert device.wait(lambda seq=seq: ("dev-k", seq) in device.acks or marker.exists(), 30)
            if marker.exists():
                held = int(marker.read_text())
                break
        assert held is not None, "the broker never handed a batch to the first worker"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        store = survivor.store
        assert store.record_count() == sum(25 for s in sent if s != held)  # the held batch was rolled back
        assert ("dev-k", held) not in device.acks

        # The device had no ack for the held batch: it sends it again (as the forwarder does).
        device.publish("dev-k", sent[held][1])
        # The killed worker comes back under its id and its session: the broker redelivers
        # the batch it had received but never acknowledged.
        restarted = _worker(hub_db_url, mosquitto_broker, 0)
        assert device.wait(lambda: len(device.acks[("dev-k", held)]) >= 2, 30), device.acks[("dev-k", held)]
        assert store.record_count() == 25 * len(sent)
        ids = [r["id"] for r in store.records(limit=100_000)]
        assert sorted(ids) == sorted(r.id for records, _ in sent.values() for r in records)
        assert all(acked == [r.id for r in sent[held][0]] for acked in device.acks[("dev-k", held)])
        new = survivor.counters.records_new + restarted.counters.records_new
        dups = survivor.counters.duplicates + restarted.counters.duplicates
        assert new == 25 * len(sent) and dups == 25  # the retry or the redelivery, whichever came second
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.stdout.close()
        _stop(*[w for w in (survivor, restarted) if w is not None])


def test_malformed_batches_are_counted_acknowledged_and_skipped(tmp_path, mosquitto_broker, device):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    worker = _worker(url, mosquitto_broker, 0)
    try:
        good = make_records(3)
        device.publish("dev-m", b"not a batch")
        device.publish("dev-m", batch_bytes("dev-m", 1, good)[:-7])           # truncated
        device.publish("dev-m", batch_bytes("other-device", 1, make_records(2)))  # another device's topic
        device.publish("dev-m", batch_bytes("dev-m", 2, good))
        assert device.wait(lambda: ("dev-m", 2) in device.acks)
        assert worker.counters.malformed == 3 and worker.counters.batches == 1
        assert worker.store.record_count() == 3 and list(device.acks) == [("dev-m", 2)]
    finally:
        _stop(worker)
    # The bad messages were acknowledged at MQTT level: the same session gets none of them again.
    again = _worker(url, mosquitto_broker, 0)
    try:
        time.sleep(1.0)
        assert again.counters.malformed == 0 and again.counters.batches == 0
    finally:
        _stop(again)


def test_a_worker_started_before_its_broker_waits_for_it(tmp_path, mosquitto_broker):
    """run() keeps trying until the broker answers (a hub booted before its broker), then
    serves; stop() before that returns at once."""
    import threading

    mosquitto_broker.stop()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    worker = MqttIngestWorker(HubStore(Database(url)), mosquitto_broker.host, mosquitto_broker.port, index=0)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"ready": ready})
    thread.start()
    try:
        time.sleep(1.5)
        assert not ready.is_set()
        mosquitto_broker.start()
        assert ready.wait(30), "the worker never subscribed once the broker was up"
        # The device's own client gave up while the broker was down; connect a new one.
        fresh = AckCollector(mosquitto_broker.host, mosquitto_broker.port, name="late-device")
        try:
            fresh.publish("dev-late", batch_bytes("dev-late", 1, make_records(4)))
            assert fresh.wait(lambda: ("dev-late", 1) in fresh.acks)
        finally:
            fresh.close()
    finally:
        stop.set()
        thread.join(15)
        worker.store.db.close()
    assert not thread.is_alive()
