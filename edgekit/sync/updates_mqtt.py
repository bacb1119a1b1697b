"""Update chunks over MQTT: the source ``UpdateClient.apply`` fetches chunks from when the
device's only link is its MQTT broker (docs/updates.md, docs/sync-protocol.md).

    source = MqttUpdateSource("broker", 1883, "dev-17")
    client.apply(notice, source)        # notice: the signed manifest from the group downlink

It asks on ``edgekit/v1/<device>/chunks/req`` for the chunk it needs and the next few of
the same update (``prefetch``), and takes the answers from ``edgekit/v1/<device>/chunks``.
A response whose bytes do not hash to the sha256 in its header is dropped and counted
(``corrupt``); UpdateClient checks each chunk against the signed manifest as well. No
answer within ``timeout_s`` raises UpdateFetchError: the update stays pending and the
chunks already verified on disk are kept, so the next try asks only for the rest.

Its own MQTT connection (client id ``<device>-updates``, clean session): requests are
asked again after a timeout, so nothing needs to wait at the broker for it.
"""

from __future__ import annotations

import collections
import ssl
import threading
import time
from typing import Optional

from edgekit.errors import BadInputError
from edgekit.sync.transports import check_device_id
from edgekit.sync.update_chunks import ChunkFormatError, decode_response, encode_request
from edgekit.sync.updates import UpdateFetchError


def chunk_request_topic(device_id: str) -> str:
    return f"edgekit/v1/{device_id}/chunks/req"


def chunk_response_topic(device_id: str) -> str:
    return f"edgekit/v1/{device_id}/chunks"


class MqttUpdateSource:
    MAX_HELD_BYTES = 64 << 20   # chunks received ahead of need kept in memory at most

    def __init__(self, host: str, port: int, device_id: str, *, tls=None, username: Optional[str] = None,
                 password: Optional[str] = None, timeout_s: float = 30.0, prefetch: int = 4,
                 connect_timeout_s: float = 10.0, protocol: int = 5):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise BadInputError("update chunks over MQTT need paho-mqtt: pip install 'edgekit[sync]'") from None
        check_device_id(device_id)
        if protocol not in (5, 311):
            raise BadInputError(f"MQTT protocol {protocol!r}: expected 5 or 311 (3.1.1)")
        self.device_id = device_id
        self.host, self.port = host, int(port)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.prefetch = max(1, int(prefetch))
        self.requested = []          # every sha256 asked for, in order (tests and logs)
        self.corrupt = 0             # responses dropped: bytes not matching their sha256, or malformed
        self.refusals = []           # (sha256, reason) the hub refused
        self._held = collections.OrderedDict()   # sha256 -> bytes received, not yet taken
        self._pending = set()        # asked for, not answered yet
        self._cond = threading.Condition()
        self._connected = threading.Event()
        v5 = protocol == 5
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-updates",
                                   clean_session=None if v5 else True,
                                   protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            try:
                self._client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                                     cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise BadInputError(f"MQTT TLS files cannot be used: {exc}") from None
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *a: self._connected.clear()
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(1, 10)
        self._client.connect_async(self.host, self.port, keepalive=30,
                                   clean_start=True if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY)
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(chunk_response_topic(self.device_id), qos=1)

    def _on_subscribe(self, *args) -> None:
        self._connected.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            response = decode_response(message.payload)
        except ChunkFormatError:
            with self._cond:
                self.corrupt += 1
            return
        with self._cond:
            if response.data is None:
                self.refusals.append((response.sha256, response.reason))
                self._pending.discard(response.sha256)
            elif response.sha256 in self._pending:   # unasked chunks (stale, or pushed by a stranger) are ignored
                self._pending.discard(response.sha256)
                self._held[response.sha256] = response.data
                while sum(map(len, self._held.values())) > self.MAX_HELD_BYTES and len(self._held) > 1:
                    self._held.popitem(last=False)
            self._cond.notify_all()

    def offers(self) -> list:
        """Offers come as notices on the group downlink (MqttTransport(groups=...)); this
        source only carries chunks, so it lists none."""
        return []

    def chunk(self, manifest: dict, sha256: str) -> bytes:
        if not self._connected.wait(self.connect_timeout_s):
            raise UpdateFetchError(f"MQTT broker {self.host}:{self.port} not reachable for update chunks")
        with self._cond:
            if sha256 in self._held:
                return self._held.pop(sha256)
            if sha256 not in self._pending:
                self.refusals = [(s, r) for s, r in self.refusals if s != sha256]   # a new try: asked afresh
                wanted = self._ahead(manifest, sha256)
                self._pending.update(wanted)
                self.requested.extend(wanted)
                self._client.publish(chunk_request_topic(self.device_id),
                                     encode_request(manifest["update_id"], wanted), qos=1)
            deadline = time.monotonic() + self.timeout_s
            while sha256 not in self._held:
                refused = [r for s, r in self.refusals if s == sha256]
                if refused:
                    self._pending.discard(sha256)
                    raise UpdateFetchError(f"the hub refused chunk {sha256}: {refused[-1]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    # asked again on the next try
                    self._pending.clear()
                    raise UpdateFetchError(f"no answer for chunk {sha256} over MQTT within {self.timeout_s:g} s")
                self._cond.wait(left)
            return self._held.pop(sha256)

    def _ahead(self, manifest: dict, sha256: str) -> list:
        """The chunk asked for and the next ones of the update not held or asked for yet."""
        shas = [c["sha256"] for c in manifest["chunks"]]
        start = shas.index(sha256) if sha256 in shas else 0
        wanted = [sha256]
        for s in shas[start + 1:]:
            if len(wanted) >= self.prefetch:
                break
            if s not in wanted and s not in self._held and s not in self._pending:
                wanted.append(s)
        return wanted

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
