"""Which quantization parameters each activation tensor gets.

Tensors that TFLite Micro requires to share parameters are grouped (union-find):
the output of MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, TRANSPOSE, PAD and RELU6 joins
its input's group, and the inputs and output of a CONCATENATION join one group. A
group's range is the union of the calibrated ranges of its *sources* (members with
a range of their own: graph inputs and outputs of CONV/FC/ADD/...), so a clipped
range chosen for a conv output is not widened again by the pool after it. SOFTMAX,
LOGISTIC and TANH outputs have fixed parameters; a concatenation input with fixed
parameters (or one the concatenation cannot share) is requantized instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.quantize.calibrate import Range, activation_tensors
from edgekit.quantize.scheme import (FIXED_OUTPUT, PACKS_INPUTS, SHARES_INPUT, activation_qparams, fixed_qparams,
                                     representable_range)


@dataclass
class ActivationPlan:
    qparams: dict[str, QuantParams] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)     # the range each tensor's params come from
    methods: dict[str, str] = field(default_factory=dict)      # method, "shared" or "fixed"
    requantize: set[tuple[str, int]] = field(default_factory=set)  # (op name, input index)


class _Groups:
    def __init__(self, names):
        self.parent = {n: n for n in names}

    def find(self, n: str) -> str:
        root = n
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[n] != root:
            self.parent[n], n = root, self.parent[n]
        return root

    def union(self, keep: str, other: str) -> None:
        a, b = self.find(keep), self.find(other)
        if a != b:
            self.parent[b] = a


def plan_activations(graph: Graph, ranges: dict[str, Range]) -> ActivationPlan:
    acts = activation_tensors(graph)
    producers = graph.producers()
    groups = _Groups(acts)
    for op in graph.ops:
        if op.type in SHARES_INPUT and not graph.tensor(op.inputs[0]).is_const:
            for out in op.outputs:  # SPLIT / UNPACK: every output
                groups.union(op.inputs[0], out)
    fixed: dict[str, QuantParams] = {}
    for op in graph.ops:
        if op.type in FIXED_OUTPUT:
            fixed[groups.find(op.outputs[0])] = fixed_qparams(op.type)
    plan = ActivationPlan()
    for op in graph.ops:
        if op.type not in PACKS_INPUTS:
            continue
        for j, name in enumerate(op.inputs):
            if not name or graph.tensor(name).is_const:
                continue
            if groups.find(name) in fixed:
                plan.requantize.add((op.name, j))
            else:
                groups.union(name, op.outputs[0])
    # A root may have moved under another by a concatenation union; re-key fixed params.
    fixed = {groups.find(r): q for r, q in fixed.items()}

    derived = SHARES_INPUT | PACKS_INPUTS
    members: dict[str, list[str]] = {}
    for n in acts:
        members.setdefault(groups.find(n), []).append(n)
    for root, names in members.items():
        if root in fixed:
            q = fixed[root]
            lo, hi = representable_range(q)
            for n in names:
                plan.qparams[n] = q
                plan.ranges[n] = Range(lo, hi, "fixed")
                plan.methods[n] = "fixed"
            continue
        sources = [n for n in names if n not in producers or producers[n].type not in derived]
        missing = [n for n in (sources or names) if n not in ranges]
        if missing:
            raise BadInputError(f"no calibration range for tensor(s) {missing[:5]}")
        rng = None
        for n in sources or names:
            rng = ranges[n] if rng is None else rng.union(ranges[n])
        for n in names:
            op = producers.get(n)
            if op is not None and op.type is OpType.PAD:
                value = normalize_attrs(op.type, op.attrs)["value"]
                rng = Range(min(rng.min, value), max(rng.max, value), rng.method)
        q = activation_qparams(rng.min, rng.max)
        for n in names:
            plan.qparams[n] = q
            plan.ranges[n] = rng
            plan.methods[n] = ranges[n].method if n in sources and n in ranges else "shared"
    return plan
