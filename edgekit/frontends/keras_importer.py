"""Keras and TensorFlow frontend: ``.keras``, ``.h5`` and SavedModel folders to edgekit IR.

The model is traced at batch size 1 (a dynamic batch makes TensorFlow's converter emit
SHAPE / STRIDED_SLICE / PACK ops around reshapes), converted by ``tf.lite.TFLiteConverter``
to a float ``.tflite`` without optimizations, and that file goes through edgekit's own
``.tflite`` importer: one op set and one set of semantics for both routes.

Which Keras opens a file: Keras 2 files (every MLPerf Tiny model; ``keras_version`` 2.x in
the file) through tf-keras, Keras 3 files through Keras 3 on its TensorFlow backend.
TensorFlow is imported inside :func:`load_keras` only (it takes seconds) with its native
logging silenced, so the rest of edgekit works without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import zipfile
from os import PathLike
from pathlib import Path

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError
from edgekit.frontends.keras_recurrent import unrolled
from edgekit.frontends.tflite import load_tflite
from edgekit.ir import Graph, verify

__all__ = ["load_keras", "keras_to_tflite", "is_saved_model", "KERAS_SUFFIXES"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_INSTALL_HINT = "Keras and SavedModel import needs TensorFlow: pip install 'edgekit[tensorflow]'"


def is_saved_model(path: str | PathLike) -> bool:
    """A TensorFlow SavedModel is a folder holding ``saved_model.pb``."""
    p = Path(path)
    return p.is_dir() and (p / "saved_model.pb").is_file()


def load_keras(path: str | PathLike, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Import a ``.keras`` / ``.h5`` file or a SavedModel folder into a verified IR graph.

    ``input_shapes`` ({input name: shape}) fixes input dimensions the model leaves open
    besides the batch, which is always 1.
    """
    source = Path(path)
    tflite, input_names, output_names = _convert(source, input_shapes)
    try:
        graph = load_tflite(tflite)
    except UnsupportedOpError as exc:
        raise _unsupported_layer(exc, source) from None
    graph.name = source.stem if source.suffix.lower() in KERAS_SUFFIXES else source.name
    _rename_io(graph, input_names, output_names)
    graph.metadata.update({"source_format": "keras" if source.is_file() else "saved_model",
                           "converted_by": "tf.lite.TFLiteConverter (float, no optimizations)"})
    verify(graph)
    return graph


def keras_to_tflite(path: str | PathLike, input_shapes: dict[str, list[int]] | None = None) -> bytes:
    """The float ``.tflite`` (batch 1) that :func:`load_keras` imports."""
    return _convert(Path(path), input_shapes)[0]


# ---------------------------------------------------------------------------
# TensorFlow, quietly
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def _native_stderr_to(sink):
    """Send fd 2 (TensorFlow's C++ logging, the converter's MLIR dumps) to ``sink`` meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _import_tensorflow():
    # Before TensorFlow's first import: Keras 2 behind tf.keras, no C++ info chatter. Keras 2
    # files are read through tf_keras itself, which also works when TensorFlow was imported
    # earlier in this process without TF_USE_LEGACY_KERAS.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryFile() as log, _native_stderr_to(log):
        try:
            import tensorflow as tf
        except ImportError:
            raise BadInputError(_INSTALL_HINT) from None
    tf.get_logger().setLevel("ERROR")
    return tf


def _keras_for(version: str):
    """The Keras package that reads files written by Keras ``version``."""
    if version.startswith("3"):
        if "keras" not in sys.modules:
            os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        try:
            import keras
        except ImportError:
            raise BadInputError(_INSTALL_HINT) from None
        if keras.backend.backend() != "tensorflow":
            raise BadInputError(f"Keras 3 runs on the {keras.backend.backend()!r} backend in this process; "
                                "importing a Keras model needs KERAS_BACKEND=tensorflow")
        return keras
    try:
        import tf_keras
    except ImportError:
        raise BadInputError("Keras 2 files (.h5, SavedModel) need tf-keras: pip install 'edgekit[tensorflow]'") \
            from None
    return tf_keras


def _file_keras_version(path: Path) -> str:
    """The Keras version that wrote ``path`` ("2" when the file does not say)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                return str(json.loads(z.read("metadata.json")).get("keras_version", "3"))
        if suffix in (".h5", ".hdf5"):
            import h5py
            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    raise ModelFormatError(f"{path}: an HDF5 file without a Keras model in it (only weights?)")
                v = f.attrs.get("keras_version", b"2")
                return v.decode() if isinstance(v, bytes) else str(v)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelFormatError(f"{path}: not a readable Keras file ({type(exc).__name__}: {exc})") from None
    return "2"


# ---------------------------------------------------------------------------
# loading and conversion
# ---------------------------------------------------------------------------

def _convert(source: Path, input_shapes) -> tuple[bytes, list[str], list[str]]:
    if source.is_dir():
        if not is_saved_model(source):
            raise BadInputError(f"{source}: a folder, but not a TensorFlow SavedModel (no saved_model.pb in it)")
    elif not source.is_file():
        raise BadInputError(f"model file not found: {source}")
    elif source.suffix.lower() not in KERAS_SUFFIXES:
        raise BadInputError(f"{source}: not a Keras file (expected {', '.join(KERAS_SUFFIXES)})")
    version = "2" if source.is_dir() else _file_keras_version(source)
    tf = _import_tensorflow()
    with tempfile.TemporaryFile() as log, _native_stderr_to(log):
        keras = _keras_for(version)
        model = _load(tf, keras, source)
        if model is None:  # a SavedModel TensorFlow wrote without Keras
            return _convert_plain_saved_model(tf, source, input_shapes)
        model = unrolled(keras, model)  # recurrent layers: no WHILE loop (keras_recurrent)
        specs, input_names = _input_specs(tf, model, input_shapes, source)
        output_names = _output_names(model)

        def call(*xs):
            return model(list(xs) if len(xs) > 1 else xs[0], training=False)

        concrete = tf.function(call).get_concrete_function(*specs)
        # No trackable object: the converter then freezes the variables into constants
        # (with one, Keras 3 models keep VAR_HANDLE / READ_VARIABLE ops).
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        return _run_converter(converter, source), input_names, output_names


