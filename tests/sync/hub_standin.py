"""A minimal hub for transport and forwarder tests: it reads batches with the wire
format's own decoder and acks every record it got, keeping what arrived for the test to
check (every arrival, so duplicates are visible).

``MqttHubStandIn`` subscribes to ``edgekit/v1/+/up`` with a persistent session and answers
on the device's ack topic; ``ack_batches=False`` makes it keep quiet (a hub that stores but
whose acks never come back).
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgekit.sync.wire import decode_batch, encode_ack


class Arrivals:
    """What a stand-in hub received: batches, and record ids in arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = []
        self.ids = []             # every record id, in arrival order, duplicates included
        self.records = {}         # id -> Record (the first copy)

    def add(self, batch) -> bytes:
        with self.lock:
            self.batches.append(batch)
            for r in batch.records:
                self.ids.append(r.id)
                self.records.setdefault(r.id, r)
        return encode_ack(batch.device_id, batch.seq, [r.id for r in batch.records])

    def duplicates(self) -> int:
        with self.lock:
            return len(self.ids) - len(set(self.ids))

    def wait_for(self, count: int, timeout_s: float = 30.0) -> bool:
        """Until ``count`` distinct records arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= count:
                    return True
            time.sleep(0.02)
        return False


class MqttHubStandIn:
    def __init__(self, host: str, port: int, *, ack_batches: bool = True, client_id: str = "hub-standin",
                 tls=None, username: str | None = None, password: str | None = None, zstd_dicts=None):
        self.arrivals = Arrivals()
        self.ack_batches = ack_batches
        self.zstd_dicts = zstd_dicts
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgekit/v1/+/up", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        if tls is not None:  # an edgekit.sync.transports.mqtt.MqttTls
            self.client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file)
        if username is not None:
            self.client.username_pw_set(username, password)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the stand-in hub could not subscribe")

    def _on_message(self, client, userdata, message) -> None:
        ack = self.arrivals.add(decode_batch(bytes(message.payload), zstd_dicts=self.zstd_dicts))
        if self.ack_batches:
            device = message.topic.split("/")[2]
            client.publish(f"edgekit/v1/{device}/ack", ack, qos=1)

    def send_down(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

