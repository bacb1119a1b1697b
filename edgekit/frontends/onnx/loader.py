"""Reading ONNX files safely: every failure of onnx or protobuf becomes a ModelFormatError.

Nothing here knows about the IR; it turns bytes (or a path, or a ModelProto) into a
checked ``onnx.ModelProto`` and converts tensors and attributes to numpy / Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelFormatError

# Largest constant the importer will materialise (elements). A corrupt model can
# claim absurd shapes; refusing them early keeps memory and time bounded.
MAX_CONST_ELEMENTS = 1 << 27


def read_model(model) -> tuple[Any, str, Path | None]:
    """Return ``(ModelProto, label, base_dir)``; ``label`` names the model in messages."""
    import onnx

    base_dir: Path | None = None
    if isinstance(model, onnx.ModelProto):
        proto, label = model, "<onnx.ModelProto>"
    else:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data, label = bytes(model), "<bytes>"
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model)
            label = str(path)
            try:
                data = path.read_bytes()
            except IsADirectoryError:
                raise ModelFormatError(f"{label}: is a directory, not an ONNX file") from None
            except OSError as exc:
                raise ModelFormatError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
            base_dir = path.resolve().parent
        else:
            raise ModelFormatError(f"cannot load an ONNX model from a {type(model).__name__}; "
                                   "give a path, bytes or an onnx.ModelProto")
        if not data:
            raise ModelFormatError(f"{label}: the file is empty")
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError and friends
            raise ModelFormatError(f"{label}: not a valid ONNX file (protobuf decoding failed: {exc})") from None
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelFormatError(f"{label}: not an ONNX model (no graph); the file is truncated, "
                               "corrupt or of another format")
    _load_external_data(proto, label, base_dir)
    _check(proto, label)
    return proto, label, base_dir


def _load_external_data(proto, label: str, base_dir: Path | None) -> None:
    from onnx import TensorProto

    external = [t for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return
    if base_dir is None:
        raise ModelFormatError(f"{label}: the model keeps weights in external files; load it from its path")
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(proto, str(base_dir))
    except Exception as exc:
        raise ModelFormatError(f"{label}: cannot read the model's external weight data ({exc})") from None


def _check(proto, label: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        first = str(exc).strip().splitlines()
        detail = first[0] if first else type(exc).__name__
        raise ModelFormatError(f"{label}: the ONNX checker rejects the model: {detail}") from None


def opset_version(proto) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def tensor_to_numpy(t, label: str) -> np.ndarray:
    """A TensorProto's value as numpy, with sizes checked before anything is allocated."""
    from onnx import numpy_helper

    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise ModelFormatError(f"{label}: tensor {t.name!r} has negative dimensions {dims}")
    n = int(np.prod(dims, dtype=np.float64)) if dims else 1
    if n > MAX_CONST_ELEMENTS:
        raise ModelFormatError(f"{label}: tensor {t.name!r} claims {n} elements; too large")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:
        raise ModelFormatError(f"{label}: cannot decode tensor {t.name!r} ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    if tuple(arr.shape) != tuple(dims):
        raise ModelFormatError(f"{label}: tensor {t.name!r} holds {arr.size} values for shape {dims}")
    return arr


def attributes(node, label: str) -> dict[str, Any]:
    """A node's attributes as Python values (strings decoded, tensors as numpy)."""
    from onnx import AttributeProto, helper

    out: dict[str, Any] = {}
    for a in node.attribute:
        try:
            if a.type == AttributeProto.TENSOR:
                value: Any = tensor_to_numpy(a.t, label)
            elif a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.SPARSE_TENSOR,
                            AttributeProto.SPARSE_TENSORS, AttributeProto.TENSORS, AttributeProto.TYPE_PROTO,
                            AttributeProto.TYPE_PROTOS):
                value = a  # kept raw; handlers that meet it reject the node
            else:
                value = helper.get_attribute_value(a)
                if isinstance(value, bytes):
                    value = value.decode("utf-8", errors="replace")
                elif isinstance(value, list):
                    value = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value]
        except ModelFormatError:
            raise
        except Exception as exc:
            raise ModelFormatError(f"{label}: node {node.name or node.op_type!r}: bad attribute "
                                   f"{a.name!r} ({exc})") from None
        out[a.name] = value
    return out


def np_dtype_of(elem_type: int, label: str, what: str) -> np.dtype:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(elem_type)))
    except Exception:
        raise ModelFormatError(f"{label}: {what} has unknown element type {elem_type}") from None
