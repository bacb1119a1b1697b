"""``edgekit hub simulate``: a fleet of simulated devices against a real broker and hub
(edgekit.hub.simulate; docs/fleet-sizing.md)."""

from __future__ import annotations

import json

import click


@click.command("simulate")
@click.option("--devices", type=int, required=True, metavar="N", help="Simulated devices, each with its own "
              "queue, MQTT connection, forwarder and link.")
@click.option("--mqtt", "mqtt_addr", required=True, metavar="HOST:PORT",
              help="The broker the hub (edgekit hub serve --mqtt) takes batches from.")
@click.option("--duration", type=float, default=10.0, show_default=True, metavar="S",
              help="Seconds of producing records.")
@click.option("--rate-per-device", type=float, default=1.0, show_default=True, metavar="R",
              help="Inference results per second and device (~120-byte JSON).")
@click.option("--outage-prob", type=float, default=0.0, show_default=True, metavar="P",
              help="Each second, the chance that a device's link goes down (for 2-10 s).")
@click.option("--link-kbps", type=float, default=64.0, show_default=True, metavar="K",
              help="Each device's link bandwidth, each way, in kbit/s.")
@click.option("--unlimited-link", is_flag=True, help="No bandwidth limit on the links (overrides --link-kbps).")
@click.option("--latency-ms", type=float, default=0.0, show_default=True, metavar="MS",
              help="One-way latency of each link.")
@click.option("--backlog", type=int, default=0, show_default=True, metavar="N",
              help="Records queued on each device before its link starts (a device back from a long outage).")
@click.option("--drain", "drain_s", type=float, default=30.0, show_default=True, metavar="S",
              help="After producing, seconds to wait at most for every queue to empty.")
@click.option("--batch-interval", "batch_interval_s", type=float, default=5.0, show_default=True, metavar="S",
              help="A device whose queue is empty looks again after S seconds; what it made meanwhile goes "
              "as one batch.")
@click.option("--devices-per-process", type=int, default=80, show_default=True, metavar="N",
              help="More devices than N run in several processes at once (1 to 80: paho-mqtt's select() loop).")
@click.option("--id-prefix", default="sim", show_default=True, metavar="NAME",
              help="Device ids are NAME-00000, NAME-00001, ...: give each simulator process its own.")
@click.option("--hub-wait", "hub_wait_s", type=float, default=30.0, show_default=True, metavar="S",
              help="Before starting, wait this long for a hub to ack a probe record (0: do not check).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the outages and the records.")
@click.option("--workdir", type=click.Path(file_okay=False), metavar="DIR",
              help="Keep the device queues here (default: a temporary folder, removed after).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def simulate_cmd(devices, mqtt_addr, duration, rate_per_device, outage_prob, link_kbps, unlimited_link, latency_ms,
                 backlog, drain_s, batch_interval_s, devices_per_process, id_prefix, hub_wait_s, seed, workdir,
                 as_json) -> None:
    """Run N simulated devices against the broker at --mqtt, each
    enqueueing inference results into its own SyncQueue and forwarding them through its
    own shaped link with outages; print what was sent, acked and left, the bytes on the
    links and the hub's ingest rate. Exit 1 if no hub answers a probe record within
    --hub-wait, or if the queues did not drain within --drain.

    \b
    edgekit hub serve --db sqlite:///hub.db --mqtt 127.0.0.1:1883 &
    edgekit hub simulate --devices 50 --mqtt 127.0.0.1:1883 --duration 30 --outage-prob 0.02

    One process runs up to 80 devices (paho-mqtt's select() loop); a larger fleet runs in
    several processes at once, and their figures are added up.
    """
    from edgekit.cli.hub_cmd import _check_installed, parse_host_port

    _check_installed(mqtt=True)
    host, port = parse_host_port(mqtt_addr, "--mqtt")
    from edgekit.hub.simulate import SimulationConfig, run_simulation

    config = SimulationConfig(devices=devices, mqtt_host=host, mqtt_port=port, duration_s=duration,
                              rate_per_device=rate_per_device, outage_prob=outage_prob,
                              link_kbps=None if unlimited_link else link_kbps, latency_ms=latency_ms,
                              drain_s=drain_s, batch_interval_s=batch_interval_s, hub_wait_s=hub_wait_s, seed=seed,
                              workdir=workdir, id_prefix=id_prefix, devices_per_process=devices_per_process,
                              backlog_per_device=backlog)
    config.check()
    if as_json:
        summary = run_simulation(config)
        click.echo(json.dumps(summary, indent=2))
    else:
        summary = _run_with_progress(config)
        _print_summary(summary)
    if not summary["drained"]:
        raise SystemExit(1)


def _run_with_progress(config) -> dict:
    from edgekit.cli.common import make_console
    from edgekit.hub.simulate import run_simulation

    console = make_console()
    with console.status("starting devices") as status:
        def progress(snap: dict) -> None:
            status.update(f"{snap['phase']} {snap['elapsed_s']:.0f} s: {snap['produced']} produced, "
                          f"{snap['acked']} acked, {snap['links_down']} link(s) down")
        return run_simulation(config, progress=progress)


def _print_summary(s: dict) -> None:
    from rich.table import Table

    from edgekit.cli.common import make_console

    table = Table(title=f"{s['devices']} simulated device(s)", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("start-up (queues, links, connections)", f"{s['setup_s']} s"),
        ("producing", f"{s['duration_s']} s"),
        ("draining", f"{s['drain_s']} s" + ("" if s["drained"] else " (not drained)")),
        ("records produced", str(s["produced"])),
        ("records acked by the hub", str(s["acked"])),
        ("left in device queues", str(s["backlog"])),
        ("dropped or expired (counted)", str(s["dropped_or_expired"])),
        ("batches", str(s["batches"])),
        ("batch bytes", str(s["batch_bytes"])),
        ("bytes on the links up / down", f"{s['wire_bytes_up']} / {s['wire_bytes_down']}"),
        ("bytes on the links per acked record", "-" if s["wire_bytes_per_record"] is None
         else str(s["wire_bytes_per_record"])),
        ("link outages", str(s["outages"])),
        ("hub ingest (acked records/s, first to last ack)", "-" if s["ingest_records_s"] is None
         else str(s["ingest_records_s"])),
        ("hub ingest, best second", str(s["ingest_peak_records_s"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    make_console().print(table)
