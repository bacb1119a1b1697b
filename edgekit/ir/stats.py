"""Per-layer facts of a graph: shapes, parameters, MACs and activation bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgekit.ir.graph import Graph
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import op_macs


@dataclass
class LayerStats:
    index: int
    name: str
    op: str
    inputs: list[list[int]]
    output: list[int]
    dtype: str
    params: int
    param_bytes: int
    macs: int
    activation_bytes: int  # bytes of the op's output tensor(s)
    activation: str


@dataclass
class GraphStats:
    layers: list[LayerStats]
    params: int
    param_bytes: int
    macs: int
    input_bytes: int
    output_bytes: int
    largest_activation_bytes: int
    peak_live_bytes: int  # activations alive at once in op order, with no buffer sharing

    def to_dict(self) -> dict:
        return asdict(self)


def graph_stats(graph: Graph) -> GraphStats:
    layers = []
    seen_consts: set[str] = set()
    for idx, op in enumerate(graph.ops):
        attrs = normalize_attrs(op.type, op.attrs)
        in_shapes = [graph.tensor(i).shape if i else None for i in op.inputs]
        out_shapes = [graph.tensor(o).shape for o in op.outputs]
        params = pbytes = 0
        for i in op.inputs:
            if i and graph.tensor(i).is_const and i not in seen_consts:
                seen_consts.add(i)
                params += graph.tensor(i).size
                pbytes += graph.tensor(i).nbytes
        out = graph.tensor(op.outputs[0])
        layers.append(LayerStats(
            index=idx, name=op.name, op=op.type.value,
            inputs=[list(graph.tensor(i).shape) for i in op.inputs if i and not graph.tensor(i).is_const],
            output=list(out.shape), dtype=out.dtype.value, params=params, param_bytes=pbytes,
            macs=op_macs(op.type, in_shapes, out_shapes, attrs),
            activation_bytes=sum(graph.tensor(o).nbytes for o in op.outputs),
            activation=attrs.get("activation", ""),
        ))
    return GraphStats(
        layers=layers,
        params=sum(x.params for x in layers),
        param_bytes=sum(x.param_bytes for x in layers),
        macs=sum(x.macs for x in layers),
        input_bytes=sum(t.nbytes for t in graph.input_tensors()),
        output_bytes=sum(t.nbytes for t in graph.output_tensors()),
        largest_activation_bytes=max([x.activation_bytes for x in layers] + [0]),
        peak_live_bytes=_peak_live(graph),
    )


def _peak_live(graph: Graph) -> int:
    """Peak bytes of activations alive at once when each gets its own buffer."""
    last_use: dict[str, int] = {}
    for idx, op in enumerate(graph.ops):
        for i in op.inputs:
            if i and not graph.tensor(i).is_const:
                last_use[i] = idx
    for o in graph.outputs:
        last_use[o] = len(graph.ops)
    live = {n: graph.tensor(n).nbytes for n in graph.inputs}
    peak = sum(live.values())
    for idx, op in enumerate(graph.ops):
        for o in op.outputs:
            live[o] = graph.tensor(o).nbytes
        peak = max(peak, sum(live.values()))
        for n in [n for n in live if last_use.get(n, -1) <= idx]:
            del live[n]
    return peak
