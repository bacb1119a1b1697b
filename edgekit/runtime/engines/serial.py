"""The serial engine: runs an MCU bundle's model package on a board attached over a serial
line, speaking edgekit's serial protocol (docs/serial-protocol.md) through
``edgekit.device.DeviceClient``.

    with edgekit.runtime.open("kws_m4.ekb", engine="serial",
                              engine_options={"port": "/dev/ttyACM0"}) as model:
        y = model.run({"input_1": x})          # computed on the board

Opening connects (boot banner, HELLO), refuses a board whose firmware is built for
another target than the bundle's, and flashes the bundle's model package unless the
board's active slot already holds exactly that package (size, CRC-32 and model id, which
INFO reports): reopening a board that runs the model sends nothing. ``run`` sends the
inputs (concatenated in input order; in chunks when larger than a frame) and splits the
answer into the outputs. The board computes with edgekit's C kernels, bit-exact with the
reference interpreter (``tflm_exact``).

A board that stops answering (the emulator killed, the cable pulled: end of file or no
valid response after the retransmissions) makes ``run`` raise ``BoardUnavailableError``
naming the port; ``healthy()`` then answers False. Opening again reconnects.

Engine options:

- ``port`` (required): a serial device (``/dev/ttyACM0``, ``COM3``), ``socket://HOST:PORT``,
  ``rfc2217://HOST:PORT``, or ``qemu:TARGET`` (an emulated board that this engine starts
  and ``close`` stops: for tests and demos on a development machine);
- ``timeout_s``: seconds to wait for each response before retransmitting (default 1.0);
  pings from ``healthy()`` wait at most this long too, with one retransmission;
- ``baudrate``: of a serial device (default 115200; socket ports ignore it);
- ``firmware``: for ``qemu:TARGET``, the model-slot firmware ELF to boot (``edgekit
  build-firmware``). Without it the engine builds that firmware once per content of its
  sources (cached, as ``edgekit hil`` does) in a child process: building needs the cross
  compiler, which this process never imports.

Python 3.8 syntax (docs/runtime.md).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from edgekit.bundle.bundle_format import BundleError
from edgekit.bundle.micro_package_reader import verify_package
from edgekit.device.client import DeviceClient
from edgekit.device.errors import DeviceError, DeviceTimeoutError, LinkLostError, PortError
from edgekit.device.qemu import QemuBoard, parse_device_spec
from edgekit.errors import BadInputError, EdgekitError, ModelFormatError
from edgekit.runtime.engines import Engine, EngineUnavailableError

DEFAULT_TIMEOUT_S = 1.0
# A long-lived gateway should notice a lost board in seconds, not DeviceClient's default
# 15 s of reconnect attempts inside one request.
RECONNECT_TIMEOUT_S = 2.0
# Package names travel in a 24-byte field of UPLOAD_BEGIN (docs/serial-protocol.md).
NAME_BYTES = 24
# The firmware ELF per qemu target, built once per process (the build itself is cached on disk).
_FIRMWARE = {}
_FIRMWARE_LOCK = threading.Lock()
# Ports held by an open engine of this process -> its bundle's path: two clients on one line
# would corrupt each other's frames (a qemu:TARGET engine has a board of its own).
_PORTS_IN_USE = {}
_PORTS_LOCK = threading.Lock()


class BoardUnavailableError(EngineUnavailableError):
    """The board behind a serial engine does not answer (not connected, powered off, the
    emulator stopped). Opening the model again reconnects."""


class SerialEngine(Engine):
    name = "serial"
    tflm_exact = True  # the board runs edgekit's C kernels, bit-exact with the reference
    options = ("port", "timeout_s", "baudrate", "firmware")

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        port = self.engine_options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise BadInputError("engine serial: option 'port' is required: a serial device (/dev/ttyACM0), "
                                "socket://HOST:PORT, rfc2217://HOST:PORT or qemu:TARGET")
        self.port = port.strip()
        self.timeout_s = _positive(self.engine_options.get("timeout_s", DEFAULT_TIMEOUT_S), "timeout_s")
        baudrate = self.engine_options.get("baudrate", 115200)
        if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0:
            raise BadInputError(f"engine serial: baudrate must be a positive integer, not {baudrate!r}")
        firmware = self.engine_options.get("firmware")
        qemu_target = parse_device_spec(self.port)
        if firmware is not None and qemu_target is None:
            raise BadInputError(f"engine serial: option 'firmware' boots an emulated board; port {self.port!r} "
                                "is not qemu:TARGET")
        self.package = bundle.read(bundle.payload("model"))
        try:
            self.header = verify_package(self.package)
        except ModelFormatError as exc:
            raise BundleError(f"bundle {bundle.path}: its model package is not valid: {exc}") from None
        self._out_specs = [(np.dtype(s["dtype"]), tuple(s["shape"])) for s in bundle.manifest["outputs"]]
        self._out_bytes = sum(d.itemsize * int(np.prod(shape)) for d, shape in self._out_specs)
        self._lock = threading.Lock()
        self._lost = ""  # why the engine gave up the board ("" while it has it)
        self.board = None  # the QemuBoard this engine started, for qemu:TARGET
        self.client = None
        self.upload = None  # the UploadResult of the open: ``already_active`` when nothing was sent
        self._holds_port = False
        if qemu_target is None:
            with _PORTS_LOCK:
                holder = _PORTS_IN_USE.get(self.port)
                if holder is not None:
                    raise BadInputError(f"engine serial: port {self.port} is in use by the open model of bundle "
                                        f"{holder}: close that model first (one connection per serial line)")
                _PORTS_IN_USE[self.port] = str(bundle.path)
                self._holds_port = True
        try:
            connector = self.port
            if qemu_target is not None:
                self.board = QemuBoard(qemu_target, _qemu_firmware(qemu_target, firmware))
                self.board.start()
                connector = self.board
            self.client = DeviceClient(connector, timeout=self.timeout_s, baudrate=baudrate,
                                       reconnect_timeout=RECONNECT_TIMEOUT_S)
            self._check_board()
            self.upload = self.client.upload(self.package, self.header.name[:NAME_BYTES] or "model",
                                             model_id=self.header.model_id)
        except (PortError, LinkLostError, DeviceTimeoutError) as exc:
            self.close()
            raise BoardUnavailableError(f"engine serial: the board on {self.port} does not answer: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _check_board(self) -> None:
        """Refuse a board whose firmware is for another target, or whose slots or tensor
        buffer cannot take the package, before anything is sent."""
        hello = self.client.hello
        if hello.target != self.bundle.target:
            raise BadInputError(
                f"engine serial: the board on {self.port} ({hello.board}, firmware {hello.firmware}) is built "
                f"for target {hello.target!r}; bundle {self.bundle.path} is for {self.bundle.target!r}. "
                f"Compile the model for {hello.target!r} or attach a {self.bundle.target!r} board")
        if len(self.package) > hello.slot_size:
            raise BadInputError(
                f"engine serial: the model package of bundle {self.bundle.path} is {len(self.package):,} bytes; "
                f"the slots of {hello.board} on {self.port} hold {hello.slot_size:,}")

    def run(self, inputs: list) -> list:
        data = b"".join(x.tobytes() for x in inputs)
        with self._lock:
            if self.client is None:
                why = self._lost or f"the connection to {self.port} is closed"
                raise BoardUnavailableError(f"engine serial: {why} (open the model again to reconnect)")
            try:
                out, _ticks = self.client.infer(data, output_bytes=self._out_bytes)
            except (LinkLostError, DeviceTimeoutError) as exc:
                self._drop(f"the board on {self.port} stopped answering: {exc}")
                raise BoardUnavailableError(f"engine serial: {self._lost}") from None
        if len(out) != self._out_bytes:
            raise DeviceError(f"INFER on {self.port}: the board answered {len(out)} bytes; the outputs of "
                              f"bundle {self.bundle.path} take {self._out_bytes}")
        outs, pos = [], 0
        for dtype, shape in self._out_specs:
            size = dtype.itemsize * int(np.prod(shape))
            outs.append(np.frombuffer(out, dtype, count=size // dtype.itemsize, offset=pos).reshape(shape).copy())
            pos += size
        return outs

    def healthy(self) -> bool:
        """A cheap ping (INFO, one retransmission, ``timeout_s`` each): the board answers and
        still runs this bundle's package. When not, the engine lets the line go (``run``
        then raises BoardUnavailableError) and the model must be opened again, which
        reconnects and flashes as needed. While an inference holds the line, the answer is
        whether the last exchange worked."""
        if not self._lock.acquire(timeout=self.timeout_s):
            return not self._lost
        try:
            if self.client is None:
                return False
            retries = self.client.retries
            self.client.retries = 1
            try:
                active = self.client.info().active
            except (LinkLostError, DeviceTimeoutError, DeviceError) as exc:
                self._drop(f"the board on {self.port} stopped answering: {exc}")
                return False
            finally:
                if self.client is not None:
                    self.client.retries = retries
            if active is None or active.model_hash != self.header.model_id:
                self._drop(f"the board on {self.port} no longer runs the package of bundle {self.bundle.path} "
                           f"(it runs {active.name!r} {active.model_hash})" if active else
                           f"the board on {self.port} runs no model (it restarted without it)")
                return False
            return True
        finally:
            self._lock.release()

    def _drop(self, reason: str) -> None:
        """Give up the line after a failure (the lock held): a lost board is reopened, not
        retried here, and the port is free for that new open."""
        self._lost = reason
        client, self.client = self.client, None
        if client is not None:
            client.close()
        self._release_port()

    def _release_port(self) -> None:
        if self._holds_port:
            self._holds_port = False
            with _PORTS_LOCK:
                _PORTS_IN_USE.pop(self.port, None)

    def close(self) -> None:
        client, board = self.client, self.board
        self.client = self.board = None
        if client is not None:
            client.close()
        if board is not None:
            board.stop(grace=0.5)
        self._release_port()

    def describe(self) -> str:
        client = self.client
        if client is None or client.hello_info is None:
            return f"serial ({self.port}, closed)"
        h = client.hello_info
        return f"serial: board {h.board} ({h.target}), firmware {h.firmware}, on {self.port}"


def _positive(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BadInputError(f"engine serial: {what} must be a positive number of seconds, not {value!r}")
    return float(value)


def _qemu_firmware(target: str, given) -> Path:
    """The model-slot firmware ELF an emulated ``target`` board boots: ``given``, or the one
    ``edgekit.hil.rig.slot_firmware`` builds and caches, run in a child process so that this
    device-side process loads no compiler stage."""
    from edgekit.targets import load_target

    em = load_target(target).emulator  # an unknown target name is refused here (exit 2)
    if em is None or em.kind != "qemu-system":
        raise BadInputError(f"engine serial: port qemu:{target}: target {target!r} has no emulated board "
                            "(qemu:cortex-m3|m4|m7|m33|m55)")
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise BadInputError(f"engine serial: firmware {str(given)!r} is not a file (edgekit build-firmware "
                                f"--target {target} --out DIR writes one)")
        return path
    with _FIRMWARE_LOCK:
        if target in _FIRMWARE and _FIRMWARE[target].is_file():
            return _FIRMWARE[target]
        code = "import sys\nfrom edgekit.hil.rig import slot_firmware\nprint(slot_firmware(sys.argv[1]))\n"
        try:
            res = subprocess.run([sys.executable, "-c", code, target], capture_output=True, text=True,
                                 timeout=900)
        except subprocess.TimeoutExpired:
            raise EdgekitError(f"engine serial: building the model-slot firmware for {target} took over "
                               "900 s") from None
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise EdgekitError(f"engine serial: cannot build the model-slot firmware for qemu:{target}: {last} "
                               "(or give the firmware option an ELF from edgekit build-firmware)")
        elf = Path(res.stdout.strip().splitlines()[-1])
        _FIRMWARE[target] = elf
        return elf


ENGINE = SerialEngine
