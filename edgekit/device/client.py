"""The host side of the serial protocol (docs/serial-protocol.md).

    with DeviceClient("socket://127.0.0.1:4321") as dev:
        print(dev.hello.target, dev.info().active)
        dev.upload(package, "kws", progress=lambda done, total: ...)
        output, ticks = dev.infer(x.tobytes())

Requests other than upload and input chunks are stop-and-wait: one request, its response (same
seq), retransmitted with the same seq on NAK, on a timeout, or when the device reboots
under it. Uploads keep up to ``window`` chunks in flight (go-back-N over cumulative
acknowledgements): after a NAK, a timeout or ERROR E_OFFSET the host resends from the
first offset the device has not acknowledged, with fresh seqs. If the link drops or the
device reboots during an upload, the client reconnects, says HELLO again and sends
UPLOAD_BEGIN again: the device resumes from what it holds, or starts over. Before each
UPLOAD_BEGIN it asks INFO whether the device already runs the package, so a COMMIT whose
answer was lost is reported as done, never repeated over the previous model.

An input larger than a frame (an image) goes the same way: INFER_BEGIN (which resumes
what the device holds), pipelined INFER_CHUNKs, INFER_RUN, then OUTPUT_READ for an output
its answer did not carry, checked against the output's CRC; small tensors take one INFER.
A model whose tensors the device cannot carry is refused before the upload.

Every failure raises an ``EdgekitError`` that names the command and what the host saw.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from edgekit.device import protocol as P
from edgekit.device.crc import crc32
from edgekit.device.errors import (DeviceError, DeviceRejectedError, DoesNotFitError, DeviceTimeoutError,
                                   LinkLostError, PortError, ProtocolError)
from edgekit.device.frames import BadFrame, Frame, FrameDecoder, OVERHEAD, encode
from edgekit.device.link import Link, open_link

log = logging.getLogger("edgekit.device")

HOST_PROTOCOL = 1
DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 8
# Bytes/s assumed when a timeout must cover the time a frame takes on the link: below the
# slowest link we support (115200 baud is ~11.5 KB/s; QEMU's UART does 10-26 KiB/s).
DEFAULT_LINK_RATE = 8000


class Connector(Protocol):
    def connect(self, timeout: float) -> Link: ...


@dataclass
class ClientStats:
    requests: int = 0
    retransmissions: int = 0
    naks: int = 0
    timeouts: int = 0
    stale_responses: int = 0
    bad_frames: int = 0
    device_restarts: int = 0
    reconnects: int = 0
    go_backs: int = 0
    bytes_sent: int = 0      # on the wire, framing and retransmissions included
    bytes_received: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class UploadResult:
    name: str
    slot: int
    size: int
    crc: int
    resumed_from: int  # offset the first UPLOAD_BEGIN answered (0: a fresh upload)
    committed: bool
    seconds: float
    restarts: int  # reconnects / device reboots survived
    retransmissions: int
    begin_offsets: tuple[int, ...] = ()  # what each UPLOAD_BEGIN answered (one per restart)
    already_active: bool = False  # the device ran this package before: nothing was sent
    confirmed_after_fault: bool = False  # COMMIT's answer was lost; INFO showed the package active
    wire_bytes_sent: int = 0  # host -> device, every frame of the upload (framing, retransmissions)
    wire_bytes_received: int = 0  # device -> host

    @property
    def bytes_transferred(self) -> int:
        """Package bytes this upload had to move: those the device did not hold at the start."""
        return self.size - self.resumed_from

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_transferred / self.seconds if self.seconds > 0 else 0.0

    @property
    def wire_bytes_per_package_byte(self) -> float:
        """Bytes on the wire, host to device, per package byte moved: the protocol's framing,
        COBS, request and retransmission overhead (1.02 for 1 KiB chunks on a clean line)."""
        return self.wire_bytes_sent / self.bytes_transferred if self.bytes_transferred else 0.0

    def line_seconds(self, baud: int = 115200, bits_per_byte: int = 10) -> float:
        """Time the bytes of this upload take on a real UART at ``baud`` (8N1: 10 bits a byte).
        The line is full duplex: acknowledgements travel while chunks are sent, so the busier
        direction sets the time. The device's own time (flash programming) comes on top."""
        return max(self.wire_bytes_sent, self.wire_bytes_received) * bits_per_byte / baud

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bytes_per_second"] = round(self.bytes_per_second, 1)
        d["wire_bytes_per_package_byte"] = round(self.wire_bytes_per_package_byte, 4)
        d["seconds_at_115200_baud"] = round(self.line_seconds(), 2)
        return d


@dataclass
class _UploadRun:
    """One upload across the reconnects it survives."""

    name: str
    size: int
    crc: int
    commit: bool
    model_id: str | None
    t0: float
    retrans0: int  # the client's retransmissions + go-backs when the upload began
    wire0: tuple[int, int]  # its wire bytes sent, received then
    restarts: int = 0
    crc_retries: int = 0
    resumed_from: int | None = None
    begin_offsets: list[int] = field(default_factory=list)
    commit_sent: bool = False


