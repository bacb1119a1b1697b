"""A real Mosquitto broker on loopback for the sync tests (tests/sync/conftest.py's
``mosquitto_broker`` fixture, and the CLI tests that need a broker).

It starts /usr/sbin/mosquitto (Debian's ``mosquitto`` package; the Makefile's
scripts/install_system_deps.sh installs it) with a generated config on a free loopback
port, persistence on in the given folder, so a stop/start keeps persistent sessions and
queued QoS 1 messages (a clean stop saves them; ``kill()`` is kill -9, after which only
what the last autosave wrote survives).
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker:
    """One Mosquitto process on 127.0.0.1:``port``; stop/start/restart keep the port and
    the persistence folder."""

    host = "127.0.0.1"

    def __init__(self, folder: Path, *, port: int | None = None, extra_config: str = "", allow_anonymous: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        (self.folder / "data").mkdir(exist_ok=True)
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            # Started as root, mosquitto would switch to the user 'mosquitto', who cannot
            # read pytest's private temporary folders: it stays the user who runs the tests.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "persistence true\n"
            f"persistence_location {self.folder / 'data'}/\n"
            "autosave_interval 1\n"            # seconds: a kill -9 loses at most about a second
            "max_queued_messages 1000000\n"    # a device offline for long has many acks waiting
            "max_inflight_messages 100\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + extra_config)  # listener options (TLS files, password_file) go after the listener line
        self.process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not _accepting(self.host, self.port):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {err}{log}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """A clean stop (SIGTERM): the broker saves its sessions and queued messages."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._close_pipes()

    def kill(self) -> None:
        """kill -9: what the broker had not saved yet is gone."""
        if self.running:
            self.process.kill()
            self.process.wait(5)
        self._close_pipes()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
