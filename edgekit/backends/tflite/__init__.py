"""TFLite backend: lower an IR graph to a ``.tflite`` flatbuffer (schema version 3).

Written with the ``flatbuffers`` package alone; TensorFlow and LiteRT are not needed.
"""

from edgekit.backends.tflite.writer import tflite_bytes, write_tflite

__all__ = ["tflite_bytes", "write_tflite"]
