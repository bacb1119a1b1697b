"""TFLite frontend: a bounds-checked flatbuffer reader and the importer to the IR."""

from edgekit.frontends.tflite.importer import SUPPORTED_TFLITE_OPS, load_tflite

__all__ = ["SUPPORTED_TFLITE_OPS", "load_tflite"]
