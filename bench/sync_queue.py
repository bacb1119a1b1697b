"""The sync queue and the batch format, measured (issue 12 goals: >= 20,000 durable
enqueues/s and p99 <= 5 ms with synchronous=FULL; <= 20 bytes on the wire per typical
123-byte JSON inference result).

    .venv/bin/python bench/sync_queue.py [--seconds 3] [--threads 1,16,64] [--records 500]

Queue: producer threads call SyncQueue.enqueue (each call durable on return; concurrent
calls share commits) for --seconds each; records/s and per-call latency percentiles. One
thread is one commit per record (the baseline group commit is measured against);
enqueue_many of 100 records per call, one producer. A fresh queue file per run, in
$TMPDIR (put it on the disk you mean to measure).

Wire: --records typical inference results (JSON of 110-135 bytes, varied as a keyword
spotter's would be) encoded as one batch v1, without and with a zstd dictionary trained on
2,000 other results, against each record sent as its own MQTT QoS 1 PUBLISH. The MQTT
figures are computed from the packet layout (fixed header, remaining length, topic,
packet id, MQTT 5 property length), not captured: TCP/IP headers are left out on both sides.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402

from edgekit.sync import Record, SyncQueue, encode_batch, new_id, train_dictionary  # noqa: E402
from edgekit.sync.wire import dictionary_id  # noqa: E402

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]


def typical_results(n: int, seed: int = 0, t0_ms: int = 1733580000123, digits: int = 2, top: int = 2) -> list:
    """``n`` JSON inference results as a keyword spotter on a device would log them (the
    issue's example plus a frame counter and the input name), about 123 bytes each:
    random labels, scores, latency and time steps. ``digits``/``top``: more entropy."""
    rng = random.Random(seed)
    out, t = [], t0_ms
    for i in range(n):
        t += rng.randint(900, 1100)
        labels = rng.sample(LABELS, top)
        scores, left = [], 1.0
        for _ in labels:
            scores.append(round(rng.uniform(0.5 * left, left) if not scores else rng.uniform(0, left), digits))
            left = max(0.0, left - scores[-1])
        out.append(json.dumps({"model": "kws", "version": "3", "t": t, "top": [list(x) for x in zip(labels, scores)],
                               "latency_us": rng.randint(380, 460), "seq": 48210 + i, "input": "mic0"},
                              separators=(",", ":")).encode())
    return out


def mqtt_publish_bytes(topic: str, payload_len: int, protocol: int) -> int:
    """Bytes of one QoS 1 PUBLISH packet (MQTT 3.1.1 section 3.3 / MQTT 5 section 3.3)."""
    variable = 2 + len(topic.encode()) + 2 + (1 if protocol == 5 else 0)  # topic, packet id, [property length]
    remaining = variable + payload_len
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


PUBACK_BYTES = 4  # fixed header 2 + packet id 2 (MQTT 5 may omit reason code 0 and properties)


def percentile(sorted_values: list, q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_enqueue(folder: Path, threads: int, seconds: float, payload: bytes) -> dict:
    q = SyncQueue(folder / f"q{threads}.db", max_bytes=1 << 40)
    latencies: list = []
    stop = threading.Event()
    start_gate = threading.Barrier(threads + 1)

    def produce():
        mine = []
        start_gate.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            q.enqueue("results", payload)
            mine.append(time.perf_counter() - t0)
        latencies.extend(mine)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for w in workers:
        w.start()
    start_gate.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    held = q.stats()["records"]
    q.close()
    latencies.sort()
    return {"rate": len(latencies) / elapsed, "p50": percentile(latencies, 0.5) * 1e3,
            "p99": percentile(latencies, 0.99) * 1e3, "max": latencies[-1] * 1e3, "n": len(latencies),
            "held": held}


def bench_enqueue_many(folder: Path, seconds: float, payload: bytes, per_call: int = 100) -> dict:
    q = SyncQueue(folder / "many.db", max_bytes=1 << 40)
    items = [("results", payload, 2, None)] * per_call
    n, calls = 0, []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c0 = time.perf_counter()
        q.enqueue_many(items)
        calls.append(time.perf_counter() - c0)
        n += per_call
    elapsed = time.perf_counter() - t0
    q.close()
    calls.sort()
    return {"rate": n / elapsed, "p99_call": percentile(calls, 0.99) * 1e3, "per_call": per_call}


def bench_wire(n: int, **variant) -> dict:
    payloads = typical_results(n, seed=1, **variant)
    training = typical_results(2000, seed=2, t0_ms=1733000000000, **variant)
    zdict = train_dictionary(training, 8192)
    now = 1733580000123
    records = [Record(new_id(now + 1000 * i), "results", 2, now + 1000 * i, None, p) for i, p in enumerate(payloads)]
    counters = {"enqueued": {"results": 123456}, "acked": {"results": 123000}, "dropped_full": {},
                "backlog": {"records": 456, "bytes": 85000}}
    topic = "edgekit/v1/dev-0001/up"
    plain = encode_batch("dev-0001", 42, records, counters=counters)
    with_dict = encode_batch("dev-0001", 42, records, counters=counters, zstd_dict=zdict)
    avg = sum(map(len, payloads)) / n
    per_msg_v311 = sum(mqtt_publish_bytes(topic, len(p), 311) for p in payloads) / n
    per_msg_v5 = sum(mqtt_publish_bytes(topic, len(p), 5) for p in payloads) / n
    return {"n": n, "avg_payload": avg, "json_total": sum(map(len, payloads)),
            "plain": len(plain), "dict": len(with_dict), "dict_id": dictionary_id(zdict), "dict_size": len(zdict),
            "plain_mqtt": mqtt_publish_bytes(topic, len(plain), 5),
            "dict_mqtt": mqtt_publish_bytes(topic, len(with_dict), 5),
            "per_msg_v311": per_msg_v311, "per_msg_v5": per_msg_v5}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per enqueue measurement (default 3)")
    ap.add_argument("--threads", default="1,16,64", help="producer thread counts (default 1,16,64)")
    ap.add_argument("--records", type=int, default=500, help="records in the wire measurement (default 500)")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args(argv)
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
        if min(thread_counts) < 1 or args.seconds <= 0 or args.records < 1:
            raise ValueError
    except ValueError:
        ap.error("--threads takes positive integers like 1,16,64; --seconds and --records must be positive")
    rep = Report(args.out)
    rep.line("# Sync queue and batch format")
    rep.line()
    rep.line(f"`bench/sync_queue.py --seconds {args.seconds:g} --threads {args.threads} --records {args.records}` "
             f"on {platform.machine()}, Python {platform.python_version()}, SQLite (WAL, synchronous=FULL) "
             f"{__import__('sqlite3').sqlite_version}")
    rep.line()
    payload = typical_results(1)[0]
    rep.line(f"## Durable enqueue ({len(payload)}-byte payloads, each call durable on return)")
    rep.line()
    rep.line("| producers | records/s | p50 ms | p99 ms | max ms |")
    rep.line("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="ek-bench-queue-") as tmp:
        for t in thread_counts:
            r = bench_enqueue(Path(tmp), t, args.seconds, payload)
            assert r["held"] == r["n"], (r["held"], r["n"])  # every returned enqueue is in the file
            rep.line(f"| {t} thread{'s' if t > 1 else ''} enqueue | {r['rate']:,.0f} | {r['p50']:.2f} | "
                     f"{r['p99']:.2f} | {r['max']:.1f} |")
        m = bench_enqueue_many(Path(tmp), args.seconds, payload)
        rep.line(f"| 1 thread enqueue_many({m['per_call']}) | {m['rate']:,.0f} | | {m['p99_call']:.2f} per call | |")
    rep.line()
    for title, variant in (("typical results: top 2, scores to 2 digits", {}),
                           ("more entropy: top 3, scores to 3 digits", {"digits": 3, "top": 3})):
        w = bench_wire(args.records, **variant)
        n = w["n"]
        rep.line(f"## Bytes on the wire per record, {title} ({n} results, {w['avg_payload']:.1f} bytes of JSON "
                 "each on average)")
        rep.line()
        rep.line("| how | bytes total | bytes/record |")
        rep.line("| --- | ---: | ---: |")
        rep.line(f"| the JSON alone, uncompressed | {w['json_total']:,} | {w['json_total'] / n:.1f} |")
        rep.line(f"| each record its own MQTT 3.1.1 QoS 1 PUBLISH (computed) | {w['per_msg_v311'] * n:,.0f} | "
                 f"{w['per_msg_v311']:.1f} (+{PUBACK_BYTES} PUBACK down) |")
        rep.line(f"| each record its own MQTT 5 QoS 1 PUBLISH (computed) | {w['per_msg_v5'] * n:,.0f} | "
                 f"{w['per_msg_v5']:.1f} (+{PUBACK_BYTES} PUBACK down) |")
        rep.line(f"| batch v1, zstd, no dictionary | {w['plain']:,} | {w['plain'] / n:.1f} |")
        rep.line(f"| batch v1 in one MQTT 5 PUBLISH (computed framing) | {w['plain_mqtt']:,} | "
                 f"{w['plain_mqtt'] / n:.1f} |")
        rep.line(f"| batch v1, zstd with a {w['dict_size']:,}-byte trained dictionary | {w['dict']:,} | "
                 f"{w['dict'] / n:.1f} |")
        rep.line(f"| the same in one MQTT 5 PUBLISH (computed framing) | {w['dict_mqtt']:,} | "
                 f"{w['dict_mqtt'] / n:.1f} |")
        rep.line()
    rep.line("Batches carry the queue's counters and backlog (4 entries here). Ack downlink: about 2 bytes per record "
             "(one device's ids compress well).")
    rep.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
