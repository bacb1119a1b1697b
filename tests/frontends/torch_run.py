"""What the torch import tests share: one module imported and run by edgekit and by torch."""

from __future__ import annotations


def run_both(module, *inputs):
    """``module`` (in eval mode) imported by edgekit and run on ``inputs`` (torch tensors) by
    edgekit's reference (in torch's layout) and by torch: the graph, our outputs, torch's."""
    import torch

    from edgekit.frontends.torch_importer import load_torch
    from edgekit.reference.interpreter import Interpreter

    module = module.eval()
    g = load_torch(module, tuple(inputs))
    ours = Interpreter(g).run([x.numpy() for x in inputs], layout="source")
    with torch.no_grad():
        ref = module(*inputs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    return g, [ours[n] for n in g.outputs], [r.numpy() for r in ref]
