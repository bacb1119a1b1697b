"""Corner cases of runtimes/micro's elementwise kernels on the host (the random cases of
every one of them run in test_micro_host through micro_cases_elementwise's samplers, and
on QEMU in test_micro_qemu): every input byte through each unary table, and DIV where
TFLM's final shift would reach 32 bits."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.ir import QuantParams
from tests.runtimes.micro_abi import call
from tests.runtimes.micro_cases_elementwise import UNARY, kernel_case, one_op_graph


@pytest.mark.parametrize("op", UNARY)
def test_every_input_byte_of_each_table(micro_lib, op):
    q_in = QuantParams.per_tensor(0.04, -3 if op != "NEG" else 7)
    q_out = QuantParams.per_tensor(0.04, -7) if op == "NEG" else QuantParams.per_tensor(0.03, -20)
    lo = int(q_in.zero_point[0]) if op in ("SQRT", "RSQRT") else (-127 if op == "NEG" else -128)
    x = np.arange(lo, 128, dtype=np.int8).reshape(1, -1)
    attrs = {"alpha": 0.2} if op == "LEAKY_RELU" else {}
    kc = kernel_case(op, one_op_graph(op, [x.shape, x.shape], [q_in, q_out], attrs), {"in0": x})
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


def test_div_far_below_one_output_step_rounds_to_zero(micro_lib):
    """Quotients where TFLM's last shift would reach 32 bits (undefined in its C++): the
    kernel and the reference agree, and give the zero point."""
    q = QuantParams.per_tensor(1.0, 0)
    a = np.arange(-128, 128, dtype=np.int8).repeat(255).reshape(1, -1)
    b = np.tile(np.array([v for v in range(-128, 128) if v != 0], np.int8), 256).reshape(1, -1)
    g = one_op_graph("DIV", [a.shape, b.shape, a.shape], [q, q, q], {"activation": "NONE"})
    kc = kernel_case("div", g, {"in0": a, "in1": b})
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)
    small = np.abs(a.astype(np.int32)) * 2 < np.abs(b.astype(np.int32))
    assert np.all(kc.expected[small] == 0)
