"""The ONNX frontend's entry point (the implementation lives in ``edgekit.frontends.onnx``)."""

from edgekit.frontends.onnx import SUPPORTED_ONNX_OPS, load_onnx

__all__ = ["SUPPORTED_ONNX_OPS", "load_onnx"]
