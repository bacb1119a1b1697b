"""MQTT transport (paho-mqtt 2.x, the ``sync`` extra): MQTT 5 or 3.1.1, QoS 1, a
persistent session, TLS and credentials; any broker.

Topics (docs/sync-protocol.md): the device publishes each batch on
``edgekit/v1/<device>/up`` (QoS 1); the hub answers on ``edgekit/v1/<device>/ack`` (QoS 1)
and sends update notices down on ``edgekit/v1/<device>/down`` and
``edgekit/v1/group/<group>/down``. The session is persistent (client id = device id,
clean start off, a session expiry for MQTT 5), so acks and notices sent while the device
is offline wait at the broker. paho's network loop runs in its own thread and reconnects
by itself; ``send`` waits for the connection and for the ack, up to its timeout.
"""

from __future__ import annotations

import collections
import dataclasses
import ssl
import threading
import time
from typing import Optional, Sequence

from edgekit.errors import BadInputError
from edgekit.sync.transports import LinkDownError, Transport, check_device_id

TOPIC_PREFIX = "edgekit/v1"


def up_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{device_id}/up"


def ack_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{device_id}/ack"


def down_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{device_id}/down"


def group_down_topic(group: str) -> str:
    return f"{TOPIC_PREFIX}/group/{group}/down"


@dataclasses.dataclass(frozen=True)
class MqttTls:
    """TLS to the broker: ``ca_file`` verifies the broker (None: the system's CAs);
    ``cert_file``/``key_file`` authenticate the device by certificate."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None


class MqttTransport(Transport):
    name = "mqtt"

    def __init__(self, host: str, port: int, device_id: str, *, protocol: int = 5, tls: Optional[MqttTls] = None,
                 username: Optional[str] = None, password: Optional[str] = None, client_id: Optional[str] = None,
                 groups: Sequence[str] = (), keepalive_s: int = 30, session_expiry_s: int = 7 * 24 * 3600,
                 reconnect_delay_s: tuple = (1, 30), zstd_dicts: Optional[dict] = None):
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError:
            raise BadInputError("the MQTT transport needs paho-mqtt: pip install 'edgekit[sync]'") from None
        check_device_id(device_id)
        for group in groups:
            check_device_id(group, what="group")
        if protocol not in (5, 311):
            raise BadInputError(f"MQTT protocol {protocol!r}: expected 5 or 311 (3.1.1)")
        if tls is not None and bool(tls.cert_file) != bool(tls.key_file):
            raise BadInputError("MQTT TLS: a client certificate needs both the certificate and its key file")
        self.host, self.port, self.device_id = host, int(port), device_id
        self.protocol = protocol
        self._topics = [ack_topic(device_id), down_topic(device_id)] + [group_down_topic(g) for g in groups]
        self._connected = threading.Event()
        self._lock = threading.Condition()
        self._acks: collections.deque = collections.deque(maxlen=1000)
        self._downlink: collections.deque = collections.deque(maxlen=10000)
        self._last_problem = "not connected yet"
        self._closed = False
        # {dict id: dictionary}: the ones batches are compressed with, so that send can read
        # a batch's sequence number (a Forwarder with a dictionary registers it here).
        self.zstd_dicts = dict(zstd_dicts or {})

        v5 = protocol == 5
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or device_id,
                                   clean_session=None if v5 else False,
                                   protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            try:
                self._client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                                     cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise BadInputError(f"MQTT TLS files cannot be used: {exc}") from None
        self._client.reconnect_delay_set(*reconnect_delay_s)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = int(session_expiry_s)
        # connect_async: a broker that is down now is a link that is down, not an error;
        # the loop thread keeps trying with reconnect_delay between tries.
        self._client.connect_async(host, self.port, keepalive=keepalive_s,
                                   clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                   properties=properties)
        self._client.loop_start()

    # ---------------------------------------------------------------- paho callbacks (loop thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._last_problem = f"broker refused the connection: {reason_code}"
            return
        # The session keeps the subscriptions; subscribing again is harmless and covers a
        # session the broker dropped (expired, or a broker without persistence).
        client.subscribe([(t, 1) for t in self._topics])
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self._last_problem = f"disconnected from the broker: {reason_code}"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            if message.topic == self._topics[0]:
                self._acks.append(bytes(message.payload))
            else:
                self._downlink.append(bytes(message.payload))
            self._lock.notify_all()

    # ---------------------------------------------------------------- Transport

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def send(self, batch: bytes, *, timeout_s: float) -> bytes:
        from edgekit.sync.wire import WireFormatError, decode_ack, decode_batch

        if self._closed:
            raise LinkDownError("the MQTT transport is closed")
        try:
            seq = decode_batch(batch, zstd_dicts=self.zstd_dicts).seq
        except WireFormatError as exc:
            raise WireFormatError(f"the MQTT transport cannot read the batch it was given ({exc}); a batch made "
                                  "with a dictionary needs it in MqttTransport(zstd_dicts=...)") from None
        deadline = time.monotonic() + timeout_s
        if not self._connected.wait(timeout_s):
            raise LinkDownError(f"MQTT broker {self.host}:{self.port} not reachable ({self._last_problem})")
        # Not sent while disconnected: paho would queue it in memory, and the records are
        # safer in the queue, which sends them again after the backoff.
        info = self._client.publish(up_topic(self.device_id), batch, qos=1)
        if info.rc != 0:
            raise LinkDownError(f"MQTT publish failed (paho error {info.rc}): {self._last_problem}")
        with self._lock:
            while True:
                while self._acks:
                    raw = self._acks.popleft()
                    try:
                        ack = decode_ack(raw)
                    except WireFormatError:
                        continue  # not an ack we can read: the hub will ack the records again
                    # An ack for an earlier batch (late, or redelivered) is dropped: its
                    # records are sent again and the hub, which has them, acks them again.
                    if ack.seq == seq and ack.device_id == self.device_id:
                        return raw
                left = deadline - time.monotonic()
                if left <= 0:
                    state = "connected" if self._connected.is_set() else self._last_problem
                    raise LinkDownError(f"no ack from the hub for batch {seq} within {timeout_s:g} s ({state})")
                self._lock.wait(left)

    def poll_downlink(self, *, timeout_s: float = 0.0) -> list:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not self._downlink:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._lock.wait(left)
            messages = list(self._downlink)
            self._downlink.clear()
            return messages

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
