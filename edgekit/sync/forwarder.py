"""The forwarder: moves queued records to the hub over one transport, most urgent first,
within a bandwidth budget, and deletes them only when the hub's ack names them.

One pass (``run_once``) packs the queue's first records (priority 0 first, then oldest:
SyncQueue.peek_batch) into a batch of at most ``max_batch_bytes`` on the wire (zstd,
edgekit.sync.wire), carrying the queue's counters so every drop reaches the hub; it waits
for the token bucket (``rate_bytes_s``), stops at the daily byte cap, sends, and applies
the ack. Custody transfer: a record leaves the queue only when an ack for this device
names it; acks that come late, twice or out of order delete nothing twice (ack is
idempotent), and records the hub has not acked are sent again later (the hub dedupes by
record id, so the effect is exactly once). A failed send or a missing ack marks the link
down; ``run`` then waits an exponential backoff with full jitter, and the next success
resets it.

What must survive a restart lives in a small SQLite file beside the queue
(``<queue>.forwarder``): the batch sequence number, the bytes sent on the current UTC day,
and the link state that ``edgekit sync status`` shows. Bytes counted against the rate and
the cap are batch bytes; the transport's own framing (MQTT, TLS, HTTP headers) comes on top.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from edgekit.errors import BadInputError
from edgekit.sync.queue import RECORD_OVERHEAD, QueueStorageError
from edgekit.sync.transports import LinkDownError, Transport, check_device_id

log = logging.getLogger("edgekit.sync.forwarder")

STATE_SUFFIX = ".forwarder"
# A first guess of compressed/raw size for typical JSON results; each batch then measures it.
_FIRST_RATIO = 0.25


def state_path_for(queue_path) -> Path:
    """Where a forwarder keeps its state for the queue at ``queue_path``."""
    return Path(str(queue_path) + STATE_SUFFIX)


def _dictionary_id(zstd_dict) -> int:
    from edgekit.sync.wire import dictionary_id

    return zstd_dict.dict_id() if hasattr(zstd_dict, "dict_id") else dictionary_id(bytes(zstd_dict))


def upstream_counters(queue) -> dict:
    """What a batch reports about the queue: its counters with the backlog when the queue
    offers them together (SyncQueue.upstream_counters), else its counters."""
    read = getattr(queue, "upstream_counters", None)
    return read() if read is not None else queue.counters()


class ForwarderState:
    """The forwarder's persistent state: a key/value table in its own SQLite file, each
    change one transaction (synchronous FULL)."""

    def __init__(self, path):
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str, default=None):
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def update(self, **values) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                                     [(k, json.dumps(v)) for k, v in values.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def next_seq(self) -> int:
        """The next batch sequence number, unique for this queue across restarts and
        across processes (a forwarder and an export may share the queue)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM state WHERE key = 'seq'").fetchone()
                seq = (json.loads(row[0]) if row else 0) + 1
                self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('seq', ?)", (json.dumps(seq),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    def all(self) -> dict:
        with self._lock:
            return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM state")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_forwarder_state(queue_path) -> Optional[dict]:
    """The state a forwarder left for this queue (link, bytes today, last batch), or None
    if none ever ran; opened read-only."""
    path = state_path_for(queue_path)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM state")}
        finally:
            db.close()
    except sqlite3.Error:
        return None


