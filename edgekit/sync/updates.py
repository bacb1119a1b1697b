"""The device's side of signed model updates (docs/updates.md): fetch an update's chunks
resumably, verify everything, and hand the bundle to ``edgekit serve`` by renaming it into
the folder serve watches.

    client = UpdateClient(state_dir, trust_dir, repository_dir, targets=["rpi4"], queue=queue)
    client.run_once(HttpUpdateSource("https://hub:8443", device_id, token=...))
    client.run_once(DirUpdateSource("/media/usb/updates"))      # sneakernet

Checks, in order; the first that fails rejects the update (reported upstream on stream
"deploy", remembered so the same update is not retried or reported again, never
activated): the manifest's format, its Ed25519 signature against the trust store (through
the manifest's rotation chain), the target (one of ``targets``: the device's own, and on a
gateway the boards behind it), the version (newer than the highest installed for that model,
persisted: anti-rollback across restarts), every chunk's size and SHA-256, the whole bundle's
SHA-256 and size, then ``edgekit.bundle.verify`` of the assembled archive and its manifest's
model, version, target and engine against the update's.

Every state change is atomic: each verified chunk is written to its own file
(write, fsync, rename) under ``state_dir/partial/UPDATE_ID/``, so a kill -9 or a lost link
resumes at the first missing chunk; the bundle is assembled in a hidden ``.NAME.tmp`` in the
repository folder (serve skips hidden and ``.tmp`` names) and renamed into place only after
every check; ``updates.json`` (highest version per model, outcome per update) is replaced
atomically after the rename.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from edgekit.bundle import BundleError, verify
from edgekit.errors import BadInputError, EdgekitError
from edgekit.files import write_atomic
from edgekit.sync.signing import SignatureError, TrustStore
from edgekit.sync.update_manifest import (
    FORMAT,
    UpdateFormatError,
    check_chunk,
    decode_manifest,
    encode_manifest,
    signed_bytes,
    version_tuple,
)

DEPLOY_STREAM = "deploy"
STATE_FILE = "updates.json"
MAX_UNSIGNED_OUTCOMES = 256


class UpdateFetchError(EdgekitError):
    """A chunk or an offer list could not be fetched now (link down, hub unreachable): the
    update stays where it got to and is resumed on the next run."""


@dataclasses.dataclass(frozen=True)
class UpdateResult:
    update_id: str | None
    model: str | None
    version: str | None
    state: str               # "installed" | "rejected" | "failed" (serve refused it) | "pending" (resume later)
    reason: str = ""
    path: str | None = None


class DirUpdateSource:
    """Updates on a folder (a USB stick): ``edgekit hub export-update`` writes
    ``UPDATE_ID/manifest.json`` and ``UPDATE_ID/chunks/SHA256`` there. ``root`` is that
    folder, or one ``UPDATE_ID`` folder inside it."""

    def __init__(self, root):
        root = Path(root)
        if not root.is_dir():
            raise BadInputError(f"update folder {root} does not exist")
        # one update's own folder: its parent is the export folder
        self.root, self._only = (root.parent, root.name) if (root / "manifest.json").is_file() else (root, None)

    def offers(self) -> list:
        pattern = f"{self._only}/manifest.json" if self._only else "*/manifest.json"
        return [p.read_bytes() for p in sorted(self.root.glob(pattern))]

    def chunk(self, manifest: dict, sha256: str) -> bytes:
        # the chunk is looked up under the manifest's id; whatever is there is checked against the manifest
        path = self.root / manifest["update_id"] / "chunks" / sha256
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise UpdateFetchError(f"chunk {sha256} is not in {path.parent}") from None


class HttpUpdateSource:
    """Updates from the hub's HTTP API: ``GET /v1/devices/{id}/updates`` (the manifests on
    offer) and ``GET /v1/chunks/{sha256}``. Standard library only (urllib): a device needs
    no HTTP package for it."""

    MAX_RESPONSE = 64 << 20

    def __init__(self, url: str, device_id: str, *, token: str | None = None, ca_file=None,
                 timeout_s: float = 30.0):
        if not url.startswith(("http://", "https://")):
            raise BadInputError(f"hub URL {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        self.url = url.rstrip("/")
        self.device_id = device_id
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None

    def _get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context) as r:
                data = r.read(self.MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            raise UpdateFetchError(f"GET {path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise UpdateFetchError(f"GET {path} failed: {exc}") from None
        if len(data) > self.MAX_RESPONSE:
            raise UpdateFetchError(f"GET {path}: the answer is over {self.MAX_RESPONSE} bytes")
        return data

    def offers(self) -> list:
        data = self._get(f"/v1/devices/{urllib.parse.quote(self.device_id, safe='')}/updates")
        try:
            doc = json.loads(data)
            return [encode_manifest(m) if isinstance(m, dict) else b"" for m in doc["updates"]]
        except (ValueError, KeyError, TypeError):
            raise UpdateFetchError("the hub's offer list is not {\"updates\": [...]} JSON") from None

    def chunk(self, manifest: dict, sha256: str) -> bytes:
        return self._get(f"/v1/chunks/{sha256}")


def manifests_from_downlink(messages) -> list:
    """The update manifests among downlink messages (MQTT ``.../down`` notices carry the
    signed manifest as it is); other messages are left to their own readers."""
    out = []
    for m in messages:
        try:
            if json.loads(m).get("format") == FORMAT:
                out.append(bytes(m))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            continue
    return out


class UpdateClient:
    """Installs signed updates into a serve repository folder; see the module docstring."""

    def __init__(self, state_dir, trust_dir, repository_dir, *, targets, queue=None, activation=None,
                 activation_timeout_s: float = 60.0, clock=time.time, sleep=time.sleep):
        self.trust = TrustStore(trust_dir)
        self.repository_dir = Path(repository_dir)
        if not self.repository_dir.is_dir():
            raise BadInputError(f"serve repository folder {self.repository_dir} does not exist")
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise BadInputError("an update client needs the target(s) it installs for")
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.queue = queue
        self.activation = activation            # (model, version) -> ("ready"|"failed"|None, reason)
        self.activation_timeout_s = activation_timeout_s
        self.clock, self.sleep = clock, sleep
        self._state = self._load_state()

    # -- persisted state -----------------------------------------------------------------

    def _load_state(self) -> dict:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return {"highest": {}, "outcomes": {}}
        try:
            doc = json.loads(path.read_text())
            if not isinstance(doc.get("highest"), dict) or not isinstance(doc.get("outcomes"), dict):
                raise ValueError("fields missing")
            return doc
        except (ValueError, AttributeError, OSError) as exc:
            # refusing to run beats forgetting the highest version (that would reopen rollback)
            raise BadInputError(f"update state {path} is unreadable ({exc}): restore it or remove it knowingly") \
                from None

    def _save_state(self) -> None:
        # outcomes of unsigned junk (kept by the hash of its bytes) are bounded: anyone who can
        # reach the downlink could send them; outcomes of signed updates are kept
        junk = sorted((v["time_ms"], k) for k, v in self._state["outcomes"].items() if k.startswith("sha256:"))
        for _t, k in junk[:max(0, len(junk) - MAX_UNSIGNED_OUTCOMES)]:
            del self._state["outcomes"][k]
        data = json.dumps(self._state, sort_keys=True, indent=1).encode()
        write_atomic(self.state_dir / STATE_FILE, lambda f: f.write(data))

    def highest_version(self, model: str) -> str | None:
        return self._state["highest"].get(model)

    def outcome(self, update_id: str) -> dict | None:
        return self._state["outcomes"].get(update_id)

    # -- reporting -----------------------------------------------------------------------

    def _report(self, result: UpdateResult, *, priority: int = 1) -> None:
        if self.queue is None:
            return
        doc = {"update_id": result.update_id, "model": result.model, "version": result.version,
               "state": result.state, "reason": result.reason, "targets": self.targets,
               "time_ms": int(self.clock() * 1000)}
        self.queue.enqueue(DEPLOY_STREAM, json.dumps(doc, sort_keys=True).encode(), priority=priority)

    def _final(self, m: dict | None, state: str, reason: str = "", path=None, *,
               key: str | None = None) -> UpdateResult:
        """Record and report an outcome. ``key`` is what the outcome is remembered under:
        the update id once the signature holds, else the SHA-256 of the bytes received, so a
        forged manifest reusing a genuine update's id cannot block the genuine one."""
        uid = m.get("update_id") if m else None
        result = UpdateResult(uid, m.get("model") if m else None, m.get("version") if m else None,
                              state, reason, str(path) if path else None)
        self._state["outcomes"][key or uid] = {"state": state, "reason": reason, "time_ms": int(self.clock() * 1000)}
        self._save_state()
        if uid is not None and key is None:
            shutil.rmtree(self.state_dir / "partial" / uid, ignore_errors=True)
        self._report(result)
        return result

    # -- the work ------------------------------------------------------------------------

    def run_once(self, source) -> list:
        """Apply every offered update this device has no outcome for yet."""
        return [r for r in (self.apply(raw, source) for raw in source.offers()) if r is not None]

    def apply(self, raw: bytes, source) -> UpdateResult | None:
        """Check, fetch and install one update (manifest bytes). None when it already has an
        outcome here; an UpdateResult otherwise ("pending" when a chunk could not be fetched)."""
        raw_key = "sha256:" + hashlib.sha256(bytes(raw)).hexdigest()
        if raw_key in self._state["outcomes"]:
            return None
        try:
            m = decode_manifest(raw)
        except UpdateFormatError as exc:
            uid = _peek_update_id(raw)
            return self._final({"update_id": uid} if uid else None, "rejected", f"malformed manifest: {exc}",
                               key=raw_key)
        if m["update_id"] in self._state["outcomes"]:
            return None
        try:
            rotations = self.trust.verify(signed_bytes(m), base64.b64decode(m["signature"]), m["key_id"],
                                          m.get("key_chain", []))
        except SignatureError as exc:
            return self._final(m, "rejected", str(exc), key=raw_key)
        if m["target"] not in self.targets:
            return self._final(m, "rejected", f"update is for target {m['target']!r}; this device installs for "
                                              f"{', '.join(self.targets)}")
        highest = self.highest_version(m["model"])
        if highest is not None and version_tuple(m["version"]) <= version_tuple(highest):
            return self._final(m, "rejected", f"version {m['version']} of {m['model']} is not newer than the "
                                              f"installed {highest} (rollback refused)")
        self.trust.learn(rotations)
        partial = self.state_dir / "partial" / m["update_id"]
        if not partial.exists():
            # reported before the folder exists: a kill in between reports "fetching" twice, never not at all
            self._report(UpdateResult(m["update_id"], m["model"], m["version"], "fetching"), priority=2)
            write_atomic(partial / "manifest.json", lambda f: f.write(encode_manifest(m)))
        try:
            self._fetch(m, source, partial)
        except UpdateFetchError as exc:
            return UpdateResult(m["update_id"], m["model"], m["version"], "pending", str(exc))
        except UpdateFormatError as exc:
            return self._final(m, "rejected", str(exc))
        return self._install(m, partial)

    def _fetch(self, m: dict, source, partial: Path) -> None:
        for i, c in enumerate(m["chunks"]):
            path = partial / f"{i}.chunk"
            if path.exists():
                try:            # resumed: a chunk file is only ever renamed in whole and verified
                    check_chunk(m, i, path.read_bytes())
                    continue
                except UpdateFormatError:
                    path.unlink()
            data = check_chunk(m, i, source.chunk(m, c["sha256"]))
            write_atomic(path, lambda f, data=data: f.write(data))

    def _install(self, m: dict, partial: Path) -> UpdateResult:
        final = self.repository_dir / m["bundle"]["file"]
        tmp = self.repository_dir / f".{final.name}.tmp"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                for i in range(len(m["chunks"])):
                    data = (partial / f"{i}.chunk").read_bytes()
                    digest.update(data)
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if digest.hexdigest() != m["bundle"]["sha256"] or tmp.stat().st_size != m["bundle"]["size"]:
                raise UpdateFormatError("assembled bundle's sha256 or size differs from the manifest's")
            bundle = verify(tmp, target=m["target"], engine=m["engine"])
            model = bundle.manifest.get("model") or {}
            if model.get("name") != m["model"] or str(model.get("version")) != m["version"]:
                raise UpdateFormatError(f"bundle holds {model.get('name')!r} version {model.get('version')!r}, "
                                        f"the update says {m['model']!r} version {m['version']!r}")
        except (UpdateFormatError, BundleError) as exc:
            tmp.unlink(missing_ok=True)
            return self._final(m, "rejected", f"bundle check failed: {exc}")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, final)
        _fsync_dir(self.repository_dir)
        # after the rename: a kill before this line installs the same bytes again next run
        self._state["highest"][m["model"]] = m["version"]
        state, reason = self._await_activation(m)
        return self._final(m, state, reason, final)

    def _await_activation(self, m: dict) -> tuple:
        if self.activation is None:
            return "installed", "handed to serve"
        deadline = self.clock() + self.activation_timeout_s
        while True:
            state, reason = self.activation(m["model"], m["version"])
            if state == "ready":
                return "installed", "serving after its self-test"
            if state == "failed":
                return "failed", f"serve rolled it back: {reason}"
            if self.clock() >= deadline:
                return "installed", f"handed to serve; not serving after {self.activation_timeout_s:g} s"
            self.sleep(0.2)


def _peek_update_id(raw) -> str | None:
    try:
        uid = json.loads(raw).get("update_id")
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return uid if isinstance(uid, str) and len(uid) == 32 and all(ch in "0123456789abcdef" for ch in uid) else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
