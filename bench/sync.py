"""Store-and-forward sync: the durable queue, the bytes on the wire, a backlog drained through
a 64 kbit/s link, and the hub's ingest rate, each against its baseline in one run.

    .venv/bin/python bench/sync.py [--enqueue-records 20000] [--threads 1,16,64] [--wire-records 5000]
                                   [--drain-records 100000] [--baseline-records 3000] [--link-kbps 64]
                                   [--ingest-devices 20] [--ingest-backlog 2000] [--quick] [--out FILE]

1. Durable enqueue (SyncQueue, SQLite WAL, synchronous=FULL) of typical ~125-byte JSON
   inference results (edgekit.hub.simulate.inference_result): one thread, where every
   enqueue waits for its own commit (one commit per record), against 16 and 64 threads whose
   enqueues share commits (group commit), and enqueue_many of 100; records/s and p50/p99
   latency of one call.
2. Bytes on the wire per record, counted at the TCP level by a LinkProxy between the client
   and Mosquitto, both directions (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, acks): the Forwarder
   over MqttTransport (zstd batches, with and without a trained dictionary) against each
   record published as its own QoS 1 MQTT 5 message. The far side of the batches is a small
   responder that decodes each batch and publishes edgekit.sync.wire's ack naming all its
   records, as the hub does (the hub does not take dictionaries).
3. A backlog of --drain-records drained through a --link-kbps shaped link (LinkProxy,
   both directions) to a real hub worker (MqttIngestWorker, SQLite): time, and the order in
   which the priorities arrive (the hub's batch sequence per record). The per-message
   baseline sends --baseline-records through the same link; its time for the whole backlog
   is extrapolated from its measured rate (labelled as an estimate).
4. Hub ingest rate: `edgekit hub serve --workers 1` and `--workers 2` on one broker, each
   fed by the fleet simulator (edgekit hub simulate: --ingest-devices devices with
   --ingest-backlog queued records each, unshaped links); acked records/s. The simulator,
   the broker and the workers share this machine's cores.

Writes Markdown to bench/results/sync.md (or --out) and the figures as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

from edgekit.hub.linksim import LinkProxy  # noqa: E402
from edgekit.hub.simulate import SimulationConfig, inference_result, pick_priority, run_simulation  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
DEVICE = "bench-device"


# --- a broker on loopback ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path):
        self.host, self.port = "127.0.0.1", free_port()
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 1000000\nmax_inflight_messages 100\nlog_type error\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mosquitto ({MOSQUITTO}) did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def records(n: int, seed: int) -> list:
    import random

    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    return [("results", inference_result(rng, i, now_ms + i * 100), pick_priority(rng), None) for i in range(n)]


def pct(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- 1. durable enqueue ------------------------------------------------------------------

def bench_enqueue(folder: Path, n: int, threads: int, many: int = 0) -> dict:
    from edgekit.sync.queue import SyncQueue

    items = records(n, seed=threads)
    queue = SyncQueue(folder / f"enqueue-{threads}-{many}.db", synchronous="FULL", max_bytes=1 << 30)
    latencies: list = []

    def work(k: int) -> None:
        mine = items[k::threads]
        if many:
            for i in range(0, len(mine), many):
                t0 = time.perf_counter()
                queue.enqueue_many(mine[i:i + many])
                latencies.append(time.perf_counter() - t0)
            return
        for stream, payload, priority, _ in mine:
            t0 = time.perf_counter()
            queue.enqueue(stream, payload, priority=priority)
            latencies.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    stored = queue.stats()["records"]
    queue.close()
    assert stored == n, f"{stored} of {n} records stored"
    return {"threads": threads, "per_call": many or 1, "records": n, "records_s": n / elapsed,
            "p50_ms": pct(latencies, 0.50) * 1000, "p99_ms": pct(latencies, 0.99) * 1000}


# --- 2. bytes on the wire ----------------------------------------------------------------

class AckResponder:
    """The hub's side of the MQTT exchange, minimal: decode each batch, ack all its records."""

    def __init__(self, broker: Broker, dicts: dict):
        import paho.mqtt.client as mqtt

        from edgekit.sync.transports.mqtt import ack_topic
        from edgekit.sync.wire import decode_batch, encode_ack

        self.batches = 0
        ready = threading.Event()

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe("edgekit/v1/+/up", qos=1)

        def on_message(client, userdata, msg):
            batch = decode_batch(msg.payload, zstd_dicts=dicts)
            self.batches += 1
            client.publish(ack_topic(batch.device_id), encode_ack(batch.device_id, batch.seq,
                                                                  [r.id for r in batch.records]), qos=1)

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-responder",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not ready.wait(10):
            raise SystemExit("responder did not subscribe")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forward_all(queue, transport, *, zstd_dict=None, timeout_s: float = 600.0) -> dict:
    from edgekit.sync.forwarder import Forwarder

    fwd = Forwarder(queue, transport, DEVICE, zstd_dict=zstd_dict, backoff=(0.2, 2.0), ack_timeout_s=60)
    start = time.monotonic()
    batches = 0
    try:
        while queue.stats()["records"]:
            result = fwd.run_once()
            batches += result["batches"]
            if result["stopped"] == "link down":
                time.sleep(result["retry_in_s"])
            if time.monotonic() - start > timeout_s:
                raise SystemExit(f"forwarding did not finish in {timeout_s:.0f} s")
    finally:
        fwd.close()
    return {"seconds": time.monotonic() - start, "batches": batches}


