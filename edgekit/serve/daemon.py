"""The ``edgekit serve`` process: the inference service, the REST front end on Uvicorn and,
with a gRPC port, the gRPC front end, all in one asyncio loop (docs/serve.md).

Order of events: bind the listening sockets (a port in use fails here, before any model
loads), accept connections (the health checks answer, ready says 400), load every model,
tell systemd READY=1.
On SIGTERM or SIGINT: STOPPING=1, stop accepting, let in-flight requests finish
(``drain_timeout_s`` at most), stop the service, exit 0. Under systemd with
``WatchdogSec=`` the loop itself sends WATCHDOG=1, so a wedged loop gets restarted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import signal
import socket
import stat
import sys

from edgekit.errors import BadInputError, EdgekitError

log = logging.getLogger("edgekit.serve")


class DaemonError(EdgekitError):
    """The daemon could not start (its address is taken, a socket path is unusable)."""


@dataclasses.dataclass
class DaemonConfig:
    repository: list
    host: str = "127.0.0.1"
    port: int = 8080
    uds: str | None = None
    grpc_port: int | None = None
    state_dir: str | None = None
    boards: dict = dataclasses.field(default_factory=dict)
    queue_size: int = 64
    workers_per_model: int = 1
    rollback_window: int = 100
    rollback_error_rate: float = 0.5
    request_timeout_s: float = 30.0
    max_request_bytes: int = 64 * 1024 * 1024
    max_in_flight: int = 512
    token: str | None = None
    drain_timeout_s: float = 10.0
    poll_interval_s: float | None = 2.0
    capture_rules: str | None = None     # data capture rules file (edgekit.serve.capture)
    sync_queue: str | None = None        # the SyncQueue database the capture writes to


# --- systemd notification protocol (sd_notify(3)): one datagram per state change ---------

def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %s to %s failed: %s", state, os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec for this process, or None when it set no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


async def _watchdog(service, interval_s: float) -> None:
    while True:
        if service.live():
            sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


# --- sockets ------------------------------------------------------------------------------

def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DaemonError(f"{host}:{port} is already in use: stop what listens there or pick --port") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise BadInputError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
        raise DaemonError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def bind_unix(path: str) -> socket.socket:
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise BadInputError(f"--uds {path}: exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # left behind by a daemon that died: nobody answers on it
        else:
            raise DaemonError(f"--uds {path}: another process is serving on it")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise BadInputError(f"--uds {path}: cannot create the socket ({exc.strerror})") from None
    sock.listen(2048)
    return sock


# --- the process --------------------------------------------------------------------------

def _uvicorn_server(app, config: DaemonConfig):
    import importlib.util

    import uvicorn

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    # No access log and no Server/Date headers: per-request work the daemon does not need.
    uv_config = uvicorn.Config(app, http=http, lifespan="off", access_log=False, log_config=None,
                               log_level="warning", server_header=False, date_header=False,
                               timeout_graceful_shutdown=config.drain_timeout_s)
    uv_config.load()
    server = uvicorn.Server(uv_config)
    server.lifespan = uv_config.lifespan_class(uv_config)
    return server


def make_service(config: DaemonConfig):
    """The inference service of ``config``; refuses bad repository paths (exit 2) before
    anything listens."""
    from edgekit.serve.metrics import Metrics
    from edgekit.serve.service import InferenceService

    metrics = Metrics()
    capture = None
    if config.capture_rules is not None:
        from edgekit.serve.capture import open_capture

        capture = open_capture(config.capture_rules, config.sync_queue, metrics=metrics)
    try:
        return InferenceService(list(config.repository), boards=dict(config.boards) or None,
                                state_dir=config.state_dir, queue_size=config.queue_size,
                                workers_per_model=config.workers_per_model, rollback_window=config.rollback_window,
                                rollback_error_rate=config.rollback_error_rate,
                                request_timeout_s=config.request_timeout_s, poll_interval_s=config.poll_interval_s,
                                metrics=metrics, capture=capture)
    except BaseException:
        if capture is not None:
            capture.close()
        raise


async def serve(config: DaemonConfig, service, sockets: list) -> None:
    """Run ``service`` until SIGTERM/SIGINT on already bound ``sockets``."""
    from edgekit.serve.rest import RestFrontEnd

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = _uvicorn_server(RestFrontEnd(service, token=config.token, max_request_bytes=config.max_request_bytes,
                                          max_in_flight=config.max_in_flight).app(), config)
    grpc = None
    if config.grpc_port is not None:
        from edgekit.serve.grpc_server import GrpcFrontEnd

        grpc = GrpcFrontEnd(service, config.host, config.grpc_port, max_message_bytes=config.max_request_bytes,
                            token=config.token, max_in_flight=config.max_in_flight)
    watchdog = None
    try:
        # Listen first: the health checks answer while the models load (ready: 400 until then).
        await server.startup(sockets=sockets)
        if grpc is not None:
            bound = await grpc.start()
            log.info("gRPC on %s:%d", config.host, bound)
        main_loop = loop.create_task(server.main_loop())
        stopped = loop.create_task(stop.wait())
        starting = loop.create_task(service.start())
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not stopped.done():
            starting.result()
            where = config.uds or f"http://{config.host}:{sockets[0].getsockname()[1]}"
            ready = sum(1 for m in service.repository_index() if m["state"] == "READY")
            log.info("serving %d ready model version(s) on %s", ready, where)
            sd_notify("READY=1")
            interval = watchdog_interval_s()  # systemd arms the watchdog once start-up completes
            watchdog = loop.create_task(_watchdog(service, interval)) if interval else None
            await asyncio.wait([main_loop, stopped], return_when=asyncio.FIRST_COMPLETED)
        else:
            await starting  # a load in progress runs to its end on the loader thread anyway
        sd_notify("STOPPING=1")
        log.info("stopping: draining in-flight requests")
        server.should_exit = True
        await main_loop
        # Stop listening first, let every in-flight request answer, then close the models.
        stopping = [server.shutdown(sockets=sockets)]
        if grpc is not None:
            stopping.append(grpc.stop(config.drain_timeout_s))
        await asyncio.gather(*stopping)
        stopped.cancel()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await service.stop(drain_timeout_s=config.drain_timeout_s)
        if config.uds and os.path.exists(config.uds):
            os.unlink(config.uds)
    log.info("stopped")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def setup_logging() -> None:
    """Model events (loads, swaps, rollbacks) as one line each on stderr."""
    logger = logging.getLogger("edgekit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def run(config: DaemonConfig) -> int:
    """Bind, serve until a signal, drain; returns the exit status (0)."""
    setup_logging()
    loop = _new_loop()
    sockets = []
    try:
        asyncio.set_event_loop(loop)
        service = make_service(config)
        sockets.append(bind_unix(config.uds) if config.uds else bind_tcp(config.host, config.port))
        loop.run_until_complete(serve(config, service, sockets))
    finally:
        for s in sockets:
            s.close()
        asyncio.set_event_loop(None)
        loop.close()
    return 0
