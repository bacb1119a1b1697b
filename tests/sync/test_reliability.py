"""The reliability suite of store-and-forward sync (docs/sync.md, "Reliability"): the real
queue (SyncQueue), forwarder, MQTT transport, Mosquitto, hub ingest worker and store,
with faults injected on the way:

- kill -9 of the device process at random points while it enqueues and while it forwards,
  then a restart;
- link flaps, latency and bandwidth limits through the loopback LinkProxy;
- broker restarts, and a hub worker process killed with -9 mid-batch;
- disk full (a 2 MB tmpfs), and clock jumps forward and back.

Afterwards the oracle is the device's own log of what it was promised: every record whose
enqueue returned (the device printed ``ok <n> <id>`` after the call) is at the hub exactly
once (by id, and by the record number its payload carries), the queue is empty and its
counters add up, and ``PRAGMA integrity_check`` is ok on the device queue and the hub DB.

Sizes: each test asserts its own minimum of records and faults, and the minimums add up to
at least 10,000 records and 50 faults whatever way pytest-xdist spreads the tests; the
module prints what it ran at the end. ``EDGEKIT_RELIABILITY_SCALE=10`` multiplies the
records and faults (the figures for the closing note).
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.sync.reliability_device import payload, record_number

pytest.importorskip("paho.mqtt")
pytest.importorskip("zstandard")

REPO = Path(__file__).resolve().parents[2]
SCALE = max(1, int(os.environ.get("EDGEKIT_RELIABILITY_SCALE", "1")))
TOTALS = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    line = ", ".join(f"{k} {v}" for k, v in sorted(TOTALS.items()))
    text = f"reliability (scale {SCALE}, this process): {line}"
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:          # printed past pytest's capture (under xdist: in the worker's log)
        reporter.write_line(text)
    else:
        sys.stderr.write(text + "\n")


def count(kind: str, n: int = 1) -> None:
    TOTALS[kind] += n


# ---- the device process ----------------------------------------------------------------------

def _device(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.sync.reliability_device", *map(str, args)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)


class LineReader:
    """The device's stdout, read by a thread so the test can kill it at any moment."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines = []
        self.first = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self.first.set()
        self.first.set()

    def join(self) -> list:
        self._thread.join(30)
        return self.lines


def _kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def _integrity(path) -> str:
    # closed at once: an open connection would keep the queue's WAL from being checkpointed
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _queued(path) -> list:
    from edgekit.sync.queue import SyncQueue

    with SyncQueue(path) as q:
        return q.peek_batch(1 << 40, max_records=10 ** 7)


def _prefill(path, numbers, promised) -> None:
    """Enqueue records ``numbers`` in this process, into ``promised``."""
    from edgekit.sync.queue import SyncQueue

    numbers = list(numbers)
    with SyncQueue(path) as q:
        for i in range(0, len(numbers), 500):
            chunk = numbers[i:i + 500]
            for n, rid in zip(chunk, q.enqueue_many([("results", payload(n), 2, None) for n in chunk])):
                promised.add(n, rid)
    count("records", len(numbers))


# ---- the hub -------------------------------------------------------------------------------