def _load(tf, keras, source: Path):
    try:
        model = keras.models.load_model(str(source), compile=False)
        # tf_keras hands back TensorFlow's generic restored object for a SavedModel not
        # written by Keras.
        return model if isinstance(model, keras.Model) else None
    except (ImportError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        if source.is_dir():
            # Not a Keras SavedModel: convert its serving signature instead.
            return None
        raise _load_error(exc, source) from None


def _load_error(exc: Exception, source: Path) -> BadInputError:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "Unknown layer" in str(exc) or "Could not locate class" in str(exc):
        first = first.split(". ")[0]  # Keras goes on about custom_object_scope
        return BadInputError(f"{source}: it uses a layer class Keras does not know, a custom layer ({first}); "
                             "edgekit imports models built from Keras's own layers")
    return ModelFormatError(f"{source}: Keras cannot open it ({type(exc).__name__}: {first})")


def _input_specs(tf, model, input_shapes, source: Path):
    shapes = dict(input_shapes or {})
    specs, names = [], []
    for t in model.inputs:
        name = _plain_name(t)
        dims = list(t.shape)
        if name in shapes:
            given = list(shapes.pop(name))
            if len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims[1:], given[1:])):
                raise BadInputError(f"--input-shape {name}={','.join(map(str, given))} does not fit the model's "
                                    f"input shape {_shape_text(dims)}")
            dims = given
        dims = [1] + dims[1:]  # batch 1: no SHAPE / STRIDED_SLICE ops from a dynamic batch
        if any(d is None for d in dims):
            raise BadInputError(f"{source}: input {name!r} has the open shape {_shape_text(t.shape)}; "
                                f"fix it with --input-shape {name}=1,...")
        specs.append(tf.TensorSpec(dims, t.dtype, name=name))
        names.append(name)
    if shapes:
        raise BadInputError(f"--input-shape names no input of the model: {', '.join(shapes)} "
                            f"(inputs: {', '.join(names)})")
    return specs, names


def _plain_name(t) -> str:
    history = getattr(t, "_keras_history", None)
    if history is not None:
        layer = history[0] if isinstance(history, tuple) else getattr(history, "operation", None)
        if getattr(layer, "name", None):
            return layer.name
    return str(getattr(t, "name", "input")).split(":")[0]


def _output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names and len(names) == len(model.outputs):
        return [str(n) for n in names]
    return [_plain_name(t) for t in model.outputs]


def _shape_text(dims) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ")"


def _convert_plain_saved_model(tf, source: Path, input_shapes):
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
    except Exception as exc:  # noqa: BLE001 - TensorFlow's loader raises many kinds
        raise ModelFormatError(f"{source}: TensorFlow cannot open this SavedModel ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    if input_shapes:
        raise BadInputError(f"{source}: --input-shape applies to Keras models; this SavedModel has no Keras "
                            "model in it, and its serving signature fixes its shapes")
    # Names come from the .tflite (serving signature); nothing to rename.
    return _run_converter(converter, source), [], []


def _run_converter(converter, source: Path) -> bytes:
    converter.optimizations = []
    try:
        return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError and friends
        ops = sorted({w.strip(" '\",.:") for w in str(exc).split() if w.startswith(("tf.", "'tf."))})
        detail = f"it uses TensorFlow ops TFLite has no builtin for: {', '.join(ops)}" if ops else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"{source}: TensorFlow's TFLite converter failed: {detail}") from None


# ---------------------------------------------------------------------------
# after the .tflite import
# ---------------------------------------------------------------------------

def _unsupported_layer(exc: UnsupportedOpError, source: Path) -> UnsupportedOpError:
    """Name the Keras layer behind an op edgekit lacks (TFLite tensor names carry the layer's)."""
    out = exc.node.partition(" -> ")[2]
    parts = [p for name in out.split(";") for p in name.split("/")]
    layer = parts[1] if len(parts) > 1 else ""
    where = f"Keras layer {layer!r} of {source}" if layer else f"{exc.node} of {source}"
    return UnsupportedOpError(exc.op, where, exc.supported,
                              "TensorFlow's TFLite converter turns the layer into this op, which edgekit lacks")


def _rename_io(graph: Graph, input_names: list[str], output_names: list[str]) -> None:
    """Give the graph's inputs and outputs the Keras model's names (the converter's are
    ``serving_default_x:0`` and ``StatefulPartitionedCall:0``)."""
    for old_list, new_names in ((graph.inputs, input_names), (graph.outputs, output_names)):
        if len(new_names) != len(old_list):
            continue
        for i, (old, new) in enumerate(zip(list(old_list), new_names)):
            if old == new:
                continue
            if new in graph.tensors:  # keep the converter's name rather than clash
                continue
            t = graph.tensors.pop(old)
            t.name = new
            graph.tensors[new] = t
            for op in graph.ops:
                op.inputs = [new if x == old else x for x in op.inputs]
                op.outputs = [new if x == old else x for x in op.outputs]
            old_list[i] = new
