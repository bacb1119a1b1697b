"""The Open Inference Protocol (KServe v2) over REST: a Starlette app in front of an
``InferenceService`` (docs/serve.md).

Only wire translation lives here: JSON and the binary tensor data extension to
``InferRequest`` and back, the OIP error body, the bearer-token check and the request
size limit. Validation against the model (names, datatypes, shapes), queues, timeouts and
versions are the service's. Client input can only produce a 4xx: every failure to decode
is an ``InvalidRequest`` naming the problem.
"""

from __future__ import annotations

import hmac
import json
import logging
import time

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from edgekit.serve.metrics import UNKNOWN_MODEL
from edgekit.serve.protocol import (InferRequest, InferResponse, InferTensor, InvalidRequest, ModelNotFound,
                                    Overloaded, PayloadTooLarge, ServeError, Unauthorized,
                                    dtype_of)

log = logging.getLogger(__name__)

HEADER_LENGTH = "inference-header-content-length"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
# Inference requests being read, queued or run at once over REST: with the size limit, this
# bounds the memory request bodies can take before the per-model queues see them.
DEFAULT_MAX_IN_FLIGHT = 512
PROTOCOL = "rest"
_JSON = "application/json"
_BINARY = "application/octet-stream"


def _dumps(obj) -> bytes:
    # allow_nan: a float model may answer NaN; Python's json (and tritonclient) read it back.
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()


def _json_response(obj, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type=_JSON)


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    """The OIP error body: ``{"error": message}``."""
    return Response(_dumps({"error": message}), status_code=status, media_type=_JSON, headers=headers)


# --- request decoding ---------------------------------------------------------------------

def _shape_of(name: str, shape) -> tuple:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidRequest(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def _count(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _tensor_from_json(name: str, datatype: str, dtype: np.dtype, shape: tuple, data) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidRequest(f"input {name!r}: data is not a regular (non-ragged) array of numbers") from None
    kind = values.dtype.kind
    if values.size and (kind not in "biuf" or (kind == "b") != (dtype.kind == "b")):
        want = "true/false values" if dtype.kind == "b" else "numbers"
        raise InvalidRequest(f"input {name!r}: data of datatype {datatype} must hold {want}")
    if values.size and dtype.kind in "iu" and kind == "f":  # (an empty list reads as float64)
        raise InvalidRequest(f"input {name!r}: data of datatype {datatype} must hold integers, got fractions")
    if values.size != _count(shape):
        raise InvalidRequest(f"input {name!r}: shape {list(shape)} holds {_count(shape)} values, data has "
                             f"{values.size}")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = values.astype(dtype).reshape(shape)
    if dtype.kind in "iu" and values.size and not np.array_equal(arr.reshape(values.shape), values):
        info = np.iinfo(dtype)
        raise InvalidRequest(f"input {name!r}: a value is outside {datatype}'s range {info.min}..{info.max}")
    return arr


def _binary_size(name: str, params: dict):
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequest(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
    return size


def _header_length(value: str | None, body_size: int):
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"Inference-Header-Content-Length {value!r} is not an integer") from None
    if n < 0 or n > body_size:
        raise InvalidRequest(f"Inference-Header-Content-Length {n} is outside the body's {body_size} bytes")
    return n


def decode_infer_request(body: bytes, header_length: str | None) -> tuple:
    """(InferRequest, all outputs binary?) from a request body and its
    Inference-Header-Content-Length header (None: the body is all JSON)."""
    n = _header_length(header_length, len(body))
    header, binary = (body, b"") if n is None else (body[:n], memoryview(body)[n:])
    try:
        doc = json.loads(header)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequest("request needs 'inputs': a non-empty list of tensors")
    inputs, seen, offset = [], set(), 0
    for i, t in enumerate(raw_inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise InvalidRequest(f"inputs[{i}] must be an object with a string 'name'")
        name = t["name"]
        if name in seen:
            raise InvalidRequest(f"input {name!r} given twice")
        seen.add(name)
        datatype = t.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidRequest(f"input {name!r}: 'datatype' must be a string such as \"INT8\"")
        dtype = dtype_of(datatype)
        shape = _shape_of(name, t.get("shape"))
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidRequest(f"input {name!r}: 'parameters' must be an object")
        size = _binary_size(name, params)
        if size is None:
            if "data" not in t:
                raise InvalidRequest(f"input {name!r} has neither 'data' nor a binary_data_size parameter")
            arr = _tensor_from_json(name, datatype, dtype, shape, t["data"])
        else:
            if "data" in t:
                raise InvalidRequest(f"input {name!r} has both 'data' and binary_data_size")
            need = _count(shape) * dtype.itemsize
            if size != need:
                raise InvalidRequest(f"input {name!r}: binary_data_size {size} but shape {list(shape)} of "
                                     f"{datatype} takes {need} bytes")
            if offset + size > len(binary):
                raise InvalidRequest(f"input {name!r}: binary data truncated: it needs bytes {offset}..{offset + size}"
                                     f" after the JSON header, the body has {len(binary)}")
            arr = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=_count(shape), offset=offset)
            arr = arr.reshape(shape) if dtype.isnative else arr.astype(dtype).reshape(shape)
            offset += size
        inputs.append(InferTensor(name, datatype, shape, arr, {k: v for k, v in params.items()
                                                                if k != "binary_data_size"}))
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} bytes after the JSON header that no input's "
                             "binary_data_size accounts for")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidRequest("request 'parameters' must be an object")
    all_binary = params.get("binary_data_output", False)
    if not isinstance(all_binary, bool):
        raise InvalidRequest("parameter binary_data_output must be true or false")
    outputs, binary_outputs = _requested_outputs(doc.get("outputs"))
    if outputs is not None and all_binary:
        binary_outputs = set(outputs)
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidRequest("request 'id' must be a string")
    return InferRequest(inputs=inputs, id=request_id, outputs=outputs, binary_outputs=binary_outputs,
                        parameters=params, timeout_s=_timeout_s(params)), all_binary


