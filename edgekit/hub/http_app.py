"""The hub's HTTP API (Starlette): devices without MQTT post their batches here, and the
fleet view is readable as JSON.

  POST /v1/ingest        body: one batch (application/vnd.edgekit.batch) -> 200, the ack bytes
  GET  /v1/devices       the fleet view as JSON
  GET  /v1/health        200 "ok"

With a token, every request needs ``Authorization: Bearer <token>``. The update routes of
``edgekit.hub.updates_http`` (rollouts) are mounted too when that module is installed.
"""

from __future__ import annotations

import hmac
import importlib.util
import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from edgekit.errors import BadInputError
from edgekit.hub.ingest import IngestCounters, ingest_batch_bytes
from edgekit.hub.store import HubStore

log = logging.getLogger("edgekit.hub")

BATCH_CONTENT_TYPE = "application/vnd.edgekit.batch"
ACK_CONTENT_TYPE = "application/vnd.edgekit.ack"
DEFAULT_MAX_BATCH_BYTES = 16 << 20


def create_app(store: HubStore, *, token: str | None = None, max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
               ) -> Starlette:
    counters = IngestCounters()

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def unauthorized() -> Response:
        return PlainTextResponse("missing or wrong bearer token\n", status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})

    async def ingest(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_batch_bytes):
            return PlainTextResponse(f"a batch is at most {max_batch_bytes} bytes\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_batch_bytes:
                return PlainTextResponse(f"a batch is at most {max_batch_bytes} bytes\n", status_code=413)
        try:
            result, ack = await run_in_threadpool(ingest_batch_bytes, store, bytes(body))
        except BadInputError as exc:  # WireFormatError included: the device keeps its records
            counters.malformed += 1
            log.warning("malformed batch over HTTP from %s dropped: %s",
                        request.client.host if request.client else "?", exc)
            return PlainTextResponse(f"{exc}\n", status_code=400)
        counters.add(result)
        return Response(ack, media_type=ACK_CONTENT_TYPE)

    async def devices(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        rows = await run_in_threadpool(store.devices)
        return JSONResponse({"devices": rows})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [Route("/v1/ingest", ingest, methods=["POST"]), Route("/v1/devices", devices, methods=["GET"]),
              Route("/v1/health", health, methods=["GET"])]
    routes += _update_routes(store, token)
    app = Starlette(routes=routes)
    app.state.counters = counters
    return app


def _update_routes(store: HubStore, token: str | None) -> list:
    """The rollouts' routes, where that part of the hub is installed."""
    if importlib.util.find_spec("edgekit.hub.updates_http") is None:
        return []
    from edgekit.hub import updates_http

    return list(updates_http.routes(store, token=token))
