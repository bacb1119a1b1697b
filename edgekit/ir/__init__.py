"""edgekit's one model IR: every frontend produces it, every backend consumes it."""

from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.ops import ACTIVATIONS, OP_DEFS, OpType
from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.ir.verify import infer_shapes, verify
from edgekit.ir.serialize import load, save

__all__ = ["ACTIVATIONS", "DType", "Graph", "OP_DEFS", "Op", "OpType", "QuantParams", "Tensor",
           "infer_shapes", "load", "save", "verify"]