class TokenBucket:
    """``rate`` bytes per second, holding at most ``capacity``. A send larger than the
    capacity waits for a full bucket and leaves it in debt, which later sends wait out."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]):
        self.rate, self.capacity, self._clock = float(rate), float(capacity), clock
        self.tokens = float(capacity)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        # A clock stepped back refills nothing; one stepped forward at most fills the bucket.
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def wait_s(self, nbytes: int) -> float:
        """Seconds until ``nbytes`` may go (0: now)."""
        self._refill()
        need = min(float(nbytes), self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, nbytes: int) -> None:
        self._refill()
        self.tokens -= nbytes


class Forwarder:
    """Sends ``queue``'s records over ``transport`` for ``device_id``; see the module doc."""

    def __init__(self, queue, transport: Transport, device_id: str, *, rate_bytes_s: Optional[float] = None,
                 daily_bytes: Optional[int] = None, max_batch_bytes: int = 16384, backoff=(1.0, 300.0),
                 zstd_dict=None, clock=time.time, sleep=time.sleep, ack_timeout_s: float = 30.0,
                 state_path=None, rng: Optional[random.Random] = None,
                 on_downlink: Optional[Callable[[bytes], None]] = None, idle_s: float = 1.0):
        check_device_id(device_id)
        if rate_bytes_s is not None and not rate_bytes_s > 0:
            raise BadInputError(f"rate {rate_bytes_s!r} bytes/s: must be more than 0 (or none for no limit)")
        if daily_bytes is not None and not daily_bytes > 0:
            raise BadInputError(f"daily cap {daily_bytes!r} bytes: must be more than 0 (or none for no cap)")
        if not 256 <= max_batch_bytes <= 64 << 20:
            raise BadInputError(f"max batch size {max_batch_bytes} bytes: must be 256 bytes to 64 MiB")
        base, cap = backoff
        if not 0 < base <= cap:
            raise BadInputError(f"backoff {backoff!r}: expected (first, most) seconds with 0 < first <= most")
        self.queue, self.transport, self.device_id = queue, transport, device_id
        self.daily_bytes, self.max_batch_bytes = daily_bytes, int(max_batch_bytes)
        self.backoff = (float(base), float(cap))
        self.zstd_dict, self.ack_timeout_s = zstd_dict, float(ack_timeout_s)
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self.on_downlink, self.idle_s = on_downlink, float(idle_s)
        if zstd_dict is not None and isinstance(getattr(transport, "zstd_dicts", None), dict):
            transport.zstd_dicts[_dictionary_id(zstd_dict)] = zstd_dict   # it reads its batches' headers
        self._bucket = (TokenBucket(rate_bytes_s, max(float(max_batch_bytes), float(rate_bytes_s)), clock)
                        if rate_bytes_s else None)
        if state_path is None and getattr(queue, "path", None) is not None:
            state_path = state_path_for(queue.path)
        self.state = ForwarderState(state_path if state_path is not None else ":memory:")
        self._ratio = _FIRST_RATIO
        self.failures = int(self.state.get("failures", 0))

    # ---------------------------------------------------------------- budget

    def _day(self) -> str:
        return datetime.datetime.fromtimestamp(self._clock(), datetime.timezone.utc).date().isoformat()

    def bytes_today(self) -> int:
        day = self.state.get("day")
        return int(self.state.get("day_bytes", 0)) if day == self._day() else 0

    def seconds_to_next_day(self) -> float:
        now = self._clock()
        today = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).date()
        midnight = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(),
                                             datetime.timezone.utc)
        return max(1.0, midnight.timestamp() - now)

    def _wait(self, seconds: float, stop: Optional[threading.Event]) -> bool:
        """Sleep ``seconds`` (through the injected sleep), in slices so that ``stop`` ends
        the wait early; False if stopped."""
        end = self._clock() + seconds
        left = seconds
        while left > 0:
            if stop is not None and stop.is_set():
                return False
            self._sleep(min(left, 0.5))
            # Measured on the clock, but never longer than asked should the clock step back.
            left = min(left - 0.5, end - self._clock())
        return not (stop is not None and stop.is_set())

    # ---------------------------------------------------------------- packing

    def _pack(self, limit: int):
        """(seq, records, batch bytes) for the queue's first records, the batch at most
        ``limit`` bytes unless one record alone is larger; None if nothing is queued."""
        from edgekit.sync.wire import encode_batch

        raw_budget = max(1024, int(limit / self._ratio))
        records = self.queue.peek_batch(raw_budget)
        if not records:
            return None
        seq = self.state.next_seq()
        counters = upstream_counters(self.queue)
        for _ in range(8):
            data = encode_batch(self.device_id, seq, records, counters=counters, zstd_dict=self.zstd_dict)
            if len(data) <= limit or len(records) == 1:
                break
            keep = int(len(records) * limit / len(data) * 0.95)
            records = records[:max(1, min(len(records) - 1, keep))]
        raw = sum(len(r.payload) + RECORD_OVERHEAD for r in records)  # as peek_batch counts them
        self._ratio = min(1.5, max(0.01, len(data) / raw))
        return seq, records, data

    # ---------------------------------------------------------------- one pass

    def _record_failure(self, error: str) -> float:
        self.failures += 1
        base, cap = self.backoff
        delay = self._rng.uniform(0.0, min(cap, base * 2 ** min(self.failures - 1, 60)))
        now_ms = int(self._clock() * 1000)
        self.state.update(link="down", failures=self.failures, last_error=error, last_failure_ms=now_ms,
                          retry_at_ms=now_ms + int(delay * 1000), transport=self.transport.name)
        log.warning("link down (%s); retrying in %.1f s", error, delay)
        return delay

    def _send(self, seq: int, records: list, data: bytes) -> int:
        """Send one batch and apply its ack; the number of records it deleted. Raises
        LinkDownError (the link, or an ack that acknowledges none of the batch)."""
        from edgekit.sync.wire import WireFormatError, decode_ack

        raw_ack = self.transport.send(data, timeout_s=self.ack_timeout_s)
        try:
            ack = decode_ack(raw_ack)
        except WireFormatError as exc:
            raise LinkDownError(f"the hub's answer to batch {seq} is not an ack: {exc}") from None
        if ack.device_id != self.device_id:
            raise LinkDownError(f"the hub acked batch {seq} for device {ack.device_id!r}, not {self.device_id!r}")
        sent = {r.id for r in records}
        if not sent.intersection(ack.record_ids):
            raise LinkDownError(f"the hub's ack for batch {seq} names none of its {len(records)} records")
        return self.queue.ack(list(ack.record_ids))

    def run_once(self, *, max_batches: Optional[int] = None, stop_event: Optional[threading.Event] = None) -> dict:
        """Send batches until the queue is empty, the link fails, the daily cap is reached,
        ``max_batches`` went or ``stop_event`` is set; waits for the token bucket between
        batches. Returns what happened: batches, records (sent), acked, bytes, stopped
        ("empty" | "link down" | "daily cap" | "max batches" | "stopped"), link, error,
        retry_in_s (the backoff before the next try, when the link went down)."""
        result = {"batches": 0, "records": 0, "acked": 0, "bytes": 0, "stopped": "empty",
                  "link": self.state.get("link", "unknown"), "error": None, "retry_in_s": None}
        while True:
            if stop_event is not None and stop_event.is_set():
                result["stopped"] = "stopped"
                return result
            if max_batches is not None and result["batches"] >= max_batches:
                result["stopped"] = "max batches"
                return result
            limit = self.max_batch_bytes
            if self.daily_bytes is not None:
                limit = min(limit, self.daily_bytes - self.bytes_today())
                if limit < 64:
                    result["stopped"] = "daily cap"
                    return result
            packed = self._pack(limit)
            if packed is None:
                return result
            seq, records, data = packed
            if self.daily_bytes is not None and len(data) > self.daily_bytes - self.bytes_today():
                # The next record does not fit what is left today (one larger than the whole
                # cap never goes: the log says so).
                if len(data) > self.daily_bytes:
                    log.error("record %s alone needs %d bytes, more than the daily cap of %d bytes",
                              records[0].id, len(data), self.daily_bytes)
                result["stopped"] = "daily cap"
                return result
            if self._bucket is not None:
                if not self._wait(self._bucket.wait_s(len(data)), stop_event):
                    result["stopped"] = "stopped"
                    return result
                self._bucket.take(len(data))
            # Counted before the send: bytes that left count against the budget even if no
            # ack comes back.
            day = self._day()
            self.state.update(day=day, day_bytes=self.bytes_today() + len(data))
            result["bytes"] += len(data)
            try:
                acked = self._send(seq, records, data)
            except LinkDownError as exc:
                result.update(stopped="link down", link="down", error=str(exc),
                              retry_in_s=self._record_failure(str(exc)))
                return result
            self.failures = 0
            self.state.update(link="up", failures=0, last_ok_ms=int(self._clock() * 1000), last_seq=seq,
                              transport=self.transport.name)
            result.update(link="up")
            result["batches"] += 1
            result["records"] += len(records)
            result["acked"] += acked

    # ---------------------------------------------------------------- the daemon loop

    def deliver_downlink(self, timeout_s: float = 0.0) -> int:
        """Hand the messages the hub sent down to ``on_downlink``; how many there were."""
        if self.on_downlink is None:
            return 0
        messages = self.transport.poll_downlink(timeout_s=timeout_s)
        for message in messages:
            self.on_downlink(message)
        return len(messages)

    def run(self, stop_event: threading.Event) -> None:
        """Forward until ``stop_event`` is set: after a failure wait the backoff, at the
        daily cap wait for the next UTC day, with nothing queued poll every ``idle_s``."""
        storage_failures = 0
        while not stop_event.is_set():
            try:
                result = self.run_once(stop_event=stop_event)
            except (QueueStorageError, sqlite3.Error, OSError) as exc:
                # A full or failing disk on the device: what is queued stays queued; keep
                # trying (space comes back as acks and expiry free it) rather than exit.
                storage_failures += 1
                delay = min(self.backoff[1], self.backoff[0] * 2 ** min(storage_failures - 1, 60))
                log.error("queue or forwarder state cannot be read or written (%s); trying again in %.1f s",
                          exc, delay)
                self._wait(delay, stop_event)
                continue
            storage_failures = 0
            if result["batches"]:
                log.info("sent %d records in %d batches (%d bytes), %d acked", result["records"], result["batches"],
                         result["bytes"], result["acked"])
            try:
                self.deliver_downlink()
            except LinkDownError:
                pass  # the next pass notices the link
            if result["stopped"] == "link down":
                self._wait(result["retry_in_s"], stop_event)
            elif result["stopped"] == "daily cap":
                self._wait(min(self.seconds_to_next_day(), 60.0), stop_event)
            elif result["stopped"] == "empty":
                self._wait(self.idle_s, stop_event)

    def close(self) -> None:
        self.state.close()
