"""The forwarder's own rules with an injected clock and an in-process hub: backoff with
full jitter, token bucket and daily cap (bytes counted and persisted), custody by ack
(late, duplicated or partial acks), and the link state it leaves for `sync status`."""

from __future__ import annotations

import random
import threading

import pytest

from edgekit.errors import BadInputError
from edgekit.sync.forwarder import Forwarder, read_forwarder_state, state_path_for
from edgekit.sync.transports import LinkDownError, Transport
from edgekit.sync.wire import decode_batch, encode_ack


class FakeClock:
    def __init__(self, start: float = 1_765_000_000.0):
        self.now = start
        self.sleeps = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class InProcessHub(Transport):
    """Decodes each batch with the wire format and acks its records (or fails, as told)."""

    name = "in-process"

    def __init__(self):
        self.batches = []
        self.fail_next = 0          # this many sends raise LinkDownError
        self.ack_filter = None      # ids -> ids the ack names
        self.attempts = 0

    def send(self, batch: bytes, *, timeout_s: float) -> bytes:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise LinkDownError("link down (test)")
        decoded = decode_batch(batch)
        self.batches.append((len(batch), decoded))
        ids = [r.id for r in decoded.records]
        return encode_ack(decoded.device_id, decoded.seq, self.ack_filter(ids) if self.ack_filter else ids)

    def poll_downlink(self, *, timeout_s: float = 0.0) -> list:
        return []

    def close(self) -> None:
        pass


