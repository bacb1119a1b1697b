"""The elementwise op kinds of model packages (32 LUT, 33 MAXIMUM, 34 MINIMUM, 35 PRELU,
36 SQUARED_DIFFERENCE, 37 DIV) on the sanitized host build of the firmware: the package
of the elementwise-family graph is accepted and every output is bit-exact with the
reference interpreter."""

from __future__ import annotations

import numpy as np

from edgekit.bundle.micro_package_reader import read_package_header
from tests.backends.c.graphs import random_inputs
from tests.backends.c.graphs_elementwise import elementwise_family_cases
from tests.firmware.test_package import _upload_and_infer
from tests.firmware.support import reference_output


def test_elementwise_op_kinds_run_bit_exact_on_the_host_build(host_fw):
    rng = np.random.default_rng(11)
    g = elementwise_family_cases(rng)["elementwise_family"]
    xs = random_inputs(g, rng, 6)
    pkg, outs, _ = _upload_and_infer(host_fw, g, xs)
    assert {"ek_lut_s8", "ek_maximum_s8", "ek_minimum_s8", "ek_prelu_s8", "ek_squared_difference_s8",
            "ek_div_s8"} <= set(read_package_header(pkg).op_kinds)
    for x, out in zip(xs, outs):
        assert out[0] == 0
        assert out[5:] == reference_output(g, x[None])
