"""The fleet simulator behind ``edgekit hub simulate``: N devices in one process against a
real broker and hub.

Each simulated device is what a real one runs: its own SyncQueue file (SQLite,
synchronous=FULL) in a work folder, its own MqttTransport (one MQTT connection, persistent
session) and its own Forwarder. Between the device and the broker sits its own link, a
LinkProxy (bandwidth ``link_kbps`` each way, one-way latency, outages); all the links share
one asyncio thread.

One clock thread drives the fleet: every 0.1 s it enqueues each device's due records
(``rate_per_device`` records/s of a typical ~120-byte JSON inference result; 5% priority 0,
80% priority 2, 15% priority 3), and once a second each device whose link is up loses it
with probability ``outage_prob`` for 2-10 s (the proxy resets the connection and refuses
new ones, as a dropped radio link). Each device's forwarder runs in its own thread; the
hub's acks arrive after its database commit, so acked records per second is the hub's
ingest rate as devices see it. A forwarder that emptied its queue looks again after
``batch_interval_s``: records made meanwhile go up together, as on a device that wakes its
radio every few seconds (a short interval means batches of one record).

Before the devices start, one probe record (device ``<prefix>-probe``, stream "events")
must be acked by a hub within ``hub_wait_s``: otherwise there is no hub to measure.
After ``duration_s`` production stops, every link comes back up and the simulator waits up
to ``drain_s`` for the queues to empty, then reports what was produced, acked, left
queued, the bytes on the links and the ingest rate.

Threads: two per device (the paho network loop and the forwarder) plus the clock and the
link loop. One process runs at most MAX_DEVICES_PER_PROCESS devices: paho's select() loop
cannot watch file descriptors above 1023 (measured: past ~170 MQTT connections through
proxies, the last devices never connect). A larger fleet is split over several processes
(``devices_per_process`` each) whose summaries are merged; the ingest rate is then
measured over all of them on the wall clock (docs/fleet-sizing.md).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError
from edgekit.hub.linksim import LinkLoop, LinkProxy

LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "silence", "unknown")
PRIORITY_MIX = ((0, 0.05), (2, 0.80), (3, 0.15))
TICK_S = 0.1
# paho-mqtt's network loop uses select(), which cannot watch file descriptors above 1023;
# a simulated device holds about 12 (queue and forwarder state in SQLite with their WAL
# files, the MQTT socket and paho's wake-up pipe, the proxy's listener and its two sockets).
MAX_DEVICES_PER_PROCESS = 80
OUTAGE_S = (2.0, 10.0)


def inference_result(rng: random.Random, seq: int, now_ms: int) -> bytes:
    """A typical inference-result record as a device application writes it: ~120 bytes of
    JSON (model, version, time, top label and score, latency, the runner-up)."""
    first, second = rng.sample(LABELS, 2)
    score = rng.uniform(0.5, 0.999)
    return json.dumps({"model": "kws", "ver": 3, "ts": now_ms, "seq": seq, "label": first,
                       "score": round(score, 4), "next": second, "p_next": round((1 - score) * 0.8, 4),
                       "lat_ms": round(rng.uniform(3.0, 9.0), 2)}, separators=(",", ":")).encode()


def pick_priority(rng: random.Random) -> int:
    x = rng.random()
    for priority, share in PRIORITY_MIX:
        if x < share:
            return priority
        x -= share
    return PRIORITY_MIX[-1][0]


@dataclasses.dataclass
class SimulationConfig:
    devices: int
    mqtt_host: str
    mqtt_port: int
    duration_s: float = 10.0
    rate_per_device: float = 1.0
    outage_prob: float = 0.0
    link_kbps: float | None = 64.0
    latency_ms: float = 0.0
    drain_s: float = 30.0
    seed: int = 0
    workdir: str | None = None
    id_prefix: str = "sim"
    backlog_per_device: int = 0   # records queued on each device before the links start
    hub_wait_s: float = 30.0      # wait this long for a hub to ack a probe first (0: don't)
    batch_interval_s: float = 5.0  # a forwarder with an empty queue looks again after this long
    devices_per_process: int = MAX_DEVICES_PER_PROCESS
    first_index: int = 0          # this process's first device number (device ids are prefix-NNNNN)

    def check(self) -> None:
        if not 1 <= self.devices <= 100000:
            raise BadInputError(f"--devices {self.devices}: expected 1 to 100000")
        if not 1 <= self.devices_per_process <= MAX_DEVICES_PER_PROCESS:
            raise BadInputError(
                f"--devices-per-process {self.devices_per_process}: expected 1 to {MAX_DEVICES_PER_PROCESS} "
                "(paho-mqtt's select() loop cannot use file descriptors above 1023, and each device holds about 12)")
        if not self.id_prefix or not all(c.isalnum() or c in "-_" for c in self.id_prefix):
            raise BadInputError(f"--id-prefix {self.id_prefix!r}: letters, digits, '-' and '_' only")
        if not self.duration_s >= 0:
            raise BadInputError(f"--duration {self.duration_s}: expected >= 0 seconds")
        if not self.rate_per_device >= 0:
            raise BadInputError(f"--rate-per-device {self.rate_per_device}: expected >= 0 records/s")
        if not 0.0 <= self.outage_prob <= 1.0:
            raise BadInputError(f"--outage-prob {self.outage_prob}: expected a probability from 0 to 1")
        if self.link_kbps is not None and not self.link_kbps > 0:
            raise BadInputError(f"--link-kbps {self.link_kbps}: expected > 0 (or leave it out for no limit)")
        if not self.latency_ms >= 0:
            raise BadInputError(f"--latency-ms {self.latency_ms}: expected >= 0")
        if not self.drain_s >= 0:
            raise BadInputError(f"--drain {self.drain_s}: expected >= 0 seconds")
        if not self.batch_interval_s > 0:
            raise BadInputError(f"--batch-interval {self.batch_interval_s}: expected > 0 seconds")
        if not self.hub_wait_s >= 0:
            raise BadInputError(f"--hub-wait {self.hub_wait_s}: expected >= 0 seconds")
        if self.backlog_per_device < 0:
            raise BadInputError(f"backlog per device {self.backlog_per_device}: expected >= 0")


class SimulatedDevice:
    def __init__(self, index: int, config: SimulationConfig, folder: Path, link_loop: LinkLoop):
        from edgekit.sync.forwarder import Forwarder
        from edgekit.sync.queue import SyncQueue
        from edgekit.sync.transports.mqtt import MqttTransport

        self.device_id = f"{config.id_prefix}-{index:05d}"
        self.rng = random.Random(config.seed * 1_000_003 + index)
        self.queue = SyncQueue(folder / f"{self.device_id}.db")
        rate = config.link_kbps * 125.0 if config.link_kbps else None
        self.link = LinkProxy(config.mqtt_host, config.mqtt_port, rate_bytes_s=rate,
                              latency_s=config.latency_ms / 1000.0, link_loop=link_loop).start()
        self.transport = MqttTransport("127.0.0.1", self.link.port, self.device_id, reconnect_delay_s=(0.2, 5))
        self.forwarder = Forwarder(self.queue, self.transport, self.device_id, backoff=(0.5, 5.0),
                                   ack_timeout_s=15.0, idle_s=config.batch_interval_s, rng=random.Random(index))
        self.produced = 0
        self.acked = 0
        self.batches = 0
        self.batch_bytes = 0
        self.link_downs = 0
        self.up_at = 0.0           # monotonic time the current outage ends (0: link up)
        self.owed = 0.0            # fractional records due at the next tick
        self.thread: threading.Thread | None = None

    def produce(self, count: int) -> None:
        if count <= 0:
            return
        now_ms = int(time.time() * 1000)
        items = [("results", inference_result(self.rng, self.produced + i, now_ms), pick_priority(self.rng), None)
                 for i in range(count)]
        self.queue.enqueue_many(items)
        self.produced += count

    def forward(self, stop: threading.Event, on_ack) -> None:
        """The device's forwarding loop: Forwarder.run's, with every pass's ack count reported."""
        while not stop.is_set():
            result = self.forwarder.run_once(stop_event=stop)
            self.batches += result["batches"]
            self.batch_bytes += result["bytes"]
            if result["acked"]:
                self.acked += result["acked"]
                on_ack(result["acked"])
            if result["stopped"] == "link down":
                stop.wait(result["retry_in_s"])
            elif result["stopped"] == "empty":
                stop.wait(self.forwarder.idle_s)

    def backlog(self) -> int:
        return int(self.queue.stats()["records"])

    def close(self) -> None:
        for close in (self.transport.close, self.forwarder.close, self.queue.close, self.link.stop):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing the rest matters more than one failure here
                pass