class _DeviceRestarted(Exception):
    """The device rebooted (banner seen) or forgot the upload (E_STATE)."""


class _Resend(Exception):
    def __init__(self, offset: int):
        self.offset = offset


class DeviceClient:
    """A connection to one device.

    ``port``: a port URL (``/dev/ttyACM0``, ``socket://host:port``, ``rfc2217://...``,
    ``loop://``), an open ``Link``, or an object with ``connect(timeout) -> Link`` (e.g.
    ``QemuBoard``), which is also used to reconnect.
    """

    def __init__(self, port: str | Link | Connector, *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, window: int | None = None,
                 link_rate: float = DEFAULT_LINK_RATE, banner_timeout: float = 0.25,
                 reconnect_timeout: float = 15.0, max_restarts: int = 5,
                 infer_timeout: float = 10.0, baudrate: int = 115200, seed: int | None = None,
                 on_event: Callable[[str], None] | None = None, connect: bool = True):
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.window_limit = window
        self.link_rate = link_rate
        self.banner_timeout = banner_timeout
        self.reconnect_timeout = reconnect_timeout
        self.max_restarts = max_restarts
        self.infer_timeout = infer_timeout
        self.baudrate = baudrate
        self.on_event = on_event
        self.stats = ClientStats()
        self.hello_info: P.HelloInfo | None = None
        self.banner: str | None = None
        self._link: Link | None = None
        self._decoder = FrameDecoder()
        self._events: deque[Frame | BadFrame] = deque()
        rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        self._seq = rng.randrange(0, P.NAK_SEQ)  # a fresh session never reuses the last seq
        self._restart_seen = False
        self._banners = 0
        self._infer_seconds: float | None = None
        if connect:
            self.connect()

    # ------------------------------------------------------------------ connection
    @property
    def port_name(self) -> str:
        if isinstance(self.port, str):
            return self.port
        if isinstance(self.port, Link):
            return self.port.url
        return getattr(self.port, "url", None) or repr(self.port)

    @property
    def hello(self) -> P.HelloInfo:
        if self.hello_info is None:
            self.say_hello()
        return self.hello_info

    def connect(self) -> P.HelloInfo:
        """Open the link, wait for the boot banner (up to ``banner_timeout``; a board that
        booted long ago prints none), then HELLO."""
        try:
            self._open(first=True)
            return self.say_hello()
        except BaseException:
            self.close()
            raise

    def _open(self, first: bool, timeout: float = 0.0) -> None:
        if self._link is not None:
            self._link.close()
        self._events.clear()
        self._decoder = FrameDecoder()
        port = self.port
        if isinstance(port, Link):
            if first and not port.closed:
                link = port
            else:
                link = open_link(port.url, baudrate=self.baudrate, connect_timeout=timeout)
        elif isinstance(port, str):
            link = open_link(port, baudrate=self.baudrate, connect_timeout=timeout)
        else:
            link = port.connect(timeout)
        self._link = link
        if link.banner is not None:
            self._note_banner(link.banner, restart=False)
        else:
            # On a reconnect the device is usually up already: do not wait long. A banner
            # that comes later makes the pending HELLO go again at once.
            self._wait_banner(self.banner_timeout if first else min(self.banner_timeout, 0.1))

    def _wait_banner(self, timeout: float, counts_as_restart: bool = False) -> bool:
        """Read until a boot banner arrives (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        before = self._banners
        while time.monotonic() < deadline:
            ev = self._next_event(deadline, counts_as_restart)
            if ev is None:
                break
            if self._banners != before:
                self._restart_seen = False
                return True
        return False

    def reconnect(self) -> P.HelloInfo:
        """Close and reopen the link (retrying for ``reconnect_timeout`` s), then HELLO."""
        self.stats.reconnects += 1
        self._emit(f"reconnecting to {self.port_name}")
        deadline = time.monotonic() + self.reconnect_timeout
        last: Exception | None = None
        while True:
            try:
                self._open(first=False, timeout=max(0.0, deadline - time.monotonic()))
                return self.say_hello()
            except (PortError, LinkLostError, DeviceTimeoutError) as exc:
                last = exc
                if time.monotonic() >= deadline:
                    raise LinkLostError(f"reconnect to {self.port_name} failed for "
                                        f"{self.reconnect_timeout:g} s: {last}") from None
                time.sleep(0.2)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ events
    def _emit(self, message: str) -> None:
        log.info(message)
        if self.on_event:
            self.on_event(message)

    def _note_banner(self, raw: bytes, restart: bool = True) -> None:
        line = raw[raw.find(P.BANNER_PREFIX):].split(b"\n", 1)[0]
        self.banner = line.decode("ascii", "replace").strip()
        self._banners += 1
        if restart:
            self._restart_seen = True
            self.stats.device_restarts += 1
            log.info("device booted: %s", self.banner)

    def _next_event(self, deadline: float, restart: bool = True) -> Frame | BadFrame | None:
        """The next frame or bad piece from the device, or None at ``deadline``."""
        while not self._events:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._link is None:
                raise LinkLostError(f"not connected to {self.port_name}")
            data = self._link.read(min(left, 0.25))
            if data:
                self.stats.bytes_received += len(data)
                self._events.extend(self._decoder.feed(data))
        ev = self._events.popleft()
        if isinstance(ev, BadFrame):
            if P.BANNER_PREFIX in ev.raw:
                self._note_banner(ev.raw, restart)
            else:
                self.stats.bad_frames += 1
                log.debug("dropped from device: %s", ev.reason)
        return ev

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % P.NAK_SEQ  # 0 .. 0xFFFE
        return self._seq

    def _send(self, data: bytes) -> None:
        if self._link is None:
            raise LinkLostError(f"not connected to {self.port_name}")
        self._link.write(data)
        self.stats.bytes_sent += len(data)

    def _wire_time(self, nbytes: int) -> float:
        return nbytes / self.link_rate

    # ------------------------------------------------------------------ requests
    def request(self, type_: int, payload: bytes = b"", *, command: str | None = None,
                timeout: float | None = None, restart_raises: bool = False) -> bytes:
        """Send one request and return its response payload (stop-and-wait)."""
        command = command or P.type_name(type_)
        seq = self._next_seq()
        data = encode(type_, seq, payload)
        if type_ == P.HELLO:
            # A delimiter first ends whatever partial frame the device may hold (it ignores
            # bytes before its first delimiter after a reset).
            data = b"\x00" + data
        base = self.timeout if timeout is None else timeout
        self.stats.requests += 1
        attempt = 0
        seen: list[str] = []
        self._restart_seen = False
        quick = True  # may a NAK or a damaged frame trigger the next retransmission?
        while True:
            self._send(data)
            deadline = time.monotonic() + base + self._wire_time(len(data) + 64)
            reason = self._await(seq, type_, command, deadline, seen, quick)
            if isinstance(reason, bytes):
                return reason
            # A NAK may be for bytes that reached the device before our request (noise,
            # a burst of garbage): after one quick retransmission, wait for the response
            # or the timeout, so a flood of NAKs cannot use up the retries in a moment.
            quick = reason not in ("nak", "damaged")
            if reason == "restart" and restart_raises:
                raise _DeviceRestarted(f"{command}: the device rebooted")
            attempt += 1
            if attempt > self.retries:
                raise DeviceTimeoutError(
                    f"{command}: no valid response from {self.port_name} after {self.retries} "
                    f"retransmissions (timeout {base:g} s; saw {_summary(seen)})")
            self.stats.retransmissions += 1
            log.debug("%s seq %d: retransmitting after %s", command, seq, reason)

    def _await(self, seq: int, type_: int, command: str, deadline: float, seen: list[str],
               quick: bool = True):
        """The response payload, or why to retransmit: 'timeout', 'nak', 'damaged',
        'restart'."""
        while True:
            ev = self._next_event(deadline)
            if ev is None:
                self.stats.timeouts += 1
                seen.append("timeout")
                return "timeout"
            if isinstance(ev, BadFrame):
                if self._restart_seen:
                    self._restart_seen = False
                    seen.append("device reboot")
                    return "restart"
                # Most likely our response, damaged on the way: ask again at once (the
                # device answers a repeated seq from its stored response).
                seen.append("damaged response")
                if quick:
                    return "damaged"
                continue
            if ev.type == P.NAK:
                self.stats.naks += 1
                seen.append("NAK")
                if quick:
                    return "nak"
                continue
            if ev.seq != seq:
                self.stats.stale_responses += 1
                continue
            if ev.type == P.ERROR:
                code, detail, msg = P.parse_error(ev.payload)
                raise DeviceRejectedError(command, code, detail, msg, _hint(type_, code))
            if ev.type != (type_ | P.RESPONSE):
                raise ProtocolError(f"{command}: the device answered {P.type_name(ev.type)} "
                                    f"(expected {P.type_name(type_ | P.RESPONSE)})")
            return ev.payload

    def _parse(self, command: str, fn, payload: bytes):
        try:
            return fn(payload)
        except ValueError as exc:
            raise ProtocolError(f"{command}: malformed response: {exc}") from None

    # ------------------------------------------------------------------ commands
    def say_hello(self) -> P.HelloInfo:
        """HELLO: the version handshake. Learns max_payload, window and slot sizes."""
        try:
            payload = self.request(P.HELLO, bytes([HOST_PROTOCOL]))
        except DeviceRejectedError as exc:
            if exc.code == P.E_VERSION:
                raise ProtocolError(f"HELLO: the device on {self.port_name} does not speak protocol "
                                    f"version {HOST_PROTOCOL} ({exc.device_message or 'E_VERSION'})") from None
            raise
        h = self._parse("HELLO", P.parse_hello, payload)
        if h.protocol != HOST_PROTOCOL:
            raise ProtocolError(f"HELLO: the device speaks protocol {h.protocol}; this host speaks "
                                f"{HOST_PROTOCOL}")
        if h.max_payload < 16 or h.window < 1:
            raise ProtocolError(f"HELLO: unusable max_payload {h.max_payload} / window {h.window}")
        self.hello_info = h
        return h

    def info(self) -> P.DeviceInfo:
        return self._parse("INFO", P.parse_info, self.request(P.INFO))

    def device_stats(self) -> P.DeviceStats:
        return self._parse("STATS", P.parse_stats, self.request(P.STATS))

    def profile(self) -> list[int]:
        """The timer ticks of every op of the last inference, in the order the model runs
        them (PROFILE, in as many requests as the frames need). Needs firmware built with
        ``--profile`` (HELLO capability CAP_PROFILE)."""
        if not self.hello.profiles_ops:
            raise DeviceError(f"the firmware on {self.port_name} ({self.hello.board}, firmware "
                              f"{self.hello.firmware}) does not time ops: build it with "
                              "`edgekit build-firmware --profile`")
        ticks: list[int] = []
        while True:
            page = self._parse("PROFILE", P.parse_profile_response,
                               self.request(P.PROFILE, P.pack_profile_request(len(ticks))))
            if page.first != len(ticks):
                raise ProtocolError(f"PROFILE: asked for op {len(ticks)}, the device answered from "
                                    f"op {page.first}")
            ticks += page.ticks
            if len(ticks) >= page.ops:
                return ticks
            if not page.ticks:
                raise ProtocolError(f"PROFILE: no progress at op {len(ticks)} of {page.ops}")

    def infer(self, data: bytes, timeout: float | None = None, *,
              output_bytes: int | None = None) -> tuple[bytes, int]:
        """Run the active model on ``data`` (the input tensor's bytes). Returns the output
        tensor's bytes and the timer ticks the inference took.

        A tensor that fits in one frame goes in one INFER; a larger input, or an output
        (``output_bytes``, when the caller knows it) larger than a frame carries, goes in
        chunks (INFER_BEGIN, INFER_CHUNK, INFER_RUN, OUTPUT_READ)."""
        data = bytes(data)
        hello = self.hello
        if timeout is None:
            # Until an inference was timed, allow infer_timeout; then 3x the slowest seen.
            timeout = self.infer_timeout if self._infer_seconds is None else \
                min(self.infer_timeout, max(self.timeout, 3 * self._infer_seconds))
        one_frame = len(data) <= hello.max_payload and \
            (output_bytes is None or output_bytes + 5 <= hello.max_payload)
        if not one_frame:
            self._require_chunked("INFER", len(data), output_bytes)
            return self._infer_chunked(data, timeout)
        t0 = time.monotonic()
        retrans = self.stats.retransmissions
        try:
            payload = self.request(P.INFER, data, timeout=timeout)
        except DeviceRejectedError as exc:
            # The output is larger than a frame (or the model failed, which INFER_RUN
            # reports again): the chunked path carries any output the device holds.
            if exc.code == P.E_INFER and hello.chunked_tensors:
                return self._infer_chunked(data, timeout)
            raise
        if self.stats.retransmissions == retrans:  # a clean round trip: a fair measure
            took = time.monotonic() - t0
            self._infer_seconds = max(took, self._infer_seconds or 0.0)
        status, ticks, out = self._parse("INFER", P.parse_infer_response, payload)
        if status != 0:
            raise DeviceError(f"INFER: the device reported status {status}")
        return out, ticks

    def _require_chunked(self, what: str, input_bytes: int, output_bytes: int | None) -> None:
        """Raise DoesNotFitError unless the device carries tensors of these sizes."""
        h = self.hello
        sizes = f"input {input_bytes:,} B" + (f", output {output_bytes:,} B" if output_bytes else "")
        if not h.chunked_tensors:
            raise DoesNotFitError(
                f"{what}: the model's tensors ({sizes}) are larger than a frame carries "
                f"(max_payload {h.max_payload:,} B), and firmware {h.firmware} on {self.port_name} "
                "cannot send tensors in chunks: update it (edgekit build-firmware, firmware 0.2.0 "
                "or later)")
        need = P.tensor_footprint(input_bytes, output_bytes or 0)
        if need > h.tensor_bytes:
            raise DoesNotFitError(
                f"{what}: the model's tensors ({sizes}) need {need:,} B of the device's tensor "
                f"buffer; board {h.board} ({h.target}) has {h.tensor_bytes:,} B")

    def _check_tensors_fit(self, package: bytes, name: str) -> None:
        """Refuse, before uploading, an edgekit model package whose tensors the device cannot
        carry. Other packages are left to the device's own header check."""
        from edgekit.bundle.micro_package_reader import read_package_header
        from edgekit.errors import ModelFormatError

        try:
            header = read_package_header(package)
        except ModelFormatError:
            return
        i, o = header.input_bytes, header.output_bytes
        if i <= self.hello.max_payload and o + 5 <= self.hello.max_payload:
            return  # one INFER frame carries them, on any firmware
        self._require_chunked(f"upload of {name!r}", i, o)

    def _infer_chunked(self, data: bytes, timeout: float) -> tuple[bytes, int]:
        """INFER_BEGIN (resumes what the device holds), the input in pipelined INFER_CHUNKs,
        INFER_RUN, then OUTPUT_READ for an output its response did not carry. Link losses
        and device reboots are survived as in an upload; every output byte is checked
        against the output CRC the device computed."""
        size, crc = len(data), crc32(data)
        restarts = 0
        while True:
            try:
                if self._link is None or self._link.closed:
                    raise LinkLostError(f"link to {self.port_name} is closed")
                payload = self.request(P.INFER_BEGIN, P.pack_infer_begin(size, crc), restart_raises=True)
                offset = self._parse("INFER_BEGIN", lambda p: P.parse_u32(p, "INFER_BEGIN"), payload)
                if offset > size:
                    raise ProtocolError(f"INFER_BEGIN: the device holds {offset} bytes of a {size}-byte "
                                        "input")
                self._send_chunks(data, offset, None, chunk_type=P.INFER_CHUNK)
                try:
                    payload = self.request(P.INFER_RUN, timeout=timeout, restart_raises=True)
                except DeviceRejectedError as exc:
                    # E_OFFSET: chunks went missing; E_STATE: the device forgot the input
                    # (or a new model came); E_CRC: the input arrived damaged. Begin again.
                    if exc.code in (P.E_OFFSET, P.E_STATE, P.E_CRC):
                        raise _DeviceRestarted(str(exc)) from None
                    raise
                run = self._parse("INFER_RUN", P.parse_infer_run_response, payload)
                if run.status != 0:
                    raise DeviceError(f"INFER_RUN: the device reported status {run.status}")
                out = run.output if len(run.output) == run.output_bytes else self._read_output(run)
                return out, run.ticks
            except (LinkLostError, _DeviceRestarted) as exc:
                restarts += 1
                if restarts > self.max_restarts:
                    raise DeviceError(f"INFER ({size:,}-byte input) on {self.port_name}: gave up after "
                                      f"{self.max_restarts} link losses or device restarts "
                                      f"(last: {exc})") from None
                if isinstance(exc, LinkLostError):
                    self._emit(f"link lost during an inference ({exc})")
                    self.reconnect()
                else:
                    self._emit(f"inference started over ({exc})")
                    self.say_hello()

    def _read_output(self, run: P.InferRun) -> bytes:
        """The output of the last INFER_RUN, in OUTPUT_READ pieces, checked against its CRC
        (read again once on a mismatch)."""
        per = self.hello.max_payload - 4
        for _ in range(2):
            out = bytearray()
            while len(out) < run.output_bytes:
                want = min(per, run.output_bytes - len(out))
                payload = self.request(P.OUTPUT_READ, P.pack_output_read(len(out), want),
                                       restart_raises=True)
                at = self._parse("OUTPUT_READ", lambda p: P.parse_u32(p, "OUTPUT_READ"), payload)
                piece = payload[4:]
                if at != len(out) or not piece or len(piece) > want:
                    raise ProtocolError(f"OUTPUT_READ: asked {want} bytes at {len(out)}, the device "
                                        f"answered {len(piece)} at {at}")
                out += piece
            if crc32(bytes(out)) == run.output_crc:
                return bytes(out)
            self._emit("output CRC mismatch: reading it again")
        raise ProtocolError(f"OUTPUT_READ: the {run.output_bytes:,}-byte output does not match the "
                            "CRC the device reported, twice")

    def reset(self, boot_timeout: float = 10.0) -> P.HelloInfo:
        """RESET, then wait for the banner (or reconnect if the link went away) and HELLO."""
        try:
            self.request(P.RESET)
            self._wait_banner(boot_timeout, counts_as_restart=True)
        except LinkLostError:  # e.g. a USB CDC port that goes away while the board resets
            return self.reconnect()
        return self.say_hello()

    def begin(self, size: int, crc: int, name: str) -> tuple[int, int]:
        payload = self.request(P.UPLOAD_BEGIN, P.pack_begin(size, crc, name), command="UPLOAD_BEGIN",
                               restart_raises=True)
        slot, offset = self._parse("UPLOAD_BEGIN", P.parse_begin_response, payload)
        if offset > size:
            raise ProtocolError(f"UPLOAD_BEGIN: the device resumes at offset {offset}, past the "
                                f"package's {size} bytes")
        return slot, offset

    def commit(self, size: int | None = None, crc: int | None = None) -> int:
        """UPLOAD_COMMIT; with ``size`` and ``crc``, naming the package meant (the device then
        refuses to commit another one, and answers again for one already active)."""
        named = P.pack_commit(size, crc) if size is not None and crc is not None else b""
        payload = self.request(P.UPLOAD_COMMIT, named, command="UPLOAD_COMMIT", restart_raises=True)
        if not payload:
            raise ProtocolError("UPLOAD_COMMIT: empty response (expected the slot)")
        return payload[0]

    def abort(self) -> None:
        self.request(P.UPLOAD_ABORT, command="UPLOAD_ABORT")

    # ------------------------------------------------------------------ upload
    def upload(self, package: bytes, name: str, progress: Callable[[int, int], None] | None = None,
               *, commit: bool = True, model_id: str | None = None) -> UploadResult:
        """Send ``package`` to the inactive slot and (with ``commit``) activate it.

        Survives lost, corrupted and duplicated frames (retransmission) and up to
        ``max_restarts`` link losses or device reboots (reconnect, HELLO, UPLOAD_BEGIN,
        which resumes from the offset the device still holds).

        Before each UPLOAD_BEGIN the host asks INFO whether the device already runs this
        package (size, CRC-32 and, when given, ``model_id``: the hex of the first 8 bytes of
        the package's SHA-256, which INFO reports).
        So a COMMIT whose answer was lost (the link died, the board restarted) is reported
        as done when it was, and the upload is never started again over the slot that
        holds the previous model."""
        package = bytes(package)
        size = len(package)
        hello = self.hello
        if size > hello.slot_size:
            raise DeviceError(f"upload of {name!r}: the package is {size:,} bytes, the device's slots "
                              f"hold {hello.slot_size:,}")
        self._check_tensors_fit(package, name)
        run = _UploadRun(name, size, crc32(package), commit, model_id, time.monotonic(),
                         self.stats.retransmissions + self.stats.go_backs,
                         (self.stats.bytes_sent, self.stats.bytes_received))
        while True:
            try:
                return self._upload_pass(package, run, progress)
            except (LinkLostError, _DeviceRestarted) as exc:
                self._recover_upload(run, exc)

    def _upload_pass(self, package: bytes, run: _UploadRun, progress) -> UploadResult:
        """One try over the current link: INFO (is it active already?), UPLOAD_BEGIN, the
        chunks from the offset the device holds, UPLOAD_COMMIT. Raises LinkLostError or
        _DeviceRestarted for ``upload`` to reconnect and try again."""
        if self._link is None or self._link.closed:
            raise LinkLostError(f"link to {self.port_name} is closed")
        if run.commit:
            try:
                active = self._active_slot_holding(run.size, run.crc, run.model_id)
            except DeviceTimeoutError as exc:
                raise LinkLostError(str(exc)) from None
            if active is not None:
                if run.commit_sent:
                    self._emit(f"the device runs {run.name!r} in slot {active}: the commit took "
                               "effect before its answer was lost")
                return self._upload_result(run, active, already_active=not run.commit_sent,
                                           confirmed_after_fault=run.commit_sent)
        slot, offset = self.begin(run.size, run.crc, run.name)
        run.begin_offsets.append(offset)
        if run.resumed_from is None:
            run.resumed_from = offset
        if offset:
            self._emit(f"device holds {offset:,} of {run.size:,} bytes: resuming")
        while True:
            self._send_chunks(package, offset, progress)
            if not run.commit:
                return self._upload_result(run, slot)
            try:
                run.commit_sent = True
                return self._upload_result(run, self.commit(run.size, run.crc))
            except DeviceTimeoutError as exc:
                # No answer: the device may have committed and then died, or the
                # link may be dead. Reconnect and ask it (above) what it runs.
                raise LinkLostError(f"no answer to UPLOAD_COMMIT ({exc})") from None
            except DeviceRejectedError as exc:
                if exc.code == P.E_OFFSET and exc.detail < run.size:
                    offset = exc.detail  # the device holds less: send the rest, commit again
                    continue
                if exc.code == P.E_STATE:
                    raise _DeviceRestarted("UPLOAD_COMMIT: the device has no upload in "
                                           "progress") from None
                if exc.code == P.E_CRC and run.crc_retries == 0:
                    run.crc_retries += 1
                    self._emit("the device found a CRC mismatch at commit: uploading again")
                    raise _DeviceRestarted("E_CRC") from None
                raise

    def _recover_upload(self, run: _UploadRun, exc: Exception) -> None:
        """After a link loss or a device reboot: reconnect (or say HELLO again), or give up
        after ``max_restarts`` saying, when COMMIT was sent, that the outcome is unknown."""
        run.restarts += 1
        unknown = (" UPLOAD_COMMIT was sent and its answer lost: the device may run the new "
                   f"model or the previous one (edgekit device info --port {self.port_name} "
                   "tells)") if run.commit_sent else ""
        if run.restarts > self.max_restarts:
            raise DeviceError(f"upload of {run.name!r} to {self.port_name}: gave up after "
                              f"{self.max_restarts} link losses or device reboots "
                              f"(last: {exc}).{unknown}") from None
        try:
            if isinstance(exc, LinkLostError):
                self._emit(f"link lost during the upload ({exc})")
                self.reconnect()
            else:
                self._emit(f"device restarted the upload ({exc})")
                self.say_hello()
        except DeviceError as lost:
            if not run.commit_sent:
                raise
            raise DeviceError(f"upload of {run.name!r}: {lost}.{unknown}") from None

    def _upload_result(self, run: _UploadRun, slot: int, **kw) -> UploadResult:
        return UploadResult(run.name, slot, run.size, run.crc,
                            run.size if run.resumed_from is None else run.resumed_from, run.commit,
                            time.monotonic() - run.t0, run.restarts,
                            self.stats.retransmissions + self.stats.go_backs - run.retrans0,
                            tuple(run.begin_offsets), wire_bytes_sent=self.stats.bytes_sent - run.wire0[0],
                            wire_bytes_received=self.stats.bytes_received - run.wire0[1], **kw)

    def _active_slot_holding(self, size: int, crc: int, model_id: str | None) -> int | None:
        """The active slot if it holds the package of this size and CRC-32 (and model id,
        when given), else None."""
        active = self.info().active
        if active is None or (active.size, active.crc) != (size, crc):
            return None
        if model_id is not None and active.model_hash != model_id:
            return None
        return active.index

    def _send_chunks(self, data: bytes, start: int, progress, chunk_type: int = P.UPLOAD_CHUNK) -> None:
        """Send data[start:] in pipelined ``chunk_type`` chunks (UPLOAD_CHUNK or INFER_CHUNK: the same
        rules) until the device acknowledged all of it."""
        _ChunkSender(self, data, start, progress, chunk_type).run()

    def _chunk_deadline(self, inflight: dict) -> float:
        wire = sum(v[2] for v in inflight.values())
        return time.monotonic() + self.timeout + self._wire_time(wire)


class _ChunkSender:
    """Go-back-N over cumulative acknowledgements for one ``_send_chunks``: up to ``window``
    chunks in flight; after a NAK, a timeout, ERROR E_OFFSET or an acknowledgement below
    what was sent, resend from the first offset the device has not acknowledged."""

    def __init__(self, client: DeviceClient, data: bytes, start: int, progress, chunk_type: int):
        self.client = client
        self.data = data
        self.size = len(data)
        self.progress = progress
        self.chunk_type = chunk_type
        self.what = P.type_name(chunk_type)
        hello = client.hello
        self.per = hello.max_payload - 4
        self.window = max(1, min(hello.window, client.window_limit or hello.window))
        self.acked = start      # the device holds data[:acked]
        self.next_off = start   # the next chunk to send starts here
        self.inflight: dict[int, tuple[int, int, int]] = {}  # seq -> (offset, end, wire bytes)
        self.deadline: float | None = None
        self.ignore_naks = False  # NAKs of frames sent before a go-back are old news
        self.fruitless = 0        # go-backs since the device last acknowledged new bytes
        self.progress_at = start
        self.seen: list[str] = []
        client._restart_seen = False  # a banner from now on means the device lost the transfer

    def report(self, done: int) -> None:
        if self.progress:
            self.progress(done, self.size)

    def run(self) -> None:
        c = self.client
        self.report(self.acked)
        while self.acked < self.size:
            self.fill_window()
            ev = c._next_event(self.deadline)
            if ev is None:
                c.stats.timeouts += 1
                self.go_back("timeout", self.acked)
            elif isinstance(ev, BadFrame):
                if c._restart_seen:
                    raise _DeviceRestarted("the device rebooted during the upload")
            elif ev.type == P.NAK:
                c.stats.naks += 1
                if not self.ignore_naks:
                    self.go_back("NAK", self.acked)
            elif ev.seq not in self.inflight:
                self.on_stale(ev)
            else:
                self.ignore_naks = False
                if ev.type == P.ERROR:
                    self.on_error(ev)
                else:
                    self.on_ack(ev)
        self.report(self.size)

    def fill_window(self) -> None:
        c = self.client
        while len(self.inflight) < self.window and self.next_off < self.size:
            end = min(self.next_off + self.per, self.size)
            seq = c._next_seq()
            frame = encode(self.chunk_type, seq, P.pack_chunk(self.next_off, self.data[self.next_off:end]))
            c._send(frame)
            self.inflight[seq] = (self.next_off, end, len(frame))
            self.next_off = end
            if self.deadline is None:
                self.deadline = c._chunk_deadline(self.inflight)

    def go_back(self, reason: str, to: int) -> None:
        """Resend from offset ``to``; give up after ``retries`` go-backs without progress."""
        c = self.client
        if to > self.progress_at:
            self.fruitless = 0
            self.progress_at = to
        self.fruitless += 1
        self.seen.append(reason)
        if self.fruitless > c.retries:
            raise DeviceTimeoutError(
                f"{self.what}: no progress at offset {self.acked:,} of {self.size:,} after {c.retries} "
                f"retransmissions to {c.port_name} (saw {_summary(self.seen)})")
        c.stats.go_backs += 1
        log.debug("upload: go back to %d (%s)", to, reason)
        if to != self.acked:
            self.report(to)
        self.acked = to
        self.inflight.clear()
        self.next_off = to
        self.deadline = None
        self.ignore_naks = True

    def on_stale(self, ev: Frame) -> None:
        """A response to a chunk sent before the last go-back (or a duplicate): its
        cumulative offset is still true."""
        self.client.stats.stale_responses += 1
        if ev.type == (self.chunk_type | P.RESPONSE) and len(ev.payload) >= 4:
            nxt = P.parse_u32(ev.payload, self.what)
            if self.acked < nxt <= self.size:
                self.acked = nxt
                self.next_off = max(self.next_off, self.acked)
                self.report(self.acked)

    def on_error(self, ev: Frame) -> None:
        code, detail, msg = P.parse_error(ev.payload)
        if code == P.E_OFFSET:
            if detail > self.size:
                raise ProtocolError(f"{self.what}: the device expects offset {detail}, past "
                                    f"the package's {self.size} bytes")
            self.go_back(f"E_OFFSET {detail}", detail)
            return
        if code == P.E_STATE:
            raise _DeviceRestarted(f"{self.what} answered E_STATE: the device forgot the transfer")
        off = self.inflight[ev.seq][0]
        raise DeviceRejectedError(f"{self.what} at offset {off:,}", code, detail, msg,
                                  _hint(self.chunk_type, code))

    def on_ack(self, ev: Frame) -> None:
        c, what = self.client, self.what
        if ev.type != (self.chunk_type | P.RESPONSE):
            raise ProtocolError(f"{what}: the device answered {P.type_name(ev.type)}")
        nxt = c._parse(what, lambda p: P.parse_u32(p, what), ev.payload)
        if nxt > self.size:
            raise ProtocolError(f"{what}: the device acknowledged offset {nxt}, past the "
                                f"package's {self.size} bytes")
        for s in [s for s in self.inflight if _seq_le(s, ev.seq)]:
            del self.inflight[s]
        if nxt < self.acked or (nxt < self.next_off and not self.inflight):
            # The device holds less than we thought: resend from what it has.
            self.go_back(f"device at offset {nxt}", nxt)
            return
        if nxt > self.acked:
            self.acked = nxt
            self.next_off = max(self.next_off, self.acked)
            if self.acked > self.progress_at:
                self.fruitless = 0
                self.progress_at = self.acked
            self.report(self.acked)
        self.deadline = c._chunk_deadline(self.inflight) if self.inflight else None


def _seq_le(a: int, b: int) -> bool:
    """a is b or was sent before b (modulo the seq space of 0 .. 0xFFFE)."""
    return (b - a) % P.NAK_SEQ < P.NAK_SEQ // 2


def _summary(seen: list[str]) -> str:
    if not seen:
        return "nothing"
    counts: dict[str, int] = {}
    for s in seen:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n}x {k}" if n > 1 else k for k, n in counts.items())


def _hint(type_: int, code: int) -> str:
    if code == P.E_NO_MODEL:
        return "Flash a model first: edgekit flash MODEL --port PORT"
    if code == P.E_TOO_LARGE and type_ in (P.INFER, P.INFER_BEGIN):
        return "The input's size differs from the active model's input tensor"
    if code == P.E_TOO_LARGE:
        return "The package does not fit the device's slot"
    if code == P.E_HEADER:
        return ("The package header does not suit this firmware (magic, format version, target, "
                "or arena/tensor sizes that do not fit); the previous model keeps serving")
    if code == P.E_CRC:
        return "The package arrived corrupted; the previous model keeps serving"
    if code == P.E_BUSY:
        return "The device is busy; try again"
    return ""


def open_device(port: str | Link | Connector, **kwargs) -> DeviceClient:
    """Connect to a device (banner, HELLO) and return the client."""
    return DeviceClient(port, **kwargs)


__all__ = ["ClientStats", "DeviceClient", "UploadResult", "open_device", "OVERHEAD"]
