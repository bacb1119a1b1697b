"""The daemon's persisted state (docs/serve.md): per model, the version it serves and the
versions it rolled back with the reason, in ``STATE_DIR/state.json``.

The file is replaced atomically (``edgekit.files.write_atomic``: write, fsync, rename),
so a kill -9 at any instruction leaves the old state or the new one. A rolled-back
version is remembered with the digest of its bundle's manifest: the same bundle is not
retried on every poll or restart, a changed bundle of that version is.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.files import write_atomic

STATE_FILE = "state.json"
STATE_FORMAT = "edgekit-serve-state"
STATE_VERSION = 1

log = logging.getLogger("edgekit.serve")


class ServeState:
    """The state file of one service (or an in-memory one when ``state_dir`` is None)."""

    def __init__(self, state_dir=None):
        self.path = None if state_dir is None else Path(state_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._models = {}
        if self.path is not None:
            _check_writable(Path(state_dir))
            self._models = _read(self.path)

    def active(self, model: str) -> str | None:
        return self._models.get(model, {}).get("active")

    def rolled_back(self, model: str, version: str, digest: str) -> str | None:
        """The reason ``version`` of ``model`` was rolled back, when it was this very bundle."""
        entry = self._models.get(model, {}).get("rolled_back", {}).get(version)
        if entry and entry.get("digest") == digest:
            return entry.get("reason") or "rolled back"
        return None

    def set_active(self, model: str, version: str) -> None:
        with self._lock:
            self._models.setdefault(model, {})["active"] = version
            self._save()

    def add_rollback(self, model: str, version: str, digest: str, reason: str) -> None:
        with self._lock:
            entry = self._models.setdefault(model, {})
            entry.setdefault("rolled_back", {})[version] = {"digest": digest, "reason": reason,
                                                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION, "models": self._models},
                          indent=1, sort_keys=True).encode("utf-8") + b"\n"
        try:
            write_atomic(self.path, lambda f: f.write(body))
        except OSError as exc:
            # Serving goes on; only the memory of this change across a restart is lost.
            log.error("cannot write the state file %s: %s", self.path, exc)


def _check_writable(state_dir: Path) -> None:
    if state_dir.exists() and not state_dir.is_dir():
        raise BadInputError(f"state directory {state_dir} is a file, not a folder")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"state directory {state_dir}: cannot create it ({exc.strerror})") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise BadInputError(f"state directory {state_dir} is not writable")


def _read(path: Path) -> dict:
    """The models of a state file; an unreadable one is logged and ignored (the daemon
    then picks versions as on a first start) rather than keeping the daemon down."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("state file %s is unreadable (%s); starting without it", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT or not isinstance(data.get("models"), dict):
        log.warning("state file %s is not an %s file; starting without it", path, STATE_FORMAT)
        return {}
    return {str(k): v for k, v in data["models"].items() if isinstance(v, dict)}