def edgekit_wire(folder: Path, broker: Broker, n: int, zstd_dict, name: str) -> dict:
    from edgekit.sync.queue import SyncQueue
    from edgekit.sync.transports.mqtt import MqttTransport
    from edgekit.sync.wire import dictionary_id

    dicts = {dictionary_id(zstd_dict): zstd_dict} if zstd_dict else {}
    responder = AckResponder(broker, dicts)
    queue = SyncQueue(folder / f"wire-{name}.db", max_bytes=1 << 30)
    queue.enqueue_many(records(n, seed=7))
    try:
        with LinkProxy(broker.host, broker.port) as link:
            transport = MqttTransport("127.0.0.1", link.port, DEVICE, client_id=f"{DEVICE}-{name}")
            try:
                run = forward_all(queue, transport, zstd_dict=zstd_dict)
            finally:
                transport.close()
            time.sleep(0.3)  # the DISCONNECT crosses the link
            up, down = link.bytes_up, link.bytes_down
    finally:
        queue.close()
        responder.stop()
    return {"variant": name, "records": n, "bytes_up": up, "bytes_down": down, "batches": run["batches"],
            "bytes_per_record": (up + down) / n, "measured": True}


def dictionary_wire_derived(plain: dict, n: int, zstd_dict, name: str) -> dict:
    """The dictionary variant where the transport cannot carry it end to end: the plain run's
    bytes less what the dictionary saves on the same records cut into as many batches."""
    from edgekit.sync.records import Record, new_id
    from edgekit.sync.wire import encode_batch

    now_ms = int(time.time() * 1000)
    recs = [Record(new_id(), s, p, now_ms, None, payload) for s, payload, p, _ in records(n, seed=7)]
    k = max(1, plain["batches"])
    step = -(-n // k)
    saved = sum(len(encode_batch(DEVICE, i, recs[i:i + step])) - len(encode_batch(DEVICE, i, recs[i:i + step],
                                                                                  zstd_dict=zstd_dict))
                for i in range(0, n, step))
    total = plain["bytes_up"] + plain["bytes_down"] - saved
    return {"variant": name, "records": n, "bytes_up": plain["bytes_up"] - saved, "bytes_down": plain["bytes_down"],
            "batches": k, "bytes_per_record": total / n, "measured": False}


def per_message(broker: Broker, n: int, *, rate_bytes_s=None, timeout_s: float = 3600.0) -> dict:
    """Each record its own QoS 1 PUBLISH (MQTT 5, persistent session), PUBACK awaited."""
    import paho.mqtt.client as mqtt

    with LinkProxy(broker.host, broker.port, rate_bytes_s=rate_bytes_s) as link:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-per-message", protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(20)
        connected = threading.Event()
        client.on_connect = lambda *a: connected.set()
        client.connect("127.0.0.1", link.port)
        client.loop_start()
        connected.wait(10)
        start = time.monotonic()
        infos = [client.publish(f"edgekit/v1/{DEVICE}/up", payload, qos=1) for _, payload, _, _ in records(n, 11)]
        for info in infos:
            info.wait_for_publish(timeout=max(1.0, timeout_s - (time.monotonic() - start)))
        seconds = time.monotonic() - start
        client.disconnect()
        client.loop_stop()
        time.sleep(0.3)
        up, down = link.bytes_up, link.bytes_down
    return {"variant": "per-message QoS 1", "records": n, "bytes_up": up, "bytes_down": down,
            "bytes_per_record": (up + down) / n, "seconds": seconds}


# --- 3. drain a backlog through a shaped link --------------------------------------------

def drain(folder: Path, broker: Broker, n: int, rate: float) -> dict:
    from edgekit.hub.db import Database
    from edgekit.hub.ingest import MqttIngestWorker
    from edgekit.hub.store import HubStore
    from edgekit.sync.queue import SyncQueue
    from edgekit.sync.transports.mqtt import MqttTransport

    store = HubStore(Database(f"sqlite:///{folder / 'drain-hub.db'}"))
    worker = MqttIngestWorker(store, broker.host, broker.port, index=90).start()
    queue = SyncQueue(folder / "drain.db", max_bytes=1 << 30)
    items = records(n, seed=3)
    queue.enqueue_many(items)
    with LinkProxy(broker.host, broker.port, rate_bytes_s=rate) as link:
        transport = MqttTransport("127.0.0.1", link.port, DEVICE, client_id=f"{DEVICE}-drain")
        run = forward_all(queue, transport, timeout_s=3600)
        transport.close()
        up, down = link.bytes_up, link.bytes_down
    worker.stop()
    rows = store.db.execute("SELECT priority, batch_seq FROM hub_records", [])
    store.db.close()
    queue.close()
    assert len(rows) == n, f"{len(rows)} of {n} records at the hub"
    seqs = sorted({s for _, s in rows})
    position = {s: i for i, s in enumerate(seqs)}
    order = {}
    for p in sorted({p for p, _ in rows}):
        mine = [position[s] for q, s in rows if q == p]
        order[p] = {"records": len(mine), "first_batch": min(mine) + 1, "last_batch": max(mine) + 1}
    last0 = order.get(0, {}).get("last_batch", 0)
    first3 = order.get(3, {}).get("first_batch", len(seqs) + 1)
    return {"records": n, "seconds": run["seconds"], "batches": len(seqs), "bytes_up": up, "bytes_down": down,
            "by_priority": order, "all_p0_before_any_p3": last0 < first3}


# --- 4. hub ingest rate ------------------------------------------------------------------

def ingest(folder: Path, workers: int, devices: int, backlog: int) -> dict:
    # A fresh broker per run: the hub workers' persistent sessions of the run before would
    # otherwise stay members of the shared subscription and take batches while offline.
    broker = Broker(folder / f"broker-ingest-{workers}")
    db = folder / f"ingest-{workers}.db"
    hub = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "hub", "serve", "--db", f"sqlite:///{db}",
                            "--mqtt", f"{broker.host}:{broker.port}", "--workers", str(workers)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # run_simulation first waits until the hub acks a probe record.
        summary = run_simulation(SimulationConfig(devices=devices, mqtt_host=broker.host, mqtt_port=broker.port,
                                                  duration_s=0, rate_per_device=0, link_kbps=None, drain_s=600,
                                                  id_prefix=f"w{workers}", backlog_per_device=backlog,
                                                  workdir=str(folder / f"sim-{workers}")))
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(30)
        broker.stop()
    if not summary["drained"]:
        raise SystemExit(f"the simulator's queues did not drain with {workers} worker(s)")
    return {"workers": workers, "devices": devices, "records": summary["acked"],
            "records_s": summary["ingest_records_s"], "seconds": summary["drain_s"]}


# --- the run -----------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--enqueue-records", type=int, default=20000)
    ap.add_argument("--threads", default="1,16,64")
    ap.add_argument("--wire-records", type=int, default=5000)
    ap.add_argument("--drain-records", type=int, default=100000)
    ap.add_argument("--baseline-records", type=int, default=3000)
    ap.add_argument("--link-kbps", type=float, default=64.0)
    ap.add_argument("--ingest-devices", type=int, default=20)
    ap.add_argument("--ingest-backlog", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="a few records per part, to check that it runs")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    if args.quick:
        args.enqueue_records, args.wire_records, args.drain_records = 600, 500, 1500
        args.baseline_records, args.ingest_devices, args.ingest_backlog = 100, 3, 200
    threads = [int(t) for t in args.threads.split(",")]
    rep = Report(args.out)
    if not Path(MOSQUITTO).exists():
        print(f"error: needs Mosquitto ({MOSQUITTO}): apt-get install mosquitto", file=sys.stderr)
        raise SystemExit(2)
    rate = args.link_kbps * 125.0
    command = "bench/sync.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    figures: dict = {"command": command, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                     f"Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-sync-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        try:
            rep.line("# Store-and-forward sync")
            rep.line()
            rep.line(f"`{command}` on {figures['machine']}.")
            rep.line()
            rep.line(f"## 1. Durable enqueue, synchronous=FULL ({args.enqueue_records} records of ~125 bytes)")
            rep.line()
            rows = [bench_enqueue(folder, args.enqueue_records, t) for t in threads]
            rows.append(bench_enqueue(folder, args.enqueue_records, 1, many=100))
            figures["enqueue"] = rows
            base = rows[0]["records_s"]
            rep.line("| callers | records/call | records/s | vs one commit per record | p50 ms/call | p99 ms/call |")
            rep.line("| ---: | ---: | ---: | ---: | ---: | ---: |")
            for r in rows:
                rep.line(f"| {r['threads']} | {r['per_call']} | {r['records_s']:,.0f} | {r['records_s'] / base:.1f}x "
                         f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
            rep.line()
            rep.line("One thread calling enqueue waits for its own commit: one commit (fsync) per record.")
            rep.line()

            rep.line(f"## 2. Bytes on the wire per record ({args.wire_records} records, TCP level, both ways)")
            rep.line()
            from edgekit.sync.wire import train_dictionary

            zdict = train_dictionary([p for _, p, _, _ in records(2000, seed=99)])
            from edgekit.sync.wire import WireFormatError

            plain = edgekit_wire(folder, broker, args.wire_records, None, "edgekit batches (zstd)")
            try:
                with_dict = edgekit_wire(folder, broker, args.wire_records, zdict,
                                         "edgekit batches (zstd + dictionary)")
            except WireFormatError as exc:
                print(f"warning: the dictionary variant cannot go through MqttTransport ({exc}); derived instead")
                with_dict = dictionary_wire_derived(plain, args.wire_records, zdict,
                                                    "edgekit batches (zstd + dictionary), derived*")
            wire = [plain, with_dict, per_message(broker, args.wire_records)]
            figures["wire"] = wire
            rep.line("| sent as | bytes up | bytes down | bytes/record | vs per-message |")
            rep.line("| --- | ---: | ---: | ---: | ---: |")
            for w in wire:
                rep.line(f"| {w['variant']} | {w['bytes_up']:,} | {w['bytes_down']:,} | {w['bytes_per_record']:.1f} | "
                         f"{w['bytes_per_record'] / wire[-1]['bytes_per_record']:.3f} |")
            rep.line()
            if not with_dict["measured"]:
                rep.line("\\* Not measured end to end: MqttTransport refuses batches made with a dictionary "
                         "(it decodes each batch without the dictionaries). Figure = the plain run's bytes less "
                         "what the dictionary saves on the same records cut into as many batches.")
                rep.line()

            rep.line(f"## 3. Draining a {args.drain_records:,}-record backlog through a {args.link_kbps:g} kbit/s link")
            rep.line()
            d = drain(folder, broker, args.drain_records, rate)
            b = per_message(broker, args.baseline_records, rate_bytes_s=rate)
            b_estimate = b["seconds"] / args.baseline_records * args.drain_records
            figures["drain"] = {"edgekit": d, "per_message": b, "per_message_estimate_s": b_estimate}
            rep.line("| sent as | records measured | seconds measured | seconds for the whole backlog |")
            rep.line("| --- | ---: | ---: | ---: |")
            rep.line(f"| edgekit batches | {d['records']:,} | {d['seconds']:.1f} | {d['seconds']:.1f} (measured) |")
            rep.line(f"| per-message QoS 1 | {b['records']:,} | {b['seconds']:.1f} | {b_estimate:.0f} (estimate: "
                     f"its measured rate, {b['records'] / b['seconds']:.1f} records/s, x {args.drain_records:,}) |")
            rep.line()
            rep.line(f"edgekit {b_estimate / d['seconds']:.1f}x faster. Arrival order at the hub "
                     f"({d['batches']} batches):")
            rep.line()
            rep.line("| priority | records | first batch | last batch |")
            rep.line("| ---: | ---: | ---: | ---: |")
            for p, o in d["by_priority"].items():
                rep.line(f"| {p} | {o['records']:,} | {o['first_batch']} | {o['last_batch']} |")
            rep.line()
            verdict = "yes" if d["all_p0_before_any_p3"] else "NO"
            rep.line(f"All priority-0 records before any priority-3 record: {verdict}.")
            rep.line()

            rep.line(f"## 4. Hub ingest rate, one broker ({args.ingest_devices} simulated devices x "
                     f"{args.ingest_backlog} queued records, unshaped links)")
            rep.line()
            ing = [ingest(folder, w, args.ingest_devices, args.ingest_backlog) for w in (1, 2)]
            figures["ingest"] = ing
            rep.line("| hub workers | records | seconds | records/s | vs 1 worker |")
            rep.line("| ---: | ---: | ---: | ---: | ---: |")
            for r in ing:
                rep.line(f"| {r['workers']} | {r['records']:,} | {r['seconds']:.1f} | {r['records_s']:,.0f} | "
                         f"{r['records_s'] / ing[0]['records_s']:.2f}x |")
            rep.line()
            rep.line("The simulator (its devices, queues and links), Mosquitto and the workers share the machine's "
                     f"{os.cpu_count()} CPUs.")
        finally:
            broker.stop()
    rep.save()
    json_path = Path(args.out).with_suffix(".json")
    json_path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"wrote {json_path}")
    med = statistics.median(r["records_s"] for r in figures["enqueue"])  # printed for a glance in logs
    print(f"median enqueue rate over the rows: {med:,.0f} records/s")


if __name__ == "__main__":
    main()