def _check_broker(host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        raise EdgekitError(f"MQTT broker {host}:{port} cannot be reached: {exc}") from exc


def wait_for_hub(host: str, port: int, *, device_id: str = "sim-probe", timeout_s: float = 30.0,
                 folder: Path | None = None) -> float:
    """Send one record as ``device_id`` until a hub on the broker acks it; the seconds it
    took. A batch published before any hub worker holds the shared subscription is dropped
    by the broker, so a fleet started before its hub would only measure ack timeouts."""
    from edgekit.sync.forwarder import Forwarder
    from edgekit.sync.queue import SyncQueue
    from edgekit.sync.transports.mqtt import MqttTransport

    _check_broker(host, port)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgekit-sim-probe-", dir=folder) as tmp:
        queue = SyncQueue(Path(tmp) / "probe.db")
        transport = MqttTransport(host, port, device_id, reconnect_delay_s=(0.2, 2))
        forwarder = Forwarder(queue, transport, device_id, ack_timeout_s=2.0, rng=random.Random(0))
        try:
            queue.enqueue("events", b'{"probe":true}', priority=0)
            while time.monotonic() - start < timeout_s:
                if forwarder.run_once()["acked"]:
                    return time.monotonic() - start
                time.sleep(0.2)
        finally:
            for close in (transport.close, forwarder.close, queue.close):
                close()
    raise EdgekitError(f"no hub answers on MQTT broker {host}:{port}: a probe record from {device_id!r} got no "
                       f"ack within {timeout_s:g} s (is `edgekit hub serve --mqtt {host}:{port}` running?)")


class FleetSimulator:
    """Runs a SimulationConfig; ``run()`` returns the summary dict."""

    def __init__(self, config: SimulationConfig, *, progress=None):
        config.check()
        self.config = config
        self.progress = progress      # called about once a second with a snapshot dict
        self._ack_lock = threading.Lock()
        self._acked = 0
        self._first_ack: float | None = None
        self._last_ack: float | None = None
        self._window: list = []       # [unix second, acked in that second]: wall clock, so that
                                      # the processes of one fleet can be merged

    def _on_ack(self, count: int) -> None:
        now = time.time()
        with self._ack_lock:
            self._acked += count
            if self._first_ack is None:
                self._first_ack = now
            self._last_ack = now
            second = int(now)
            if self._window and self._window[-1][0] == second:
                self._window[-1][1] += count
            else:
                self._window.append([second, count])

    def run(self) -> dict:
        cfg = self.config
        if cfg.hub_wait_s:
            wait_for_hub(cfg.mqtt_host, cfg.mqtt_port, device_id=f"{cfg.id_prefix}-probe", timeout_s=cfg.hub_wait_s)
        else:
            _check_broker(cfg.mqtt_host, cfg.mqtt_port)
        owned = cfg.workdir is None
        folder = Path(tempfile.mkdtemp(prefix="edgekit-sim-")) if owned else Path(cfg.workdir)
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(cfg.seed * 7919 + cfg.first_index)  # each process of a fleet its own outages
        stop_forwarding = threading.Event()
        devices: list[SimulatedDevice] = []
        link_loop = LinkLoop()
        started = time.monotonic()
        try:
            for i in range(cfg.devices):
                devices.append(SimulatedDevice(cfg.first_index + i, cfg, folder, link_loop))
            for d in devices:
                d.produce(cfg.backlog_per_device)
            start_s = time.monotonic() - started
            t0 = time.monotonic()
            for d in devices:
                d.thread = threading.Thread(target=d.forward, args=(stop_forwarding, self._on_ack),
                                            name=f"forward-{d.device_id}", daemon=True)
                d.thread.start()
            outages = self._produce(devices, rng, t0)
            production_end = time.monotonic()
            for d in devices:
                if d.up_at:
                    d.link.set_down(False)
                    d.up_at = 0.0
            drained = self._drain(devices, production_end)
            end = time.monotonic()
            stop_forwarding.set()
            for d in devices:
                d.thread.join(timeout=20)
            summary = self._summary(devices, outages, t0, production_end, end, drained, start_s, folder)
        finally:
            stop_forwarding.set()
            for d in devices:
                d.close()
            link_loop.close()
            if owned:
                shutil.rmtree(folder, ignore_errors=True)
        return summary

    def _produce(self, devices, rng: random.Random, t0: float) -> int:
        cfg = self.config
        outages = 0
        next_tick = t0
        next_outage_check = t0 + 1.0
        while True:
            now = time.monotonic()
            if now - t0 >= cfg.duration_s:
                return outages
            for d in devices:
                d.owed += cfg.rate_per_device * TICK_S
                whole = int(d.owed)
                d.owed -= whole
                d.produce(whole)
            if now >= next_outage_check:
                next_outage_check += 1.0
                for d in devices:
                    if d.up_at and now >= d.up_at:
                        d.link.set_down(False)
                        d.up_at = 0.0
                    elif not d.up_at and cfg.outage_prob and rng.random() < cfg.outage_prob:
                        d.link.set_down(True)
                        d.up_at = now + rng.uniform(*OUTAGE_S)
                        d.link_downs += 1
                        outages += 1
                self._report(devices, "producing", t0)
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def _drain(self, devices, since: float) -> bool:
        deadline = since + self.config.drain_s
        last_report = 0.0
        while True:
            if all(d.acked >= d.produced for d in devices) and sum(d.backlog() for d in devices) == 0:
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            if now - last_report >= 1.0:
                self._report(devices, "draining", since)
                last_report = now
            time.sleep(0.1)

    def _report(self, devices, phase: str, t0: float) -> None:
        if self.progress is None:
            return
        self.progress({"phase": phase, "elapsed_s": time.monotonic() - t0,
                       "produced": sum(d.produced for d in devices), "acked": self._acked,
                       "links_down": sum(1 for d in devices if d.up_at)})

    def _summary(self, devices, outages, t0, production_end, end, drained, start_s, folder) -> dict:
        produced = sum(d.produced for d in devices)
        backlog = sum(d.backlog() for d in devices)
        counters = [d.queue.counters() for d in devices]
        dropped = sum(sum(c.get("dropped_full", {}).values()) + sum(c.get("expired", {}).values())
                      for c in counters)
        bytes_up = sum(d.link.bytes_up for d in devices)
        bytes_down = sum(d.link.bytes_down for d in devices)
        acked = self._acked
        return {
            "devices": len(devices),
            "setup_s": round(start_s, 2),
            "duration_s": round(production_end - t0, 2),
            "drain_s": round(end - production_end, 2),
            "drained": drained,
            "produced": produced,
            "acked": acked,
            "backlog": backlog,
            "dropped_or_expired": dropped,
            "batches": sum(d.batches for d in devices),
            "batch_bytes": sum(d.batch_bytes for d in devices),
            "wire_bytes_up": bytes_up,
            "wire_bytes_down": bytes_down,
            "wire_bytes_per_record": round((bytes_up + bytes_down) / acked, 2) if acked else None,
            "outages": outages,
            **_ingest_rates(acked, self._first_ack, self._last_ack, self._window),
            "processes": 1,
            "workdir": None if self.config.workdir is None else str(folder),
            "_acks": {"first": self._first_ack, "last": self._last_ack, "window": self._window},
        }


def _ingest_rates(acked: int, first, last, window: list) -> dict:
    active = (last - first) if first is not None else 0.0
    # The best whole second; the first and last seconds are partial, so left out when possible.
    inner = window[1:-1] if len(window) > 2 else window
    return {"ingest_records_s": round(acked / active, 1) if active > 0 else None,
            "ingest_peak_records_s": max((n for _, n in inner), default=0)}


def _run_part(config: SimulationConfig) -> dict:
    return FleetSimulator(config).run()


def _merge(parts: list) -> dict:
    summed = ("devices", "produced", "acked", "backlog", "dropped_or_expired", "batches", "batch_bytes",
              "wire_bytes_up", "wire_bytes_down", "outages")
    merged = {key: sum(p[key] for p in parts) for key in summed}
    for key in ("setup_s", "duration_s", "drain_s"):
        merged[key] = max(p[key] for p in parts)
    merged["drained"] = all(p["drained"] for p in parts)
    wire = merged["wire_bytes_up"] + merged["wire_bytes_down"]
    merged["wire_bytes_per_record"] = round(wire / merged["acked"], 2) if merged["acked"] else None
    firsts = [p["_acks"]["first"] for p in parts if p["_acks"]["first"] is not None]
    lasts = [p["_acks"]["last"] for p in parts if p["_acks"]["last"] is not None]
    seconds: dict = {}
    for p in parts:
        for second, count in p["_acks"]["window"]:
            seconds[second] = seconds.get(second, 0) + count
    window = sorted([s, n] for s, n in seconds.items())
    merged.update(_ingest_rates(merged["acked"], min(firsts, default=None), max(lasts, default=None), window))
    merged["processes"] = len(parts)
    merged["workdir"] = parts[0]["workdir"]
    return merged


def run_simulation(config: SimulationConfig, *, progress=None) -> dict:
    """Run the fleet; more than ``devices_per_process`` devices run in that many child
    processes at once (progress is then not reported). Returns the summary."""
    config.check()
    if config.devices <= config.devices_per_process:
        parts = [FleetSimulator(config, progress=progress).run()]
    else:
        import concurrent.futures
        import multiprocessing

        if config.hub_wait_s:  # once here, not by every process under one probe id
            wait_for_hub(config.mqtt_host, config.mqtt_port, device_id=f"{config.id_prefix}-probe",
                         timeout_s=config.hub_wait_s)
        configs = []
        for first in range(0, config.devices, config.devices_per_process):
            count = min(config.devices_per_process, config.devices - first)
            workdir = None if config.workdir is None else str(Path(config.workdir) / f"part-{first:05d}")
            configs.append(dataclasses.replace(config, devices=count, first_index=config.first_index + first,
                                               workdir=workdir, hub_wait_s=0.0))
        # spawn: a fork of this threaded process (paho, the link loop) is not safe.
        with concurrent.futures.ProcessPoolExecutor(max_workers=len(configs),
                                                    mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_run_part, configs))
        parts = [_merge(parts)] if len(parts) > 1 else parts
    summary = parts[0]
    summary.pop("_acks", None)
    return summary
