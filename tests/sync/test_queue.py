"""SyncQueue: ordering, the byte bound and its policies, expiry, counters, bad input.

The oracle for each test is a plain Python model of the documented rule (sorting by
(priority, arrival), a running byte total), written here independently of the queue."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from edgekit.errors import BadInputError
from edgekit.sync import RECORD_OVERHEAD, QueueFullError, QueueStorageError, RecordTooLargeError, SyncQueue
from edgekit.sync.records import id_time_ms, new_id


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def held(q: SyncQueue) -> list:
    return q.peek_batch(1 << 40, 1 << 30)


def check_identity(q: SyncQueue) -> None:
    """Per stream: enqueued = held + acked + expired + dropped_full (nothing unaccounted)."""
    c, s = q.counters(), q.stats()
    for stream, n in c["enqueued"].items():
        now = s["by_stream"].get(stream, {"records": 0})["records"]
        assert n == now + c["acked"].get(stream, 0) + c["expired"].get(stream, 0) + c["dropped_full"].get(stream, 0)


def test_peek_gives_priority_0_first_then_oldest(tmp_path):
    q = SyncQueue(tmp_path / "q.db")
    sent = []
    for i in range(40):
        p = (i * 7) % 4
        sent.append((p, i, q.enqueue("results", f"r{i}".encode(), priority=p)))
    got = held(q)
    expected = sorted(sent)  # priority, then arrival
    assert [r.id for r in got] == [rid for _, _, rid in expected]
    assert [r.payload for r in got] == [f"r{i}".encode() for _, i, _ in expected]
    assert all(r.stream == "results" and r.expires_ms is None for r in got)
    q.close()


def test_records_and_counters_survive_reopening(tmp_path):
    clock = FakeClock()
    with SyncQueue(tmp_path / "q.db", clock=clock) as q:
        a = q.enqueue("events", b"a", priority=1, lifetime_s=60)
        q.enqueue("results", b"bb")
        q.ack([a])
    with SyncQueue(tmp_path / "q.db", clock=clock) as q:
        (r,) = held(q)
        assert (r.stream, r.payload, r.priority, r.created_ms) == ("results", b"bb", 2, 1_800_000_000_000)
        c = q.counters()
        assert c["enqueued"] == {"events": 1, "results": 1} and c["acked"] == {"events": 1}
        assert q.stats()["bytes"] == 2 + RECORD_OVERHEAD


def test_ack_deletes_and_counts_only_what_was_there(tmp_path):
    q = SyncQueue(tmp_path / "q.db")
    ids = [q.enqueue("results", b"x" * i) for i in range(10)]
    assert q.ack(ids[:4] + ids[:2] + [new_id()]) == 4  # repeats and unknown ids are ignored
    assert q.ack(ids[:4]) == 0
    assert [r.id for r in held(q)] == ids[4:]
    assert q.counters()["acked"] == {"results": 4}
    s = q.stats()
    assert s["records"] == 6 and s["bytes"] == sum(range(4, 10)) + 6 * RECORD_OVERHEAD
    with pytest.raises(BadInputError, match="not a UUID"):
        q.ack(["nope"])
    check_identity(q)
    q.close()


def test_peek_respects_byte_and_record_limits_but_always_gives_one(tmp_path):
    q = SyncQueue(tmp_path / "q.db")
    ids = [q.enqueue("results", bytes(100)) for _ in range(10)]
    size = 100 + RECORD_OVERHEAD
    assert [r.id for r in q.peek_batch(3 * size)] == ids[:3]
    assert [r.id for r in q.peek_batch(3 * size - 1)] == ids[:2]
    assert [r.id for r in q.peek_batch(1)] == ids[:1]  # larger than the limit, but never stuck
    assert [r.id for r in q.peek_batch(1 << 20, max_records=4)] == ids[:4]
    assert q.peek_batch(1 << 20, max_records=0) == []
    assert q.stats()["records"] == 10  # peeking removes nothing
    q.close()


def test_drop_oldest_removes_least_urgent_oldest_first(tmp_path):
    size = 10 + RECORD_OVERHEAD
    q = SyncQueue(tmp_path / "q.db", max_bytes=8 * size)
    model = []  # (priority, arrival, id): the rule written out
    dropped = 0
    for i in range(30):
        p = [3, 1, 2, 0, 3, 2][i % 6]
        rid = q.enqueue("results", bytes(10), priority=p)
        model.append((p, i, rid))
        while len(model) > 8:
            # evict: highest priority number, then oldest; never more urgent than the new one
            victim = sorted(model, key=lambda m: (-m[0], m[1]))[0]
            assert victim[0] >= p
            model.remove(victim)
            dropped += 1
    assert [r.id for r in held(q)] == [m[2] for m in sorted(model)]
    assert q.counters()["dropped_full"] == {"results": dropped}
    assert q.stats()["bytes"] == 8 * size
    check_identity(q)
    q.close()


def test_drop_oldest_never_evicts_a_more_urgent_record(tmp_path):
    size = 10 + RECORD_OVERHEAD
    q = SyncQueue(tmp_path / "q.db", max_bytes=3 * size)
    urgent = [q.enqueue("alarms", bytes(10), priority=0) for _ in range(3)]
    q.enqueue("results", bytes(10), priority=3)  # no room without evicting an alarm: dropped itself
    assert [r.id for r in held(q)] == urgent
    c = q.counters()
    assert c["dropped_full"] == {"results": 1} and c["enqueued"] == {"alarms": 3, "results": 1}
    check_identity(q)
    q.close()


def test_refuse_policy_raises_and_counts_and_changes_nothing(tmp_path):
    size = 10 + RECORD_OVERHEAD
    q = SyncQueue(tmp_path / "q.db", max_bytes=4 * size, policies={"audit": "refuse"})
    kept = [q.enqueue("audit", bytes(10), priority=3) for _ in range(4)]
    with pytest.raises(QueueFullError, match="stream 'audit' refuses new records when full") as e:
        q.enqueue("audit", bytes(10), priority=0)
    assert str(4 * size) in str(e.value) and "audit" in str(e.value)
    assert [r.id for r in held(q)] == kept
    # a drop-oldest stream still gets in, by evicting (audit records are not protected
    # from other streams' policy: the policy is the arriving record's)
    newer = q.enqueue("results", bytes(10), priority=3)
    assert [r.id for r in held(q)] == kept[1:] + [newer]
    c = q.counters()
    assert c["refused"] == {"audit": 1} and c["dropped_full"] == {"audit": 1}
    check_identity(q)
    q.close()


def test_enqueue_many_is_all_or_nothing(tmp_path):
    size = 10 + RECORD_OVERHEAD
    q = SyncQueue(tmp_path / "q.db", max_bytes=5 * size, default_policy="refuse")
    ids = q.enqueue_many([("results", bytes(10), 1, None), ("events", bytes(10)), ("results", bytes(10), 0, 5.0)])
    assert len(ids) == 3 and len(set(ids)) == 3
    with pytest.raises(QueueFullError):
        q.enqueue_many([("results", bytes(10))] * 3)  # 2 would fit, 3 do not: none goes in
    assert q.stats()["records"] == 3
    assert q.counters()["refused"] == {"results": 3}
    assert [r.id for r in held(q)] == [ids[2], ids[0], ids[1]]
    assert q.enqueue_many([]) == []
    q.close()


def test_a_record_larger_than_the_queue_is_refused_as_bad_input(tmp_path):
    q = SyncQueue(tmp_path / "q.db", max_bytes=1000)
    with pytest.raises(RecordTooLargeError, match="larger than the whole sync queue") as e:
        q.enqueue("captures", bytes(1000 - RECORD_OVERHEAD + 1))
    assert e.value.exit_code == 2 and isinstance(e.value, QueueFullError)
    q.enqueue("captures", bytes(1000 - RECORD_OVERHEAD))  # exactly fits
    assert q.stats()["bytes"] == 1000
    q.close()


def test_expired_records_are_dropped_at_peek_and_counted(tmp_path):
    clock = FakeClock()
    q = SyncQueue(tmp_path / "q.db", clock=clock)
    short = q.enqueue("events", b"s", lifetime_s=10)
    long = q.enqueue("events", b"l", lifetime_s=100)
    forever = q.enqueue("results", b"f")
    r = {x.id: x for x in held(q)}
    assert r[short].expires_ms == r[short].created_ms + 10_000 and r[forever].expires_ms is None
    clock.t += 10.0
    assert {x.id for x in held(q)} == {short, long, forever}  # expires_ms == now: not yet expired
    clock.t += 0.001
    assert [x.id for x in held(q)] == [long, forever]
    clock.t += 1000
    assert [x.id for x in held(q)] == [forever]
    assert q.counters()["expired"] == {"events": 2}
    assert q.stats()["records"] == 1
    check_identity(q)
    q.close()


def test_a_full_queue_drops_expired_records_before_evicting(tmp_path):
    clock = FakeClock()
    size = 10 + RECORD_OVERHEAD
    q = SyncQueue(tmp_path / "q.db", max_bytes=3 * size, policies={"audit": "refuse"}, clock=clock)
    old = q.enqueue("audit", bytes(10), priority=3)
    dying = q.enqueue("events", bytes(10), priority=3, lifetime_s=1)
    q.enqueue("events", bytes(10), priority=3)
    clock.t += 2
    q.enqueue("audit", bytes(10), priority=3)  # refuse policy, but the expired record makes room
    ids = [r.id for r in held(q)]
    assert dying not in ids and old in ids and len(ids) == 3
    c = q.counters()
    assert c["expired"] == {"events": 1} and c["dropped_full"] == {} and c["refused"] == {}
    q.close()


def test_concurrent_enqueues_are_all_stored_and_share_commits(tmp_path):
    q = SyncQueue(tmp_path / "q.db")
    commits = []
    q._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    got: list = []
    lock = threading.Lock()

    def produce(k):
        mine = [q.enqueue(f"s{k % 3}", f"{k}:{i}".encode(), priority=i % 4) for i in range(100)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1600 and len(set(got)) == 1600
    assert sorted(r.id for r in held(q)) == sorted(got)
    assert sum(q.counters()["enqueued"].values()) == 1600
    assert len(commits) < 0.8 * 1600, len(commits)  # many callers per transaction
    q.close()


def test_stats_describe_the_contents(tmp_path):
    clock = FakeClock()
    q = SyncQueue(tmp_path / "q.db", max_bytes=10_000, clock=clock)
    assert q.stats() == {"records": 0, "bytes": 0, "max_bytes": 10_000, "by_priority": {0: 0, 1: 0, 2: 0, 3: 0},
                         "by_stream": {}, "oldest_created_ms": None}
    q.enqueue("a", b"xx", priority=0)
    clock.t += 1
    q.enqueue("b", b"yyy", priority=3)
    q.enqueue("b", b"", priority=3)
    s = q.stats()
    assert s["by_priority"] == {0: 1, 1: 0, 2: 0, 3: 2}
    assert s["by_stream"] == {"a": {"records": 1, "bytes": 2 + RECORD_OVERHEAD},
                              "b": {"records": 2, "bytes": 3 + 2 * RECORD_OVERHEAD}}
    assert s["oldest_created_ms"] == 1_800_000_000_000
    up = q.upstream_counters()
    assert up["backlog"] == {"records": 3, "bytes": s["bytes"]} and up["enqueued"] == {"a": 1, "b": 2}
    q.close()


@pytest.mark.parametrize("call, message", [
    (lambda q: q.enqueue("bad stream", b""), "stream name"),
    (lambda q: q.enqueue("", b""), "stream name"),
    (lambda q: q.enqueue("s", b"", priority=4), "priority"),
    (lambda q: q.enqueue("s", b"", priority=True), "priority"),
    (lambda q: q.enqueue("s", "text"), "payload must be bytes"),
    (lambda q: q.enqueue("s", b"", lifetime_s=0), "lifetime_s"),
    (lambda q: q.enqueue("s", b"", lifetime_s=float("nan")), "lifetime_s"),
    (lambda q: q.enqueue_many([("s",)]), "enqueue_many takes"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, call, message):
    q = SyncQueue(tmp_path / "q.db")
    with pytest.raises(BadInputError, match=message):
        call(q)
    assert q.stats()["records"] == 0 and q.counters()["enqueued"] == {}
    q.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"max_bytes": 0}, "max_bytes"),
    ({"default_policy": "drop-newest"}, "policy"),
    ({"policies": {"s": "keep"}}, "policy 'keep' for stream 's'"),
    ({"policies": {"bad/stream": "refuse"}}, "stream name"),
    ({"synchronous": "SOMETIMES"}, "synchronous"),
])
def test_bad_options_are_refused(tmp_path, kwargs, message):
    with pytest.raises(BadInputError, match=message):
        SyncQueue(tmp_path / "q.db", **kwargs)


def test_files_that_are_not_queues_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(BadInputError, match="cannot be opened as a queue"):
        SyncQueue(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(BadInputError, match="not an edgekit sync queue"):
        SyncQueue(other)
    with pytest.raises(BadInputError, match="is a folder"):
        SyncQueue(tmp_path)
    SyncQueue(tmp_path / "q.db").close()
    con = sqlite3.connect(tmp_path / "q.db")
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(BadInputError, match="newer edgekit"):
        SyncQueue(tmp_path / "q.db")


def test_a_closed_queue_says_so(tmp_path):
    q = SyncQueue(tmp_path / "q.db")
    q.close()
    q.close()  # twice is fine
    with pytest.raises(QueueStorageError, match="closed"):
        q.enqueue("s", b"")
    with pytest.raises(QueueStorageError, match="closed"):
        q.peek_batch(100)


def test_ids_are_uuid7_time_ordered_and_monotonic():
    base = 2_000_000_000_000  # later than any clock the other tests of this process use (ids never go back)
    ids = [new_id(base)] + [new_id(base + 5) for _ in range(5000)] + [new_id(base - 1000)]  # clock steps back
    parsed = [uuid.UUID(i) for i in ids]  # the standard library as the independent parser
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids))
    assert [u.bytes for u in parsed] == sorted(u.bytes for u in parsed) and len(set(ids)) == len(ids)
    assert id_time_ms(ids[0]) == base and id_time_ms(ids[1]) == base + 5
    # 4096 ids fit in one millisecond; beyond that the ids borrow the next millisecond
    assert id_time_ms(ids[-2]) > base + 5 and id_time_ms(ids[-1]) >= id_time_ms(ids[-2])


DISK_FULL_CHILD = r"""
import resource, signal, sys
from edgekit.sync import QueueStorageError, SyncQueue
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
q = SyncQueue(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
n = 0
try:
    while True:
        q.enqueue("captures", bytes(1000))
        n += 1
except QueueStorageError as e:
    print(n, e)
"""


def test_a_full_disk_is_a_storage_error_and_leaves_the_queue_whole(tmp_path):
    """A file size limit (RLIMIT_FSIZE) stands in for a full disk: the write that fails
    raises QueueStorageError, and every earlier record is intact."""
    path = tmp_path / "q.db"
    res = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD, str(path)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    stored, _, message = res.stdout.partition(" ")
    assert "cannot write" in message and str(path) in message
    stored = int(stored)
    assert 5 < stored < 300  # each commit appends a few pages to the WAL: it fills the limit first
    with SyncQueue(path) as q:  # no limit now: every record whose enqueue returned is there
        assert q.stats()["records"] == stored
        assert q.counters()["enqueued"] == {"captures": stored}
        q.enqueue("captures", bytes(1000))  # and it goes on working
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    con.close()
