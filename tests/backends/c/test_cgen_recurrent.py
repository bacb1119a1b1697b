"""The C kernel of UNIDIRECTIONAL_SEQUENCE_LSTM (ek_lstm_s8) on the host: generated C
compiled with -Werror, bytes equal to the reference interpreter (itself bit-exact with
TFLM, tests/reference/test_recurrent_vs_tflm.py) for random int8 one-op graphs, time
major and batch-major with several batch rows, cell clip on and off."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import compile_model
from tests.backends.c.support import host_exe, host_run
from tests.reference.recurrent_graphs import lstm_graph
from tests.reference.recurrent_graphs import run_direct as _run_ref


@pytest.mark.parametrize("seed,time_major,b,t,n_in,hidden,clip,exponent", [
    (1, False, 1, 7, 5, 6, 0.0, -11),
    (2, True, 3, 4, 3, 5, 0.4, -13),
    (3, False, 2, 5, 9, 4, 1.5, -9),
    (4, True, 2, 1, 2, 3, 0.0, -15),
    (5, False, 1, 3, 1, 1, 0.0, -12),
])
def test_lstm_kernel_equals_reference(tmp_path, seed, time_major, b, t, n_in, hidden, clip, exponent):
    rng = np.random.default_rng(seed)
    g = lstm_graph(rng, b, t, n_in, hidden, int8=True, time_major=time_major, clip=clip, exponent=exponent)
    x = rng.integers(-128, 128, (6,) + g.tensor("x").shape).astype(np.int8)
    out = tmp_path / "lstm"
    compile_model(g, "cortex-m4", out, variant="portable", measure=False)
    exe = host_exe(out)
    # the host runner feeds whole model inputs: one [B, T, I] (or [T, B, I]) tensor each
    ours = host_run(exe, x.reshape(6, -1), np.int8, (1, int(np.prod(g.tensor("y").shape))))
    for i in range(len(x)):
        np.testing.assert_array_equal(ours[i].reshape(g.tensor("y").shape), _run_ref(g, x[i]))
