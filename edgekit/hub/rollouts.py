"""Model updates at the hub (docs/updates.md): publish a bundle as a signed update to a
group of devices, keep its content-addressed chunks, and follow each device's rollout state
from the "deploy" records the devices send back.

Tables (registered with ``register_schema``, in the hub database, SQLite or PostgreSQL):

- ``hub_updates``: one row per update, its signed manifest (canonical JSON);
- ``hub_chunks``: chunk bytes by SHA-256 (content-addressed: a chunk two updates share is
  stored once);
- ``hub_groups``: group membership (``edgekit hub group add GROUP DEVICE...``);
- ``hub_rollouts``: (update, group) pairs: the update is offered to every device of the group.

A device is offered, per (model, target), the newest version rolled out to any of its
groups. Its state for an update is the newest "deploy" record it sent about it
(``fetching``, ``installed``, ``rejected``, ``failed``, with the reason), else ``offered``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from edgekit.bundle import BundleError, verify
from edgekit.errors import BadInputError
from edgekit.hub.db import register_schema
from edgekit.sync.signing import key_id, load_private_key, load_public_key, rotation_chain
from edgekit.sync.update_manifest import (
    CHUNK_SIZE,
    VERSION,
    decode_manifest,
    encode_manifest,
    make_manifest,
    version_tuple,
)

DEPLOY_STREAM = "deploy"
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _schema(blob: str) -> list:
    return [
        """CREATE TABLE IF NOT EXISTS hub_updates (
            update_id TEXT PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, target TEXT NOT NULL,
            created_ms BIGINT NOT NULL, manifest TEXT NOT NULL)""",
        f"CREATE TABLE IF NOT EXISTS hub_chunks (sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL, data {blob} NOT NULL)",
        "CREATE TABLE IF NOT EXISTS hub_groups (group_name TEXT NOT NULL, device_id TEXT NOT NULL, "
        "PRIMARY KEY (group_name, device_id))",
        """CREATE TABLE IF NOT EXISTS hub_rollouts (
            update_id TEXT NOT NULL, group_name TEXT NOT NULL, created_ms BIGINT NOT NULL,
            PRIMARY KEY (update_id, group_name))""",
        "CREATE INDEX IF NOT EXISTS hub_rollouts_by_group ON hub_rollouts (group_name)",
    ]


register_schema("hub.rollouts.v1", {"sqlite": _schema("BLOB"), "postgresql": _schema("BYTEA")})


def check_group(name: str) -> str:
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise BadInputError(f"group name {name!r}: letters, digits, '._:-', at most 64, not starting with one of those")
    return name


def add_to_group(store, group: str, devices) -> int:
    """Put devices in a group; returns how many were not in it already."""
    check_group(group)
    devices = list(devices)
    for d in devices:
        if not isinstance(d, str) or not d or "/" in d or "+" in d or "#" in d:
            raise BadInputError(f"device id {d!r} is not usable (no '/', '+', '#')")

    def work(db):
        added = 0
        for d in devices:
            added += db.execute("INSERT INTO hub_groups (group_name, device_id) VALUES (?, ?) "
                                "ON CONFLICT (group_name, device_id) DO NOTHING", (group, d)).rowcount
        return added
    return store.db.run_transaction(work)


def remove_from_group(store, group: str, devices) -> int:
    def work(db):
        return sum(db.execute("DELETE FROM hub_groups WHERE group_name = ? AND device_id = ?", (group, d)).rowcount
                   for d in devices)
    return store.db.run_transaction(work)


def groups(store) -> dict:
    out = {}
    for g, d in store.db.execute("SELECT group_name, device_id FROM hub_groups ORDER BY group_name, device_id"):
        out.setdefault(g, []).append(d)
    return out


def publish(store, bundle_path, group: str, *, key_dir, key_name: str, chunk_size: int = CHUNK_SIZE,
            clock=time.time) -> dict:
    """Sign ``bundle_path`` (an ``.ekb`` archive) as an update, store it and its chunks, and
    roll it out to ``group``, all in one transaction. Returns the manifest."""
    check_group(group)
    path = Path(bundle_path)
    if not path.is_file():
        raise BadInputError(f"{path}: publish takes a bundle archive (.ekb); compile with --out NAME.ekb")
    try:
        bundle = verify(path)
    except BundleError as exc:
        raise BadInputError(f"cannot publish {path}: {exc}") from None
    model = bundle.manifest.get("model") or {}
    name, version = model.get("name"), model.get("version")
    if not isinstance(name, str) or not name:
        raise BadInputError(f"{path}: the bundle names no model (model.name)")
    if version is None or not VERSION.match(str(version)):
        raise BadInputError(f"{path}: model version {version!r} is not dot-separated integers; compile with "
                            "--model-version N (devices refuse any version not newer than theirs)")
    version = str(version)
    private = load_private_key(key_dir, key_name)
    kid = key_id(load_public_key(Path(key_dir) / f"{key_name}.pub"))
    if key_id(private.public_key()) != kid:
        raise BadInputError(f"key {key_name}: {key_name}.pub is not the public half of {key_name}.key")
    data = path.read_bytes()
    manifest = make_manifest(data, model=name, version=version, target=bundle.target, engine=bundle.engine,
                             file_name=f"{name}-{version}.ekb", private_key=private, key_id=kid,
                             key_chain=rotation_chain(key_dir, key_name), chunk_size=chunk_size, clock=clock)

    def work(db):
        for row in db.execute("SELECT u.version FROM hub_rollouts r JOIN hub_updates u ON u.update_id = r.update_id "
                              "WHERE r.group_name = ? AND u.model = ? AND u.target = ?", (group, name, bundle.target)):
            if version_tuple(row[0]) >= version_tuple(version):
                raise BadInputError(f"group {group} already has {name} version {row[0]} for {bundle.target}: "
                                    f"version {version} would be refused by its devices as a rollback")
        db.execute("INSERT INTO hub_updates (update_id, model, version, target, created_ms, manifest) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (manifest["update_id"], name, version, bundle.target,
                                                 manifest["created_ms"], encode_manifest(manifest).decode("ascii")))
        for i, c in enumerate(manifest["chunks"]):
            db.execute("INSERT INTO hub_chunks (sha256, size, data) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                       (c["sha256"], c["size"], data[i * chunk_size:(i + 1) * chunk_size]))
        db.execute("INSERT INTO hub_rollouts (update_id, group_name, created_ms) VALUES (?, ?, ?)",
                   (manifest["update_id"], group, manifest["created_ms"]))
    store.db.run_transaction(work)
    return manifest


def manifest(store, update_id: str) -> dict | None:
    rows = store.db.execute("SELECT manifest FROM hub_updates WHERE update_id = ?", (update_id,))
    return decode_manifest(rows[0][0].encode("ascii")) if rows else None


def chunk(store, sha256: str) -> bytes | None:
    rows = store.db.execute("SELECT data FROM hub_chunks WHERE sha256 = ?", (sha256,))
    return bytes(rows[0][0]) if rows else None


def offers(store, device_id: str) -> list:
    """The manifests offered to a device: per (model, target), the newest version rolled
    out to any group it belongs to."""
    rows = store.db.execute(
        "SELECT DISTINCT u.update_id, u.model, u.target, u.version, u.manifest FROM hub_groups g "
        "JOIN hub_rollouts r ON r.group_name = g.group_name JOIN hub_updates u ON u.update_id = r.update_id "
        "WHERE g.device_id = ?", (device_id,))
    best = {}
    for uid, model, target, version, text in rows:
        k = (model, target)
        if k not in best or version_tuple(version) > version_tuple(best[k][0]):
            best[k] = (version, uid, text)
    return [json.loads(best[k][2]) for k in sorted(best)]


def _deploy_reports(store, device_id: str) -> dict:
    """{update_id: newest report dict} from a device's "deploy" records."""
    out, after = {}, None
    while True:
        page = store.records(device=device_id, stream=DEPLOY_STREAM, after_id=after, limit=1000)
        for r in page:
            try:
                doc = json.loads(r["payload"].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            uid = doc.get("update_id") if isinstance(doc, dict) else None
            if isinstance(uid, str):
                prev = out.get(uid)
                if prev is None or (r["created_ms"], r["id"]) >= prev[0]:
                    out[uid] = ((r["created_ms"], r["id"]), doc)
        if len(page) < 1000:
            break
        after = page[-1]["id"]
    return {uid: doc for uid, (_key, doc) in out.items()}


def rollout_status(store, update_id: str) -> list:
    """Each device the update is rolled out to: {"device_id", "group", "state", "reason"}."""
    rows = store.db.execute("SELECT g.device_id, g.group_name FROM hub_rollouts r JOIN hub_groups g "
                            "ON g.group_name = r.group_name WHERE r.update_id = ? ORDER BY g.device_id", (update_id,))
    out = []
    for device, group in rows:
        doc = _deploy_reports(store, device).get(update_id)
        state = "offered" if doc is None else str(doc.get("state", "unknown"))
        out.append({"device_id": device, "group": group, "state": state,
                    "reason": "" if doc is None else str(doc.get("reason", ""))})
    return out


def rollouts(store) -> list:
    """Every rollout, newest first, with a count of devices per state."""
    rows = store.db.execute("SELECT r.update_id, r.group_name, r.created_ms, u.model, u.version, u.target "
                            "FROM hub_rollouts r JOIN hub_updates u ON u.update_id = r.update_id "
                            "ORDER BY r.created_ms DESC, r.update_id")
    out = []
    for uid, group, created, model, version, target in rows:
        counts = {}
        for d in rollout_status(store, uid):
            if d["group"] == group:
                counts[d["state"]] = counts.get(d["state"], 0) + 1
        out.append({"update_id": uid, "group": group, "created_ms": created, "model": model, "version": version,
                    "target": target, "devices": counts})
    return out


def device_rollout_states(store) -> dict:
    """{device: "model version: state"} for each device in a group with an offer (what
    ``edgekit hub devices`` shows in its rollout column)."""
    out = {}
    devices = sorted({d for members in groups(store).values() for d in members})
    for device in devices:
        reports = _deploy_reports(store, device)
        parts = []
        for m in offers(store, device):
            doc = reports.get(m["update_id"])
            parts.append(f"{m['model']} {m['version']}: {'offered' if doc is None else doc.get('state')}")
        if parts:
            out[device] = "; ".join(parts)
    return out


def export_update(store, update_id: str, out_dir) -> Path:
    """Write an update for sneakernet: ``OUT/UPDATE_ID/manifest.json`` and
    ``OUT/UPDATE_ID/chunks/SHA256`` (each file written atomically; the manifest last, so a
    device never sees a manifest whose chunks are not all there)."""
    from edgekit.files import write_atomic

    m = manifest(store, update_id)
    if m is None:
        raise BadInputError(f"no update {update_id!r} at this hub (edgekit hub rollouts lists them)")
    root = Path(out_dir) / update_id
    for c in m["chunks"]:
        data = chunk(store, c["sha256"])
        if data is None:
            raise BadInputError(f"update {update_id}: chunk {c['sha256']} is missing from the hub database")
        write_atomic(root / "chunks" / c["sha256"], lambda f, data=data: f.write(data))
    write_atomic(root / "manifest.json", lambda f: f.write(encode_manifest(m)))
    return root


def publish_notice(manifest: dict, group: str, host: str, port: int, *, username=None, password=None,
                   ca_file=None, timeout_s: float = 10.0) -> None:
    """Publish the signed manifest as a retained QoS 1 notice on
    ``edgekit/v1/group/GROUP/down``: devices that subscribe get it now or at their next
    connection, and fetch the chunks over HTTP."""
    import paho.mqtt.client as mqtt

    from edgekit.sync.transports.mqtt import group_down_topic

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    if ca_file:
        client.tls_set(ca_certs=str(ca_file))
    try:
        client.connect(host, int(port))
    except OSError as exc:
        raise BadInputError(f"MQTT broker {host}:{port} cannot be reached: {exc}") from None
    client.loop_start()
    try:
        info = client.publish(group_down_topic(check_group(group)), encode_manifest(manifest), qos=1, retain=True)
        info.wait_for_publish(timeout=timeout_s)
        if not info.is_published():
            raise BadInputError(f"MQTT broker {host}:{port} did not confirm the notice within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
