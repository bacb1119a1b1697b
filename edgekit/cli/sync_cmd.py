"""``edgekit sync status|run|export|import-acks``: the device side of store-and-forward
sync (docs/sync.md).

Every option is checked before the queue is opened or anything connects: a bad one exits
2 with one line. Nothing here imports the compiler: this is what a device runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import signal
import threading
import time
from pathlib import Path

import click

from edgekit.cli.common import make_console, output_dir
from edgekit.cli.sync_run_updates import check_update_options, log_notice, make_installer, update_options
from edgekit.errors import BadInputError

console = make_console()

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgG]i?)?[bB]?\s*\Z")
_UNITS = {None: 1, "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3, "ki": 1024, "mi": 1024 ** 2, "gi": 1024 ** 3}


def parse_size(text: str, option: str) -> float:
    """'8000', '8k' (8000), '64KiB' (65536), '1.5M' -> a number of bytes."""
    m = _SIZE.match(text or "")
    if not m:
        raise BadInputError(f"{option} {text!r}: expected a number of bytes, e.g. 8000, 8k, 64KiB or 1.5M")
    value = float(m.group(1)) * _UNITS[m.group(2).lower() if m.group(2) else None]
    if value <= 0:
        raise BadInputError(f"{option} {text!r}: must be more than 0")
    return value


def parse_host_port(text: str) -> tuple:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "1883"
    host = host.strip("[]")  # [::1]:1883
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInputError(f"--mqtt {text!r}: expected HOST[:PORT], e.g. broker.example.com:8883")
    return host, int(port)


def _check_installed() -> None:
    if importlib.util.find_spec("zstandard") is None:
        raise BadInputError("edgekit sync needs pip install 'edgekit[sync]' (zstandard is not installed)")


def _existing_queue(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"--queue {path}: no sync queue there (a file edgekit serve --sync-queue or an "
                            "application's SyncQueue creates)")
    return p


def _open_queue(path: Path):
    from edgekit.sync.queue import SyncQueue

    return SyncQueue(path)


def _read_secret(path: str, option: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{option} {path}: cannot read it ({exc})") from None
    if not value or "\n" in value:
        raise BadInputError(f"{option} {path}: must hold one line")
    return value


def _check_file(path, option: str):
    if path is not None and not Path(path).is_file():
        raise BadInputError(f"{option} {path}: no such file")
    return path


queue_option = click.option("--queue", "queue_path", required=True, envvar="EDGEKIT_SYNC_QUEUE", metavar="PATH",
                            help="The sync queue (SQLite file); or $EDGEKIT_SYNC_QUEUE.")
device_option = click.option("--device-id", required=True, envvar="EDGEKIT_DEVICE_ID", metavar="ID",
                             help="This device's id at the hub; or $EDGEKIT_DEVICE_ID.")


@click.group("sync")
def sync() -> None:
    """Store-and-forward sync on the device: queue status, forwarding to the hub over MQTT or
    HTTP, and export to files for sneakernet (docs/sync.md)."""


# ---------------------------------------------------------------------------- status


def _age(ms, now_ms: int) -> str:
    if ms is None:
        return "-"
    s = max(0, now_ms - ms) / 1000
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


@sync.command("status")
@queue_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def status(queue_path, as_json) -> None:
    """What the queue holds (per priority and stream), its counters (enqueued, acked,
    expired, dropped, refused) and, if a forwarder ran, the link state."""
    _check_installed()
    from rich.table import Table

    from edgekit.sync.forwarder import read_forwarder_state

    path = _existing_queue(queue_path)
    queue = _open_queue(path)
    try:
        stats, counters = queue.stats(), queue.counters()
    finally:
        queue.close()
    forwarder = read_forwarder_state(path)
    if as_json:
        click.echo(json.dumps({"queue": str(path), "stats": stats, "counters": counters, "forwarder": forwarder},
                              sort_keys=True))
        return
    now_ms = int(time.time() * 1000)
    console.print(f"[bold]{path}[/bold]: {stats['records']} records, {stats['bytes']} bytes, oldest "
                  f"{_age(stats['oldest_created_ms'], now_ms)} old")
    by_priority = Table("priority", "records", title="by priority")
    for p, n in sorted(stats["by_priority"].items()):
        by_priority.add_row(str(p), str(n))
    console.print(by_priority)
    streams = sorted(set(stats["by_stream"]) | {s for per in counters.values() for s in per})
    names = list(counters)
    table = Table("stream", "records", "bytes", *names, title="by stream (counters since the queue was made)")
    for s in streams:
        held = stats["by_stream"].get(s, {"records": 0, "bytes": 0})
        table.add_row(s, str(held["records"]), str(held["bytes"]), *(str(counters[n].get(s, 0)) for n in names))
    console.print(table)
    if forwarder is None:
        console.print("forwarder: none has run on this queue")
        return
    link = Table("forwarder", "", title="link")
    link.add_row("transport", str(forwarder.get("transport", "-")))
    link.add_row("link", str(forwarder.get("link", "unknown")))
    link.add_row("last success", _age(forwarder.get("last_ok_ms"), now_ms) + " ago")
    if forwarder.get("link") == "down":
        link.add_row("failures in a row", str(forwarder.get("failures", 0)))
        link.add_row("last error", str(forwarder.get("last_error", "-")))
    link.add_row("bytes sent on " + str(forwarder.get("day", "-")), str(forwarder.get("day_bytes", 0)))
    link.add_row("last batch", str(forwarder.get("last_seq", "-")))
    console.print(link)


# ---------------------------------------------------------------------------- run


def _transport(device_id, mqtt, http, protocol, tls_ca, tls_cert, tls_key, username, password_file, token_file,
               groups, hub_url=None):
    """The transport the options ask for, every option checked first."""
    if (mqtt is None) == (http is None):
        raise BadInputError("give one link to the hub: --mqtt HOST:PORT or --http URL")
    for path, option in ((tls_ca, "--tls-ca"), (tls_cert, "--tls-cert"), (tls_key, "--tls-key")):
        _check_file(path, option)
    password = _read_secret(password_file, "--password-file") if password_file else None
    if http is not None:
        if tls_cert or tls_key or username or password_file or groups or protocol != "5":
            raise BadInputError("--tls-cert, --tls-key, --username, --password-file, --group and --mqtt-protocol "
                                "are MQTT options; with --http give --token-file and --tls-ca")
        from edgekit.sync.transports.http import HttpTransport

        token = _read_secret(token_file, "--token-file") if token_file else None
        return HttpTransport(http, device_id, token=token, ca_file=tls_ca)
    if token_file and not hub_url:
        raise BadInputError("--token-file is for --http or --hub-url; an MQTT broker takes --username/--password-file")
    if password is not None and username is None:
        raise BadInputError("--password-file needs --username")
    host, port = parse_host_port(mqtt)
    from edgekit.sync.transports.mqtt import MqttTls, MqttTransport

    tls = MqttTls(tls_ca, tls_cert, tls_key) if (tls_ca or tls_cert or tls_key) else None
    return MqttTransport(host, port, device_id, protocol=5 if protocol == "5" else 311, tls=tls,
                         username=username, password=password, groups=groups)


def _summary(result: dict) -> str:
    text = (f"{result['records']} records in {result['batches']} batches ({result['bytes']} bytes), "
            f"{result['acked']} acked; stopped: {result['stopped']}")
    if result["error"]:
        text += f" ({result['error']}; next try in {result['retry_in_s']:.1f} s)"
    return text


@sync.command("run")
@queue_option
@device_option
@click.option("--mqtt", metavar="HOST[:PORT]", help="Send over MQTT to this broker (port 1883 if none given).")
@click.option("--http", metavar="URL", help="Send over HTTP(S) to the hub at this URL (POST URL/v1/ingest).")
@click.option("--rate", metavar="BYTES/S", help="Bandwidth budget in batch bytes per second, e.g. 8k (64 kbit/s).")
@click.option("--daily-bytes", metavar="N", help="Batch bytes allowed per UTC day, e.g. 5M.")
@click.option("--max-batch-bytes", metavar="N", default="16KiB", show_default=True,
              help="Largest batch on the wire (compressed).")
@click.option("--ack-timeout", "ack_timeout_s", type=click.FloatRange(0, min_open=True), default=30.0,
              show_default=True, help="Seconds to wait for the hub's ack before the link counts as down.")
@click.option("--backoff", "backoff_s", nargs=2, type=click.FloatRange(0, min_open=True), default=(1.0, 300.0),
              show_default=True, metavar="FIRST MOST",
              help="Backoff after failures: full jitter over FIRST*2^n seconds, at most MOST.")
@click.option("--once", is_flag=True, help="Send what can go now, print a summary and exit (1 if the link failed).")
@click.option("--mqtt-protocol", "protocol", type=click.Choice(["5", "3.1.1"]), default="5", show_default=True)
@click.option("--tls-ca", metavar="FILE", help="CA certificate(s) that verify the broker or the hub (turns TLS on).")
@click.option("--tls-cert", metavar="FILE", help="Client certificate for the MQTT broker (with --tls-key).")
@click.option("--tls-key", metavar="FILE", help="Private key of --tls-cert.")
@click.option("--username", help="MQTT user name.")
@click.option("--password-file", metavar="FILE", help="File holding the MQTT password (one line).")
@click.option("--token-file", metavar="FILE",
              help="File holding the hub's bearer token for --http or --hub-url (one line).")
@click.option("--group", "groups", multiple=True, metavar="NAME",
              help="Also listen for update notices sent to this device group (MQTT; repeatable).")
@update_options
def run(queue_path, device_id, mqtt, http, rate, daily_bytes, max_batch_bytes, ack_timeout_s, backoff_s, once,
        protocol, tls_ca, tls_cert, tls_key, username, password_file, token_file, groups, trust_dir, repository_dir,
        state_dir, targets, hub_url) -> None:
    """Forward the queue to the hub until SIGTERM (or once with --once): most urgent first,
    in zstd batches, within --rate and --daily-bytes; a record is deleted only when the
    hub's ack names it.

    \b
    edgekit sync run --queue /var/lib/edgekit/sync.db --device-id pump-7 --mqtt hub.local:1883 --rate 8k
    edgekit sync run --queue q.db --device-id pump-7 --http https://hub.example.com --token-file tok --once
    edgekit sync run --queue q.db --device-id pump-7 --mqtt hub.local --group field \\
        --trust /etc/edgekit/trust --repository models --state-dir updates --target rpi4
    """
    _check_installed()
    from edgekit.sync.forwarder import Forwarder
    from edgekit.sync.transports import check_device_id

    check_device_id(device_id)
    rate_bytes_s = parse_size(rate, "--rate") if rate else None
    daily = int(parse_size(daily_bytes, "--daily-bytes")) if daily_bytes else None
    batch_bytes = int(parse_size(max_batch_bytes, "--max-batch-bytes"))
    if not 256 <= batch_bytes <= 64 << 20:
        raise BadInputError(f"--max-batch-bytes {max_batch_bytes}: must be 256 bytes to 64 MiB")
    if backoff_s[0] > backoff_s[1]:
        raise BadInputError(f"--backoff {backoff_s[0]:g} {backoff_s[1]:g}: FIRST must not be more than MOST")
    path = Path(queue_path)
    if path.is_dir():
        raise BadInputError(f"--queue {queue_path}: is a folder; give the queue's file")
    installs = check_update_options(trust_dir, repository_dir, state_dir, targets, hub_url)
    transport = _transport(device_id, mqtt, http, protocol, tls_ca, tls_cert, tls_key, username, password_file,
                           token_file, groups, hub_url)
    queue = forwarder = installer = None
    try:
        queue = _open_queue(path)
        on_downlink = log_notice
        if installs:
            installer = _installer(device_id, queue, trust_dir, repository_dir, state_dir, targets, hub_url, http,
                                   mqtt, tls_ca, tls_cert, tls_key, username, password_file, token_file,
                                   ack_timeout_s, backoff_s, 5 if protocol == "5" else 311)
            on_downlink = installer.put
        forwarder = Forwarder(queue, transport, device_id, rate_bytes_s=rate_bytes_s, daily_bytes=daily,
                              max_batch_bytes=batch_bytes, backoff=tuple(backoff_s), ack_timeout_s=ack_timeout_s,
                              on_downlink=on_downlink)
        if once:
            if mqtt is not None:  # the first connection is made in the background: give it the ack timeout
                transport.wait_connected(ack_timeout_s)
            result = forwarder.run_once()
            console.print(_summary(result), markup=False, highlight=False)
            if result["stopped"] == "link down":
                raise SystemExit(1)
            if installer is not None and _install_once(forwarder, installer, mqtt is not None):
                raise SystemExit(1)
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        worker = None
        if installer is not None:  # installs in its own thread: forwarding goes on while chunks come
            worker = threading.Thread(target=installer.run, args=(stop,), name="edgekit-updates", daemon=True)
            worker.start()
        forwarder.run(stop)
        if worker is not None:
            worker.join(60)
    finally:
        if forwarder is not None:
            forwarder.close()
        if installer is not None and hasattr(installer.source, "close"):
            installer.source.close()
        transport.close()
        if queue is not None:
            queue.close()


# retained notices arrive just after the subscription: how long --once listens for them
ONCE_NOTICE_WAIT_S = 2.0


def _install_once(forwarder, installer, over_mqtt: bool) -> bool:
    """--once with the update options: take the notices there are now, install them, and
    send the deploy records up. True when one was not installed (rejected or pending)."""
    from edgekit.sync.transports import LinkDownError

    try:
        forwarder.deliver_downlink(timeout_s=ONCE_NOTICE_WAIT_S if over_mqtt else 0.0)
    except LinkDownError as exc:
        console.print(f"update notices could not be read: {exc}", markup=False, highlight=False)
        return True
    results = [r for _, r in installer.install_waiting()]
    if not results:
        console.print("no new update", markup=False, highlight=False)
    for r in results:
        what = f"{r.model} {r.version}" if r.model else "unreadable manifest"
        console.print(f"update {r.update_id or '-'}  {what}: {r.state}" + (f" ({r.reason})" if r.reason else ""),
                      markup=False, highlight=False)
    if results:
        console.print(_summary(forwarder.run_once()), markup=False, highlight=False)   # the deploy records
    return any(r.state != "installed" for r in results)


def _installer(device_id, queue, trust_dir, repository_dir, state_dir, targets, hub_url, http, mqtt, tls_ca,
               tls_cert, tls_key, username, password_file, token_file, timeout_s, backoff_s, mqtt_protocol):
    mqtt_host_port = tls = password = None
    if mqtt is not None and not hub_url:
        from edgekit.sync.transports.mqtt import MqttTls

        mqtt_host_port = parse_host_port(mqtt)
        tls = MqttTls(tls_ca, tls_cert, tls_key) if (tls_ca or tls_cert or tls_key) else None
        password = _read_secret(password_file, "--password-file") if password_file else None
    token = _read_secret(token_file, "--token-file") if token_file else None
    return make_installer(device_id, trust_dir=trust_dir, repository_dir=repository_dir, state_dir=state_dir,
                          targets=targets, hub_url=hub_url, http=http, mqtt_host_port=mqtt_host_port, tls=tls,
                          username=username, password=password, token=token, tls_ca=tls_ca, queue=queue,
                          timeout_s=timeout_s, backoff=tuple(backoff_s), protocol=mqtt_protocol)


# ---------------------------------------------------------------------------- files


@sync.command("export")
@queue_option
@device_option
@click.option("--to", "folder", required=True, metavar="DIR", help="Folder to write the batch files in (a USB stick).")
@click.option("--max-bytes", metavar="N", help="Export at most this many bytes of records (most urgent first).")
@click.option("--forget", is_flag=True,
              help="One-way: delete the exported records from the queue at once, instead of keeping them "
                   "until the hub's ack files come back (edgekit sync import-acks).")
def export(queue_path, device_id, folder, max_bytes, forget) -> None:
    """Write every queued record into DIR as <device>-<seq>.ekbatch files for `edgekit hub
    import`. Records stay queued until `edgekit sync import-acks DIR` reads the hub's ack
    files back (or go at once with --forget)."""
    _check_installed()
    from edgekit.sync.forwarder import ForwarderState, state_path_for
    from edgekit.sync.transports import check_device_id
    from edgekit.sync.transports.files import FileTransport

    check_device_id(device_id)
    out = output_dir(folder, "--to")
    limit = int(parse_size(max_bytes, "--max-bytes")) if max_bytes else None
    path = _existing_queue(queue_path)
    files = FileTransport(out, device_id)
    queue = _open_queue(path)
    state = ForwarderState(state_path_for(path))
    try:
        result = files.export(queue, next_seq=state.next_seq, max_bytes=limit, forget=forget)
    finally:
        state.close()
        queue.close()
    kept = "deleted from the queue (--forget)" if forget else "kept in the queue until their acks are imported"
    console.print(f"exported {result['records']} records in {len(result['files'])} files ({result['bytes']} bytes) "
                  f"to {out}; {kept}", markup=False, highlight=False)


@sync.command("import-acks")
@queue_option
@device_option
@click.argument("folder", metavar="DIR")
def import_acks(queue_path, device_id, folder) -> None:
    """Read the hub's ack files (<device>-<seq>.ekack, written by `edgekit hub import`) in
    DIR: delete the records they name from the queue, then this device's acked batch and
    ack files."""
    _check_installed()
    from edgekit.sync.transports import check_device_id
    from edgekit.sync.transports.files import FileTransport

    check_device_id(device_id)
    if not Path(folder).is_dir():
        raise BadInputError(f"{folder}: no such folder")
    path = _existing_queue(queue_path)
    files = FileTransport(folder, device_id)
    queue = _open_queue(path)
    try:
        result = files.import_acks(queue)
    finally:
        queue.close()
    console.print(f"{result['ack_files']} ack files: {result['deleted']} records delivered and deleted from the queue",
                  markup=False, highlight=False)


from edgekit.cli.sync_updates_cmd import apply_update  # noqa: E402 - after the group it joins

sync.add_command(apply_update)
