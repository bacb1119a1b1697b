"""Empirical bias correction.

Rounding the weights to int8 shifts each output channel's mean a little; the shifts
add up through the layers. For every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
this measures, on the layer's float inputs from the calibration data, the mean
per-channel difference between the pre-activation output with the dequantized int8
weights and with the float weights (a linear function of the weight error), and
returns it so it can be subtracted from the float bias before the bias is quantized.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.quantize.calibrate import as_input_list, iter_batches
from edgekit.reference import float_kernels as fk


def _linear_output(op: Op, attrs: dict, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The op's output without bias and activation: [..., C]."""
    if op.type is OpType.CONV_2D:
        return fk.conv2d(x, w, None, stride=attrs["strides"], pads=attrs["pads"], dilation=attrs["dilations"])
    if op.type is OpType.DEPTHWISE_CONV_2D:
        return fk.depthwise_conv2d(x, w, None, stride=attrs["strides"], pads=attrs["pads"],
                                   dilation=attrs["dilations"], depth_multiplier=attrs["depth_multiplier"])
    if op.type is OpType.FULLY_CONNECTED:
        return fk.fully_connected(x, w, None, keep_num_dims=attrs["keep_num_dims"])
    raise ValueError(f"no bias correction for {op.type.value}")


def bias_corrections(graph: Graph, data, weight_errors: dict[str, np.ndarray], *, batch_size: int = 64,
                     max_samples: int | None = 512,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Per op name, the mean output error per channel caused by the weight error
    ``weight_errors[op.name]`` (dequantized int8 weights minus float weights), over the
    op's inputs in the float ``graph`` run on ``data`` (source layout)."""
    from edgekit.reference.interpreter import Interpreter

    ops = [op for op in graph.ops if op.name in weight_errors]
    if not ops:
        return {}
    arrays = as_input_list(graph, data)
    if max_samples is not None and len(arrays[0]) > max_samples:
        arrays = [a[:max_samples] for a in arrays]
    attrs = {op.name: normalize_attrs(op.type, op.attrs) for op in ops}
    sums = {op.name: np.zeros(weight_errors[op.name].shape[3 if op.type is OpType.DEPTHWISE_CONV_2D else 0])
            for op in ops}
    counts = dict.fromkeys(sums, 0)
    interp = Interpreter(graph)
    n_batches = -(-len(arrays[0]) // batch_size)
    for b, batch in enumerate(iter_batches(arrays, batch_size)):
        values = interp.run(batch, dump=True, layout="source")
        for op in ops:
            x = _ir_value(graph, op.inputs[0], values)
            err = _linear_output(op, attrs[op.name], x, weight_errors[op.name])
            err = err.reshape(-1, err.shape[-1]).astype(np.float64)
            sums[op.name] += err.sum(axis=0)
            counts[op.name] += err.shape[0]
        if progress:
            progress(b + 1, n_batches)
    return {name: (sums[name] / max(counts[name], 1)).astype(np.float32) for name in sums}


def _ir_value(graph: Graph, name: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """A dumped value in the IR layout (graph outputs come back in the source layout)."""
    v = values[name]
    if name in graph.outputs and graph.metadata.get("io_layout", {}).get(name) == "NCHW" and v.ndim == 4:
        v = np.ascontiguousarray(v.transpose(0, 2, 3, 1))
    return v
