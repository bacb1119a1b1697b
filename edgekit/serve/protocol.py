"""The Open Inference Protocol (KServe v2) as the daemon's front ends share it.

The REST app and the gRPC servicer both translate their wire form into these types and
call ``edgekit.serve.service.InferenceService``; neither knows how models are loaded,
swapped or queued. Errors are ``ServeError`` subclasses that carry both the HTTP status
and the gRPC status code name of the same condition, so the two front ends cannot
disagree about what a failure means (docs/serve.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.errors import EdgekitError

# OIP tensor datatypes and the numpy dtypes they carry (BYTES: object arrays of bytes).
DATATYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_DATATYPE_OF = {v: k for k, v in DATATYPES.items()}


def datatype_of(dtype) -> str:
    """The OIP datatype name of a numpy dtype; ServeError(400) for one OIP cannot carry."""
    try:
        return _DATATYPE_OF[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise InvalidRequest(f"dtype {dtype} has no Open Inference Protocol datatype") from None


def dtype_of(datatype: str) -> np.dtype:
    """The numpy dtype of an OIP datatype name; InvalidRequest naming the known ones otherwise."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise InvalidRequest(f"unknown datatype {datatype!r}; known: {', '.join(DATATYPES)}") from None


@dataclasses.dataclass
class InferTensor:
    """One input or output tensor: name, OIP datatype, shape and the data as a numpy array
    of exactly that dtype and shape."""

    name: str
    datatype: str
    shape: tuple
    data: np.ndarray
    parameters: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class InferRequest:
    """An inference request after wire decoding. ``outputs``: the output names asked for
    (None: all of them); ``binary_outputs``: names to return in binary form (REST binary
    tensor data extension; the gRPC front end ignores it)."""

    inputs: list
    id: str = ""
    outputs: list | None = None
    binary_outputs: set = dataclasses.field(default_factory=set)
    parameters: dict = dataclasses.field(default_factory=dict)
    timeout_s: float | None = None


@dataclasses.dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: list
    id: str = ""
    parameters: dict = dataclasses.field(default_factory=dict)


class ServeError(EdgekitError):
    """A request the daemon refuses or cannot answer. ``http_status`` and ``grpc_code``
    (a ``grpc.StatusCode`` member name) say the same thing on both front ends."""

    http_status = 500
    grpc_code = "INTERNAL"


class InvalidRequest(ServeError):
    """Malformed request: bad JSON, unknown or missing tensor, wrong shape, dtype or size."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthorized(ServeError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class ModelNotFound(ServeError):
    """No such model, or no such version of it."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServeError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Overloaded(ServeError):
    """The model's request queue is full: back off and retry."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class ModelUnavailable(ServeError):
    """The model exists but is not ready (loading, its board stopped answering, draining)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class RequestTimeout(ServeError):
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
