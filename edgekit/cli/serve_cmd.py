"""``edgekit serve BUNDLE_OR_DIR...``: the inference daemon (docs/serve.md), and
``edgekit serve reload``: ask a running daemon to rescan its model folders.

Every option is checked before anything listens: a bad option exits 2 with one line.
Nothing here imports the compiler: this is what a device runs.
"""

from __future__ import annotations

import http.client
import importlib.util
import ipaddress
import json
import socket
import sys
import urllib.parse
from pathlib import Path

import click

from edgekit.errors import BadInputError, EdgekitError


class ServeGroup(click.Group):
    """``edgekit serve PATH...`` runs the daemon; ``edgekit serve reload`` is a subcommand.
    An argument list that does not start with a subcommand name goes to the daemon."""

    def parse_args(self, ctx: click.Context, args: list) -> list:
        if not args or args[0] not in self.commands:
            args = ["run", *args]  # `edgekit serve --help` too: the daemon's options are the help people want
        return super().parse_args(ctx, args)


class _DaemonCommand(click.Command):
    """The hidden ``run`` subcommand, whose usage line reads ``edgekit serve ...``."""

    def format_usage(self, ctx: click.Context, formatter) -> None:
        path = ctx.parent.command_path if ctx.parent else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))


def _check_installed() -> None:
    missing = [m for m in ("starlette", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
    if sys.version_info < (3, 10) or missing:
        have = f"Python {sys.version_info[0]}.{sys.version_info[1]}" + (f" without {', '.join(missing)}"
                                                                        if missing else "")
        raise BadInputError(f"edgekit serve needs Python 3.10+ and pip install 'edgekit[serve]' ({have})")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def parse_boards(values) -> dict:
    boards = {}
    for v in values:
        name, sep, port = v.partition("=")
        if not sep or not name or not port:
            raise BadInputError(f"--board {v!r}: expected NAME=PORT, e.g. m4=/dev/ttyACM0 or "
                                "m4=qemu:cortex-m4 (an emulated board)")
        if name in boards:
            raise BadInputError(f"--board {name} given twice")
        boards[name] = port
    return boards


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--token-file {path}: cannot read it ({exc})") from None
    if not token or any(c.isspace() for c in token):
        raise BadInputError(f"--token-file {path}: must hold one token without spaces")
    return token


@click.group("serve", cls=ServeGroup, invoke_without_command=False)
def serve() -> None:
    """Serve bundles over the Open Inference Protocol (KServe v2) (docs/serve.md)."""


@serve.command("run", cls=_DaemonCommand, hidden=True)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="BUNDLE_OR_DIR...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Other than loopback it needs --token-file (or --allow-insecure-remote).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port (0: any free).")
@click.option("--uds", metavar="PATH", help="Listen on this unix socket instead of TCP.")
@click.option("--state-dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where the active version of each model is kept across restarts.")
@click.option("--queue-size", type=click.IntRange(1), default=64, show_default=True,
              help="Requests waiting per model before new ones get 429.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Threads per model, each with its own open copy of the model.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Seconds a request may take (queue and inference) before it gets 504.")
@click.option("--rollback-window", type=click.IntRange(0), default=100, show_default=True,
              help="A new version's first N requests decide whether it is rolled back (0: never on errors).")
@click.option("--rollback-error-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of engine errors within the window that rolls a new version back.")
@click.option("--max-request-bytes", type=click.IntRange(1024), default=64 * 1024 * 1024, show_default=True,
              help="Largest request body; larger ones get 413.")
@click.option("--max-in-flight", type=click.IntRange(1), default=512, show_default=True,
              help="REST inference requests at once (reading, queued, running); more get 429 before their body "
                   "is read. Bounds request memory to this times --max-request-bytes.")
@click.option("--token-file", metavar="FILE", help="Require 'Authorization: Bearer <token>' (all but health checks).")
@click.option("--allow-insecure-remote", is_flag=True, help="Listen on a non-loopback host without a token.")
@click.option("--drain-timeout", "drain_timeout_s", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds in-flight requests get to finish on SIGTERM.")
@click.option("--poll-interval", "poll_interval_s", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Seconds between scans of the model folders for new bundles (0: only on reload).")
@click.option("--grpc-port", type=click.IntRange(1, 65535), metavar="N",
              help="Also serve the OIP gRPC API on this port (same host).")
@click.option("--board", "boards", multiple=True, metavar="NAME=PORT",
              help="A board attached over serial that runs MCU bundles (repeatable, tried in order), "
                   "e.g. m4=/dev/ttyACM0; PORT as the serial engine takes it (socket://, rfc2217://, qemu:TARGET).")
@click.option("--capture-rules", metavar="FILE", type=click.Path(dir_okay=False),
              help="Data capture rules (TOML or JSON): per model, which inferences (all, sample:RATE, "
                   "low-confidence:THRESHOLD) go into the sync queue, with or without inputs, within a daily byte "
                   "budget (docs/serve.md, 'Data capture'). Needs --sync-queue.")
@click.option("--sync-queue", metavar="PATH", type=click.Path(dir_okay=False),
              help="The device's sync queue (an SQLite file, created if absent) the data capture writes to.")
def run_cmd(paths, host, port, uds, state_dir, queue_size, workers, timeout_s, rollback_window, rollback_error_rate,
            max_request_bytes, max_in_flight, token_file, allow_insecure_remote, drain_timeout_s, poll_interval_s,
            grpc_port, boards, capture_rules, sync_queue) -> None:
    """Serve BUNDLE_OR_DIR... (bundles, or folders of bundles) over the Open Inference
    Protocol (KServe v2) until SIGTERM: REST on --port or --uds, gRPC on --grpc-port, with
    hot swap, rollback and Prometheus metrics (docs/serve.md).

    \b
    edgekit serve models/                      # every bundle in the folder
    edgekit serve kws.ekb --port 9000 --grpc-port 9001
    edgekit serve reload                       # ask a running daemon to rescan its folders now
    """
    _check_installed()
    from edgekit.serve.daemon import DaemonConfig, run

    for p in paths:
        if not Path(p).exists():
            raise BadInputError(f"{p} does not exist: give bundles (.ekb files or bundle folders) or folders of them")
    token = read_token(token_file) if token_file else None
    if uds and grpc_port is not None:
        raise BadInputError("--grpc-port listens on TCP; it cannot go with --uds")
    if (capture_rules is None) != (sync_queue is None):
        raise BadInputError("--capture-rules and --sync-queue go together: the rules say what to capture, the "
                            "queue is where it goes")
    if capture_rules is not None:
        from edgekit.serve.capture import load_rules

        load_rules(capture_rules)       # a bad rules file is refused before anything listens
    if not uds and not is_loopback(host) and token is None and not allow_insecure_remote:
        raise BadInputError(f"--host {host} is reachable from other machines: give --token-file, or "
                            "--allow-insecure-remote to serve without a token")
    config = DaemonConfig(repository=list(paths), host=host, port=port, uds=uds, grpc_port=grpc_port,
                          state_dir=state_dir, boards=parse_boards(boards), queue_size=queue_size,
                          workers_per_model=workers, rollback_window=rollback_window,
                          rollback_error_rate=rollback_error_rate,
                          request_timeout_s=timeout_s, max_request_bytes=max_request_bytes, max_in_flight=max_in_flight,
                          token=token,
                          drain_timeout_s=drain_timeout_s, poll_interval_s=poll_interval_s or None,
                          capture_rules=capture_rules, sync_queue=sync_queue)
    raise SystemExit(run(config))


@serve.command("reload")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="The daemon's REST address.")
@click.option("--uds", metavar="PATH", help="Reach the daemon on this unix socket instead.")
@click.option("--token-file", metavar="FILE", help="The daemon's bearer token.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              help="Seconds to wait for the rescan.")
def reload_cmd(url, uds, token_file, timeout_s) -> None:
    """Ask a running daemon to rescan its model folders now; prints what changed."""
    headers = {"authorization": f"Bearer {read_token(token_file)}"} if token_file else {}
    try:
        status, text = _post(url, uds, "/v2/repository/reload", headers, timeout_s)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise EdgekitError(f"no daemon answered at {uds or url}: {exc}") from None
    try:
        body = json.loads(text)
    except ValueError:
        body = {"error": text}
    if status != 200:
        error = BadInputError if status in (401, 404) else EdgekitError
        raise error(f"the daemon answered {status}: {body.get('error', body) if isinstance(body, dict) else body}")
    click.echo(json.dumps(body, indent=2))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _post(url: str, uds: str | None, path: str, headers: dict, timeout_s: float) -> tuple:
    """(status, body text) of an empty POST (the standard library's HTTP client: a device
    installs no HTTP client package for this one call)."""
    if uds:
        conn = _UnixHTTPConnection(uds, timeout_s)
        prefix = ""
    else:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise BadInputError(f"--url {url}: expected http://HOST:PORT")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
        prefix = parts.path.rstrip("/")
    try:
        conn.request("POST", prefix + path, body=b"", headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()
