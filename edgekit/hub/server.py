"""``edgekit hub serve``: N MQTT ingest worker processes and the HTTP API, supervised.

Workers are processes, not threads: decoding (zstd) and storing a batch is Python work that
one interpreter's lock would serialize, and a worker that dies takes only itself down. A dead
worker is started again under the same index, so it takes back its MQTT session (and the
batches it had received but not acknowledged).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time

from edgekit.hub.ingest import run_worker_process

log = logging.getLogger("edgekit.hub")


class WorkerPool:
    """``count`` worker processes sharing the MQTT subscription, restarted when they die."""

    def __init__(self, db_url: str, host: str, port: int, count: int, options: dict | None = None):
        self.db_url, self.host, self.port, self.count = db_url, host, port, count
        self.options = dict(options or {})
        self._ctx = multiprocessing.get_context("spawn")  # no inherited locks or DB connections
        self.processes: list = [None] * count
        self.ready: list = [None] * count
        self.restarts = 0
        self._started_at = [0.0] * count
        self._delay = [0.0] * count        # before the next start of a worker that keeps dying
        self._due: list = [None] * count   # when a dead worker is started again

    def _start(self, index: int) -> None:
        self.ready[index] = self._ctx.Event()
        p = self._ctx.Process(target=run_worker_process, name=f"edgekit-hub-worker-{index}",
                              args=(self.db_url, self.host, self.port, index, self.options, self.ready[index]),
                              daemon=True)
        p.start()
        self.processes[index] = p
        self._started_at[index] = time.monotonic()

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """True once every worker's subscription is granted (batches published from then on
        reach the group), False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self.ready)

    def start(self) -> None:
        for i in range(self.count):
            self._start(i)

    def check(self) -> None:
        """Start again every worker that exited: at once after a long run, after a delay
        doubling up to 30 s while it keeps dying young (a database that is down)."""
        now = time.monotonic()
        for i, p in enumerate(self.processes):
            if p is None or p.is_alive():
                continue
            if self._due[i] is None:
                lived = now - self._started_at[i]
                self._delay[i] = 0.0 if lived > 30 else min(30.0, max(0.5, self._delay[i] * 2))
                self._due[i] = now + self._delay[i]
                log.warning("worker %d (pid %s) exited with %s; starting it again%s", i, p.pid, p.exitcode,
                            f" in {self._delay[i]:g} s" if self._delay[i] else "")
            if now >= self._due[i]:
                self._due[i] = None
                self.restarts += 1
                self._start(i)

    def stop(self, timeout_s: float = 10.0) -> None:
        for p in self.processes:
            if p is not None and p.is_alive():
                p.terminate()  # SIGTERM: the worker disconnects cleanly
        deadline = time.monotonic() + timeout_s
        for p in self.processes:
            if p is not None:
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join()


def serve_hub(db_url: str, *, mqtt: tuple | None, workers: int, http: tuple | None, token: str | None,
              mqtt_options: dict | None = None, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): MQTT workers when ``mqtt`` is (host, port),
    the HTTP API on ``http`` = (host, port) when given."""
    from edgekit.hub.db import Database
    from edgekit.hub.store import HubStore

    stop = stop or threading.Event()
    # Open once here: a bad URL or an unreachable database fails before anything starts, and
    # the schemas are applied once rather than raced by every worker.
    db = Database(db_url)
    pool = None
    server = None
    try:
        if mqtt is not None:
            pool = WorkerPool(db_url, mqtt[0], mqtt[1], workers, mqtt_options)
            pool.start()
        if http is not None:
            import uvicorn

            from edgekit.hub.http_app import create_app

            config = uvicorn.Config(create_app(HubStore(db), token=token), host=http[0], port=http[1],
                                    log_level="warning", lifespan="off")
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # ours below stop everything together
            threading.Thread(target=server.run, name="edgekit-hub-http", daemon=True).start()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, lambda *a: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("hub serving: %s", ", ".join(
                ([f"{workers} MQTT worker(s) on {mqtt[0]}:{mqtt[1]}"] if mqtt else [])
                + ([f"HTTP on {http[0]}:{http[1]}"] if http else [])))
            while not stop.wait(0.5):
                if pool is not None:
                    pool.check()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    finally:
        if server is not None:
            server.should_exit = True
        if pool is not None:
            pool.stop()
        db.close()
