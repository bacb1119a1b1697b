"""The Open Inference Protocol over gRPC: ``GrpcFrontEnd`` serves an ``InferenceService``
with grpc.aio in the daemon's asyncio loop (docs/serve.md, "gRPC").

Service ``inference.GRPCInferenceService`` as the protocol defines it
(``oip_proto/grpc_predict_v2.proto``): ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata, ModelInfer, and Triton's RepositoryIndex and RepositoryModelLoad. Any other
method of that service (Triton's ModelConfig, ModelStatistics, ModelStreamInfer,
RepositoryModelUnload, shared memory, ...) answers UNIMPLEMENTED naming the method.

Tensor data arrives either as ``raw_input_contents`` (what tritonclient sends) or in the typed
``contents`` fields; the reply uses the same form as the request (raw when any input was raw
or the request had no typed contents, and for FP16, which has no typed field). Every
``ServeError`` becomes its ``grpc_code`` with the error's message; anything else is INTERNAL
and logged. Handlers run in the event loop: the only thread hop is the service's own, into
the model worker.
"""

from __future__ import annotations

import hmac
import logging
import math
import time

import grpc
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.serve.metrics import UNKNOWN_MODEL
from edgekit.serve.oip_proto import grpc_predict_v2_pb2 as pb
from edgekit.serve.oip_proto import grpc_predict_v2_pb2_grpc as pb_grpc
from edgekit.serve.protocol import (InferRequest, InferTensor, InvalidRequest, ModelNotFound, ServeError, dtype_of)

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"

# The typed field of InferTensorContents that carries each datatype (FP16: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
_ALL_CONTENTS_FIELDS = tuple(f.name for f in pb.InferTensorContents.DESCRIPTOR.fields)


class GrpcFrontEnd:
    """The gRPC listener of one ``InferenceService``.

    ``max_message_bytes`` bounds requests and replies alike (a larger one is refused with
    RESOURCE_EXHAUSTED by gRPC itself, before it is decoded). ``max_in_flight`` bounds the
    calls served at once (gRPC refuses more with RESOURCE_EXHAUSTED), so that request
    messages take at most ``max_in_flight`` x ``max_message_bytes``; None: no bound. With
    ``token``, every call but the two health checks must carry the metadata
    ``authorization: Bearer <token>``; others get UNAUTHENTICATED.
    """

    def __init__(self, service, host: str, port: int, *, max_message_bytes: int, token: str | None = None,
                 max_in_flight: int | None = None):
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.service = service
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.token = token
        self.max_in_flight = max_in_flight
        self._server = None

    async def start(self) -> int:
        """Listen and serve; return the bound port (the one asked for, or the one the system
        chose for port 0). A port that cannot be bound raises ``EdgekitError``."""
        interceptors = [_BearerTokenCheck(self.token)] if self.token else []
        server = grpc.aio.server(interceptors=interceptors, maximum_concurrent_rpcs=self.max_in_flight, options=[
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
        ])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(self.service), server)
        server.add_generic_rpc_handlers((_UnimplementedMethods(),))
        address = f"{_host_for_address(self.host)}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as e:
            raise EdgekitError(f"gRPC cannot listen on {address}: {e}") from None
        if not bound:
            raise EdgekitError(f"gRPC cannot listen on {address} (address in use or not local?)")
        await server.start()
        self._server = server
        self.port = bound
        log.debug("gRPC (Open Inference Protocol) on %s:%d", self.host, bound)
        return bound

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let running ones finish for up to ``grace_s`` seconds, then cancel
        the rest."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None


