"""The model repository (docs/serve.md): the bundles in the folders the daemon serves.

Each path given is a bundle (a folder with manifest.json, or an ``.ekb`` file) or a
folder whose entries are bundles. An entry is taken only when it is complete:

- names that are hidden (``.x``) or end in ``.part`` / ``.tmp`` are copies in progress
  and are skipped;
- its size and modification time (every file of a bundle folder) must be the same in
  two consecutive scans: a bundle still being written is left for a later scan;
- it must verify (``edgekit.bundle.verify``: format, member set, sizes, SHA-256 of every
  file). One that does not is reported with the reason and never activated; it is
  verified again only when it changes.

The model's name and version come from the manifest (``model.name``, ``model.version``;
a bundle compiled without ``--model-version`` is version "1").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

from edgekit.bundle import BundleError, is_bundle_path, verify
from edgekit.errors import BadInputError

DEFAULT_VERSION = "1"
# Entries that are copies in progress by their name (rsync, curl -o x.part, editors).
_PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".download")

log = logging.getLogger("edgekit.serve")


@dataclasses.dataclass(frozen=True)
class BundleEntry:
    """A complete, verified bundle in the repository."""

    path: Path
    name: str
    version: str
    digest: str            # SHA-256 of the manifest (which holds every file's SHA-256)
    target_family: str
    manifest: dict = dataclasses.field(compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class BadEntry:
    """A stable entry that failed to verify: ``reason`` says which check."""

    path: Path
    name: str
    reason: str


def version_key(version: str):
    """Sort key of a version string: dot-separated numbers compare as numbers ("10" after
    "9"), other parts as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(version).split("."))


def manifest_digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode("utf-8")).hexdigest()


class Repository:
    """Scans the repository paths; remembers fingerprints between scans for the stability
    rule and the result of each verification until the entry changes."""

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise BadInputError("give at least one bundle or model folder to serve")
        for p in self.paths:
            if not p.exists():
                raise BadInputError(f"model repository path {p} does not exist")
            if not p.is_dir() and not is_bundle_path(p):
                raise BadInputError(f"{p} is neither a bundle (a folder with manifest.json or an .ekb file) "
                                    "nor a folder of bundles")
        self._previous = {}      # path -> fingerprint at the last scan
        self._checked = {}       # path -> (fingerprint, BundleEntry | BadEntry)

    def scan(self):
        """One scan: (entries, bad, pending) for the entries stable since the previous scan;
        ``pending`` counts those first seen or changed now, which wait for the next one."""
        current = {}
        for path in self._candidates():
            fp = _fingerprint(path)
            if fp is not None:
                current[path] = fp
        entries, bad, pending = [], [], 0
        for path, fp in current.items():
            if self._previous.get(path) != fp:
                pending += 1
                continue
            cached = self._checked.get(path)
            if cached is None or cached[0] != fp:
                cached = (fp, _check(path))
                self._checked[path] = cached
            (entries if isinstance(cached[1], BundleEntry) else bad).append(cached[1])
        self._previous = current
        for gone in set(self._checked) - set(current):
            del self._checked[gone]
        return entries, bad, pending

    def _candidates(self):
        for root in self.paths:
            if is_bundle_path(root):
                yield root
                continue
            try:
                names = sorted(os.listdir(root))
            except OSError as exc:
                log.warning("cannot list model repository %s: %s", root, exc)
                continue
            for name in names:
                if name.startswith(".") or name.lower().endswith(_PARTIAL_SUFFIXES):
                    continue
                p = root / name
                if is_bundle_path(p):
                    yield p


def _fingerprint(path: Path):
    """(relative name, size, mtime) of every file of the entry; None when it vanished."""
    try:
        if path.is_file():
            st = path.stat()
            return (("", st.st_size, st.st_mtime_ns),)
        items = []
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                items.append((os.path.relpath(os.path.join(dirpath, f), path), st.st_size, st.st_mtime_ns))
        return tuple(sorted(items))
    except OSError:
        return None


def _check(path: Path):
    try:
        bundle = verify(path)
        model = bundle.manifest.get("model") or {}
        name = model.get("name")
        if not isinstance(name, str) or not name:
            raise BundleError(f"bundle {path}: manifest.json names no model (model.name)")
        version = model.get("version")
        version = DEFAULT_VERSION if version is None else str(version)
        if not version or "/" in version:
            raise BundleError(f"bundle {path}: model version {version!r} is not a usable version name")
        return BundleEntry(path, name, version, manifest_digest(bundle.manifest),
                           str(bundle.manifest.get("target_family", "")), bundle.manifest)
    except BundleError as exc:
        return BadEntry(path, path.name, str(exc))
    except OSError as exc:
        return BadEntry(path, path.name, f"bundle {path} is unreadable ({exc})")
