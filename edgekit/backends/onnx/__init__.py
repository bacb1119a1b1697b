"""ONNX backend: ``to_onnx`` lowers an IR graph to an ``onnx.ModelProto`` (NCHW inside,
QDQ for int8 graphs) and ``write_onnx`` writes it to a file."""

from edgekit.backends.onnx.writer import SUPPORTED_IR_OPS, to_onnx, write_onnx

__all__ = ["SUPPORTED_IR_OPS", "to_onnx", "write_onnx"]