class Hub:
    """The hub's store on SQLite, fed by MQTT ingest workers: in this process (a thread), or
    as a process of its own that a test can kill -9."""

    def __init__(self, folder: Path, broker):
        self.path = folder / "hub.db"
        self.url = f"sqlite:///{self.path}"
        self.broker = broker
        self.worker = None
        self.process = None
        self.malformed = 0        # batches the in-process worker could not decode

    def start_thread(self) -> "Hub":
        from edgekit.hub.db import Database
        from edgekit.hub.ingest import MqttIngestWorker
        from edgekit.hub.store import HubStore

        self._db = Database(self.url)
        self.worker = MqttIngestWorker(HubStore(self._db), self.broker.host, self.broker.port).start()
        return self

    def start_process(self) -> "Hub":
        code = ("import sys; from edgekit.hub.ingest import run_worker_process; "
                "run_worker_process(sys.argv[1], sys.argv[2], int(sys.argv[3]), 0, {})")
        self.process = subprocess.Popen([sys.executable, "-c", code, self.url, self.broker.host,
                                         str(self.broker.port)], cwd=REPO,
                                        env={**os.environ, "PYTHONPATH": str(REPO)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.malformed = self.worker.counters.malformed
            self._db.close()
            self.worker = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def records(self) -> dict:
        """{record number: [ids at the hub]} of everything stored."""
        from edgekit.hub.db import Database
        from edgekit.hub.store import HubStore

        out = collections.defaultdict(list)
        with Database(self.url) as db:
            store = HubStore(db)
            after = None
            while True:
                page = store.records(after_id=after, limit=5000)
                if not page:
                    break
                for r in page:
                    n = record_number(r["payload"])
                    assert r["payload"] == payload(n), r     # stored as sent, byte for byte
                    out[n].append(r["id"])
                after = page[-1]["id"]
        return out


class Promises:
    """What the device was promised: {record number: {ids whose enqueue returned}}, and the
    record numbers a killed device may have enqueued without saying so (its unlogged tail:
    durable, so they reach the hub, and enqueued again under new ids by the restart)."""

    def __init__(self):
        self.ids = collections.defaultdict(set)
        self.unlogged_tail = set()

    def add(self, n: int, rid: str) -> None:
        self.ids[n].add(rid)

    def read(self, lines: list) -> None:
        for line in lines:
            if line.startswith("ok "):
                _, n, rid = line.split()
                self.add(int(n), rid)

    def __len__(self) -> int:
        return sum(len(v) for v in self.ids.values())


def _check_exactly_once(hub: Hub, promised: Promises, queue_path) -> None:
    """Every promised record is at the hub once, under its id, with its payload; nothing
    else is but a killed device's unlogged tail; the queue is empty; both databases pass
    integrity_check."""
    at_hub = hub.records()
    lost = [(n, rid) for n, ids in promised.ids.items() for rid in ids if rid not in at_hub.get(n, ())]
    dupes = {n: ids for n, ids in at_hub.items() if len(ids) != len(set(ids))}
    unknown = [(n, rid) for n, ids in at_hub.items() for rid in ids
               if rid not in promised.ids.get(n, ()) and n not in promised.unlogged_tail]
    assert (lost[:10], dupes, unknown[:10]) == ([], {}, []), \
        f"lost {len(lost)}, duplicated {len(dupes)}, unknown {len(unknown)}"
    assert hub.malformed == 0
    assert _queued(queue_path) == []
    assert _integrity(queue_path) == "ok"
    assert _integrity(hub.path) == "ok"
    count("delivered exactly once", sum(len(ids) for ids in at_hub.values()))


def _forward_until_drained(queue_path, port: int, device: str, *, faults, plan: list, deadline: float,
                           promised: Promises, produce: tuple | None = None, max_batch_bytes: int = 4096) -> None:
    """Run the device's forwarder process until the queue is empty; with ``produce`` =
    (start, count) the device also enqueues those records meanwhile (a restarted one goes
    on after the last it said ``ok`` for), into ``promised``. While it runs, every
    0.05-0.4 s ``faults(proc, plan.pop())`` injects the next fault of ``plan``; one that
    kills the device is followed by a restart."""
    rng = random.Random(len(plan))
    start, end = (produce[0], produce[0] + produce[1]) if produce else (0, 0)
    while time.monotonic() < deadline:
        extra = ["--enqueue-start", start, "--enqueue-count", end - start] if start < end else []
        proc = _device("forward", queue_path, "--host", "127.0.0.1", "--port", port, "--device", device,
                       "--max-batch-bytes", max_batch_bytes, "--timeout", max(1.0, deadline - time.monotonic()),
                       *extra)
        reader = LineReader(proc)
        reader.first.wait(30)                  # "started": it forwards from now on
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.4))
            if plan and proc.poll() is None:
                faults(proc, plan.pop())
        if proc.poll() is None:
            _kill9(proc)
        lines = reader.join()
        promised.read(lines)
        said = [int(line.split()[1]) for line in lines if line.startswith("ok ")]
        if start < end:
            next_start = max(said) + 1 if said else start
            if proc.returncode != 0:          # killed: what it enqueued after its last "ok" may exist
                promised.unlogged_tail.update(range(next_start, min(end, next_start + 10)))
            start = next_start
        if proc.returncode == 0 and lines and lines[-1] == "drained":
            return
        assert proc.returncode in (0, 1, -signal.SIGKILL), proc.stderr.read()
    raise AssertionError("the queue did not drain in time")


def _rounds(total: int, plan: list, run_round) -> Promises:
    """``run_round(start, count, promised)`` for ``total`` records in rounds of 1000 (and
    rounds of 250 while faults are left in ``plan``)."""
    promised, n = Promises(), 0
    while n < total or plan:
        size = 1000 if n < total else 250
        run_round(n, size, promised)
        n += size
    return promised


# ---- kill -9 while enqueueing ----------------------------------------------------------------

