"""Store-and-forward sync on the device: a durable queue of records, and the batch and
ack wire formats that carry them to the hub (docs/sync-protocol.md).

An application enqueues its own records; ``edgekit sync run`` (or a Forwarder) sends
them, most urgent first, and deletes each one only when the hub has acknowledged it::

    from edgekit.sync import SyncQueue

    with SyncQueue("/var/lib/edgekit/sync.db", max_bytes=32 << 20, policies={"alarms": "refuse"}) as q:
        q.enqueue("events", b'{"door": "open"}', priority=1, lifetime_s=24 * 3600)
        q.enqueue("alarms", b'{"smoke": true}', priority=0)
        print(q.stats()["records"], q.counters()["dropped_full"])

``enqueue`` returns when the record is on disk (SQLite, synchronous=FULL); calls from many
threads share commits. Needs the ``sync`` extra (zstandard for the batches):
``pip install 'edgekit[sync]'``. The device side: no compiler, torch, TensorFlow, ONNX or TVM here.
"""

from __future__ import annotations

from edgekit.sync.queue import (
    RECORD_OVERHEAD,
    QueueFullError,
    QueueStorageError,
    RecordTooLargeError,
    SyncQueue,
)
from edgekit.sync.records import Record, new_id
from edgekit.sync.wire import (
    Ack,
    Batch,
    WireFormatError,
    decode_ack,
    decode_batch,
    encode_ack,
    encode_batch,
    train_dictionary,
)

__all__ = ["SyncQueue", "Record", "new_id", "QueueFullError", "RecordTooLargeError", "QueueStorageError",
           "RECORD_OVERHEAD", "Batch", "Ack", "WireFormatError", "encode_batch", "decode_batch", "encode_ack",
           "decode_ack", "train_dictionary"]
