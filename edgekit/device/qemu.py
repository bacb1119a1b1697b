"""An emulated board: qemu-system-arm running a firmware ELF, its UART on a loopback TCP
port.

    with QemuBoard("cortex-m4", "fw.elf") as board:      # starts QEMU, waits for the banner
        with DeviceClient(board) as dev:                   # the client reconnects through it
            ...

QEMU runs with ``-icount shift=0`` (timer ticks count guest instructions, repeatable to
the tick), semihosting on, no display and no monitor, and its serial port as a TCP
server with ``wait=on``: the guest starts only once the board connects, so the boot
banner is never lost. ``QemuBoard`` reads the banner and hands that connection to the
first ``connect()``. ``nodelay=on``: the UART sends its bytes one by one, and with Nagle's
algorithm each response then waited for the host's delayed ACK (about 40 ms a request).

QEMU is always stopped: on ``__exit__`` (exceptions and Ctrl-C included), at interpreter
exit (atexit), on SIGTERM (a handler installed while boards run, when the default
handler was in place), and, on Linux, when the parent process dies (PR_SET_PDEATHSIG).
It runs in its own process group, which ``stop``/``kill`` signal as a whole.

``kill()`` cuts the power (SIGKILL); ``restart()`` boots it again on the same port.
With ``persistent_ram=True`` the machine's main RAM (on mps2 boards the 16 MiB at
0x21000000) is a file in ``workdir``, so what the firmware keeps there survives a
``kill()``/``restart()`` like flash would.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edgekit.device import protocol as P
from edgekit.device.errors import DeviceError, LinkLostError, PortError
from edgekit.device.link import Link, open_link
from edgekit.errors import BadInputError

_LIVE: set[QemuBoard] = set()  # boards whose QEMU runs (strong refs: stopped at exit)
_LOCK = threading.Lock()
_SIGTERM_INSTALLED = False


def _stop_all() -> None:
    for board in list(_LIVE):
        try:
            board.stop(grace=0.5)
        except Exception:  # at exit: keep stopping the others
            pass


atexit.register(_stop_all)


def _on_sigterm(signum, frame) -> None:
    _stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm() -> None:
    global _SIGTERM_INSTALLED
    if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
            _SIGTERM_INSTALLED = True
    except (ValueError, OSError):  # not the main interpreter thread, or no signals here
        pass


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuBoard:
    """qemu-system-arm for ``target`` (a Target or a target name) running ``elf``."""

    def __init__(self, target, elf: str | os.PathLike, *, workdir: str | os.PathLike | None = None,
                 boot_timeout: float = 20.0, icount: bool = True, persistent_ram: bool = False,
                 extra_args: tuple[str, ...] = (), qemu: str | None = None):
        from edgekit.targets import load_target

        self.target = load_target(target) if isinstance(target, str) else target
        em = self.target.emulator
        if em is None or em.kind != "qemu-system" or not em.machine:
            raise BadInputError(f"target {self.target.name!r} has no qemu-system emulator "
                                "(its [emulator] table needs kind = \"qemu-system\" and a machine)")
        self.machine = em.machine
        self.cpu = em.cpu
        self.elf = Path(elf).resolve()  # QEMU runs in self.workdir: a relative path would miss
        if not self.elf.is_file():
            raise BadInputError(f"firmware ELF {self.elf} not found")
        self.qemu = qemu or shutil.which(em.binary)
        if self.qemu is None:
            raise DeviceError(f"{em.binary} is not installed (Debian: sudo apt-get install -y "
                              "qemu-system-arm)")
        self.boot_timeout = boot_timeout
        self.icount = icount
        self.persistent_ram = persistent_ram
        self.extra_args = tuple(extra_args)
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"edgekit-qemu-{self.target.name}-")
                            if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.banner: str | None = None
        self.boots = 0
        self._pending: Link | None = None
        self._log_file = None
        self._boot_lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        if self.port is None:
            raise DeviceError("the board is not started")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.workdir / "qemu.log"

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def command(self, port: int) -> list[str]:
        cmd = [self.qemu, "-M", self.machine]
        if self.cpu:
            cmd += ["-cpu", self.cpu]
        cmd += ["-display", "none", "-monitor", "none",
                "-semihosting-config", "enable=on,target=native"]
        if self.icount:
            cmd += ["-icount", "shift=0"]
        if self.persistent_ram:
            ram = self.workdir / "ram.bin"
            cmd += ["-object", f"memory-backend-file,id=ekram,size={self._ram_size()},"
                               f"mem-path={ram},share=on",
                    "-machine", "memory-backend=ekram"]
        cmd += ["-kernel", str(self.elf),
                "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", *self.extra_args]
        return cmd

    def _ram_size(self) -> str:
        return "16M" if self.machine.startswith("mps2") else "2G" if self.machine == "mps3-an547" else "16M"

    # ------------------------------------------------------------------ life cycle
    def start(self) -> QemuBoard:
        """Start QEMU and wait for the boot banner."""
        with self._boot_lock:
            if self.running:
                return self
            last = ""
            for attempt in range(3):
                port = self.port if (self.port is not None and attempt == 0) else free_port()
                try:
                    self._launch(port)
                    return self
                except _PortBusy as exc:
                    last = str(exc)
                    continue
        raise DeviceError(f"QEMU {self.machine}: could not listen on a loopback port ({last})")

    def _launch(self, port: int) -> None:
        _install_sigterm()
        self._close_pending()
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n--- boot {self.boots + 1}: {' '.join(self.command(port))}\n".encode())
        self._log_file.flush()
        preexec = _pdeathsig if (sys.platform.startswith("linux")
                                 and threading.current_thread() is threading.main_thread()) else None
        self.proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
                                     preexec_fn=preexec)
        self.port = port
        with _LOCK:
            _LIVE.add(self)
        try:
            link = self._connect_first()
            self._pending = link
            self.boots += 1
        except BaseException:
            self._terminate(grace=0.2)
            raise

    def _connect_first(self) -> Link:
        deadline = time.monotonic() + self.boot_timeout
        url = self.url
        link = None
        while link is None:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if "Address already in use" in tail or "Failed to bind" in tail:
                    raise _PortBusy(tail.strip().splitlines()[-1] if tail.strip() else "port busy")
                raise DeviceError(f"QEMU {self.machine} exited with status {self.proc.returncode} "
                                  f"before listening on {url}:\n{tail}")
            try:
                link = open_link(url)
            except PortError:
                if time.monotonic() > deadline:
                    raise DeviceError(f"QEMU {self.machine} did not open {url} within "
                                      f"{self.boot_timeout:g} s:\n{self.log_tail()}") from None
                time.sleep(0.02)
        buf = bytearray()
        while True:
            left = deadline - time.monotonic()
            i = buf.find(P.BANNER_PREFIX)
            if i >= 0:
                j = buf.find(b"\x00", i)
                if j >= 0:
                    line = bytes(buf[i:j]).split(b"\n", 1)[0]
                    link.banner = line
                    self.banner = line.decode("ascii", "replace")
                    return link
            if left <= 0:
                link.close()
                raise DeviceError(f"QEMU {self.machine}: no boot banner from {self.elf.name} within "
                                  f"{self.boot_timeout:g} s (got {bytes(buf[:80])!r}):\n{self.log_tail()}")
            try:
                buf += link.read(min(left, 0.2))
            except LinkLostError:
                raise DeviceError(f"QEMU {self.machine} closed the serial port during boot "
                                  f"(exit status {self.proc.poll()}):\n{self.log_tail()}") from None

    def connect(self, timeout: float = 10.0) -> Link:
        """A link to the board's UART: the boot connection (banner already read) the
        first time, a new TCP connection afterwards (QEMU accepts one at a time)."""
        # A boot in progress (another thread) owns the first connection: wait for it.
        if not self._boot_lock.acquire(timeout=max(timeout, 0.0)):
            raise LinkLostError(f"QEMU {self.machine} is still booting after {timeout:g} s")
        self._boot_lock.release()
        if self._pending is not None and not self._pending.closed:
            link, self._pending = self._pending, None
            return link
        self._pending = None
        if not self.running:
            raise LinkLostError(f"QEMU {self.machine} is not running"
                                + (f" (exit status {self.proc.returncode})" if self.proc else ""))
        return open_link(self.url, connect_timeout=timeout)

    def kill(self) -> None:
        """Cut the power: SIGKILL to QEMU's process group, no goodbye."""
        self._terminate(grace=0.0)

    def restart(self) -> QemuBoard:
        """Power-cycle: kill QEMU if it runs, then boot again on the same port."""
        self.kill()
        return self.start()

    def stop(self, grace: float = 2.0) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL after ``grace`` s) and close the links."""
        self._terminate(grace)
        if self._own_workdir and os.environ.get("EDGEKIT_KEEP_QEMU_DIR") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _close_pending(self) -> None:
        if self._pending is not None:
            self._pending.close()
            self._pending = None

    def _terminate(self, grace: float) -> None:
        self._close_pending()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                pgid = os.getpgid(proc.pid)
            except ProcessLookupError:
                pgid = None
            sig_first = signal.SIGTERM if grace > 0 else signal.SIGKILL
            self._signal(proc, pgid, sig_first)
            try:
                proc.wait(timeout=grace if grace > 0 else 5)
            except subprocess.TimeoutExpired:
                self._signal(proc, pgid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _LOCK:
            _LIVE.discard(self)

    @staticmethod
    def _signal(proc, pgid, sig) -> None:
        try:
            if pgid is not None and pgid == proc.pid:  # our own session: the whole group
                os.killpg(pgid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> QemuBoard:
        try:
            return self.start()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ fails: remove the work folder here
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"QemuBoard({self.target.name}, {self.machine}, {self.elf.name}, {state})"


class _PortBusy(Exception):
    pass


def parse_device_spec(spec: str) -> str | None:
    """``qemu:cortex-m4`` -> ``cortex-m4``; anything else -> None."""
    if spec.startswith("qemu:"):
        name = spec[len("qemu:"):].strip()
        if not name:
            raise BadInputError("--device qemu:TARGET needs a target name, e.g. qemu:cortex-m4")
        return name
    return None
