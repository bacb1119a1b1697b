"""Signed updates for the update tests: keys, bundles compiled through the public API, and
an update written to a folder the way ``edgekit hub export-update`` lays it out."""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.bundle import compile_bundle
from edgekit.sync.signing import create_key, load_private_key, rotation_chain
from edgekit.sync.update_manifest import encode_manifest, make_manifest
from tests.serve.conftest import tiny_graph

SMALL_CHUNK = 256      # the smallest chunk size: a tiny bundle spans several chunks


class RecordingQueue:
    """What the update client needs of a SyncQueue (enqueue), keeping what it was given."""

    def __init__(self):
        self.records = []

    def enqueue(self, stream, payload, *, priority=2, lifetime_s=None):
        self.records.append((stream, json.loads(payload), priority))
        return str(len(self.records))

    def states(self):
        return [r[1]["state"] for r in self.records]


def compile_tiny(out_dir: Path, name: str, version: str, target: str = "x86_64") -> Path:
    out = Path(out_dir) / f"{name}-{version}-{target}.ekb"
    if not out.exists():
        compile_bundle(tiny_graph(name, version), target, out, backend="litert", model_version=version)
    return out


def signed_update(bundle: Path, key_dir: Path, key: str, *, name: str, version: str, target: str = "x86_64",
                  engine: str = "litert", chunk_size: int = SMALL_CHUNK) -> dict:
    from edgekit.sync.signing import key_id, load_public_key

    private = load_private_key(key_dir, key)
    return make_manifest(bundle.read_bytes(), model=name, version=version, target=target, engine=engine,
                         file_name=f"{name}-{version}.ekb", private_key=private,
                         key_id=key_id(load_public_key(key_dir / f"{key}.pub")),
                         key_chain=rotation_chain(key_dir, key), chunk_size=chunk_size)


def export_update(manifest: dict, bundle_bytes: bytes, out_dir: Path) -> Path:
    """The folder layout DirUpdateSource reads: UPDATE_ID/manifest.json, UPDATE_ID/chunks/SHA."""
    root = Path(out_dir) / manifest["update_id"]
    (root / "chunks").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_bytes(encode_manifest(manifest))
    size = manifest["chunk_size"]
    for i, c in enumerate(manifest["chunks"]):
        (root / "chunks" / c["sha256"]).write_bytes(bundle_bytes[i * size:(i + 1) * size])
    return root


def trust_dir_with(key_dir: Path, key: str, trust: Path) -> Path:
    trust.mkdir(parents=True, exist_ok=True)
    (trust / f"{key}.pub").write_bytes((key_dir / f"{key}.pub").read_bytes())
    return trust


def new_key(key_dir: Path, name: str) -> dict:
    return create_key(key_dir, name)
