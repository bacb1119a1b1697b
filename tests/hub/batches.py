"""Test batches: real records and the real wire format (edgekit.sync.wire)."""

from __future__ import annotations

import json

from edgekit.sync.records import Record, new_id
from edgekit.sync.wire import decode_batch, encode_batch


def result_payload(i: int) -> bytes:
    """A typical inference-result record (about 120 bytes of JSON)."""
    return json.dumps({"model": "kws", "version": "3", "label": f"word{i % 12}",
                       "score": round(0.5 + (i % 50) / 100, 2), "latency_ms": 3.1 + i % 7,
                       "t": 1_765_000_000_000 + i}).encode()


def make_records(n: int, *, stream: str = "results", start: int = 0, priority: int = 2) -> list:
    return [Record(new_id(), stream, priority, 1_765_000_000_000 + start + i, None, result_payload(start + i))
            for i in range(n)]


def batch_bytes(device: str, seq: int, records: list, counters: dict | None = None) -> bytes:
    return encode_batch(device, seq, records, counters=counters)


def batch(device: str, seq: int, records: list, counters: dict | None = None):
    return decode_batch(batch_bytes(device, seq, records, counters))


def deploy_record(state: str, version: str, created_ms: int) -> Record:
    doc = {"update_id": f"u{version}", "model": "kws", "version": version, "state": state, "reason": "",
           "targets": ["rpi4"], "time_ms": created_ms}
    return Record(new_id(), "deploy", 1, created_ms, None, json.dumps(doc, sort_keys=True).encode())
