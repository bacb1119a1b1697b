"""Where batches enter the hub: MQTT workers (MQTT 5 shared subscription), exported batch
files (sneakernet), and through ``ingest_batch_bytes`` the HTTP app (``http_app``).

Every path does the same: decode the batch (``edgekit.sync.wire``), store it in one
transaction (``HubStore.ingest``), and only after the commit answer with an ack naming
every record id of the batch. A batch that cannot be decoded is counted, logged and
answered with nothing: the device keeps its records and a fixed device sends them again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError
from edgekit.files import write_atomic
from edgekit.hub.chunk_requests import REQUEST_FILTER, answer_request, chunks_topic, device_of_request_topic
from edgekit.hub.db import Database
from edgekit.hub.store import HubStore, IngestResult
from edgekit.sync.wire import WireFormatError, decode_batch, encode_ack

log = logging.getLogger("edgekit.hub")

SHARE_GROUP = "edgekit-hub"
UPLINK_FILTER = "edgekit/v1/+/up"
BATCH_SUFFIX = ".ekbatch"
ACK_SUFFIX = ".ekack"


def ack_topic(device_id: str) -> str:
    return f"edgekit/v1/{device_id}/ack"


def device_of_topic(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "edgekit" and parts[1] == "v1" and parts[3] == "up" and parts[2]:
        return parts[2]
    return None


def ingest_batch_bytes(store: HubStore, data: bytes, *, device_id: str | None = None) -> tuple:
    """Decode and store one batch; returns (IngestResult, ack bytes). ``device_id``: the
    device the transport says sent it (its MQTT topic); a batch naming another device is
    refused. Raises WireFormatError / BadInputError for a batch the hub cannot accept."""
    batch = decode_batch(data)
    if device_id is not None and batch.device_id != device_id:
        raise BadInputError(f"batch of device {batch.device_id!r} arrived on the topic of device {device_id!r}")
    result = store.ingest(batch)
    return result, encode_ack(batch.device_id, batch.seq, result.ack_ids)


@dataclasses.dataclass
class IngestCounters:
    """What one ingest worker did since it started."""

    batches: int = 0
    records_new: int = 0
    duplicates: int = 0
    malformed: int = 0
    chunks_served: int = 0       # update chunks answered over MQTT (docs/sync-protocol.md)
    chunks_refused: int = 0      # chunk requests for updates not offered to the device, or malformed

    def add(self, result: IngestResult) -> None:
        self.batches += 1
        self.records_new += result.new
        self.duplicates += result.duplicates


# -- MQTT ---------------------------------------------------------------------------------


class MqttIngestWorker:
    """One MQTT 5 client in the shared subscription ``$share/edgekit-hub/edgekit/v1/+/up``:
    the broker hands each batch to one worker of the group.

    The session is persistent under a stable client id (``edgekit-hub-<index>``): a worker
    that dies between receiving a batch and acknowledging it gets the batch again when it
    reconnects under the same id (Mosquitto keeps a dead member's unacknowledged messages
    for its session rather than handing them to another member). The message is
    acknowledged at MQTT level only after the database commit and after the edgekit ack is
    queued for the device.
    """

    def __init__(self, store: HubStore, host: str, port: int, *, index: int = 0, group: str = SHARE_GROUP,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 tls_ca_file: str | None = None, session_expiry_s: int = 86400, keepalive_s: int = 30):
        import paho.mqtt.client as mqtt

        self.store = store
        self.host, self.port = host, port
        self.group = group
        self.client_id = client_id or f"{group}-{index}"
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.counters = IngestCounters()
        self.fatal: BaseException | None = None
        self._subscribed = threading.Event()
        self._stopped = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                   protocol=mqtt.MQTTv5, manual_ack=True)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls_ca_file is not None:
            self._client.tls_set(ca_certs=tls_ca_file)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.2, 10)

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{UPLINK_FILTER}"

    @property
    def chunk_subscription(self) -> str:
        return f"$share/{self.group}/{REQUEST_FILTER}"

    def _connect_properties(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        return props

    def start(self, *, timeout_s: float = 10.0) -> "MqttIngestWorker":
        """Connect and subscribe; returns once the broker granted the subscription. A broker
        that cannot be reached raises EdgekitError (``run`` waits for it instead)."""
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive_s, clean_start=False,
                                 properties=self._connect_properties())
        except OSError as exc:
            raise EdgekitError(f"MQTT broker {self.host}:{self.port} cannot be reached: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise EdgekitError(f"MQTT broker {self.host}:{self.port} did not grant {self.subscription} "
                               f"within {timeout_s:g} s")
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._client.disconnect()
        self._client.loop_stop()

    def run(self, stop: threading.Event, *, ready=None) -> None:
        """Connect (waiting for the broker as long as it takes), serve until ``stop`` is set
        or the database fails, disconnect. ``ready``: an event set once the subscription is
        granted."""
        # connect_async: paho's network thread retries until the broker answers, so a hub
        # started before its broker (or across a broker restart) needs no restart itself.
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s, clean_start=False,
                                   properties=self._connect_properties())
        self._client.loop_start()
        try:
            waited = 0
            while not self._subscribed.wait(1.0):
                if stop.is_set():
                    return
                waited += 1
                if waited % 30 == 0:
                    log.warning("worker %s: MQTT broker %s:%s not reachable for %d s; still trying",
                                self.client_id, self.host, self.port, waited)
            if ready is not None:
                ready.set()
            log.info("worker %s (pid %d) subscribed to %s on %s:%s", self.client_id, os.getpid(), self.subscription,
                     self.host, self.port)
            while not stop.wait(0.2):
                if self.fatal is not None:
                    raise EdgekitError(f"ingest worker {self.client_id} stopped: {self.fatal}") from self.fatal
        finally:
            self.stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%s refused %s: %s", self.host, self.port, self.client_id, reason_code)
            return
        # Subscribing again on every connect: harmless with a kept session, needed without one.
        client.subscribe([(self.subscription, 1), (self.chunk_subscription, 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self._subscribed.set()
        else:
            log.error("MQTT broker refused the subscription %s: %s", self.subscription, reason_codes)

    def _on_message(self, client, userdata, message) -> None:
        if self.fatal is not None or self._stopped.is_set():
            return  # unacknowledged: the broker sends it again when this session reconnects
        chunk_device = device_of_request_topic(message.topic)
        if chunk_device is not None:
            self._answer_chunk_request(client, message, chunk_device)
            return
        device = device_of_topic(message.topic)
        try:
            if device is None:
                raise BadInputError(f"topic {message.topic!r} is not edgekit/v1/<device>/up")
            result, ack = ingest_batch_bytes(self.store, bytes(message.payload), device_id=device)
        except BadInputError as exc:  # WireFormatError included
            # Acknowledged at MQTT level all the same: the same bytes would fail again, forever.
            self.counters.malformed += 1
            log.warning("malformed batch on %s (%d bytes) dropped: %s", message.topic, len(message.payload), exc)
            client.ack(message.mid, message.qos)
            return
        except Exception as exc:  # the database: leave the message unacknowledged and stop
            self.fatal = exc
            log.error("ingest worker %s: storing a batch from %s failed: %s", self.client_id, device, exc)
            return
        self.counters.add(result)
        client.publish(ack_topic(device), ack, qos=1)
        client.ack(message.mid, message.qos)


    def _answer_chunk_request(self, client, message, device: str) -> None:
        try:
            answers = answer_request(self.store, device, bytes(message.payload))
        except BadInputError as exc:  # ChunkFormatError: the same bytes would fail again
            self.counters.chunks_refused += 1
            log.warning("malformed chunk request on %s dropped: %s", message.topic, exc)
            client.ack(message.mid, message.qos)
            return
        except Exception as exc:  # the database: unacknowledged, the device asks again after its timeout
            self.fatal = exc
            log.error("ingest worker %s: answering a chunk request of %s failed: %s", self.client_id, device, exc)
            return
        for payload, served in answers:
            if served:
                self.counters.chunks_served += 1
            else:
                self.counters.chunks_refused += 1
                log.warning("chunk request of %s refused", device)
            client.publish(chunks_topic(device), payload, qos=1)
        client.ack(message.mid, message.qos)


def run_worker_process(db_url: str, host: str, port: int, index: int, options: dict, ready=None) -> None:
    """Body of one worker process of ``edgekit hub serve``: its own database connection and
    MQTT client; SIGTERM stops it cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; Ctrl-C reaches the whole group
    parent = os.getppid()

    def orphaned() -> None:  # the supervisor was killed: stop rather than hold the session forever
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=orphaned, daemon=True).start()
    with Database(db_url) as db:
        worker = MqttIngestWorker(HubStore(db), host, port, index=index, **options)
        try:
            worker.run(stop, ready=ready)
        finally:
            c = worker.counters
            log.info("worker %s (pid %d): %d batches, %d new records, %d duplicates, %d malformed",
                     worker.client_id, os.getpid(), c.batches, c.records_new, c.duplicates, c.malformed)


