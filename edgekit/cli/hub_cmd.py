"""``edgekit hub``: the hub's commands (docs/hub.md): ``serve`` (MQTT ingest workers and the
HTTP API), ``import`` (exported batch files), ``devices`` (the fleet view).

Every option is checked before anything connects or listens: a bad one exits 2 with one line.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys

import click

from edgekit.errors import BadInputError

DB_OPTION_HELP = "Hub database: sqlite:///hub.db (relative path), sqlite:////abs/hub.db or postgresql://user@host/db."


def _check_installed(mqtt: bool = False) -> None:
    needed = ["zstandard", "starlette", "uvicorn"] + (["paho"] if mqtt else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if sys.version_info < (3, 10) or missing:
        have = f"Python {sys.version_info[0]}.{sys.version_info[1]}" + (f" without {', '.join(missing)}"
                                                                        if missing else "")
        raise BadInputError(f"edgekit hub needs Python 3.10+ and pip install 'edgekit[hub]' ({have})")


def parse_host_port(value: str, option: str) -> tuple:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInputError(f"{option} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host.strip("[]"), int(port)


def db_option(f):
    return click.option("--db", "db_url", envvar="EDGEKIT_HUB_DB", default="sqlite:///hub.db", show_default=True,
                        metavar="URL", help=DB_OPTION_HELP + " Environment: EDGEKIT_HUB_DB.")(f)


def _open_store(db_url: str, *, must_exist: bool = False):
    from pathlib import Path

    from edgekit.hub import Database, HubStore

    if must_exist and db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).exists():
        raise BadInputError(f"no hub database at {db_url[len('sqlite:///'):]} (--db, or EDGEKIT_HUB_DB)")
    return HubStore(Database(db_url))


@click.group("hub")
def hub() -> None:
    """The hub: ingest of device batches (MQTT, HTTP, files), storage, fleet view (docs/hub.md)."""


@hub.command("serve")
@db_option
@click.option("--mqtt", "mqtt_addr", metavar="HOST:PORT", help="MQTT 5 broker to take batches from.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="MQTT worker processes sharing the subscription $share/edgekit-hub/edgekit/v1/+/up.")
@click.option("--mqtt-username", metavar="NAME", help="MQTT user name.")
@click.option("--mqtt-password-env", metavar="VAR", help="Environment variable holding the MQTT password.")
@click.option("--mqtt-ca-file", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate: connect to the broker over TLS.")
@click.option("--http-port", type=click.IntRange(0, 65535), metavar="N",
              help="Serve the HTTP API (POST /v1/ingest, GET /v1/devices) on this port.")
@click.option("--http-host", default="127.0.0.1", show_default=True, help="Address the HTTP API listens on.")
@click.option("--token-file", metavar="FILE", help="Require 'Authorization: Bearer <token>' on the HTTP API.")
def serve_cmd(db_url, mqtt_addr, workers, mqtt_username, mqtt_password_env, mqtt_ca_file, http_port, http_host,
              token_file) -> None:
    """Take batches from devices until SIGTERM: MQTT worker processes (--mqtt, --workers)
    and/or the HTTP API (--http-port), storing each record once in --db.

    \b
    edgekit hub serve --db sqlite:///hub.db --mqtt 127.0.0.1:1883 --workers 2
    edgekit hub serve --db postgresql://hub@db/hub --http-port 8443 --token-file token
    """
    import logging
    import os

    _check_installed(mqtt=mqtt_addr is not None)
    if mqtt_addr is None and http_port is None:
        raise BadInputError("edgekit hub serve needs --mqtt HOST:PORT, --http-port N or both")
    mqtt = parse_host_port(mqtt_addr, "--mqtt") if mqtt_addr else None
    options = {}
    if mqtt_username:
        options["username"] = mqtt_username
    if mqtt_password_env:
        if mqtt_password_env not in os.environ:
            raise BadInputError(f"--mqtt-password-env {mqtt_password_env}: that variable is not set")
        options["password"] = os.environ[mqtt_password_env]
    if mqtt_ca_file:
        options["tls_ca_file"] = mqtt_ca_file
    token = None
    if token_file:
        from edgekit.cli.serve_cmd import read_token

        token = read_token(token_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from edgekit.hub.server import serve_hub

    serve_hub(db_url, mqtt=mqtt, workers=workers, http=(http_host, http_port) if http_port is not None else None,
              token=token, mqtt_options=options)


@hub.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="FILE_OR_DIR...")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def import_cmd(paths, db_url, as_json) -> None:
    """Store exported batch files (from edgekit sync export; a folder: its *.ekbatch files)
    and write an ack file (.ekack) beside each, to carry back to the device. Importing a
    file again stores nothing new. Every file is checked before any is stored."""
    _check_installed()
    from edgekit.hub.ingest import batch_files, import_file
    from edgekit.sync.wire import WireFormatError, decode_batch

    files = batch_files(paths)
    if not files:
        raise BadInputError(f"no batch files (*.ekbatch) in {', '.join(paths)}")
    for f in files:  # all or nothing: a bad file stops the import before anything is stored
        try:
            decode_batch(f.read_bytes())
        except WireFormatError as exc:
            raise WireFormatError(f"{f}: {exc}") from exc
        except OSError as exc:
            raise BadInputError(f"{f}: cannot be read: {exc}") from exc
    store = _open_store(db_url)
    try:
        results = [import_file(store, f) for f in files]
    finally:
        store.db.close()
    if as_json:
        click.echo(json.dumps([{"file": str(r.path), "device": r.device_id, "seq": r.seq, "new": r.new,
                                "duplicates": r.duplicates, "ack": str(r.ack_path)} for r in results], indent=2))
        return
    for r in results:
        click.echo(f"{r.path}: device {r.device_id} batch {r.seq}: {r.new} new, {r.duplicates} already stored; "
                   f"ack {r.ack_path.name}")
    click.echo(f"{len(results)} file(s), {sum(r.new for r in results)} new record(s)")


def _when(ms) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _opt(value) -> str:
    return "-" if value is None else str(value)


@hub.command("devices")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the devices as JSON.")
def devices_cmd(db_url, as_json) -> None:
    """The fleet: each device's last contact, backlog, drops, model version and rollout state."""
    from rich.table import Table

    from edgekit.cli.common import make_console

    store = _open_store(db_url, must_exist=True)
    try:
        devices = store.devices()
    finally:
        store.db.close()
    if as_json:
        click.echo(json.dumps({"devices": devices}, indent=2, default=str))
        return
    table = Table(title=f"{len(devices)} device(s)")
    for col in ("device", "last seen (UTC)", "backlog", "dropped", "expired", "refused", "records", "model version",
                "deploy", "rollout"):
        table.add_column(col, justify="right" if col in ("backlog", "dropped", "expired", "refused", "records")
                         else "left")
    for d in devices:
        backlog = "-" if d["backlog_records"] is None else f"{d['backlog_records']} ({d['backlog_bytes']} B)"
        table.add_row(d["device_id"], _when(d["last_seen_ms"]), backlog, str(d["dropped"]), str(d["expired"]),
                      str(d["refused"]), str(d["records"]), _opt(d["model_version"]), _opt(d["deploy_state"]),
                      _opt(d["rollout"]))
    make_console().print(table)


