"""Talking to a device over a serial line: the host side of docs/serial-protocol.md.

- ``crc``, ``cobs``, ``frames``: CRC-32, byte stuffing, frames and the streaming decoder;
- ``protocol``: message types, error codes, payload layouts;
- ``link``: ports (``/dev/tty*``, ``socket://``, ``rfc2217://``, ``loop://``) via pyserial;
- ``client``: ``DeviceClient`` (handshake, info, stats, upload with resume, infer in one frame
  or, for tensors larger than a frame, in chunks with resume, reset);
- ``qemu``: ``QemuBoard``, an emulated board on a loopback TCP port.
"""

from __future__ import annotations

__all__ = ["DeviceClient", "DeviceError", "QemuBoard", "UploadResult", "open_device", "open_link"]


def __getattr__(name: str):
    if name in ("DeviceClient", "UploadResult", "open_device"):
        from edgekit.device import client
        return getattr(client, name)
    if name == "DeviceError":
        from edgekit.device.errors import DeviceError
        return DeviceError
    if name == "QemuBoard":
        from edgekit.device.qemu import QemuBoard
        return QemuBoard
    if name == "open_link":
        from edgekit.device.link import open_link
        return open_link
    raise AttributeError(f"module 'edgekit.device' has no attribute {name!r}")
