"""``edgekit hub publish|rollouts|group|export-update``: signed model updates at the hub
(edgekit.hub.rollouts; docs/updates.md). Joined to the ``hub`` group by hub_cmd."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from edgekit.cli.keys_cmd import DEFAULT_DIR as DEFAULT_KEYS_DIR
from edgekit.errors import BadInputError, EdgekitError

DB_HELP = ("Hub database: sqlite:///hub.db (relative path), sqlite:////abs/hub.db or postgresql://user@host/db. "
           "Environment: EDGEKIT_HUB_DB.")


def _db_option(f):
    return click.option("--db", "db_url", envvar="EDGEKIT_HUB_DB", default="sqlite:///hub.db", show_default=True,
                        metavar="URL", help=DB_HELP)(f)


def _store(db_url: str, *, must_exist: bool):
    from edgekit.hub import Database, HubStore

    if must_exist and db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).exists():
        raise BadInputError(f"no hub database at {db_url[len('sqlite:///'):]} (--db, or EDGEKIT_HUB_DB)")
    return HubStore(Database(db_url))


def _host_port(value: str) -> tuple:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInputError(f"--mqtt {value!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host.strip("[]"), int(port)


@click.command("publish")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--to", "group", required=True, metavar="GROUP", help="Group of devices to roll the update out to.")
@click.option("--key", "key_name", required=True, metavar="NAME", help="Signing key (edgekit keys create NAME).")
@click.option("--keys-dir", type=click.Path(file_okay=False, path_type=Path), envvar="EDGEKIT_KEYS_DIR",
              default=DEFAULT_KEYS_DIR, show_default=True, help="Key folder (or $EDGEKIT_KEYS_DIR).")
@_db_option
@click.option("--mqtt", "mqtt_addr", metavar="HOST:PORT",
              help="Also publish a retained notice with the signed manifest on edgekit/v1/group/GROUP/down.")
@click.option("--chunk-size", type=click.IntRange(256, 16 << 20), default=64 * 1024, show_default=True,
              help="Bytes per content-addressed chunk.")
def publish_cmd(bundle, group, key_name, keys_dir, db_url, mqtt_addr, chunk_size) -> None:
    """Sign BUNDLE (an .ekb compiled with --model-version N) as an update and roll it out
    to the devices of GROUP.

    \b
    edgekit hub publish kws-3.ekb --to field --key hub-2026 --db sqlite:///hub.db
    """
    from edgekit.hub import rollouts

    mqtt = _host_port(mqtt_addr) if mqtt_addr else None
    if not bundle.is_file():
        raise BadInputError(f"{bundle}: publish takes a bundle archive (.ekb); compile with --out NAME.ekb")
    store = _store(db_url, must_exist=False)
    try:
        m = rollouts.publish(store, bundle, group, key_dir=keys_dir, key_name=key_name, chunk_size=chunk_size)
    finally:
        store.db.close()
    click.echo(f"update {m['update_id']}: {m['model']} version {m['version']} for {m['target']}, "
               f"{m['bundle']['size']} bytes in {len(m['chunks'])} chunk(s), signed by {m['key_id']}, "
               f"rolled out to group {group}")
    if mqtt is not None:
        try:
            rollouts.publish_notice(m, group, *mqtt)
        except BadInputError as exc:
            # the rollout is stored: devices polling over HTTP get it; only the push failed
            raise EdgekitError(f"update {m['update_id']} is stored and rolled out, but its MQTT notice failed: {exc}"
                               ) from None
        click.echo(f"notice retained on edgekit/v1/group/{group}/down at {mqtt_addr}")


def _when(ms) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@click.command("rollouts")
@click.argument("update_id", required=False)
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rollouts_cmd(update_id, db_url, as_json) -> None:
    """Every rollout with its devices per state; with UPDATE_ID, each device's state
    (offered, fetching, installed, rejected, failed) and reason."""
    from edgekit.hub import rollouts

    store = _store(db_url, must_exist=True)
    try:
        if update_id is not None:
            if rollouts.manifest(store, update_id) is None:
                raise BadInputError(f"no update {update_id!r} at this hub")
            rows = rollouts.rollout_status(store, update_id)
        else:
            rows = rollouts.rollouts(store)
    finally:
        store.db.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if update_id is not None:
        for d in rows:
            click.echo(f"{d['device_id']:<24} {d['group']:<16} {d['state']:<10} {d['reason']}")
        return
    if not rows:
        click.echo("no rollouts (edgekit hub publish BUNDLE --to GROUP --key NAME)")
    for r in rows:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r["devices"].items())) or "no devices in the group"
        click.echo(f"{r['update_id']}  {_when(r['created_ms'])}  {r['model']} {r['version']} ({r['target']}) "
                   f"-> {r['group']}: {counts}")


@click.group("group")
def group_cmd() -> None:
    """Groups of devices that updates are rolled out to."""


@group_cmd.command("add")
@click.argument("group")
@click.argument("devices", nargs=-1, required=True)
@_db_option
def group_add(group, devices, db_url) -> None:
    """Put DEVICES in GROUP."""
    from edgekit.hub import rollouts

    store = _store(db_url, must_exist=False)
    try:
        added = rollouts.add_to_group(store, group, devices)
    finally:
        store.db.close()
    click.echo(f"group {group}: {added} device(s) added, {len(devices) - added} already in it")


@group_cmd.command("remove")
@click.argument("group")
@click.argument("devices", nargs=-1, required=True)
@_db_option
def group_remove(group, devices, db_url) -> None:
    """Take DEVICES out of GROUP (they keep what they installed; they are offered nothing new)."""
    from edgekit.hub import rollouts

    store = _store(db_url, must_exist=True)
    try:
        removed = rollouts.remove_from_group(store, group, devices)
    finally:
        store.db.close()
    click.echo(f"group {group}: {removed} device(s) removed")


@group_cmd.command("list")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def group_list(db_url, as_json) -> None:
    """Every group and its devices."""
    from edgekit.hub import rollouts

    store = _store(db_url, must_exist=True)
    try:
        found = rollouts.groups(store)
    finally:
        store.db.close()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for g, members in found.items():
        click.echo(f"{g}: {' '.join(members)}")


@click.command("export-update")
@click.argument("update_id")
@click.option("--to", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder (a USB stick) to write UPDATE_ID/manifest.json and UPDATE_ID/chunks/ into.")
@_db_option
def export_update_cmd(update_id, out_dir, db_url) -> None:
    """Write an update for devices without a link: carry the folder over and run
    `edgekit sync apply-update DIR` on the device."""
    from edgekit.hub import rollouts

    store = _store(db_url, must_exist=True)
    try:
        root = rollouts.export_update(store, update_id, out_dir)
    finally:
        store.db.close()
    click.echo(f"update {update_id} written to {root}")


UPDATE_COMMANDS = (publish_cmd, rollouts_cmd, group_cmd, export_update_cmd)