def _host_for_address(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class OipServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's RPCs, each a translation between protobuf and the service's calls."""

    def __init__(self, service):
        self.service = service
        self.metrics = service.metrics

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=self.service.live())

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.service.ready())

    async def ModelReady(self, request, context):
        try:
            ready = self.service.model_ready(request.name, request.version or None)
        except ServeError as e:
            await _abort(context, e)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        s = self.service
        return pb.ServerMetadataResponse(name=s.name, version=s.version, extensions=list(s.extensions))

    async def ModelMetadata(self, request, context):
        try:
            meta = self.service.model_metadata(request.name, request.version or None)
        except ServeError as e:
            await _abort(context, e)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=list(meta["versions"]), platform=meta["platform"],
            inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["inputs"]],
            outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["outputs"]])

    async def RepositoryIndex(self, request, context):
        if request.repository_name:
            await _abort(context, ModelNotFound(
                f"no repository named {request.repository_name!r}: edgekit's repositories have no names; "
                "leave repository_name empty"))
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[
            entry(name=m["name"], version=m["version"], state=m["state"], reason=m.get("reason", ""))
            for m in self.service.repository_index() if not request.ready or m["state"] == "READY"])

    async def RepositoryModelLoad(self, request, context):
        """Triton's load, as REST's: rescan the model directories now, then NOT_FOUND when the
        model is not there, UNAVAILABLE (with each version's reason) when no version of it is
        ready. A config or files in the parameters are refused: bundles come from the
        directories."""
        try:
            if request.repository_name:
                raise ModelNotFound(f"no repository named {request.repository_name!r}: edgekit's repositories "
                                    "have no names; leave repository_name empty")
            if request.parameters:
                raise InvalidRequest("load takes no config or files: put the bundle in a model directory the "
                                     "daemon serves, then load")
            await self.service.load_model(request.model_name)
        except ServeError as e:
            await _abort(context, e)
        return pb.RepositoryModelLoadResponse()

    async def ModelInfer(self, request, context):
        started = time.perf_counter()
        status = "OK"
        try:
            infer_request, raw = decode_infer_request(request)
            remaining = context.time_remaining()
            if remaining is not None:  # the client's deadline bounds the wait (0 would mean "no timeout")
                infer_request.timeout_s = max(remaining, 1e-3)
            response = await self.service.infer(request.model_name, request.model_version or None, infer_request)
            reply = encode_infer_response(response, raw)
        except ServeError as e:
            status = e.grpc_code
            self._observe(request.model_name, started, status)
            await _abort(context, e)
        except Exception:
            log.exception("gRPC ModelInfer for model %r failed", request.model_name)
            status = "INTERNAL"
            self._observe(request.model_name, started, status)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in the server (logged)")
        self._observe(request.model_name, started, status)
        return reply

    def _observe(self, model: str, started: float, status: str) -> None:
        # A request for a model or version that does not exist counts under UNKNOWN_MODEL, as
        # on REST: a label per made-up name would grow without bound (failures only: the
        # check costs a lookup).
        if status == "NOT_FOUND" or (status != "OK" and not self._known(model)):
            model = UNKNOWN_MODEL
        self.metrics.observe_request(model, "grpc", time.perf_counter() - started, status)

    def _known(self, model: str) -> bool:
        try:
            self.service.model_ready(model)
        except ServeError:
            return False
        return True


async def _abort(context, error: ServeError):
    await context.abort(getattr(grpc.StatusCode, error.grpc_code, grpc.StatusCode.INTERNAL), str(error))


# --------------------------------------------------------------------------- tensors


def decode_infer_request(msg) -> tuple[InferRequest, bool]:
    """A ``ModelInferRequest`` as an ``InferRequest`` (its tensors' data as numpy arrays of the
    declared datatype and shape) and whether the reply should use raw contents. Raises
    ``InvalidRequest`` naming the tensor for data that does not fit its datatype and shape;
    the service checks names, datatypes and shapes against the model."""
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidRequest(f"raw_input_contents has {len(raw)} entries for {len(msg.inputs)} inputs: "
                             "give one per input, in the order of inputs")
    inputs = []
    typed = False
    for i, tensor in enumerate(msg.inputs):
        name = tensor.name
        dtype = dtype_of(tensor.datatype)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidRequest(f"input {name!r}: shape {list(shape)} has a negative dimension")
        count = math.prod(shape)
        has_contents = tensor.HasField("contents")
        if raw and has_contents:
            raise InvalidRequest(f"input {name!r} has contents while the request uses raw_input_contents: "
                                 "use one or the other for all inputs")
        try:
            if raw:
                data = _from_raw(name, tensor.datatype, dtype, shape, count, raw[i])
            else:
                typed = typed or has_contents
                data = _from_contents(name, tensor.datatype, dtype, shape, count, tensor.contents)
        except ValueError as e:  # numpy's limits: more than 64 dimensions, a size past the address space
            raise InvalidRequest(f"input {name!r}: shape {list(shape)} cannot be held: {e}") from None
        inputs.append(InferTensor(name=name, datatype=tensor.datatype, shape=shape, data=data,
                                  parameters=_parameters(tensor.parameters) if tensor.parameters else {}))
    request = InferRequest(inputs=inputs, id=msg.id,
                           outputs=[o.name for o in msg.outputs] if msg.outputs else None,
                           parameters=_parameters(msg.parameters) if msg.parameters else {})
    return request, not typed


def _from_raw(name, datatype, dtype, shape, count, blob: bytes) -> np.ndarray:
    expected = count * dtype.itemsize
    if len(blob) != expected:
        raise InvalidRequest(f"input {name!r}: raw contents hold {len(blob)} bytes; shape {list(shape)} of "
                             f"{datatype} needs {expected}")
    data = np.frombuffer(blob, dtype=dtype).reshape(shape)
    if datatype == "BOOL" and count and int(data.view(np.uint8).max()) > 1:
        raise InvalidRequest(f"input {name!r}: BOOL raw contents must be bytes 0 or 1")
    return data


def _from_contents(name, datatype, dtype, shape, count, contents) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidRequest(f"input {name!r}: {datatype} has no typed contents field; send it in "
                             "raw_input_contents")
    for other in _ALL_CONTENTS_FIELDS:
        if other != field and len(getattr(contents, other)):
            raise InvalidRequest(f"input {name!r}: {datatype} data goes in contents.{field}, not {other}")
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidRequest(f"input {name!r}: contents.{field} has {len(values)} values; shape {list(shape)} "
                             f"needs {count}")
    if dtype.kind in "iu" and dtype.itemsize < 4 and count:
        # int_contents / uint_contents are 32-bit on the wire: check the narrower range.
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(dtype)
        if int(wide.min()) < info.min or int(wide.max()) > info.max:
            raise InvalidRequest(f"input {name!r}: a value of contents.{field} is outside {datatype}'s range "
                                 f"[{info.min}, {info.max}]")
        return wide.astype(dtype).reshape(shape)
    return np.asarray(values, dtype=dtype).reshape(shape)


def encode_infer_response(response, raw: bool):
    """An ``InferResponse`` as a ``ModelInferResponse``: outputs in raw_output_contents when
    ``raw`` (or when an output's datatype has no typed field), else in typed contents."""
    outputs = response.outputs
    if not raw and any(t.datatype not in CONTENTS_FIELD for t in outputs):
        raw = True
    reply = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version,
                                  id=response.id)
    if response.parameters:
        _set_parameters(reply.parameters, response.parameters)
    for t in outputs:
        out = reply.outputs.add(name=t.name, datatype=t.datatype, shape=t.data.shape)
        if t.parameters:
            _set_parameters(out.parameters, t.parameters)
        if raw:
            reply.raw_output_contents.append(t.data.tobytes())
        else:
            getattr(out.contents, CONTENTS_FIELD[t.datatype]).extend(t.data.ravel().tolist())
    return reply


def _parameters(params) -> dict:
    return {key: getattr(value, value.WhichOneof("parameter_choice")) if value.WhichOneof("parameter_choice")
            else None for key, value in params.items()}


def _set_parameters(target, params: dict) -> None:
    for key, value in params.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            if value >= 2 ** 63:
                slot.uint64_param = value
            else:
                slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = str(value)


# --------------------------------------------------------------------------- handlers around the service


class _UnimplementedMethods(grpc.GenericRpcHandler):
    """Methods of ``inference.GRPCInferenceService`` edgekit does not serve (Triton's
    extensions): UNIMPLEMENTED with the method's name, whatever the call's shape."""

    def service(self, handler_call_details):
        method = handler_call_details.method
        if not method.startswith(f"/{SERVICE_NAME}/"):
            return None
        message = (f"{method.rsplit('/', 1)[1]} is not implemented by edgekit serve; it serves ServerLive, "
                   "ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer, RepositoryIndex and "
                   "RepositoryModelLoad")

        async def refuse(request_iterator, context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        return grpc.stream_stream_rpc_method_handler(refuse)


class _BearerTokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every call but the two health checks (as on REST: supervisors probe them)
    without ``authorization: Bearer <token>`` metadata, before its request is decoded."""

    OPEN = frozenset(f"/{SERVICE_NAME}/{m}" for m in ("ServerLive", "ServerReady"))

    def __init__(self, token: str):
        self._token = token.encode()

    def _allowed(self, handler_call_details) -> bool:
        if handler_call_details.method in self.OPEN:
            return True
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                value = value.decode("latin-1") if isinstance(value, bytes) else value
                scheme, _, given = value.partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)
        return False

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler

        async def refuse(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong bearer token (metadata authorization: Bearer <token>)")

        if handler.request_streaming or handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)
