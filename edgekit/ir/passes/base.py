"""Pass registry and the fixpoint runner."""

from __future__ import annotations

from typing import Callable

from edgekit.ir.graph import Graph
from edgekit.ir.verify import verify

PassFn = Callable[[Graph], bool]
PASSES: dict[str, PassFn] = {}

# The clean-up every frontend applies after import, in this order.
DEFAULT_PIPELINE = (
    "remove_identity",
    "fold_transpose_into_fc",
    "cancel_transposes",
    "constant_fold",
    "fold_batchnorm",
    "hoist_elementwise",
    "fuse_activation",
    "remove_identity",
    "dead_code",
)


def register(name: str):
    def deco(fn: PassFn) -> PassFn:
        PASSES[name] = fn
        fn.pass_name = name  # type: ignore[attr-defined]
        return fn
    return deco


def run_passes(graph: Graph, names=DEFAULT_PIPELINE, max_rounds: int = 10, check: bool = True) -> list[str]:
    """Apply the named passes in order, repeating the list until none changes the graph.

    Returns the names of passes that changed something (in the order they did).
    The graph is verified before (rewrites assume a valid graph) and after the run,
    so a broken rewrite is caught here.
    """
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known: {sorted(PASSES)}")
    if check:
        verify(graph)  # rewrites assume a well-formed graph: reject a broken one first
    applied: list[str] = []
    for _ in range(max_rounds):
        changed = False
        for name in names:
            if PASSES[name](graph):
                applied.append(name)
                changed = True
        if not changed:
            break
    if check:
        verify(graph)
    return applied


def single_consumer(graph: Graph, tensor: str) -> bool:
    """True when exactly one op reads ``tensor`` and it is not a graph output."""
    if tensor in graph.outputs:
        return False
    n = sum(1 for op in graph.ops for i in op.inputs if i == tensor)
    return n == 1
