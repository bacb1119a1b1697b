"""The durable store-and-forward queue: one SQLite file in WAL mode.

Every state change is one SQLite transaction (the records, the byte total and the
counters that count the change move together), committed with ``synchronous=FULL`` by
default, so a kill or a power cut leaves the state before or after a call, never between.
Concurrent ``enqueue`` calls share commits (group commit): the first caller to take the
database lock writes every record that has arrived meanwhile in one transaction, and each
caller returns once the transaction holding its record is durable. Several processes may
open the same file (``edgekit serve`` capturing, ``edgekit sync run`` forwarding): SQLite's
locks order them. docs/sync-protocol.md states the guarantees.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from edgekit.errors import BadInputError, EdgekitError
from edgekit.sync.records import Record, check_priority, check_stream, id_from_bytes, id_to_bytes, new_id_bytes

RECORD_OVERHEAD = 64  # bytes counted per record on top of its payload (id, fields, index entries)
POLICIES = ("drop-oldest", "refuse")
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
COUNTER_NAMES = ("enqueued", "acked", "expired", "dropped_full", "refused")
_APPLICATION_ID = 0x454B5131  # "EKQ1": marks the file as an edgekit sync queue
_SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE records (id BLOB NOT NULL UNIQUE, stream TEXT NOT NULL, priority INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER, size INTEGER NOT NULL, payload BLOB NOT NULL)",
    "CREATE INDEX records_order ON records (priority, id)",
    "CREATE INDEX records_expiry ON records (expires_ms) WHERE expires_ms IS NOT NULL",
    "CREATE TABLE counters (name TEXT NOT NULL, stream TEXT NOT NULL, value INTEGER NOT NULL,"
    " PRIMARY KEY (name, stream)) WITHOUT ROWID",
    "CREATE TABLE totals (one INTEGER PRIMARY KEY CHECK (one = 1), records INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT INTO totals VALUES (1, 0, 0)",
)
_SQL_CHUNK = 500  # ids per IN (...) list: under the 999 host parameters of older SQLite builds
_WAL_CHECKPOINT_PAGES = 256  # 1 MiB of 4 KiB pages
_WAL_SIZE_LIMIT = 1 << 20


class QueueFullError(EdgekitError):
    """A record does not fit and its stream's policy is "refuse"."""


class RecordTooLargeError(QueueFullError, BadInputError):
    """One record is larger than the whole queue may hold (exit code 2: the caller's input)."""


class QueueStorageError(EdgekitError):
    """SQLite could not read or write the queue file (disk full, I/O error, closed queue)."""


class _Unit:
    """Records that go in together (one enqueue, or one enqueue_many) and wait for one commit."""

    __slots__ = ("rows", "done", "error")

    def __init__(self, rows):
        self.rows = rows  # (id bytes, stream, priority, created_ms, expires_ms, size, payload)
        self.done = False
        self.error: Optional[BaseException] = None


