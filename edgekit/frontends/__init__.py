"""Frontends: every source format becomes the one IR here, and only here.

``load_model(path)`` picks the importer from the file: ``.tflite``, ``.onnx``,
``.pt2`` / ``file.py:factory`` (PyTorch), ``.keras`` / ``.h5`` / a SavedModel folder
(Keras and TensorFlow, through TensorFlow's TFLite converter), or ``.json`` (edgekit IR).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.ir import Graph

FORMATS = ("tflite", "onnx", "torch", "keras", "ir")


def detect_format(spec: str | PathLike) -> str:
    s = str(spec)
    path = Path(s)
    if ".py:" in s or s.endswith(".pt2"):
        return "torch"
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".json":
        return "ir"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "keras"
        raise BadInputError(f"{s} is a folder but not a TensorFlow SavedModel: it has no saved_model.pb")
    if path.is_file():
        head = path.open("rb").read(8)
        if head[4:8] == b"TFL3":
            return "tflite"
    raise BadInputError(f"cannot tell the format of {s!r}: use a .tflite, .onnx, .pt2, .keras, .h5, .json "
                        "(edgekit IR) file, a SavedModel folder or a PyTorch 'file.py:factory' spec")


def load_model(spec: str | PathLike, format: str | None = None, **options) -> Graph:
    """Import a model file into a verified IR graph."""
    fmt = format or detect_format(spec)
    s = str(spec)
    if fmt != "torch" and not Path(s).is_file() and not (fmt == "keras" and Path(s).is_dir()):
        raise BadInputError(f"model file not found: {s}")
    if fmt == "tflite":
        from edgekit.frontends.tflite import load_tflite
        return load_tflite(s)
    if fmt == "onnx":
        from edgekit.frontends.onnx_importer import load_onnx
        return load_onnx(s, input_shapes=options.get("input_shapes"))
    if fmt == "torch":
        from edgekit.frontends.torch_importer import load_torch
        shapes = options.get("input_shapes")
        # The CLI gives {name: shape}; a PyTorch module's inputs are positional.
        if isinstance(shapes, dict):
            shapes = list(shapes.values())
        return load_torch(s, input_shapes=shapes)
    if fmt == "keras":
        from edgekit.frontends.keras_importer import load_keras
        return load_keras(s, input_shapes=options.get("input_shapes"))
    if fmt == "ir":
        from edgekit.ir import load, verify
        g = load(s)
        verify(g)
        return g
    raise BadInputError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
