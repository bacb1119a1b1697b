"""``edgekit sync apply-update``: fetch, verify and install signed model updates on a
device (edgekit.sync.updates; docs/updates.md). Joined to the ``sync`` group by sync_cmd.
Nothing here imports the compiler."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.errors import BadInputError, EdgekitError


@click.command("apply-update")
@click.argument("source", metavar="DIR_OR_URL")
@click.option("--trust", "trust_dir", required=True, envvar="EDGEKIT_TRUST_DIR", metavar="DIR",
              help="Trusted public keys (*.pub); or $EDGEKIT_TRUST_DIR.")
@click.option("--repository", "repository_dir", required=True, metavar="DIR",
              help="The folder edgekit serve watches: a verified bundle is renamed into it.")
@click.option("--state-dir", required=True, metavar="DIR",
              help="Update state: highest installed versions (anti-rollback) and partial downloads.")
@click.option("--target", "targets", multiple=True, required=True, metavar="NAME",
              help="Target this device installs for (repeat on a gateway for the boards behind it).")
@click.option("--queue", "queue_path", envvar="EDGEKIT_SYNC_QUEUE", metavar="PATH",
              help="Sync queue to report each result to (stream 'deploy'); or $EDGEKIT_SYNC_QUEUE.")
@click.option("--device-id", envvar="EDGEKIT_DEVICE_ID", metavar="ID",
              help="This device's id at the hub (needed for a URL); or $EDGEKIT_DEVICE_ID.")
@click.option("--token-file", metavar="FILE", help="File holding the hub's bearer token (one line).")
@click.option("--tls-ca", metavar="FILE", help="CA certificate(s) that verify the hub.")
def apply_update(source, trust_dir, repository_dir, state_dir, targets, queue_path, device_id, token_file,
                 tls_ca) -> None:
    """Install the updates in DIR (written by `edgekit hub export-update`) or offered by
    the hub at URL (http(s)://HOST:PORT). Each is checked (signature, target, version,
    every hash, the bundle) before it is renamed into --repository; results go upstream on
    stream 'deploy' with --queue. Exit 1 if one was rejected or could not be fetched."""
    from edgekit.sync.updates import DirUpdateSource, HttpUpdateSource, UpdateClient

    if source.startswith(("http://", "https://")):
        if not device_id:
            raise BadInputError("a hub URL needs --device-id (or $EDGEKIT_DEVICE_ID)")
        token = None
        if token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise BadInputError(f"--token-file {token_file}: cannot read it ({exc})") from None
        if tls_ca and not Path(tls_ca).is_file():
            raise BadInputError(f"--tls-ca {tls_ca}: no such file")
        src = HttpUpdateSource(source, device_id, token=token, ca_file=tls_ca)
    else:
        src = DirUpdateSource(source)
    for folder, option in ((trust_dir, "--trust"), (repository_dir, "--repository")):
        if not Path(folder).is_dir():    # checked before the queue is opened: bad input creates nothing
            raise BadInputError(f"{option} {folder}: no such folder")
    queue = None
    if queue_path:
        from edgekit.sync.queue import SyncQueue

        queue = SyncQueue(queue_path)
    try:
        client = UpdateClient(state_dir, trust_dir, repository_dir, targets=list(targets), queue=queue)
        results = client.run_once(src)
    finally:
        if queue is not None:
            queue.close()
    if not results:
        click.echo("no new update")
    bad = 0
    for r in results:
        what = f"{r.model} {r.version}" if r.model else "unreadable manifest"
        click.echo(f"{r.update_id or '-'}  {what}: {r.state}" + (f" ({r.reason})" if r.reason else ""))
        bad += r.state != "installed"
    if bad:
        raise EdgekitError(f"{bad} update(s) not installed")
