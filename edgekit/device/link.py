"""The byte link to a device, over pyserial's URL handlers.

Ports: a device path (``/dev/ttyACM0``, ``COM3``), ``socket://host:port`` (an emulator or
a serial-to-TCP bridge), ``rfc2217://host:port`` (a remote serial port) or ``loop://``
(bytes written come back; for tests).

``Link.read(timeout)`` returns whatever arrived (at least one byte) within ``timeout``
seconds, or ``b""``. A link that closes under us raises ``LinkLostError``; a port that
cannot be opened raises ``PortError``.
"""

from __future__ import annotations

import socket
import time

import serial

from edgekit.device.errors import LinkLostError, PortError

DEFAULT_BAUDRATE = 115200
WRITE_TIMEOUT = 30.0  # a write that blocks this long means nothing drains the link
URL_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://", "alt://", "hwgrep://")


def describe_port(url: str) -> str:
    return url


class Link:
    """A connected byte stream. ``banner`` holds the boot banner line when whoever opened
    the link already read it (``QemuBoard`` does, to know the firmware is up)."""

    def __init__(self, ser, url: str, banner: bytes | None = None):
        self._ser = ser
        self.write_timeout = ser.write_timeout
        self.url = url
        self.banner = banner
        self._timeout: float | None = None
        # socket:// reports only "something is waiting" in in_waiting; drain it with a
        # non-blocking read instead.
        self._socket_like = type(ser).__module__.endswith("protocol_socket")
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def closed(self) -> bool:
        return self._ser is None or not self._ser.is_open

    def _set_timeout(self, t: float | None) -> None:
        if self._timeout != t:
            self._ser.timeout = t
            self._timeout = t

    def read(self, timeout: float) -> bytes:
        if self.closed:
            raise LinkLostError(f"link {self.url} is closed")
        try:
            self._set_timeout(max(0.0, timeout))
            data = self._ser.read(1)
            if not data:
                return b""
            if self._socket_like:
                self._set_timeout(0)
                data += self._ser.read(65536)
            else:
                n = self._ser.in_waiting
                if n:
                    data += self._ser.read(n)
        except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
            # (AttributeError/TypeError: pyserial's socket handler after a close from
            # another thread)
            self.close()
            raise LinkLostError(f"link {self.url} lost while reading: {exc}") from None
        self.bytes_in += len(data)
        return data

    def write(self, data: bytes) -> None:
        if self.closed:
            raise LinkLostError(f"link {self.url} is closed")
        try:
            self._ser.write(data)
        except serial.SerialTimeoutException:
            from edgekit.device.errors import DeviceTimeoutError

            raise DeviceTimeoutError(f"link {self.url}: a write stalled for {self.write_timeout:g} s "
                                     "(nothing reads the other end)") from None
        except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
            self.close()
            raise LinkLostError(f"link {self.url} lost while writing: {exc}") from None
        self.bytes_out += len(data)

    def drain_input(self, quiet: float = 0.0) -> bytes:
        """Read and return what is waiting (and what arrives until ``quiet`` seconds pass
        without a byte)."""
        got = bytearray()
        while True:
            chunk = self.read(quiet)
            if not chunk:
                return bytes(got)
            got += chunk

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is None:
            return
        try:
            sock = getattr(ser, "_socket", None) if self._socket_like else None
            if sock is not None:
                # pyserial's socket close() sleeps 0.3 s "for quick reconnects": skip it.
                ser._socket = None
                ser.is_open = False
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            else:
                ser.close()
        except Exception:  # closing a dead port must not hide the first error
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Link({self.url!r}{', closed' if self.closed else ''})"


def open_link(url: str, *, baudrate: int = DEFAULT_BAUDRATE, connect_timeout: float = 0.0,
              retry_interval: float = 0.1) -> Link:
    """Open ``url``. With ``connect_timeout`` > 0, retry a refused or missing port until
    it appears (a device re-enumerating after a reset, an emulator restarting)."""
    if not isinstance(url, str) or not url.strip():
        raise PortError(f"no port given (expected /dev/ttyACM0, socket://HOST:PORT, rfc2217://... "
                        f"or loop://), got {url!r}")
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1,
                                        write_timeout=WRITE_TIMEOUT, do_not_open=True)
            # pyserial flushes the input when it opens a port. A device that talks first
            # (QEMU starts the guest when we connect, and its boot banner can be in the
            # socket before open() returns) would lose its first bytes: keep them.
            ser.reset_input_buffer = _keep_input
            try:
                ser.open()
            finally:
                del ser.reset_input_buffer
            return Link(ser, url)
        except (serial.SerialException, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise PortError(f"cannot open port {url}: {exc}"
                                + _hint(url)) from None
            time.sleep(retry_interval)


def _keep_input() -> None:
    pass


def _hint(url: str) -> str:
    if url.startswith("socket://"):
        return " (is the emulator or bridge listening there?)"
    if url.startswith("/dev/"):
        return " (is the board plugged in, and may this user open it? e.g. the dialout group)"
    if "://" in url and not url.startswith(URL_SCHEMES):
        return f" (known URL schemes: {', '.join(URL_SCHEMES[:3])}, or a device path)"
    return ""
