"""HTTP(S) transport, on the standard library alone (http.client; no httpx on the device).

``send`` POSTs the batch to ``<url>/v1/ingest`` (Content-Type application/vnd.edgekit.batch,
``Authorization: Bearer <token>`` when a token is set); the hub stores it and answers 200
with the ack bytes. ``poll_downlink`` GETs ``<url>/v1/devices/<id>/downlink``: 200 with
``{"messages": ["<base64>", ...]}`` (docs/sync-protocol.md); a hub without that route (404)
has nothing to send down over HTTP (update offers have their own route, docs/updates.md).
One keep-alive connection, opened again after any failure.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from typing import Optional

from edgekit.errors import BadInputError
from edgekit.sync.transports import HubRefusedError, LinkDownError, Transport, check_device_id

BATCH_CONTENT_TYPE = "application/vnd.edgekit.batch"
# Answers the hub may give when busy or slow: worth retrying after a backoff.
_RETRYABLE = {408, 429, 500, 502, 503, 504}
_MAX_ANSWER = 16 << 20


def parse_downlink(answer: bytes) -> list:
    """The messages in a downlink answer ``{"messages": ["<base64>", ...]}``; LinkDownError
    (naming the problem) for anything else."""
    try:
        doc = json.loads(answer)
        messages = doc["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise TypeError("messages is not a list of strings")
        return [base64.b64decode(m, validate=True) for m in messages]
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise LinkDownError(f"the hub's downlink answer is not {{\"messages\": [base64, ...]}} ({exc}): "
                            f"{bytes(answer[:80])!r}") from None


class HttpTransport(Transport):
    name = "http"

    def __init__(self, url: str, device_id: str, *, token: Optional[str] = None, ca_file: Optional[str] = None):
        check_device_id(device_id)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInputError(f"hub URL {url!r}: expected http://HOST[:PORT][/PATH] or https://...")
        if parts.query or parts.fragment:
            raise BadInputError(f"hub URL {url!r}: no query or fragment, please")
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BadInputError(f"hub URL {url!r}: the port is not a number from 0 to 65535") from None
        if token is not None and (not token or any(c.isspace() for c in token)):
            raise BadInputError("hub token: one token without spaces")
        self.url, self.device_id = url.rstrip("/"), device_id
        self.scheme, self.host = parts.scheme, parts.hostname
        self._base = parts.path.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._context = None
        if self.scheme == "https":
            try:
                self._context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise BadInputError(f"CA file {ca_file}: cannot be used ({exc})") from None
        elif ca_file:
            raise BadInputError(f"a CA file needs an https:// hub URL, not {url!r}")
        self._conn: Optional[http.client.HTTPConnection] = None

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._context is not None:
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout_s,
                                                         context=self._context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        self._conn.timeout = timeout_s
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, path: str, body: Optional[bytes], headers: dict, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        try:
            conn = self._connection(max(0.001, timeout_s))
            conn.request(method, self._base + path, body=body, headers={**self._headers, **headers})
            response = conn.getresponse()
            answer = response.read(_MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException, socket.timeout) as exc:
            self._drop_connection()
            waited = timeout_s - max(0.0, deadline - time.monotonic())
            raise LinkDownError(f"{method} {self.url}{path} failed after {waited:.1f} s: "
                                f"{exc or type(exc).__name__}") from None
        if response.will_close:
            self._drop_connection()
        if response.status != 200:
            detail = answer[:200].decode("utf-8", "replace").strip()
            message = f"{method} {self.url}{path}: HTTP {response.status} {response.reason}" + (
                f": {detail}" if detail else "")
            raise (LinkDownError if response.status in _RETRYABLE else HubRefusedError)(message)
        if len(answer) > _MAX_ANSWER:
            self._drop_connection()
            raise LinkDownError(f"{method} {self.url}{path}: the answer is larger than {_MAX_ANSWER} bytes")
        return answer

    def send(self, batch: bytes, *, timeout_s: float) -> bytes:
        return self._request("POST", "/v1/ingest", bytes(batch), {"Content-Type": BATCH_CONTENT_TYPE}, timeout_s)

    def poll_downlink(self, *, timeout_s: float = 0.0) -> list:
        # One GET, however short timeout_s is: HTTP has no push, a poll is the only way.
        try:
            answer = self._request("GET", f"/v1/devices/{self.device_id}/downlink", None, {}, max(timeout_s, 10.0))
        except HubRefusedError as exc:
            if " HTTP 404 " in str(exc):
                return []  # a hub without the downlink route has nothing to send down this way
            raise
        return parse_downlink(answer)

    def close(self) -> None:
        self._drop_connection()
