"""Corner cases of the data-movement kernels on the host (the random cases run with every
kernel in test_micro_host.py): CAST of NaN and infinities, a split into one output, a
slice that selects one element."""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.reference import movement_kernels as mk
from tests.runtimes.micro_abi import KernelCall, Struct, call, dims4


def test_cast_f32_s8_nan_and_infinities(micro_lib):
    x = np.array([np.nan, np.inf, -np.inf, 127.9, -128.9, -0.5, 0.99, 300.0], np.float32)
    kc = KernelCall("cast_nan", "ek_cast_f32_s8", [x.size, x], mk.cast(x, DType.INT8))
    got = call(micro_lib, kc)
    assert got.tolist() == [0, 127, -128, 127, -128, 0, 0, 127] == kc.expected.tolist()


def test_split_into_one_output_is_a_copy(micro_lib):
    x = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    kc = KernelCall("split_one", "ek_split_s8", [1, [x.nbytes], np.array([6], np.int32), 2, 1, x], x.ravel())
    assert np.array_equal(call(micro_lib, kc), x.ravel())


def test_slice_of_one_element_counting_down(micro_lib):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.int64).astype(np.int8).reshape(2, 3, 4, 5)
    params = Struct("ek_slice_params", {"begin": [1, 2, 3, 4], "stride": [1, -1, -2, -3], "size": [1, 1, 1, 1]})
    kc = KernelCall("slice_one", "ek_slice_s8", [params, dims4(x.shape), x], x[1:2, 2:3, 3:4, 4:5].copy())
    assert np.array_equal(call(micro_lib, kc), kc.expected)