def test_kill9_during_enqueue_loses_no_returned_record(tmp_path):
    queue = tmp_path / "queue.db"
    target, min_kills = 3000 * SCALE, 12 * SCALE
    rng = random.Random(1)
    promised = collections.defaultdict(set)   # n -> ids whose enqueue returned
    kills = 0
    n = 0
    while n < target or kills < min_kills:
        many = rng.choice([1, 1, 20, 200])
        proc = _device("enqueue", queue, "--start", n, "--count", max(1, target - n) if n < target else 400,
                       "--many", many)
        reader = LineReader(proc)
        reader.first.wait(20)
        killed = False
        if kills < min_kills:
            time.sleep(rng.uniform(0.0, 0.15))   # a random point of the enqueue loop
            if proc.poll() is None:
                _kill9(proc)
                killed = True
        proc.wait(60)
        lines = reader.join()
        if killed:
            kills += 1
            count("faults: kill -9 during enqueue")
        for line in lines:
            if line.startswith("ok "):
                _, i, rid = line.split()
                promised[int(i)].add(rid)
        assert killed or proc.returncode == 0, proc.stderr.read()
        n = max(promised, default=-1) + 1
    rows = _queued(queue)
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    in_queue = set(ids)
    missing = [(i, rid) for i, rids in promised.items() for rid in rids if rid not in in_queue]
    assert missing == []
    # a record enqueued but killed before its "ok" line is kept too, never half-written
    assert all(r.payload == payload(record_number(r.payload)) for r in rows)
    assert _integrity(queue) == "ok"
    from edgekit.sync.queue import SyncQueue

    with SyncQueue(queue) as q:
        stats, counters = q.stats(), q.counters()
    assert stats["records"] == len(rows)
    assert sum(counters["enqueued"].values()) == len(rows)
    assert len(promised) >= target and kills >= min_kills
    count("records", len(rows))


# ---- kill -9 while forwarding, over a flapping, slow, shaped link ---------------------------

def test_kill9_while_forwarding_over_a_flapping_link(tmp_path, mosquitto_broker):
    from edgekit.hub.linksim import LinkProxy

    queue = tmp_path / "queue.db"
    hub = Hub(tmp_path, mosquitto_broker).start_thread()
    rng = random.Random(2)
    plan = ["kill"] * (8 * SCALE) + ["flap"] * (8 * SCALE) + ["latency"] * (3 * SCALE) + ["rate"] * (3 * SCALE)
    rng.shuffle(plan)
    done = collections.Counter()

    def faults(proc, fault):
        if fault == "kill":
            _kill9(proc)
        elif fault == "flap":
            link.set_down(True, mode=rng.choice(["refuse", "blackhole"]))
            time.sleep(rng.uniform(0.1, 0.8))
            link.set_down(False)
        elif fault == "latency":
            link.set_latency(rng.choice([0.0, 0.05, 0.2]))
        else:
            link.set_rate(rng.choice([4000, 8000, 16000]))
        done[fault] += 1
        count(f"faults: {fault}")

    deadline = time.monotonic() + 150 * SCALE
    try:
        # 16 kB/s (128 kbit/s): a round of 1000 records takes about a second, long enough to hit
        with LinkProxy(mosquitto_broker.host, mosquitto_broker.port, latency_s=0.02, rate_bytes_s=16000) as link:
            # the device enqueues each round's records itself while it forwards
            promised = _rounds(5000 * SCALE, plan, lambda start, size, promised: _forward_until_drained(
                queue, link.port, "dev-kill", faults=faults, plan=plan, deadline=deadline, promised=promised,
                produce=(start, size)))
    finally:
        hub.stop()
    _check_exactly_once(hub, promised, queue)
    count("records", len(promised))
    assert len(promised.ids) >= 5000 * SCALE and sum(done.values()) == 22 * SCALE, done


# ---- broker restarts and a hub worker killed mid-batch ---------------------------------------

def test_broker_restarts_and_hub_worker_killed_mid_batch(tmp_path, mosquitto_broker):
    queue = tmp_path / "queue.db"
    hub = Hub(tmp_path, mosquitto_broker).start_process()
    rng = random.Random(3)
    plan = ["broker"] * (4 * SCALE) + ["hub"] * (5 * SCALE)
    rng.shuffle(plan)
    done = collections.Counter()

    def faults(proc, fault):
        if fault == "broker":
            mosquitto_broker.restart()
        else:
            _kill9(hub.process)          # wherever it is: decoding, inside the transaction, acking
            hub.start_process()
        done[fault] += 1
        count(f"faults: {'broker restart' if fault == 'broker' else 'hub worker kill -9'}")

    deadline = time.monotonic() + 150 * SCALE
    try:
        def run_round(start, size, promised):
            _prefill(queue, range(start, start + size), promised)
            _forward_until_drained(queue, mosquitto_broker.port, "dev-hub", faults=faults, plan=plan,
                                   deadline=deadline, promised=promised, max_batch_bytes=2048)

        promised = _rounds(3000 * SCALE, plan, run_round)
    finally:
        hub.stop()
    _check_exactly_once(hub, promised, queue)
    assert len(promised.ids) >= 3000 * SCALE and sum(done.values()) == 9 * SCALE, done


