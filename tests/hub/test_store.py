"""HubStore over SQLite and PostgreSQL: dedupe by record id, the device row, record queries."""

from __future__ import annotations

import threading

from edgekit.hub import Database, HubStore
from tests.hub.batches import batch, deploy_record, make_records


def test_same_batch_twice_stores_each_record_once(hub_store):
    records = make_records(250)
    first = hub_store.ingest(batch("dev-a", 1, records))
    assert (first.new, first.duplicates) == (250, 0)
    assert first.ack_ids == [r.id for r in records]
    again = hub_store.ingest(batch("dev-a", 1, records))
    assert (again.new, again.duplicates) == (0, 250)
    assert again.ack_ids == first.ack_ids  # a redelivered batch is acknowledged in full again
    # A later batch overlapping the first (the device retried part of it with new records).
    more = make_records(50, start=1000)
    mixed = hub_store.ingest(batch("dev-a", 2, records[200:] + more))
    assert (mixed.new, mixed.duplicates) == (50, 50)
    assert hub_store.record_count() == 300
    stored = hub_store.records(device="dev-a", limit=10_000)
    assert sorted(r["id"] for r in stored) == sorted(r.id for r in records + more)
    by_id = {r.id: r for r in records + more}
    for row in stored:
        original = by_id[row["id"]]
        assert (row["stream"], row["priority"], row["created_ms"], row["payload"]) == \
            (original.stream, original.priority, original.created_ms, original.payload)


def test_device_row_follows_the_newest_batch_counters(hub_store):
    counters = {"dropped_full": {"captures": 7, "results": 1}, "expired": {"results": 3}, "refused": {"events": 2},
                "backlog": {"records": 900, "bytes": 120_000}}
    hub_store.ingest(batch("dev-b", 5, make_records(10), counters))
    older = {"dropped_full": {"captures": 1}, "backlog": {"records": 5000, "bytes": 1}}
    hub_store.ingest(batch("dev-b", 4, make_records(3, start=50), older))  # late redelivery of an older batch
    hub_store.ingest(batch("dev-c", 1, make_records(1, start=99)))
    devices = {d["device_id"]: d for d in hub_store.devices()}
    b = devices["dev-b"]
    assert (b["dropped"], b["expired"], b["refused"]) == (8, 3, 2)
    assert (b["backlog_records"], b["backlog_bytes"]) == (900, 120_000)
    assert b["last_seq"] == 5 and b["batches"] == 2 and b["records"] == 13
    assert b["counters"] == counters
    c = devices["dev-c"]
    assert (c["dropped"], c["backlog_records"], c["model_version"]) == (0, None, None)


def test_model_version_from_the_latest_deploy_report(hub_store):
    hub_store.ingest(batch("dev-d", 1, [deploy_record("installed", "3", 1000)]))
    hub_store.ingest(batch("dev-d", 2, [deploy_record("rejected", "2", 2000)]))  # a rollback attack refused
    d, = hub_store.devices()
    assert d["model_version"] == "kws/3"
    assert d["deploy_state"] == "rejected kws/2"
    hub_store.ingest(batch("dev-d", 3, [deploy_record("installed", "1", 500)]))  # older report arriving late
    d, = hub_store.devices()
    assert (d["model_version"], d["deploy_state"]) == ("kws/3", "rejected kws/2")


def test_records_query_filters_and_pages(hub_store):
    results = make_records(30)
    captures = make_records(5, stream="captures", start=100, priority=3)
    hub_store.ingest(batch("dev-e", 1, results + captures))
    assert [r["id"] for r in hub_store.records(stream="captures")] == sorted(r.id for r in captures)
    page1 = hub_store.records(stream="results", limit=20)
    page2 = hub_store.records(stream="results", after_id=page1[-1]["id"], limit=20)
    assert len(page1) == 20 and len(page2) == 10
    assert [r["id"] for r in page1 + page2] == sorted(r.id for r in results)
    t0 = results[10].created_ms
    window = hub_store.records(stream="results", since_ms=t0, until_ms=t0 + 5)
    assert [r["created_ms"] for r in window] == [t0 + i for i in range(5)]
    assert hub_store.records(device="nobody") == []
    assert hub_store.record_count(stream="captures") == 5


def test_concurrent_writers_of_one_device_store_each_record_once(hub_db_url):
    """Two connections ingesting overlapping batches of one device at once (a redelivery
    racing a retry): every record once, every call acknowledges its whole batch."""
    records = make_records(600)
    batches = [batch("dev-f", i, records[i * 100:i * 100 + 300]) for i in range(4)]
    stores = [HubStore(Database(hub_db_url)) for _ in range(2)]
    results, errors = [], []

    def work(store, mine):
        try:
            for b in mine:
                results.append((b, store.ingest(b)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(stores[0], batches)),
               threading.Thread(target=work, args=(stores[1], batches[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert stores[0].record_count() == 600
        assert sum(r.new for _, r in results) == 600
        for b, r in results:
            assert r.new + r.duplicates == len(b.records) and r.ack_ids == [x.id for x in b.records]
    finally:
        for s in stores:
            s.db.close()
