"""What the hub keeps: every record a device sent (once, whatever the retries), and one row
per device with what its latest batch said about it (last seen, backlog, drops).

Exactly-once effect: the transports deliver at least once, and ``HubStore.ingest`` inserts
each record under its id with ``ON CONFLICT DO NOTHING``, in the same transaction as the
device row, so a redelivered batch adds nothing and is acknowledged again in full.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Optional

from edgekit.hub.db import Database, register_schema

register_schema("hub.store.v1", {
    "sqlite": [
        """CREATE TABLE IF NOT EXISTS hub_records (
            id TEXT PRIMARY KEY, device_id TEXT NOT NULL, stream TEXT NOT NULL, priority INTEGER NOT NULL,
            created_ms BIGINT NOT NULL, expires_ms BIGINT, received_ms BIGINT NOT NULL, batch_seq BIGINT NOT NULL,
            payload BLOB NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS hub_records_by_stream ON hub_records (stream, created_ms)",
        "CREATE INDEX IF NOT EXISTS hub_records_by_device ON hub_records (device_id, stream, created_ms)",
    ],
    "postgresql": [
        """CREATE TABLE IF NOT EXISTS hub_records (
            id TEXT PRIMARY KEY, device_id TEXT NOT NULL, stream TEXT NOT NULL, priority INTEGER NOT NULL,
            created_ms BIGINT NOT NULL, expires_ms BIGINT, received_ms BIGINT NOT NULL, batch_seq BIGINT NOT NULL,
            payload BYTEA NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS hub_records_by_stream ON hub_records (stream, created_ms)",
        "CREATE INDEX IF NOT EXISTS hub_records_by_device ON hub_records (device_id, stream, created_ms)",
    ],
})
register_schema("hub.devices.v1", [
    """CREATE TABLE IF NOT EXISTS hub_devices (
        device_id TEXT PRIMARY KEY, first_seen_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL,
        last_seq BIGINT, batches BIGINT NOT NULL DEFAULT 0, records BIGINT NOT NULL DEFAULT 0,
        duplicates BIGINT NOT NULL DEFAULT 0, backlog_records BIGINT, backlog_bytes BIGINT,
        dropped BIGINT NOT NULL DEFAULT 0, expired BIGINT NOT NULL DEFAULT 0, refused BIGINT NOT NULL DEFAULT 0,
        counters_json TEXT, model_version TEXT, deploy_state TEXT, deploy_ms BIGINT)""",
])

# Rows per INSERT statement: 9 parameters each stays far below SQLite's variable limit.
_INSERT_CHUNK = 400
DEPLOY_STREAM = "deploy"
INSTALLED_STATE = "installed"  # the update report state of a bundle now served


@dataclasses.dataclass(frozen=True)
class IngestResult:
    new: int            # records stored by this call
    duplicates: int     # records the hub already had (a retry or a redelivery)
    ack_ids: list       # every record id of the batch: stored now or before, all safe to delete on the device


def counter_total(value) -> int:
    """A batch counter is a number or a {stream: number} mapping; its total."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return sum(v for v in value.values() if isinstance(v, int) and not isinstance(v, bool))
    return 0


def _deploy_report(payload: bytes) -> Optional[dict]:
    """A "deploy" record's JSON object, or None when it is not one."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class HubStore:
    """Records and devices over a ``Database`` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, *, clock=time.time):
        self.db = db
        self._clock = clock
        db.apply_schemas()  # a Database opened before this module registered its tables

    def ingest(self, batch) -> IngestResult:
        """Store one decoded batch (``edgekit.sync.wire.Batch``) in one transaction."""
        return self.db.run_transaction(lambda db: self._ingest(db, batch))

    def _ingest(self, db: Database, batch) -> IngestResult:
        now = int(self._clock() * 1000)
        device = batch.device_id
        # The device row first, locked: two workers holding batches of one device (a
        # redelivery) queue up here instead of deadlocking on each other's record ids.
        db.execute("INSERT INTO hub_devices (device_id, first_seen_ms, last_seen_ms) VALUES (?, ?, ?) "
                   "ON CONFLICT (device_id) DO NOTHING", (device, now, now))
        lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
        (last_seq, deploy_ms), = db.execute(
            f"SELECT last_seq, deploy_ms FROM hub_devices WHERE device_id = ?{lock}", (device,))

        records = sorted(batch.records, key=lambda r: r.id)
        new_ids = set()
        for start in range(0, len(records), _INSERT_CHUNK):
            chunk = records[start:start + _INSERT_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            params = []
            for r in chunk:
                params += [r.id, device, r.stream, r.priority, r.created_ms, r.expires_ms, now, batch.seq,
                           bytes(r.payload)]
            rows = db.execute("INSERT INTO hub_records (id, device_id, stream, priority, created_ms, expires_ms, "
                              f"received_ms, batch_seq, payload) VALUES {values} "
                              "ON CONFLICT (id) DO NOTHING RETURNING id", params)
            new_ids.update(row[0] for row in rows)
        new = len(new_ids)
        # A batch may carry the same id twice; the second is a duplicate too.
        duplicates = len(records) - new

        sets = ["last_seen_ms = ?", "batches = batches + 1", "records = records + ?", "duplicates = duplicates + ?"]
        params = [now, new, duplicates]
        # Counters are cumulative on the device: the newest batch's replace older ones; a
        # batch redelivered late (lower seq) must not roll them back.
        if last_seq is None or batch.seq >= last_seq:
            counters = batch.counters or {}
            sets += ["last_seq = ?", "counters_json = ?", "dropped = ?", "expired = ?", "refused = ?"]
            params += [batch.seq, json.dumps(counters, sort_keys=True, default=str),
                       counter_total(counters.get("dropped_full")), counter_total(counters.get("expired")),
                       counter_total(counters.get("refused"))]
            backlog = counters.get("backlog")
            if isinstance(backlog, dict):
                sets += ["backlog_records = ?", "backlog_bytes = ?"]
                params += [counter_total(backlog.get("records")), counter_total(backlog.get("bytes"))]
        deploys = [r for r in records if r.stream == DEPLOY_STREAM and r.id in new_ids]
        if deploys:
            latest = max(deploys, key=lambda r: (r.created_ms, r.id))
            report = _deploy_report(latest.payload)
            if report is not None and (deploy_ms is None or latest.created_ms >= deploy_ms):
                # The device's update report (edgekit.sync.updates): {model, version, state, reason}.
                model = "/".join(str(report[k]) for k in ("model", "version") if report.get(k) is not None)
                state = str(report.get("state", "?"))
                sets += ["deploy_state = ?", "deploy_ms = ?"]
                params += [f"{state} {model}".strip(), latest.created_ms]
                if state == INSTALLED_STATE and model:
                    sets.append("model_version = ?")
                    params.append(model)
        db.execute(f"UPDATE hub_devices SET {', '.join(sets)} WHERE device_id = ?", params + [device])
        return IngestResult(new=new, duplicates=duplicates, ack_ids=[r.id for r in batch.records])

    # -- views --------------------------------------------------------------------------

    _DEVICE_COLUMNS = ("device_id", "first_seen_ms", "last_seen_ms", "last_seq", "batches", "records", "duplicates",
                       "backlog_records", "backlog_bytes", "dropped", "expired", "refused", "counters_json",
                       "model_version", "deploy_state", "deploy_ms")

    def devices(self) -> list:
        """One dict per device, most recently seen first. ``counters`` is the latest batch's
        counters as the device sent them; ``rollout`` is the device's rollout state where the
        rollouts part of the hub is installed (else None)."""
        rows = self.db.execute(f"SELECT {', '.join(self._DEVICE_COLUMNS)} FROM hub_devices "
                               "ORDER BY last_seen_ms DESC, device_id")
        out = []
        for row in rows:
            d = dict(zip(self._DEVICE_COLUMNS, row))
            d["counters"] = json.loads(d.pop("counters_json")) if d["counters_json"] else {}
            d["rollout"] = None
            out.append(d)
        rollout = self._rollout_states()
        for d in out:
            d["rollout"] = rollout.get(d["device_id"])
        return out

    def _rollout_states(self) -> dict:
        """{device: state} from the rollouts module, when it is installed and has a view."""
        try:
            from edgekit.hub import rollouts
        except ImportError:
            return {}
        states = getattr(rollouts, "device_rollout_states", None)
        if not callable(states):
            return {}
        self.db.apply_schemas()  # its tables, registered when it was imported just now
        return dict(states(self))

    def records(self, *, device: str | None = None, stream: str | None = None, since_ms: int | None = None,
                until_ms: int | None = None, after_id: str | None = None, limit: int = 1000) -> list:
        """Stored records, oldest id first (ids are UUIDv7: time-ordered), as dicts with the
        payload as bytes. Page with ``after_id`` = the last id of the previous page."""
        where, params = [], []
        for column, op, value in (("device_id", "=", device), ("stream", "=", stream),
                                  ("created_ms", ">=", since_ms), ("created_ms", "<", until_ms),
                                  ("id", ">", after_id)):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        sql = ("SELECT id, device_id, stream, priority, created_ms, expires_ms, received_ms, payload FROM hub_records"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id LIMIT ?")
        keys = ("id", "device_id", "stream", "priority", "created_ms", "expires_ms", "received_ms", "payload")
        out = []
        for row in self.db.execute(sql, params + [int(limit)]):
            d = dict(zip(keys, row))
            d["payload"] = bytes(d["payload"])
            out.append(d)
        return out

    def record_count(self, *, device: str | None = None, stream: str | None = None) -> int:
        where, params = [], []
        for column, value in (("device_id", device), ("stream", stream)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT COUNT(*) FROM hub_records" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.db.execute(sql, params)[0][0])
