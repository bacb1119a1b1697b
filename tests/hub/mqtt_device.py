"""A bare MQTT 5 "device" for the hub tests: publishes batches on its up topic (QoS 1) and
collects the hub's acks, with nothing of the forwarder in between."""

from __future__ import annotations

import collections
import threading
import time

import paho.mqtt.client as mqtt

from edgekit.sync.wire import decode_ack


class AckCollector:
    def __init__(self, host: str, port: int, name: str = "test-device", max_inflight: int = 20):
        self.acks: dict = collections.defaultdict(list)   # (device, seq) -> [record id lists]
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe("edgekit/v1/+/ack", qos=1)
        assert self._subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        ack = decode_ack(bytes(message.payload))
        assert message.topic == f"edgekit/v1/{ack.device_id}/ack"
        with self._cond:
            self.acks[(ack.device_id, ack.seq)].append(ack.record_ids)
            self._cond.notify_all()

    def publish(self, device: str, data: bytes) -> None:
        self.client.publish(f"edgekit/v1/{device}/up", data, qos=1).wait_for_publish(10)

    def wait(self, predicate, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))  # predicates may watch more than acks
            return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
