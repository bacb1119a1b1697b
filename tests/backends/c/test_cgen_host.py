"""Generated C on the host: compiled with gcc -std=c99 -Wall -Wextra -Werror, its outputs
equal edgekit's reference interpreter (and so TFLM) byte for byte: every kws01 input,
every AD window, and random small graphs covering every op the backend compiles."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from edgekit.backends.c import compile_model
from edgekit.ir.ops import OpType
from edgekit.reference.interpreter import Interpreter
from tests.backends.c import graphs
from tests.backends.c.support import (ad_graph, ad_inputs, host_exe, host_run, kws_graph,
                                      kws_inputs)


def _compile_and_run(graph, x, tmp_path, name):
    out = tmp_path / name
    compile_model(graph, "cortex-m4", out, variant="portable", measure=False)
    exe = host_exe(out)
    t = graph.output_tensors()[0]
    return host_run(exe, x, t.dtype.np, t.shape), out


def test_kws_all_1000_inputs_equal_reference(tmp_path):
    g = kws_graph()
    x = kws_inputs()
    assert x.shape == (1000, 49, 10, 1)
    ours, out = _compile_and_run(g, x, tmp_path, "kws")
    ref = Interpreter(g).run([x])[g.outputs[0]]
    assert ours.shape == ref.shape == (1000, 12)
    assert int((ours != ref).sum()) == 0, "mismatching bytes against the reference interpreter"
    # only the kernels the model uses were copied
    m = json.loads((out / "manifest.json").read_text())
    assert sorted(k["kernel"] for k in m["kernels"]) == [
        "avg_pool2d", "conv2d", "depthwise_conv2d", "fully_connected", "softmax"]
    assert sorted(p.name for p in (out / "kernels").glob("*.c")) == [
        "avg_pool2d.c", "conv2d.c", "depthwise_conv2d.c", "fully_connected.c", "softmax.c"]
    assert (out / "edgekit" / "kernels.h").is_file() and (out / "kernels" / "fixedpoint.h").is_file()


def test_ad_all_windows_equal_reference(tmp_path):
    g = ad_graph()
    x = ad_inputs(g)
    assert x.shape == (196, 640)
    ours, _ = _compile_and_run(g, x, tmp_path, "ad")
    ref = Interpreter(g).run([x])[g.outputs[0]]
    assert int((ours != ref).sum()) == 0


CASES = graphs.cases()


def test_random_graphs_cover_every_supported_op():
    from edgekit.backends.c.params import SUPPORTED_OPS

    used = {op.type for g in CASES.values() for op in g.ops}
    assert used == set(SUPPORTED_OPS), sorted(t.value for t in set(SUPPORTED_OPS) - used)


def test_random_graphs_exercise_buffer_sharing():
    """The graphs make the planner write outputs over inputs (in place or shifted) for
    these op types, so the bit-exact runs (host portable, QEMU dsp) check the kernels'
    write order against the planner's shift rule for each."""
    from edgekit.backends.c.plan import plan_arena

    shared = set()
    for g in CASES.values():
        ops = {op.name: op.type for op in g.ops}
        shared |= {ops[o.op] for o in plan_arena(g).overlaps}
    want = {OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D,
            OpType.ADD, OpType.SUB, OpType.MUL, OpType.RELU, OpType.RELU6, OpType.LOGISTIC,
            OpType.TANH, OpType.QUANTIZE, OpType.TRANSPOSE, OpType.SLICE, OpType.STRIDED_SLICE}
    assert want <= shared, sorted(t.value for t in want - shared)


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_graph_equals_reference(name, tmp_path):
    g = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = graphs.random_inputs(g, rng, 64)
    ours, out = _compile_and_run(g, x, tmp_path, name)
    ref = Interpreter(g).run([x])[g.outputs[0]]
    mismatching = int((ours.view(np.uint8) != ref.view(np.uint8)).sum())
    assert mismatching == 0, f"{name}: {mismatching} bytes differ"
    assert len(np.unique(ref)) > 4, "degenerate case: the outputs barely vary"
    m = json.loads((out / "manifest.json").read_text())
    # RESHAPE is an alias: no kernel, no code
    for o in m["ops"]:
        if o["type"] == OpType.RESHAPE.value:
            assert o["kernel"] is None
    # PAD and CONCATENATION never write over their inputs (memcpy must not overlap)
    shared_ops = {o["op"] for o in m["plan"]["overlaps"]}
    assert not shared_ops & {o["name"] for o in m["ops"] if o["type"] in ("PAD", "CONCATENATION")}