# ---- disk full -------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (we run as root in CI); unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()}): run as root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill_until_full(q, small_disk, promised: dict) -> Exception:
    """Take all but ~600 kB of the disk with a filler file, then enqueue 20 records at a time
    until the queue says the disk is full; the error."""
    with open(small_disk / "filler", "wb") as f:
        st = os.statvfs(small_disk)
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 600_000))
    from edgekit.sync.queue import QueueStorageError

    while True:
        n = len(promised)
        try:
            ids = q.enqueue_many([("results", payload(i), 2, None) for i in range(n, n + 20)])
        except QueueStorageError as exc:
            return exc
        promised.update(zip(range(n, n + 20), ids))
        assert len(promised) < 10 ** 6, "the disk never filled"


def test_disk_full_refuses_cleanly_and_recovers(small_disk):
    from edgekit.sync.queue import SyncQueue

    path = small_disk / "queue.db"
    promised = {}
    for _ in range(3 * SCALE):
        with SyncQueue(path) as q:                  # each round: the device (re)starts
            first = len(promised)
            error = _fill_until_full(q, small_disk, promised)
            assert "full" in str(error).lower(), str(error)
            count("faults: disk full")
            assert _integrity(path) == "ok"
            rows = q.peek_batch(1 << 40, max_records=10 ** 7)
            assert {r.id for r in rows} == {promised[i] for i in range(first, len(promised))}  # all kept
            (small_disk / "filler").unlink()        # space is back: the queue goes on
            n = len(promised)
            promised[n] = q.enqueue("results", payload(n))
            q.ack([r.id for r in rows])             # as a forwarder would, so the next round fills again
            assert [r.id for r in q.peek_batch(1 << 40)] == [promised[n]]
            q.ack([promised[n]])
            counters = q.counters()
    assert sum(counters["enqueued"].values()) == sum(counters["acked"].values()) == len(promised)
    count("records", len(promised))
    assert len(promised) >= 500 * SCALE


def test_disk_full_again_and_again_without_a_restart(small_disk):
    from edgekit.sync.queue import SyncQueue

    promised = {}
    with SyncQueue(small_disk / "queue.db") as q:
        for _ in range(3):
            first = len(promised)
            _fill_until_full(q, small_disk, promised)
            (small_disk / "filler").unlink()
            q.ack([promised[i] for i in range(first, len(promised))])
    assert _integrity(small_disk / "queue.db") == "ok"


# ---- clock jumps -----------------------------------------------------------------------------

def test_clock_jumps_forward_and_back(tmp_path, mosquitto_broker):
    from edgekit.sync.forwarder import Forwarder
    from edgekit.sync.queue import SyncQueue
    from edgekit.sync.transports.mqtt import MqttTransport

    now = [1_800_000_000.0]
    clock = lambda: now[0]   # noqa: E731
    queue = tmp_path / "queue.db"
    hub = Hub(tmp_path, mosquitto_broker).start_thread()
    rng = random.Random(4)
    promised, expired = {}, set()
    jumps = 0
    try:
        with SyncQueue(queue, clock=clock) as q, \
                MqttTransport(mosquitto_broker.host, mosquitto_broker.port, "dev-clock",
                              reconnect_delay_s=(0.1, 1.0)) as transport:
            fwd = Forwarder(q, transport, "dev-clock", backoff=(0.05, 0.5), ack_timeout_s=5.0, clock=clock)
            n = 0
            for _ in range(10 * SCALE):
                # 100 records living 60 s and 100 living forever, then the clock jumps
                short = q.enqueue_many([("results", payload(i), 2, 60.0) for i in range(n, n + 100)])
                for i, rid in zip(range(n, n + 100), short):
                    promised[i] = rid
                n += 100
                for i in range(n, n + 100):
                    promised[i] = q.enqueue("results", payload(i), priority=1)
                n += 100
                jump = rng.choice([-86400.0, -3600.0, 120.0, 86400.0 * 3])
                now[0] += jump
                jumps += 1
                count("faults: clock jump")
                if jump > 60:     # the short-lived ones are past their lifetime: dropped and counted
                    expired.update(range(n - 200, n - 100))
                result = fwd.run_once()
                assert result["stopped"] == "empty", result
                ids = [i.id for i in q.peek_batch(1 << 30)]
                assert ids == []
            counters = q.counters()
            fwd.close()
        time.sleep(0.5)
    finally:
        hub.stop()
    for i in expired:
        promised.pop(i)
    assert sum(counters["expired"].values()) == len(expired) > 0
    kept = Promises()
    for i, rid in promised.items():
        kept.add(i, rid)
    _check_exactly_once(hub, kept, queue)
    ids = list(promised.values())
    assert len(ids) == len(set(ids))                 # unique whatever the clock did
    count("records", len(promised) + len(expired))
    assert jumps >= 10 * SCALE
