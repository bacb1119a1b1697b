"""The end-to-end checks the zoo's tests share: float against the framework, int8 close to
float, int8 bit-exact with TFLM on the host (every op of the zoo is a TFLM builtin), compiled
for cortex-m7 (and, for the recurrent keyword spotters test_lstm_kws and test_gru_kws, the
compiled C on the host equal to the reference)."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import compile_model
from edgekit.backends.tflite.writer import tflite_bytes
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.support import tflite_oracle as orc


def int8_inputs(g, x, nchw=False):
    """``x`` quantized with ``g``'s input quantization; ``nchw``: a 4-D torch input is first
    brought to the IR's NHWC."""
    if nchw and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    q = g.metadata["io_quant"][g.inputs[0]]
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def torch_outputs(zoo, x):
    """The zoo model's torch module on ``x``: the list of its outputs as numpy."""
    import torch

    with torch.no_grad():
        ref = zoo.torch_module()(torch.from_numpy(x))
    return [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]


def check_float_matches_torch(zoo, float_graph, x, layout="ir", rtol=1e-4, atol=1e-5):
    """Every output of ``float_graph`` on ``x`` equal to torch's."""
    ours = Interpreter(float_graph).run([x], layout=layout)
    for name, ref in zip(float_graph.outputs, torch_outputs(zoo, x)):
        np.testing.assert_allclose(ours[name], ref, rtol=rtol, atol=atol)


def float_and_fake_quantized(float_graph, calib, test, layout="ir"):
    """The outputs (by name) of the float graph and of the float-io int8 graph quantized on
    ``calib``, both on ``test``."""
    fq = quantize(float_graph, calib, io="float").graph
    ref = Interpreter(float_graph).run([test], layout=layout)
    ours = Interpreter(fq).run([test], layout=layout)
    return ref, ours


def check_bit_exact_with_tflm(g, xi):
    """Every output of the int8 graph ``g`` on each input of ``xi`` bit-exact with TFLM running
    the .tflite edgekit writes."""
    ref = Interpreter(g).run([xi])
    model = tflite_bytes(g)
    for i in range(len(xi)):
        got = orc.run_tflm(model, [xi[i:i + 1]], n_outputs=len(g.outputs))
        for name, out in zip(g.outputs, got):
            np.testing.assert_array_equal(out, ref[name][i:i + 1], err_msg=f"input {i}, output {name}")


def compile_for_cortex_m7(g, out):
    """``g`` compiled for cortex-m7 into ``out``: fits, model.c written; returns the result and
    the set of its kernel names."""
    result = compile_model(g, "cortex-m7", out, measure=False)
    assert result.fit.fits, result.fit.over
    assert (out / "model.c").is_file()
    return result, {k["kernel"] for k in result.kernels}


# the recurrent keyword spotters (test_lstm_kws, test_gru_kws)

def check_recurrent_float_matches_torch(zoo, atol=1e-5):
    g = zoo.float_graph()
    x = zoo.inputs(16)
    got = Interpreter(g).run([x])[g.outputs[0]]
    np.testing.assert_allclose(got, torch_outputs(zoo, x)[0], atol=atol, rtol=0)


def check_recurrent_int8(zoo, n_tflm=4, min_agreement=0.8):
    q = zoo.int8_graph()
    g = zoo.float_graph()
    x = zoo.inputs(64)
    xi = int8_inputs(q, x)
    ours = Interpreter(q).run([xi])[q.outputs[0]]
    # int8 against the float model: same top class on most inputs
    want = Interpreter(g).run([x])[g.outputs[0]]
    agree = float(np.mean(ours.argmax(1) == want.argmax(1)))
    assert agree >= min_agreement, agree
    # bit-exact with TFLM running the .tflite edgekit writes
    check_bit_exact_with_tflm(q, xi[:n_tflm])
    return q, xi, ours


def check_c_cortex_m7(q, xi, ours, tmp_path):
    from tests.backends.c.support import host_exe, host_run

    # for cortex-m7 with the portable kernels (the variant the host can build; the board
    # runs of the zoo use the target's own variants)
    out = tmp_path / "host"
    res = compile_model(q, "cortex-m7", out, variant="portable", measure=False)
    assert res.arena_bytes > 0
    got = host_run(host_exe(out), xi[:16], np.int8, (1,) + ours.shape[1:])
    np.testing.assert_array_equal(got, ours[:16])
    return res
