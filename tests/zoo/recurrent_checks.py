"""The end-to-end checks of a recurrent zoo keyword spotter (test_lstm_kws, test_gru_kws):
float against torch, int8 against TFLM on the host (every op of both models is a TFLM
builtin), against the float model, and compiled C for cortex-m7 equal to the reference on
the host."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import compile_model
from edgekit.backends.tflite.writer import tflite_bytes
from edgekit.reference.interpreter import Interpreter
from tests.support import tflite_oracle as orc


def check_float_matches_torch(zoo, atol=1e-5):
    import torch

    g = zoo.float_graph()
    x = zoo.inputs(16)
    with torch.no_grad():
        want = zoo.torch_module()(torch.from_numpy(x)).numpy()
    got = Interpreter(g).run([x])[g.outputs[0]]
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def quantized_inputs(q, x):
    p = q.metadata["io_quant"][q.inputs[0]]
    return np.clip(np.round(x / p["scale"]) + p["zero_point"], -128, 127).astype(np.int8)


def check_int8(zoo, n_tflm=4, min_agreement=0.8):
    q = zoo.int8_graph()
    g = zoo.float_graph()
    x = zoo.inputs(64)
    xi = quantized_inputs(q, x)
    ours = Interpreter(q).run([xi])[q.outputs[0]]
    # int8 against the float model: same top class on most inputs
    want = Interpreter(g).run([x])[g.outputs[0]]
    agree = float(np.mean(ours.argmax(1) == want.argmax(1)))
    assert agree >= min_agreement, agree
    # bit-exact with TFLM running the .tflite edgekit writes
    m = tflite_bytes(q)
    for i in range(n_tflm):
        np.testing.assert_array_equal(orc.run_tflm(m, [xi[i:i + 1]])[0], ours[i:i + 1])
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