def _requested_outputs(raw) -> tuple:
    if raw is None:
        return None, set()
    if not isinstance(raw, list):
        raise InvalidRequest("request 'outputs' must be a list of {\"name\": ...} objects")
    names, binary = [], set()
    for i, o in enumerate(raw):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidRequest(f"outputs[{i}] must be an object with a string 'name'")
        params = o.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidRequest(f"output {o['name']!r}: 'parameters' must be an object")
        if "classification" in params:
            raise InvalidRequest(f"output {o['name']!r}: the classification extension is not supported")
        flag = params.get("binary_data", False)
        if not isinstance(flag, bool):
            raise InvalidRequest(f"output {o['name']!r}: binary_data must be true or false")
        names.append(o["name"])
        if flag:
            binary.add(o["name"])
    return names, binary


def _timeout_s(params: dict):
    # Triton's request parameter: microseconds.
    us = params.get("timeout")
    if us is None:
        return None
    if not isinstance(us, (int, float)) or isinstance(us, bool) or not us > 0:
        raise InvalidRequest(f"parameter timeout must be a positive number of microseconds, got {us!r}")
    return us / 1e6


# --- response encoding --------------------------------------------------------------------

def encode_infer_response(response: InferResponse, binary_names: set, all_binary: bool) -> tuple:
    """(body, headers) of an inference response; outputs named in ``binary_names`` (all
    of them with ``all_binary``) go after the JSON header as little-endian raw bytes."""
    outputs, blobs = [], []
    for t in response.outputs:
        arr = np.asarray(t.data)
        out = {"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]}
        params = dict(t.parameters) if t.parameters else None
        if all_binary or t.name in binary_names:
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            params = params or {}
            params["binary_data_size"] = len(raw)
            blobs.append(raw)
        else:
            out["data"] = arr.ravel().tolist()
        if params:
            out["parameters"] = params
        outputs.append(out)
    doc = {"model_name": response.model_name, "model_version": response.model_version, "outputs": outputs}
    if response.id:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = _dumps(doc)
    if not blobs:
        return header, {"content-type": _JSON}
    return b"".join([header, *blobs]), {"content-type": _BINARY, HEADER_LENGTH: str(len(header))}


# --- the app ------------------------------------------------------------------------------

async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest(f"Content-Length {declared!r} is not an integer") from None
        if size > limit:
            raise PayloadTooLarge(f"request body of {size} bytes is over the limit of {limit} bytes "
                                  "(edgekit serve --max-request-bytes)")
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise InvalidRequest(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body, or one longer than it said
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes "
                                  "(edgekit serve --max-request-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


class RestFrontEnd:
    """The routes of the OIP REST API over one ``service``. ``token``: when set, every
    endpoint but the two health checks needs ``Authorization: Bearer <token>``.
    ``max_in_flight``: more inference requests at once get 429 before their body is read."""

    def __init__(self, service, *, token: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, openapi_document: dict | None = None):
        self.service = service
        self.max_request_bytes = max_request_bytes
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._token = token.encode() if token else None
        if openapi_document is None:
            from edgekit.serve.openapi import openapi_document as build

            openapi_document = build()
        self._openapi = _dumps(openapi_document)
        self._server_metadata = _dumps({"name": service.name, "version": service.version,
                                        "extensions": list(service.extensions)})
        self._metrics = service.metrics
        open_ = self._guard
        closed = self._guarded
        self.routes = [
            Route("/v2/health/live", open_(self.live), methods=["GET"]),
            Route("/v2/health/ready", open_(self.ready), methods=["GET"]),
            Route("/v2", closed(self.server_metadata), methods=["GET"]),
            Route("/v2/models/{name}", closed(self.model_metadata), methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}", closed(self.model_metadata), methods=["GET"]),
            Route("/v2/models/{name}/ready", closed(self.model_ready), methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}/ready", closed(self.model_ready), methods=["GET"]),
            Route("/v2/models/{name}/infer", closed(self.infer), methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/infer", closed(self.infer), methods=["POST"]),
            Route("/v2/repository/index", closed(self.repository_index), methods=["POST"]),
            Route("/v2/repository/reload", closed(self.repository_reload), methods=["POST"]),
            Route("/v2/repository/models/{name}/load", closed(self.repository_load), methods=["POST"]),
            Route("/metrics", closed(self.metrics), methods=["GET"]),
            Route("/openapi.json", closed(self.openapi), methods=["GET"]),
        ]

    def app(self) -> Starlette:
        return Starlette(routes=self.routes, exception_handlers={HTTPException: _http_exception})

    # --- plumbing

    def _guard(self, handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ServeError as exc:
                headers = {"www-authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
                return error_response(exc.http_status, str(exc), headers)
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is left to read it
            except Exception as exc:  # a bug: answer 500, keep serving, keep the traceback
                log.exception("internal error on %s %s", request.method, request.url.path)
                return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        return endpoint

    def _guarded(self, handler):
        if self._token is None:
            return self._guard(handler)

        async def checked(request: Request) -> Response:
            self._authorize(request)
            return await handler(request)
        return self._guard(checked)

    def _authorize(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <token>)")

    def _label(self, name: str, version: str | None) -> str:
        """``name`` as a metrics label, or UNKNOWN_MODEL when no such model exists."""
        try:
            self.service.model_ready(name, version)
        except ServeError:
            return UNKNOWN_MODEL
        return name

    @staticmethod
    def _model(request: Request) -> tuple:
        p = request.path_params
        return p["name"], p.get("version")

    # --- endpoints

    async def live(self, request: Request) -> Response:
        if self.service.live():
            return _json_response({"live": True})
        return error_response(400, "server is not live")

    async def ready(self, request: Request) -> Response:
        if self.service.ready():
            return _json_response({"ready": True})
        return error_response(400, "server is not ready: starting, draining, or a model has no ready version "
                                   "(POST /v2/repository/index says which)")

    async def server_metadata(self, request: Request) -> Response:
        return Response(self._server_metadata, media_type=_JSON)

    async def model_metadata(self, request: Request) -> Response:
        name, version = self._model(request)
        return _json_response(self.service.model_metadata(name, version))

    async def model_ready(self, request: Request) -> Response:
        name, version = self._model(request)
        if self.service.model_ready(name, version):
            return _json_response({"name": name, "ready": True})
        which = name if version is None else f"{name} version {version}"
        return error_response(400, f"model {which} is not ready")

    async def infer(self, request: Request) -> Response:
        t0 = time.perf_counter()
        name, version = self._model(request)
        status = 500
        if self._in_flight >= self.max_in_flight:
            self._metrics.observe_request(self._label(name, version), PROTOCOL, time.perf_counter() - t0, 429)
            raise Overloaded(f"{self._in_flight} inference requests in flight, the daemon's limit "
                             "(edgekit serve --max-in-flight): retry later")
        self._in_flight += 1  # one event loop: no lock needed
        try:
            body = await _read_body(request, self.max_request_bytes)
            req, all_binary = decode_infer_request(body, request.headers.get(HEADER_LENGTH))
            resp = await self.service.infer(name, version, req)
            payload, headers = encode_infer_response(resp, req.binary_outputs, all_binary)
            status = 200
            return Response(payload, headers=headers)
        except ServeError as exc:
            status = exc.http_status
            if isinstance(exc, ModelNotFound):
                name = UNKNOWN_MODEL  # a label per made-up name would grow the registry without bound
            raise
        finally:
            self._in_flight -= 1
            self._metrics.observe_request(name, PROTOCOL, time.perf_counter() - t0, status)

    async def repository_index(self, request: Request) -> Response:
        body = await _read_body(request, self.max_request_bytes)
        only_ready = False
        if body.strip():
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("ready", False), bool):
                raise InvalidRequest('request body must be an object such as {"ready": true}')
            only_ready = doc.get("ready", False)
        index = self.service.repository_index()
        if only_ready:
            index = [m for m in index if m["state"] == "READY"]
        return _json_response(index)

    async def repository_reload(self, request: Request) -> Response:
        return _json_response(await self.service.reload())

    async def repository_load(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await _read_body(request, self.max_request_bytes)
        if body.strip():
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise InvalidRequest("request body must be a JSON object")
            if doc.get("parameters"):
                raise InvalidRequest("load takes no config or files: put the bundle in a model directory "
                                     "the daemon serves, then load")
        await self.service.load_model(name)
        return _json_response({})

    async def metrics(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self._metrics.registry), headers={"content-type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type=_JSON)


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    # Starlette's own 404 (no such route) and 405 (wrong method), in the OIP error body.
    what = {404: f"no such endpoint: {request.url.path}",
            405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, what, dict(exc.headers) if exc.headers else None)


def build_app(service, *, token: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
              max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> Starlette:
    """The ASGI app serving ``service`` over the OIP REST API."""
    return RestFrontEnd(service, token=token, max_request_bytes=max_request_bytes, max_in_flight=max_in_flight).app()