def _parse_when(value: str | None, option: str) -> int | None:
    """An ISO 8601 time (UTC unless it says otherwise) -> unix ms."""
    if value is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"{option} {value!r}: expected an ISO 8601 time, e.g. 2026-12-01 or "
                            "2026-12-01T08:00:00+01:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp() * 1000)


@hub.command("export-records")
@db_option
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="JSON Lines file to write (replaced atomically).")
@click.option("--stream", help="Only this stream, e.g. captures (the data capture of edgekit serve).")
@click.option("--device", help="Only this device.")
@click.option("--since", help="Only records created at or after this time (ISO 8601, UTC by default).")
@click.option("--until", help="Only records created before this time.")
def export_records_cmd(db_url, out_path, stream, device, since, until) -> None:
    """Write stored records as JSON Lines, oldest first, for labelling or analysis: one
    object per record with id, device, stream, priority, created_ms, expires_ms, received_ms
    and the payload in base64 (``payload_b64``), plus ``payload_json`` when the payload is
    JSON (inference results are)."""
    import base64

    from edgekit.files import write_atomic

    since_ms, until_ms = _parse_when(since, "--since"), _parse_when(until, "--until")
    store = _open_store(db_url, must_exist=True)
    count = 0

    def write(f) -> None:
        nonlocal count
        after = None
        while True:  # pages by id (UUIDv7: time-ordered), so memory stays bounded
            page = store.records(device=device, stream=stream, since_ms=since_ms, until_ms=until_ms,
                                 after_id=after, limit=5000)
            for r in page:
                doc = {k: r[k] for k in ("id", "device_id", "stream", "priority", "created_ms", "expires_ms",
                                         "received_ms")}
                doc["payload_b64"] = base64.b64encode(r["payload"]).decode("ascii")
                try:
                    doc["payload_json"] = json.loads(r["payload"].decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    pass
                f.write((json.dumps(doc, separators=(",", ":")) + "\n").encode())
                count += 1
            if len(page) < 5000:
                return
            after = page[-1]["id"]

    try:
        write_atomic(out_path, write)
    finally:
        store.db.close()
    click.echo(f"{count} record(s) -> {out_path}")


from edgekit.cli.hub_simulate_cmd import simulate_cmd  # noqa: E402 - after the group it joins

hub.add_command(simulate_cmd)

from edgekit.cli.hub_updates_cmd import UPDATE_COMMANDS  # noqa: E402 - after the group it joins

for _command in UPDATE_COMMANDS:
    hub.add_command(_command)
