"""The links a forwarder sends batches over: one interface, one file per transport.

A transport carries opaque batch bytes (edgekit.sync.wire) to the hub and returns the
hub's ack bytes; it never looks inside a record. ``mqtt`` (paho-mqtt, the ``sync`` extra)
and ``http`` (the standard library) acknowledge each batch; ``files`` writes batches for
sneakernet and reads the hub's ack files back later (docs/sync.md, custody rules).
"""

from __future__ import annotations

import abc
import re

from edgekit.errors import BadInputError, EdgekitError

# Device ids and group names appear in MQTT topics, URLs and file names: the rule of
# edgekit.sync.wire (no '/', '+', '#' or spaces; a letter or digit first), for groups too.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


def check_device_id(value: str, what: str = "device id") -> str:
    """``value`` if it is a usable device id (or group name), else BadInputError."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise BadInputError(f"{what} {value!r}: use 1-128 letters, digits, '_', '.', ':' or '-', "
                            "starting with a letter or digit")
    return value


class LinkDownError(EdgekitError):
    """The link to the hub is down, or the hub's ack did not come in time: the batch's
    records stay queued and the forwarder backs off before trying again."""


class HubRefusedError(LinkDownError):
    """The hub answered, and refused the batch (an HTTP 4xx other than 408/429, say a bad
    token): retrying soon will not help, but the records still stay queued."""


class Transport(abc.ABC):
    """One link to the hub. ``send`` is called from one thread at a time."""

    name: str = "transport"

    @abc.abstractmethod
    def send(self, batch: bytes, *, timeout_s: float) -> bytes:
        """Deliver one encoded batch and return the hub's ack for it (edgekit.sync.wire's
        decode_ack reads it). Raises LinkDownError when the link is down or no ack came
        within ``timeout_s``."""

    @abc.abstractmethod
    def poll_downlink(self, *, timeout_s: float = 0.0) -> list:
        """Messages the hub sent down (update notices) since the last call, as bytes; waits
        up to ``timeout_s`` for the first one; [] if none."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; the transport cannot be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Transport", "LinkDownError", "HubRefusedError", "check_device_id"]
