"""``edgekit sync run``'s update options: with --trust, --repository, --state-dir and
--target, each update notice that arrives on the downlink is verified and installed
through UpdateClient, its chunks over MQTT (the same broker) or over HTTP (--hub-url, or
the --http link), and the deploy records go up with the other records (docs/updates.md).
Without them a notice is logged and left alone. Nothing here imports the compiler."""

from __future__ import annotations

import logging
import queue as queue_module
import threading
from pathlib import Path

import click

from edgekit.errors import BadInputError

log = logging.getLogger("edgekit.sync")

# the same names as edgekit sync apply-update's options
UPDATE_OPTIONS = (
    click.option("--trust", "trust_dir", metavar="DIR",
                 help="Install the update notices that arrive: trusted public keys (*.pub)."),
    click.option("--repository", "repository_dir", metavar="DIR",
                 help="With --trust: the folder edgekit serve watches; a verified bundle is renamed into it."),
    click.option("--state-dir", metavar="DIR",
                 help="With --trust: update state (highest installed versions, partial downloads)."),
    click.option("--target", "targets", multiple=True, metavar="NAME",
                 help="With --trust: target this device installs for (repeatable)."),
    click.option("--hub-url", metavar="URL",
                 help="With --trust: fetch update chunks over HTTP from this hub instead of over MQTT."),
)


def update_options(f):
    for option in reversed(UPDATE_OPTIONS):
        f = option(f)
    return f


def check_update_options(trust_dir, repository_dir, state_dir, targets, hub_url) -> bool:
    """True when updates are to be installed; every option checked (exit 2) before anything opens."""
    given = {"--trust": trust_dir, "--repository": repository_dir, "--state-dir": state_dir,
             "--target": targets or None}
    if not any(given.values()):
        if hub_url:
            raise BadInputError("--hub-url is where update chunks come from: it needs --trust, --repository, "
                                "--state-dir and --target")
        return False
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise BadInputError(f"installing updates needs {', '.join(missing)} too (with --trust, --repository, "
                            "--state-dir and --target)")
    for folder, option in ((trust_dir, "--trust"), (repository_dir, "--repository")):
        if not Path(folder).is_dir():
            raise BadInputError(f"{option} {folder}: no such folder")
    if hub_url and not hub_url.startswith(("http://", "https://")):
        raise BadInputError(f"--hub-url {hub_url!r}: expected http://HOST:PORT or https://HOST:PORT")
    return True


def log_notice(message: bytes) -> None:
    log.info("downlink message of %d bytes not installed: give --trust, --repository, --state-dir and --target "
             "to install update notices", len(message))


class NoticeInstaller:
    """Takes downlink messages (``put``, the forwarder's on_downlink) and installs the update
    notices among them with ``client`` and ``source``. A pending update (a chunk could not
    be fetched) is tried again after the backoff; verified chunks are kept between tries."""

    def __init__(self, client, source, *, backoff=(1.0, 300.0)):
        self.client, self.source, self.backoff = client, source, backoff
        self._messages: queue_module.Queue = queue_module.Queue()
        self.results = []

    def put(self, message: bytes) -> None:
        self._messages.put(bytes(message))

    def install_waiting(self) -> list:
        """Apply every notice received so far, once each; the results (pending ones too)."""
        from edgekit.sync.updates import manifests_from_downlink

        results = []
        while True:
            try:
                message = self._messages.get_nowait()
            except queue_module.Empty:
                break
            notices = manifests_from_downlink([message])
            if not notices:
                log.info("downlink message of %d bytes is not an update notice; ignored", len(message))
            for raw in notices:
                result = self.client.apply(raw, self.source)
                if result is not None:      # None: this device already has an outcome for it
                    self._log(result)
                    results.append((raw, result))
        self.results += [r for _, r in results]
        return results

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: install notices as they come; retry pending ones after the backoff."""
        failures = 0
        while not stop.is_set():
            pending = [raw for raw, r in self.install_waiting() if r.state == "pending"]
            if pending:
                failures += 1
                delay = min(self.backoff[1], self.backoff[0] * 2 ** min(failures - 1, 60))
                if stop.wait(delay):
                    return
                for raw in pending:
                    self._messages.put(raw)
            else:
                failures = 0
                stop.wait(0.2)

    @staticmethod
    def _log(r) -> None:
        log.info("update %s (%s %s): %s%s", r.update_id or "-", r.model or "?", r.version or "?", r.state,
                 f" ({r.reason})" if r.reason else "")


def make_installer(device_id, *, trust_dir, repository_dir, state_dir, targets, hub_url, http, mqtt_host_port,
                   tls, username, password, token, tls_ca, queue, timeout_s, backoff, protocol=5):
    """The UpdateClient and its chunk source: HTTP from --hub-url (or the --http link),
    otherwise MQTT on the same broker as the batches."""
    from edgekit.sync.updates import HttpUpdateSource, UpdateClient

    client = UpdateClient(state_dir, trust_dir, repository_dir, targets=list(targets), queue=queue)
    url = hub_url or http
    if url:
        source = HttpUpdateSource(url, device_id, token=token, ca_file=tls_ca, timeout_s=timeout_s)
    else:
        from edgekit.sync.updates_mqtt import MqttUpdateSource

        host, port = mqtt_host_port
        source = MqttUpdateSource(host, port, device_id, tls=tls, username=username, password=password,
                                  timeout_s=timeout_s, protocol=protocol)
    return NoticeInstaller(client, source, backoff=backoff)
