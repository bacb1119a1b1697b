"""The numpy reference interpreter: the definition of every op's semantics.

Runs float, int8 and hybrid graphs. int8 ops follow TensorFlow Lite Micro's
reference kernels bit for bit (see ``int8_kernels``). Inputs are batch-first; a
graph declared with batch 1 runs N samples at once (the kernels are vectorized
over the batch, and each sample is computed exactly as if run alone).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.verify import verify
from edgekit.reference import kernels
from edgekit.reference.inputs import check_finite, to_input_dtype


class Interpreter:
    """Runs an IR graph on numpy arrays.

    ``run(inputs, layout="ir")`` takes arrays in the IR's NHWC layout;
    ``layout="source"`` takes (and returns) 4-D tensors in the layout the model was
    imported from (NCHW for ONNX/PyTorch models), as recorded in the graph metadata.
    """

    def __init__(self, graph: Graph, check: bool = True):
        if check:
            verify(graph)
        self.graph = graph
        self._attrs = {op.name: normalize_attrs(op.type, op.attrs) for op in graph.ops}

    # -- public -------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
            layout: str = "ir", dump: bool = False) -> dict[str, np.ndarray]:
        """Run the graph. Returns the graph outputs by name (all tensors with ``dump``)."""
        if layout not in ("ir", "source"):
            raise ValueError(f"layout must be 'ir' or 'source', not {layout!r}")
        g = self.graph
        feeds = self._bind_inputs(inputs, layout)
        batch = self._batch_of(feeds)
        env: dict[str, np.ndarray] = dict(feeds)
        for op in g.ops:
            args = [env[i] if i in env else g.tensor(i).data if i else None for i in op.inputs]
            outs = kernels.run_op(g, op, self._attrs[op.name], args, batch)
            for name, value in zip(op.outputs, outs):
                env[name] = value
        names = list(env) if dump else g.outputs
        result = {n: env[n] for n in names if n in env}
        if layout == "source":
            for n in g.outputs:
                if self._source_layout(n) == "NCHW" and result[n].ndim == 4:
                    result[n] = np.ascontiguousarray(result[n].transpose(0, 3, 1, 2))
        return result

    # -- inputs -------------------------------------------------------------
    def _source_layout(self, name: str) -> str:
        return self.graph.metadata.get("io_layout", {}).get(name, "NHWC")

    def _bind_inputs(self, inputs, layout: str) -> dict[str, np.ndarray]:
        g = self.graph
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, Mapping):
            unknown = set(inputs) - set(g.inputs)
            if unknown:
                raise BadInputError(f"unknown input(s) {sorted(unknown)}; the model's inputs are {g.inputs}")
            missing = [n for n in g.inputs if n not in inputs]
            if missing:
                raise BadInputError(f"missing input(s) {missing}; the model's inputs are {g.inputs}")
            items = [(n, inputs[n]) for n in g.inputs]
        else:
            inputs = list(inputs)
            if len(inputs) != len(g.inputs):
                raise BadInputError(f"the model takes {len(g.inputs)} input(s) {g.inputs}, got {len(inputs)}")
            items = list(zip(g.inputs, inputs))
        feeds = {}
        for name, value in items:
            feeds[name] = self._check_input(name, np.asarray(value), layout)
        return feeds

    def _check_input(self, name: str, x: np.ndarray, layout: str) -> np.ndarray:
        t = self.graph.tensor(name)
        want = tuple(t.shape)
        check_finite(name, x)  # before any transpose: the index named is the caller's
        if layout == "source" and self._source_layout(name) == "NCHW" and len(want) == 4:
            # Accept NCHW from the caller; the IR holds NHWC.
            if x.ndim == 3:
                x = x[None]
            if x.ndim == 4:
                x = x.transpose(0, 2, 3, 1)
        if len(want) >= 1 and want[0] == 1 and x.shape == want[1:]:
            x = x[None]  # one sample given without its batch axis
        if x.ndim != len(want) or tuple(x.shape[1:]) != want[1:] or (want and want[0] != 1 and x.shape[0] != want[0]):
            shown = list(want)
            raise BadInputError(f"input {name!r} has shape {list(x.shape)}; the model expects {shown}"
                                + (" (any batch size)" if want and want[0] == 1 else ""))
        if x.ndim and x.shape[0] == 0:
            raise BadInputError(f"input {name!r} has shape {list(x.shape)}: an empty batch (no samples to run)")
        # One rule for input element types (edgekit.reference.inputs): float data for an
        # integer input is refused here; callers that quantize do it before.
        x = to_input_dtype(name, t.dtype, t.quant, x)
        return np.require(x, requirements="C")  # (ascontiguousarray would make 0-d 1-d)

    def _batch_of(self, feeds: dict[str, np.ndarray]) -> int:
        # Only inputs declared with batch 1 can carry a batch of N.
        batches = {v.shape[0] for n, v in feeds.items()
                   if v.ndim and self.graph.tensor(n).shape[:1] == (1,)}
        if len(batches) > 1:
            raise BadInputError(f"inputs have different batch sizes {sorted(batches)}")
        return batches.pop() if batches else 1


def evaluate_op(graph: Graph, op: Op, values: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate one op on given input values (used by constant folding)."""
    args = [values[i] if i else None for i in op.inputs]
    return kernels.run_op(graph, op, normalize_attrs(op.type, op.attrs), args, batch=None)


def run(graph: Graph, inputs, layout: str = "ir") -> dict[str, np.ndarray]:
    return Interpreter(graph).run(inputs, layout=layout)
