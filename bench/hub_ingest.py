"""Hub ingest rate: records/s stored by 1 and 2 MQTT ingest worker processes on one
Mosquitto broker, into SQLite (WAL, synchronous=FULL) and PostgreSQL (fsync on).

    .venv/bin/python bench/hub_ingest.py [--devices 20] [--batches 10] [--records 250] [--workers 1,2]
                                         [--db sqlite,postgresql] [--rounds 1] [--json out.json]

The batches (typical inference results, about 120 bytes of JSON each, zstd-compressed by the
real wire format) are encoded before the clock starts. Per database and worker count: a new
database, a fresh broker, the worker pool of ``edgekit hub serve`` (edgekit.hub.server.
WorkerPool), then one publisher sends every batch at QoS 1 and the clock runs from the first
publish to the last edgekit ack received (every record stored and committed). Each run checks
that the database holds exactly the records sent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.hub.db import Database  # noqa: E402
from edgekit.hub.server import WorkerPool  # noqa: E402
from edgekit.hub.store import HubStore  # noqa: E402
from edgekit.sync.records import Record, new_id  # noqa: E402
from edgekit.sync.wire import encode_batch  # noqa: E402
from tests.hub.mqtt_device import AckCollector  # noqa: E402
from tests.support.postgres import postgres_available, throwaway_postgres  # noqa: E402
from tests.sync.conftest import MosquittoBroker  # noqa: E402


def result_payload(i: int) -> bytes:
    return json.dumps({"model": "kws", "version": "3", "label": f"word{i % 12}",
                       "score": round(0.5 + (i % 50) / 100, 2), "latency_ms": round(3.1 + (i % 7) * 0.1, 1),
                       "t": 1_765_000_000_000 + i}).encode()


def make_batches(devices: int, batches: int, records: int) -> list:
    out = []
    n = 0
    for seq in range(1, batches + 1):
        for d in range(devices):
            recs = []
            for _ in range(records):
                recs.append(Record(new_id(), "results", 2, 1_765_000_000_000 + n, None, result_payload(n)))
                n += 1
            device = f"bench-{d:04d}"
            out.append((device, seq, encode_batch(device, seq, recs), len(recs)))
    return out


def run_one(db_url: str, workers: int, batches: list, folder: Path) -> dict:
    broker = MosquittoBroker(folder / f"mosquitto-{workers}-{time.monotonic_ns()}")
    broker.start()
    pool = WorkerPool(db_url, broker.host, broker.port, workers)
    publisher = None
    try:
        pool.start()
        if not pool.wait_ready(60):
            raise RuntimeError("the workers did not subscribe within 60 s")
        publisher = AckCollector(broker.host, broker.port, name="bench-publisher", max_inflight=200)
        total = sum(b[3] for b in batches)
        t0 = time.perf_counter()
        for device, _seq, data, _n in batches:
            publisher.client.publish(f"edgekit/v1/{device}/up", data, qos=1)
        if not publisher.wait(lambda: len(publisher.acks) == len(batches), 600):
            raise RuntimeError(f"only {len(publisher.acks)} of {len(batches)} batches acknowledged")
        elapsed = time.perf_counter() - t0
    finally:
        if publisher is not None:
            publisher.close()
        pool.stop()
        broker.stop()
    with Database(db_url) as db:
        stored = HubStore(db).record_count()
    if stored != total:
        raise RuntimeError(f"{stored} records stored, {total} sent")
    return {"workers": workers, "records": total, "batches": len(batches), "seconds": round(elapsed, 3),
            "records_per_s": round(total / elapsed), "batches_per_s": round(len(batches) / elapsed, 1),
            "wire_bytes": sum(len(b[2]) for b in batches)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--batches", type=int, default=10, help="batches per device")
    ap.add_argument("--records", type=int, default=250, help="records per batch")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the figure is the median")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    engines = args.db.split(",")
    if "postgresql" in engines and not postgres_available():
        print("PostgreSQL server binaries not found: skipping postgresql", file=sys.stderr)
        engines.remove("postgresql")
    batches = make_batches(args.devices, args.batches, args.records)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgekit-hub-bench-") as tmp:
        folder = Path(tmp)
        pg = throwaway_postgres(durable=True) if "postgresql" in engines else None
        pg_url = pg.__enter__() if pg is not None else None
        try:
            for rnd in range(args.rounds):
                for engine in engines:
                    for workers in counts:
                        if engine == "sqlite":
                            url = f"sqlite:///{folder / f'hub-{rnd}-{workers}.db'}"
                        else:
                            import psycopg

                            name = f"bench_{rnd}_{workers}"
                            with psycopg.connect(pg_url, autocommit=True) as conn:
                                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                                conn.execute(f"CREATE DATABASE {name}")
                            url = pg_url.rsplit("/", 1)[0] + f"/{name}"
                        r = run_one(url, workers, batches, folder)
                        r.update(db=engine, round=rnd)
                        results.append(r)
                        print(f"{engine:10s} workers={workers}  {r['records']} records in {r['seconds']:.2f} s: "
                              f"{r['records_per_s']:,} records/s ({r['batches_per_s']} batches/s)", flush=True)
        finally:
            if pg is not None:
                pg.__exit__(None, None, None)
    print(f"\n{os.cpu_count()} CPUs; {len(batches)} batches of {args.records} records "
          f"({sum(len(b[2]) for b in batches) / sum(b[3] for b in batches):.1f} wire bytes per record)")
    for engine in engines:
        for workers in counts:
            rates = sorted(r["records_per_s"] for r in results if r["db"] == engine and r["workers"] == workers)
            print(f"  {engine:10s} {workers} worker(s): {statistics.median(rates):,.0f} records/s median "
                  f"({rates[0]:,}-{rates[-1]:,} over {len(rates)} round(s))")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
