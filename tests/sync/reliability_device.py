"""The device process of the reliability suite (tests/sync/test_reliability.py), run as
``python -m tests.sync.reliability_device ...`` so the tests can kill -9 it anywhere.

    enqueue  QUEUE --start N --count C [--many K]      enqueue records N..N+C-1
    forward  QUEUE --host H --port P --device D [--enqueue-start N --enqueue-count C]
                                                      forward until the queue is empty (and,
                                                      meanwhile, enqueue records N..N+C-1)

``enqueue`` prints ``ok <n> <id>`` on stdout once ``enqueue`` (or ``enqueue_many``, K at a
time) has returned for record n: the parent's list of records the queue promised to keep.
Each payload names its record (``rel:<n>:`` and padding to a typical result's size), so
the hub's copy can be traced back. ``forward`` runs the real Forwarder over the real MQTT
transport, prints ``sent ...`` per round, and ``drained`` once the queue is empty.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

PAYLOAD_BYTES = 120


def payload(n: int) -> bytes:
    head = f'{{"rel":{n},"model":"kws","top":[[3,0.91],[1,0.05]],"latency_us":'.encode()
    return head + str(800 + n % 97).encode().ljust(PAYLOAD_BYTES - len(head) - 1, b"0") + b"}"


def record_number(data: bytes) -> int:
    """n of a payload made by ``payload``."""
    return int(data.split(b",", 1)[0].split(b":", 1)[1])


def enqueue(args) -> int:
    from edgekit.sync.queue import SyncQueue

    q = SyncQueue(args.queue)
    out = sys.stdout
    n, end = args.start, args.start + args.count
    while n < end:
        if args.many > 1:
            chunk = list(range(n, min(end, n + args.many)))
            ids = q.enqueue_many([("results", payload(i), 2, None) for i in chunk])
            out.write("".join(f"ok {i} {rid}\n" for i, rid in zip(chunk, ids)))
            n += len(chunk)
        else:
            rid = q.enqueue("results", payload(n), priority=2)
            out.write(f"ok {n} {rid}\n")
            n += 1
        out.flush()
    q.close()
    out.write("done\n")
    out.flush()
    return 0


def _printer():
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    return say


def _produce(q, start: int, count: int, say, producing: threading.Event) -> None:
    """The application's side of the device: enqueue records start..start+count-1, ten at a
    time, while the forwarder sends; ``ok`` lines as ``enqueue`` does."""
    try:
        for i in range(start, start + count, 10):
            chunk = list(range(i, min(i + 10, start + count)))
            ids = q.enqueue_many([("results", payload(n), 2, None) for n in chunk])
            say("".join(f"ok {n} {rid}\n" for n, rid in zip(chunk, ids)).rstrip("\n"))
            time.sleep(0.001)
    finally:
        producing.clear()


def forward(args) -> int:
    from edgekit.sync.forwarder import Forwarder
    from edgekit.sync.queue import SyncQueue
    from edgekit.sync.transports.mqtt import MqttTransport

    q = SyncQueue(args.queue)
    # short reconnect and ack waits: the faults come every second or so, not every hour
    transport = MqttTransport(args.host, args.port, args.device, reconnect_delay_s=(0.1, 1.0))
    fwd = Forwarder(q, transport, args.device, rate_bytes_s=None, daily_bytes=None,
                    max_batch_bytes=args.max_batch_bytes, backoff=(0.05, 0.5), ack_timeout_s=args.ack_timeout)
    deadline = time.monotonic() + args.timeout
    say = _printer()
    producing = threading.Event()
    if args.enqueue_count:
        producing.set()
        threading.Thread(target=_produce, args=(q, args.enqueue_start, args.enqueue_count, say, producing),
                         daemon=True).start()
    say("started")
    try:
        while time.monotonic() < deadline:
            result = fwd.run_once(max_batches=1)     # one line per batch: the parent times its faults by them
            say(f"sent {result['batches']} {result['acked']} {result['stopped']}")
            if not producing.is_set() and q.stats()["records"] == 0:
                say("drained")
                return 0
            if result["stopped"] == "link down":
                time.sleep(result["retry_in_s"])
            elif result["stopped"] == "empty":
                time.sleep(0.02)
        say("timeout")
        return 1
    finally:
        fwd.close()
        transport.close()
        q.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="reliability_device")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enqueue")
    e.add_argument("queue")
    e.add_argument("--start", type=int, required=True)
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--many", type=int, default=1)
    f = sub.add_parser("forward")
    f.add_argument("queue")
    f.add_argument("--host", required=True)
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--device", required=True)
    f.add_argument("--max-batch-bytes", type=int, default=16384)
    f.add_argument("--timeout", type=float, default=120.0)
    f.add_argument("--ack-timeout", type=float, default=2.0)
    f.add_argument("--enqueue-start", type=int, default=0)
    f.add_argument("--enqueue-count", type=int, default=0, help="also enqueue this many records while forwarding")
    args = p.parse_args(argv)
    return enqueue(args) if args.cmd == "enqueue" else forward(args)


if __name__ == "__main__":
    sys.exit(main())
