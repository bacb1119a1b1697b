"""The hub's update routes (docs/updates.md), mounted by ``edgekit.hub.http_app``:

  GET /v1/devices/{id}/updates        {"updates": [signed manifest, ...]}: what the device is offered
  GET /v1/updates/{update_id}/manifest the signed manifest (canonical JSON)
  GET /v1/chunks/{sha256}             the chunk's bytes; ``Range: bytes=A-B`` answers 206 with that part

Chunks are content-addressed and immutable, so they are served with a strong ETag (their
SHA-256) and a long cache lifetime; a device verifies every byte against the signed manifest
anyway, so these routes need no secrecy beyond the hub's bearer token (``token``).
"""

from __future__ import annotations

import hmac
import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from edgekit.hub import rollouts
from edgekit.sync.update_manifest import encode_manifest

_SHA = re.compile(r"^[0-9a-f]{64}$")
_UID = re.compile(r"^[0-9a-f]{32}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def routes(store, *, token: str | None = None) -> list:
    def denied(request: Request):
        if token is None:
            return None
        if hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
            return None
        return PlainTextResponse("missing or wrong bearer token\n", status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})

    async def device_updates(request: Request) -> Response:
        if (r := denied(request)) is not None:
            return r
        offered = await run_in_threadpool(rollouts.offers, store, request.path_params["device_id"])
        return JSONResponse({"updates": offered})

    async def update_manifest(request: Request) -> Response:
        if (r := denied(request)) is not None:
            return r
        uid = request.path_params["update_id"]
        m = await run_in_threadpool(rollouts.manifest, store, uid) if _UID.match(uid) else None
        if m is None:
            return PlainTextResponse(f"no update {uid}\n", status_code=404)
        return Response(encode_manifest(m), media_type="application/json")

    async def get_chunk(request: Request) -> Response:
        if (r := denied(request)) is not None:
            return r
        sha = request.path_params["sha256"]
        data = await run_in_threadpool(rollouts.chunk, store, sha) if _SHA.match(sha) else None
        if data is None:
            return PlainTextResponse(f"no chunk {sha}\n", status_code=404)
        headers = {"ETag": f'"{sha}"', "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=31536000, immutable"}
        spec = request.headers.get("range")
        if spec is None:
            return Response(data, media_type="application/octet-stream", headers=headers)
        m = _RANGE.match(spec.strip())
        size = len(data)
        if m is None or m.group(1) == m.group(2) == "":
            return PlainTextResponse("one byte range: bytes=A-B, bytes=A- or bytes=-N\n", status_code=416,
                                     headers={"Content-Range": f"bytes */{size}"})
        if m.group(1) == "":
            start, end = max(0, size - int(m.group(2))), size - 1
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or end < start:
            return PlainTextResponse("range outside the chunk\n", status_code=416,
                                     headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(data[start:end + 1], status_code=206, media_type="application/octet-stream", headers=headers)

    return [Route("/v1/devices/{device_id}/updates", device_updates, methods=["GET"]),
            Route("/v1/updates/{update_id}/manifest", update_manifest, methods=["GET"]),
            Route("/v1/chunks/{sha256}", get_chunk, methods=["GET"])]
