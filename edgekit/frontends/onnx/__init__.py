"""ONNX frontend: ``load_onnx`` turns an ONNX model (float or int8 QDQ) into edgekit IR.

- Float graphs (opset 7 and later) are converted NCHW -> NHWC: every 4-D run-time
  tensor is NHWC in the IR; ``graph.metadata["io_layout"]`` names the graph inputs
  and outputs whose source layout was NCHW.
- QDQ int8 graphs become int8 graphs (int8 weights with per-channel scales, int32
  biases, int8 activations) with QUANTIZE / DEQUANTIZE at float edges; ops not
  wrapped in Q/DQ stay float.
- Anything else raises ``UnsupportedOpError`` (operators) or ``ModelFormatError``
  (unreadable or malformed files).
"""

from __future__ import annotations

import os

from edgekit.errors import BadInputError, EdgekitError, ModelFormatError, VerifyError
from edgekit.frontends.onnx import folding, handlers  # noqa: F401  (registers the op converters)
from edgekit.frontends.onnx import functions, handlers_composite, handlers_indexing, handlers_losses  # noqa: F401,E402
from edgekit.frontends.onnx import handlers_control, handlers_logic  # noqa: F401,E402  (after handlers_composite: run-time Where)
from edgekit.frontends.onnx import handlers_recurrent  # noqa: F401,E402
from edgekit.frontends.onnx import handlers_movement  # noqa: F401,E402  (after handlers: replaces Slice/Gather/Cast)
from edgekit.frontends.onnx import handlers_reduction  # noqa: F401,E402  (after handlers: MatMul of activations)
from edgekit.frontends.onnx import handlers_resample  # noqa: F401,E402  (after handlers: 1-D Conv and pooling)
from edgekit.frontends.onnx import handlers_elementwise  # noqa: E402  (after handlers: Div by a run-time tensor)
from edgekit.frontends.onnx.convert import Converter, handled_ops
from edgekit.frontends.onnx.loader import read_model
from edgekit.frontends.onnx.qdq import fuse_qdq, simplify_transposes
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph

SUPPORTED_ONNX_OPS: tuple[str, ...] = handled_ops()

__all__ = ["SUPPORTED_ONNX_OPS", "load_onnx"]


def load_onnx(model: str | os.PathLike | bytes, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) as an IR graph.

    ``input_shapes`` gives the full (NCHW, source-layout) shape of inputs with dynamic
    dimensions; an unknown batch dimension defaults to 1.
    """
    if input_shapes is not None:
        if not isinstance(input_shapes, dict) or not all(
                isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(d, int) for d in v)
                for k, v in input_shapes.items()):
            raise BadInputError("input_shapes must map input names to lists of integers, "
                                "e.g. {'input': [1, 3, 32, 32]}")
    proto, label, _ = read_model(model)
    proto = handlers_elementwise.fuse_erf_gelu(proto)
    try:
        conv = Converter(proto, label, input_shapes, SUPPORTED_ONNX_OPS)
        g = conv.run()
        for name in g.inputs:
            t = g.tensor(name)
            if t.dtype in (DType.INT8, DType.INT16) and t.quant is None:
                raise BadInputError(f"{label}: input {name!r} is {t.dtype.value} but no DequantizeLinear "
                                    "gives its scale and zero point")
        g.metadata["source_format"] = "onnx"
        g.metadata["opset"] = conv.opset
        if proto.producer_name:
            g.metadata["producer"] = proto.producer_name
        g.metadata.setdefault("io_layout", {})
        simplify_transposes(g)
        fuse_qdq(g, conv.qinfo)
        g.toposort()
        from edgekit.ir.passes import run_passes
        from edgekit.ir.verify import verify

        run_passes(g)
        simplify_transposes(g)
        run_passes(g)
        verify(g)
        return g
    except VerifyError as exc:
        raise ModelFormatError(f"{label}: the imported graph is inconsistent: {exc}") from exc
    except EdgekitError:
        raise
    except RecursionError as exc:
        raise ModelFormatError(f"{label}: the model is nested too deeply to import") from exc
    except Exception as exc:
        raise ModelFormatError(f"{label}: cannot import the model ({type(exc).__name__}: {exc})") from exc