def fill(queue, n: int, size: int = 120, priority: int = 2) -> list:
    rng = random.Random(n)
    # Random hex: compresses about 2x, so byte budgets bind after a few records.
    return [queue.enqueue("results", rng.randbytes(size // 2).hex().encode(), priority=priority) for _ in range(n)]


def make(queue, hub, clock, **kw) -> Forwarder:
    kw.setdefault("rate_bytes_s", None)
    kw.setdefault("daily_bytes", None)
    return Forwarder(queue, hub, "dev-1", clock=clock.time, sleep=clock.sleep, **kw)


def test_backoff_grows_with_full_jitter_and_a_success_resets_it(sync_queue):
    fill(sync_queue, 5)
    clock, hub = FakeClock(), InProcessHub()
    hub.fail_next = 6
    fwd = make(sync_queue, hub, clock, backoff=(1.0, 8.0), rng=random.Random(7))
    delays = [fwd.run_once()["retry_in_s"] for _ in range(6)]
    # The independent oracle: uniform(0, min(most, first * 2^(n-1))) from the same seed.
    oracle = random.Random(7)
    assert delays == [oracle.uniform(0, min(8.0, 1.0 * 2 ** n)) for n in range(6)]
    assert fwd.failures == 6 and sync_queue.stats()["records"] == 5
    ok = fwd.run_once()
    assert ok["acked"] == 5 and ok["link"] == "up" and fwd.failures == 0
    hub.fail_next = 1
    assert fwd.run_once()["retry_in_s"] is None  # nothing queued: nothing tried
    fill(sync_queue, 1)
    assert fwd.run_once()["retry_in_s"] <= 1.0   # the first failure after a success: back to FIRST
    fwd.close()


def test_run_waits_the_backoff_between_tries(sync_queue):
    fill(sync_queue, 3)
    clock, hub = FakeClock(), InProcessHub()
    hub.fail_next = 4
    stop = threading.Event()
    fwd = make(sync_queue, hub, clock, backoff=(2.0, 10.0), rng=random.Random(1), idle_s=5.0)
    starts = []
    real_run_once = fwd.run_once

    def run_once(**kw):
        starts.append(clock.now)
        result = real_run_once(**kw)
        if result["stopped"] == "empty":
            stop.set()
        return result

    fwd.run_once = run_once
    fwd.run(stop)
    oracle = random.Random(1)
    expected = [oracle.uniform(0, min(10.0, 2.0 * 2 ** n)) for n in range(4)]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps == pytest.approx(expected)
    assert hub.attempts == 5 and sync_queue.stats()["records"] == 0
    fwd.close()


def test_token_bucket_holds_the_rate(sync_queue):
    fill(sync_queue, 400)
    clock, hub = FakeClock(), InProcessHub()
    fwd = make(sync_queue, hub, clock, rate_bytes_s=1000, max_batch_bytes=1000)
    start = clock.now
    result = fwd.run_once()
    elapsed = clock.now - start
    sent = sum(size for size, _ in hub.batches)
    assert result["acked"] == 400 and result["bytes"] == sent
    # A full bucket (max(rate, batch) = 1000 bytes) goes at once; the rest at 1000 bytes/s.
    assert elapsed == pytest.approx((sent - 1000) / 1000, abs=1.0)
    assert sent > 10_000
    fwd.close()


def test_daily_cap_stops_and_the_next_utc_day_resumes_after_a_restart(sync_queue):
    fill(sync_queue, 300)
    clock, hub = FakeClock(1_765_000_000.0), InProcessHub()   # 2025-12-06 05:46 UTC
    fwd = make(sync_queue, hub, clock, daily_bytes=5000, max_batch_bytes=2000)
    first = fwd.run_once()
    assert first["stopped"] == "daily cap"
    assert 4000 < first["bytes"] <= 5000 and fwd.bytes_today() == first["bytes"]
    left = sync_queue.stats()["records"]
    assert 0 < left < 300
    fwd.close()
    # A new forwarder on the same queue (a restart) remembers today's bytes.
    fwd = make(sync_queue, hub, clock, daily_bytes=5000, max_batch_bytes=2000)
    assert fwd.bytes_today() == first["bytes"]
    assert fwd.run_once()["stopped"] == "daily cap" and sync_queue.stats()["records"] == left
    clock.now += fwd.seconds_to_next_day()
    second = fwd.run_once()
    assert second["records"] > 0 and fwd.bytes_today() == second["bytes"] <= 5000
    fwd.close()


def test_partial_duplicate_and_late_acks_delete_exactly_what_they_name(sync_queue):
    ids = fill(sync_queue, 20)
    clock, hub = FakeClock(), InProcessHub()
    hub.ack_filter = lambda got: got[: len(got) // 2]        # the hub stores half (say)
    fwd = make(sync_queue, hub, clock)
    result = fwd.run_once(max_batches=1)
    assert result["acked"] == 10 and sync_queue.stats()["records"] == 10
    # Acked ids are gone, the rest are sent again next time.
    held = {r.id for r in sync_queue.peek_batch(1 << 20)}
    assert held == set(ids[10:])
    # A duplicated or late ack (for ids already deleted) deletes nothing more.
    assert sync_queue.ack(ids[:10]) == 0
    hub.ack_filter = None
    assert fwd.run_once()["acked"] == 10 and sync_queue.stats()["records"] == 0
    fwd.close()


def test_an_ack_naming_none_of_the_batch_counts_as_a_failure(sync_queue):
    fill(sync_queue, 5)
    clock, hub = FakeClock(), InProcessHub()
    hub.ack_filter = lambda got: []
    fwd = make(sync_queue, hub, clock)
    result = fwd.run_once()
    assert result["stopped"] == "link down" and "none of its 5 records" in result["error"]
    assert sync_queue.stats()["records"] == 5
    fwd.close()


def test_link_state_is_left_for_status(sync_queue):
    fill(sync_queue, 3)
    clock, hub = FakeClock(), InProcessHub()
    hub.fail_next = 1
    fwd = make(sync_queue, hub, clock)
    fwd.run_once()
    state = read_forwarder_state(sync_queue.path)
    assert state["link"] == "down" and state["failures"] == 1 and "test" in state["last_error"]
    fwd.run_once()
    state = read_forwarder_state(sync_queue.path)
    assert state["link"] == "up" and state["last_ok_ms"] == int(clock.now * 1000) and state["transport"] == "in-process"
    assert state_path_for(sync_queue.path).is_file()
    # Batch numbers go on across restarts.
    last = state["last_seq"]
    fwd.close()
    fill(sync_queue, 1)
    fwd = make(sync_queue, hub, clock)
    fwd.run_once()
    assert hub.batches[-1][1].seq > last
    fwd.close()


@pytest.mark.parametrize("kw", [{"rate_bytes_s": 0}, {"daily_bytes": -1}, {"max_batch_bytes": 10},
                                {"backoff": (5.0, 1.0)}])
def test_bad_settings_are_refused(sync_queue, kw):
    args = {"rate_bytes_s": None, "daily_bytes": None, **kw}
    with pytest.raises(BadInputError):
        Forwarder(sync_queue, InProcessHub(), "dev-1", **args)


def test_a_bad_device_id_is_refused(sync_queue):
    with pytest.raises(BadInputError, match="device id"):
        Forwarder(sync_queue, InProcessHub(), "dev/1", rate_bytes_s=None, daily_bytes=None)


class FailingStorage:
    """A queue whose storage fails for the first ``n`` peeks (a full disk), else the real one."""

    def __init__(self, queue, n: int):
        self._queue, self.left = queue, n

    def __getattr__(self, name):
        return getattr(self._queue, name)

    def peek_batch(self, *args, **kw):
        from edgekit.sync.queue import QueueStorageError

        if self.left:
            self.left -= 1
            raise QueueStorageError("database or disk is full (test)")
        return self._queue.peek_batch(*args, **kw)


def test_run_outlives_a_storage_failure_and_loses_nothing(sync_queue, caplog):
    ids = fill(sync_queue, 10)
    clock, hub = FakeClock(), InProcessHub()
    queue = FailingStorage(sync_queue, 3)
    stop = threading.Event()
    fwd = make(queue, hub, clock, backoff=(1.0, 60.0), state_path=state_path_for(sync_queue.path))
    real_run_once = fwd.run_once

    def run_once(**kw):
        result = real_run_once(**kw)
        stop.set()
        return result

    fwd.run_once = run_once
    fwd.run(stop)
    assert queue.left == 0 and "disk is full" in caplog.text
    assert clock.sleeps and sum(clock.sleeps) == pytest.approx(1 + 2 + 4)   # its own backoff
    assert {r.id for _, b in hub.batches for r in b.records} == set(ids)
    assert sync_queue.stats()["records"] == 0
    fwd.close()


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

# What the link and the hub do with one batch: fail before the hub sees it, store it and
# lose the ack, store it and ack a part of it (a mask over its records), or ack it all.
outcomes = st.one_of(st.just("fail"), st.just("lost ack"), st.just("ack all"),
                     st.lists(st.booleans(), min_size=1, max_size=8).map(tuple))


class ScriptedHub(Transport):
    name = "scripted"

    def __init__(self, script):
        self.script, self.stored = list(script), set()

    def send(self, batch: bytes, *, timeout_s: float) -> bytes:
        outcome = self.script.pop(0) if self.script else "ack all"
        if outcome == "fail":
            raise LinkDownError("down (script)")
        decoded = decode_batch(batch)
        ids = [r.id for r in decoded.records]
        self.stored.update(ids)          # the hub dedupes: a set
        if outcome == "lost ack":
            raise LinkDownError("no ack (script)")
        if outcome != "ack all":
            ids = [i for i, keep in zip(ids, outcome * len(ids)) if keep]
        return encode_ack(decoded.device_id, decoded.seq, ids)

    def poll_downlink(self, *, timeout_s: float = 0.0) -> list:
        return []

    def close(self) -> None:
        pass


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(outcomes, max_size=25), n=st.integers(1, 60))
def test_custody_a_record_leaves_the_queue_only_once_the_hub_has_it(tmp_path_factory, script, n):
    from edgekit.sync.queue import SyncQueue

    folder = tmp_path_factory.mktemp("custody")
    with SyncQueue(folder / "q.db") as queue:
        ids = set(fill(queue, n))
        clock, hub = FakeClock(), ScriptedHub(script)
        fwd = Forwarder(queue, hub, "dev-1", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=600,
                        clock=clock.time, sleep=clock.sleep, state_path=folder / "state")
        for _ in range(len(script) + 1):
            fwd.run_once()
            held = {r.id for r in queue.peek_batch(1 << 30, max_records=1 << 30)}
            assert ids - held <= hub.stored             # whatever left the queue is at the hub
        for _ in range(3 * n):                          # the script is spent: the link works
            if not fwd.run_once()["records"]:
                break
        fwd.close()
        assert queue.stats()["records"] == 0 and hub.stored == ids