# -- files --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImportResult:
    path: Path
    device_id: str
    seq: int
    new: int
    duplicates: int
    ack_path: Path


def ack_path_for(batch_path: Path) -> Path:
    name = batch_path.name
    stem = name[:-len(BATCH_SUFFIX)] if name.endswith(BATCH_SUFFIX) else name
    return batch_path.with_name(stem + ACK_SUFFIX)


def batch_files(paths) -> list:
    """The batch files named, folders expanded to the ``*.ekbatch`` files inside them."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob(f"*{BATCH_SUFFIX}"))
        elif p.is_file():
            files.append(p)
        else:
            raise BadInputError(f"{p}: no such file or folder")
    return files


def import_file(store: HubStore, path: Path) -> ImportResult:
    """Store one exported batch file and write its ack file beside it (write, fsync, rename).
    Importing the same file again stores nothing new and writes the same ack."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read: {exc}") from exc
    try:
        batch = decode_batch(data)
    except WireFormatError as exc:
        raise WireFormatError(f"{path}: {exc}") from exc
    result = store.ingest(batch)
    ack = encode_ack(batch.device_id, batch.seq, result.ack_ids)
    ack_path = ack_path_for(path)
    write_atomic(ack_path, lambda f: f.write(ack))
    return ImportResult(path, batch.device_id, batch.seq, result.new, result.duplicates, ack_path)