class SyncQueue:
    """A bounded, durable queue of Records. Thread safe; see the module docstring."""

    def __init__(self, path, *, max_bytes: int = 64 << 20, policies: Optional[dict] = None,
                 default_policy: str = "drop-oldest", synchronous: str = "FULL", clock=time.time):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise BadInputError(f"max_bytes must be a positive integer, not {max_bytes!r}")
        if default_policy not in POLICIES:
            raise BadInputError(f"queue policy {default_policy!r} is not one of {', '.join(POLICIES)}")
        self._policies = {}
        for stream, policy in (policies or {}).items():
            check_stream(stream)
            if policy not in POLICIES:
                raise BadInputError(f"queue policy {policy!r} for stream {stream!r} is not one of "
                                    f"{', '.join(POLICIES)}")
            self._policies[stream] = policy
        sync_mode = str(synchronous).upper()
        if sync_mode not in SYNCHRONOUS:
            raise BadInputError(f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS)}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.default_policy = default_policy
        self._clock = clock
        self._db_lock = threading.Lock()  # held by whoever talks to SQLite
        self._cond = threading.Condition()  # guards _pending and _leading; waiters wait for their commit
        self._pending: List[_Unit] = []
        self._leading = False
        self._conn = self._open(sync_mode)

    # ------------------------------------------------------------------ opening

    def _open(self, sync_mode: str) -> sqlite3.Connection:
        if self.path.is_dir():
            raise BadInputError(f"sync queue {self.path} is a folder, not a file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInputError(f"sync queue {self.path}: cannot create its folder: {e.strerror or e}") from None
        conn = None
        try:
            conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise QueueStorageError(f"sync queue {self.path}: SQLite refused WAL mode")
            conn.execute(f"PRAGMA synchronous = {sync_mode}")
            # A small disk must get its space back when records leave: checkpoint the WAL
            # every 1 MiB and cut it back to that size (SQLite's default lets it reach 4 MB
            # and keeps the file at its peak size, so a full disk stayed full after acks).
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_or_create_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            raise BadInputError(f"sync queue {self.path} cannot be opened as a queue: {e}") from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return conn

    def _check_or_create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and tables == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            return
        if app_id != _APPLICATION_ID:
            raise BadInputError(f"{self.path} is an SQLite file but not an edgekit sync queue")
        if version > _SCHEMA_VERSION:
            raise BadInputError(f"sync queue {self.path} has schema version {version}, written by a newer "
                                f"edgekit (this one reads up to {_SCHEMA_VERSION})")

    def policy(self, stream: str) -> str:
        return self._policies.get(stream, self.default_policy)

    # ------------------------------------------------------------------ enqueue

    def _row(self, stream, payload, priority, lifetime_s, now_ms):
        check_stream(stream)
        check_priority(priority)
        if isinstance(payload, str) or not isinstance(payload, (bytes, bytearray, memoryview)):
            raise BadInputError(f"payload must be bytes, not {type(payload).__name__} (encode text first)")
        payload = bytes(payload)
        expires_ms = None
        if lifetime_s is not None:
            if isinstance(lifetime_s, bool) or not isinstance(lifetime_s, (int, float)) \
                    or not math.isfinite(lifetime_s) or lifetime_s <= 0:
                raise BadInputError(f"lifetime_s must be a positive number of seconds or None, not {lifetime_s!r}")
            expires_ms = now_ms + max(1, round(lifetime_s * 1000))
        size = len(payload) + RECORD_OVERHEAD
        if size > self.max_bytes:
            raise RecordTooLargeError(
                f"record of {len(payload)} bytes for stream {stream!r} is larger than the whole sync queue "
                f"({self.max_bytes} bytes, counting {RECORD_OVERHEAD} bytes of overhead per record)")
        rid = new_id_bytes(now_ms)
        return (rid, stream, priority, now_ms, expires_ms, size, payload)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def enqueue(self, stream: str, payload: bytes, *, priority: int = 2, lifetime_s: Optional[float] = None) -> str:
        """Store one record; durable when this returns. Returns its id. When the queue is
        full, the stream's policy applies: "refuse" raises QueueFullError, "drop-oldest"
        deletes the oldest of the least urgent records, never one more urgent than the
        new record (if only such remain, the new record is the one dropped); either way
        the drop is counted under ``dropped_full``."""
        row = self._row(stream, payload, priority, lifetime_s, self._now_ms())
        self._submit(_Unit([row]))
        return id_from_bytes(row[0])

    def enqueue_many(self, items: Iterable) -> list:
        """Store several records in one transaction, all or none (a "refuse" stream that
        is full refuses the whole call). ``items``: (stream, payload[, priority[, lifetime_s]])."""
        now_ms = self._now_ms()
        rows = []
        for item in items:
            if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 4:
                raise BadInputError(f"enqueue_many takes (stream, payload, priority, lifetime_s) items, "
                                    f"not {item!r:.80}")
            stream, payload, priority, lifetime_s = (tuple(item) + (2, None))[:4]
            rows.append(self._row(stream, payload, priority, lifetime_s, now_ms))
        if sum(r[5] for r in rows) > self.max_bytes:
            raise RecordTooLargeError(f"{len(rows)} records of {sum(r[5] for r in rows)} bytes together are larger "
                                      f"than the whole sync queue ({self.max_bytes} bytes)")
        if rows:
            self._submit(_Unit(rows))
        return [id_from_bytes(r[0]) for r in rows]

    def _submit(self, unit: _Unit) -> None:
        # Group commit: while one caller (the leader) commits, the others queue up; when it
        # is done, one of those still waiting leads and commits all of them at once.
        with self._cond:
            self._pending.append(unit)
            while self._leading and not unit.done:
                self._cond.wait()
            lead = not unit.done
            if lead:
                self._leading = True
        if lead:
            # Give the callers just woken by the last commit a moment to add their records,
            # so that this transaction carries them too (fewer, larger commits): yield the
            # GIL while more keep arriving, a few times at most.
            seen = -1
            for _ in range(4):
                time.sleep(0)
                with self._cond:
                    if len(self._pending) == seen:
                        break
                    seen = len(self._pending)
            with self._cond:
                units, self._pending = self._pending, []
            try:
                with self._db_lock:
                    self._commit_units(units)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if unit.error is not None:
            raise unit.error

    def _commit_units(self, units: List[_Unit]) -> None:
        conn = self._conn
        try:
            if conn is None:
                raise QueueStorageError(f"sync queue {self.path} is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._write_units(conn, units)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            err = QueueStorageError(f"sync queue {self.path}: cannot write: {e}")
            for u in units:
                u.error = u.error or err
        except BaseException as e:
            for u in units:
                u.error = u.error or e
        finally:
            for u in units:
                u.done = True

    def _write_units(self, conn: sqlite3.Connection, units: List[_Unit]) -> None:
        count, used = conn.execute("SELECT records, bytes FROM totals").fetchone()
        counts: Counter = Counter()  # (counter name, stream) -> added
        need = sum(r[5] for u in units for r in u.rows)
        if used + need <= self.max_bytes:  # the usual case: everything fits
            rows = [r for u in units for r in u.rows]
            conn.executemany("INSERT INTO records (id, stream, priority, created_ms, expires_ms, size, payload)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            for r in rows:
                counts["enqueued", r[1]] += 1
            count, used = count + len(rows), used + need
        else:
            count, used = self._write_units_when_full(conn, units, count, used, counts)
        conn.execute("UPDATE totals SET records = ?, bytes = ?", (count, used))
        self._add_counts(conn, counts)

    def _write_units_when_full(self, conn, units, count, used, counts):
        now_ms = self._now_ms()
        for unit in units:
            state = [count, used]
            local: Counter = Counter()
            conn.execute("SAVEPOINT unit")
            try:
                for row in unit.rows:
                    if self._make_room(conn, row, now_ms, state, local):
                        conn.execute("INSERT INTO records (id, stream, priority, created_ms, expires_ms, size,"
                                     " payload) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
                        state[0] += 1
                        state[1] += row[5]
                        local["enqueued", row[1]] += 1
                    else:  # accepted and dropped at once: counted under both, so that per stream
                        # enqueued = held + acked + expired + dropped_full
                        local["enqueued", row[1]] += 1
                        local["dropped_full", row[1]] += 1
            except QueueFullError as e:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                unit.error = e
                for row in unit.rows:
                    counts["refused", row[1]] += 1
                continue
            conn.execute("RELEASE unit")
            count, used = state
            counts.update(local)
        return count, used

    def _make_room(self, conn, row, now_ms, state, counts) -> bool:
        """Delete what must go for ``row`` to fit: expired records first, then (policy
        "drop-oldest") the oldest of the least urgent. False: the new row is the one to drop."""
        stream, priority, size = row[1], row[2], row[5]
        if state[1] + size <= self.max_bytes:
            return True
        self._drop_expired(conn, now_ms, state, counts)
        if state[1] + size <= self.max_bytes:
            return True
        if self.policy(stream) == "refuse":
            raise QueueFullError(f"sync queue {self.path} is full ({state[1]} of {self.max_bytes} bytes): stream "
                                 f"{stream!r} refuses new records when full")
        for victim_priority in range(3, priority - 1, -1):
            limit = 8  # usually one or two victims make room: read a few, more only when needed
            while state[1] + size > self.max_bytes:
                victims = conn.execute("SELECT rowid, stream, size FROM records WHERE priority = ? ORDER BY id"
                                       " LIMIT ?", (victim_priority, limit)).fetchall()
                limit = min(limit * 4, 4096)
                if not victims:
                    break
                gone = []
                for rowid, vstream, vsize in victims:
                    if state[1] + size <= self.max_bytes:
                        break
                    gone.append(rowid)
                    state[0] -= 1
                    state[1] -= vsize
                    counts["dropped_full", vstream] += 1
                self._delete_rowids(conn, gone)
            if state[1] + size <= self.max_bytes:
                return True
        return False

    def _drop_expired(self, conn, now_ms, state, counts) -> None:
        rows = conn.execute("SELECT stream, count(*), sum(size) FROM records WHERE expires_ms < ? GROUP BY stream",
                            (now_ms,)).fetchall()
        if rows:
            conn.execute("DELETE FROM records WHERE expires_ms < ?", (now_ms,))
            for stream, n, total in rows:
                counts["expired", stream] += n
                state[0] -= n
                state[1] -= total

    @staticmethod
    def _delete_rowids(conn, rowids) -> None:
        for i in range(0, len(rowids), _SQL_CHUNK):
            chunk = rowids[i:i + _SQL_CHUNK]
            conn.execute(f"DELETE FROM records WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)

    @staticmethod
    def _add_counts(conn, counts: Counter) -> None:
        if counts:
            conn.executemany("INSERT INTO counters (name, stream, value) VALUES (?, ?, ?) ON CONFLICT (name, stream)"
                             " DO UPDATE SET value = value + excluded.value",
                             [(name, stream, n) for (name, stream), n in counts.items() if n])

    # ------------------------------------------------------------------ reading and acking

    def _transaction(self, work, *, write: bool = True):
        """Run ``work(conn)`` in one transaction under the database lock."""
        with self._db_lock:
            conn = self._conn
            if conn is None:
                raise QueueStorageError(f"sync queue {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise QueueStorageError(f"sync queue {self.path}: {e}") from e
            return result

    def peek_batch(self, max_bytes: int, max_records: int = 10000) -> list:
        """The next records to send, without removing them: priority 0 first, then the
        oldest (by id). Their sizes (payload + RECORD_OVERHEAD) add up to at most
        ``max_bytes``, except that the first record always comes, however large. Expired
        records are deleted here and counted, never returned."""
        if max_records <= 0:
            return []
        now_ms = self._now_ms()

        def work(conn):
            count, used = conn.execute("SELECT records, bytes FROM totals").fetchone()
            state, counts = [count, used], Counter()
            self._drop_expired(conn, now_ms, state, counts)
            if counts:
                conn.execute("UPDATE totals SET records = ?, bytes = ?", tuple(state))
                self._add_counts(conn, counts)
            out, total = [], 0
            cursor = conn.execute("SELECT id, stream, priority, created_ms, expires_ms, size, payload FROM records"
                                  " ORDER BY priority, id")
            for rid, stream, priority, created_ms, expires_ms, size, payload in cursor:
                if out and (total + size > max_bytes or len(out) >= max_records):
                    break
                total += size
                out.append(Record(id_from_bytes(rid), stream, priority, created_ms, expires_ms, bytes(payload)))
            cursor.close()
            return out

        return self._transaction(work)

    def ack(self, ids) -> int:
        """Delete the records with these ids (the hub has them: custody passed). Returns
        how many were present; ids already gone are ignored."""
        raw = list(dict.fromkeys(id_to_bytes(i) for i in ids))

        def work(conn):
            count, used = conn.execute("SELECT records, bytes FROM totals").fetchone()
            counts: Counter = Counter()
            present = 0
            for i in range(0, len(raw), _SQL_CHUNK):
                chunk = raw[i:i + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                for stream, n, total in conn.execute(f"SELECT stream, count(*), sum(size) FROM records WHERE id IN"
                                                     f" ({marks}) GROUP BY stream", chunk).fetchall():
                    counts["acked", stream] += n
                    present += n
                    count, used = count - n, used - total
                conn.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
            if present:
                conn.execute("UPDATE totals SET records = ?, bytes = ?", (count, used))
                self._add_counts(conn, counts)
            return present

        if not raw:
            return 0
        present = self._transaction(work)
        if present:
            self._checkpoint()
        return present

    def _checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so that the space deleted
        records held is reusable (disk full is a normal state for a device's queue)."""
        with self._db_lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass  # a busy or full disk: the next checkpoint retries, the data is safe in the WAL

    def counters(self) -> Dict[str, Dict[str, int]]:
        """Cumulative counts since the queue file was made, per counter then per stream:
        enqueued, acked, expired, dropped_full, refused."""
        return self._transaction(self._read_counters, write=False)

    @staticmethod
    def _read_counters(conn) -> Dict[str, Dict[str, int]]:
        out: Dict[str, Dict[str, int]] = {name: {} for name in COUNTER_NAMES}
        for name, stream, value in conn.execute("SELECT name, stream, value FROM counters ORDER BY name, stream"):
            out.setdefault(name, {})[stream] = value
        return out

    def upstream_counters(self) -> Dict[str, Dict[str, int]]:
        """What a batch reports upstream (docs/sync-protocol.md): the counters, plus
        ``backlog`` = {"records": n, "bytes": b} at the same instant."""

        def work(conn):
            out = self._read_counters(conn)
            count, used = conn.execute("SELECT records, bytes FROM totals").fetchone()
            out["backlog"] = {"records": count, "bytes": used}
            return out

        return self._transaction(work, write=False)

    def stats(self) -> dict:
        """What the queue holds now."""

        def work(conn):
            count, used = conn.execute("SELECT records, bytes FROM totals").fetchone()
            by_priority = {p: 0 for p in range(4)}
            for p, n in conn.execute("SELECT priority, count(*) FROM records GROUP BY priority"):
                by_priority[p] = n
            rows = conn.execute("SELECT stream, count(*), sum(size) FROM records GROUP BY stream ORDER BY stream")
            by_stream = {s: {"records": n, "bytes": b} for s, n, b in rows}
            oldest = conn.execute("SELECT min(created_ms) FROM records").fetchone()[0]
            return {"records": count, "bytes": used, "max_bytes": self.max_bytes, "by_priority": by_priority,
                    "by_stream": by_stream, "oldest_created_ms": oldest}

        return self._transaction(work, write=False)

    def close(self) -> None:
        with self._db_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "SyncQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncQueue({os.fspath(self.path)!r}, max_bytes={self.max_bytes})"
