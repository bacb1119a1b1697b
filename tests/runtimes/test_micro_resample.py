"""runtimes/micro's RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV kernels on
the host (every variant they have: the portable one) against
edgekit.reference.resample_kernels, byte for byte, with the parameters computed as the
C backend's lowering computes them (edgekit.backends.c.params)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import params as P
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import resample_kernels as rk
from tests.runtimes.micro_abi import KernelCall, Struct, call, dims4

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def profile(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def as_struct(s: P.Struct) -> Struct:
    return Struct(s.ctype, dict(s.values))


def resize_nearest_case(x, size, align, half) -> KernelCall:
    rows = rk.nearest_indices(x.shape[1], size[0], align, half).astype(np.int32)
    cols = rk.nearest_indices(x.shape[2], size[1], align, half).astype(np.int32)
    expected = rk.resize_nearest_neighbor(x, size, align_corners=align, half_pixel_centers=half)
    return KernelCall("resize_nearest", "ek_resize_nearest_s8",
                      [dims4(x.shape), rows, cols, dims4(expected.shape), x], expected)


def resize_bilinear_case(x, size, align, half) -> KernelCall:
    expected = rk.resize_bilinear_int8(x, size, align_corners=align, half_pixel_centers=half)
    struct = as_struct(P.resize_bilinear_params(x.shape[1:3], size, align, half))
    return KernelCall("resize_bilinear", "ek_resize_bilinear_s8",
                      [struct, dims4(x.shape), dims4(expected.shape), x], expected)


def transpose_conv_case(x, w, bias, x_qp, w_qp, y_qp, strides, pads, act) -> KernelCall:
    expected = rk.transpose_conv_int8(x, w, bias, x_qp, w_qp, y_qp, strides=strides, pads=pads, activation=act)
    struct, mult, shift = P.conv_params(x_qp, w_qp, y_qp, w.shape[0], stride=strides, pads=pads,
                                        dilation=(1, 1), activation=act)
    return KernelCall("transpose_conv", "ek_transpose_conv_s8",
                      [as_struct(struct), mult, shift, dims4(x.shape), x, dims4(w.shape), w, bias,
                       dims4(expected.shape)], expected)


def draw_resize(d):
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    shape = (d(st.integers(1, 2)), d(st.integers(1, 8)), d(st.integers(1, 8)), d(st.integers(1, 5)))
    size = (d(st.integers(1, 17)), d(st.integers(1, 17)))
    mode = d(st.sampled_from(["none", "align", "half"]))
    return rng.integers(-128, 128, size=shape).astype(np.int8), size, mode == "align", mode == "half"


@profile(100)
@given(st.data())
def test_resize_nearest_matches_reference(micro_lib, data):
    kc = resize_nearest_case(*draw_resize(data.draw))
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


@profile(100)
@given(st.data())
def test_resize_bilinear_matches_reference(micro_lib, data):
    kc = resize_bilinear_case(*draw_resize(data.draw))
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


@profile(100)
@given(st.data())
def test_transpose_conv_matches_reference(micro_lib, data):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    n, h, w, cin, cout = (d(st.integers(1, 2)), d(st.integers(1, 6)), d(st.integers(1, 6)),
                          d(st.integers(1, 5)), d(st.integers(1, 5)))
    kh, kw, sh, sw = d(st.integers(1, 4)), d(st.integers(1, 4)), d(st.integers(1, 3)), d(st.integers(1, 3))
    top, left = d(st.integers(0, kh - 1)), d(st.integers(0, kw - 1))
    bottom, right = d(st.integers(-(sh - 1), kh - 1 - top)), d(st.integers(-(sw - 1), kw - 1 - left))
    x = rng.integers(-128, 128, size=(n, h, w, cin)).astype(np.int8)
    wt = rng.integers(-127, 128, size=(cout, kh, kw, cin)).astype(np.int8)
    bias = rng.integers(-(2**15), 2**15, size=cout).astype(np.int32) if d(st.booleans()) else None
    x_qp = QuantParams.per_tensor(float(np.float32(10 ** d(st.floats(-2, 0)))), d(st.integers(-128, 127)))
    scales = np.float32(10 ** rng.uniform(-3, -1, size=cout))
    w_qp = QuantParams.per_axis(scales, [0] * cout, 0)
    y_qp = QuantParams.per_tensor(float(np.float32(10 ** d(st.floats(-1.5, 0.5)))), d(st.integers(-128, 127)))
    kc = transpose_conv_case(x, wt, bias, x_qp, w_qp, y_qp, (sh, sw), (top, left, bottom, right),
                             d(st.sampled_from(ACTS)))
    np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


def test_bilinear_half_pixel_negative_positions(micro_lib):
    # downscaling 7 -> 2 with half-pixel centres puts the first source position below 0
    x = np.arange(-70, 70, 5, dtype=np.int8)[:28].reshape(1, 7, 4, 1)
    for size in ((2, 2), (1, 3), (13, 1)):
        kc = resize_bilinear_case(x, size, False, True)
        np.testing.assert_array_equal(call(micro_lib, kc), kc.expected)


# ------------------------------------------------------------------------------ on QEMU


def _fixed_cases():
    """Deterministic cases for the boards: each resize mode up and down, and transposed
    convolutions with negative end pads, strides 1-3 and every activation."""
    rng = np.random.default_rng(11)
    cases = []
    for size, mode in [((9, 13), "none"), ((3, 2), "none"), ((7, 10), "align"), ((12, 5), "half"),
                       ((2, 3), "half")]:
        x = rng.integers(-128, 128, size=(2, 5, 6, 3)).astype(np.int8)
        cases.append(resize_nearest_case(x, size, mode == "align", mode == "half"))
        cases.append(resize_bilinear_case(x, size, mode == "align", mode == "half"))
    geometries = [((2, 2), (1, 1, 0, 0), "RELU"), ((1, 1), (0, 0, 0, 0), "NONE"),
                  ((3, 2), (2, 1, -2, -1), "RELU6"), ((2, 3), (0, 2, 1, 0), "RELU_N1_TO_1")]
    for i, (strides, pads, act) in enumerate(geometries):
        x = rng.integers(-128, 128, size=(1, 4, 5, 6)).astype(np.int8)
        w = rng.integers(-127, 128, size=(7, 3, 4, 6)).astype(np.int8)
        bias = rng.integers(-(2**15), 2**15, size=7).astype(np.int32)
        wq = QuantParams.per_axis(np.float32(10 ** rng.uniform(-3, -1, 7)), [0] * 7, 0)
        cases.append(transpose_conv_case(x, w, bias if i % 2 == 0 else None, QuantParams.per_tensor(0.05, -7), wq,
                                         QuantParams.per_tensor(0.3, 12), strides, pads, act))
    for i, kc in enumerate(cases):
        kc.name = f"{kc.name}[{i}]"
    return cases


@pytest.mark.parametrize("board", ["cortex-m3", "cortex-m7"])
def test_boards_reproduce_the_fixed_cases(board, tmp_path):
    from tests.runtimes import micro_cgen as cgen
    from tests.runtimes.micro_build import BoardBuild, build_elf, require_tool, run_qemu

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    cases = _fixed_cases()
    build = BoardBuild(board, "portable")
    vectors = cgen.write_vectors(cases, tmp_path / "vectors.c")
    elf = build_elf(build, [cgen.RUNNER, vectors], tmp_path / f"{board}.elf", [cgen.HERE])
    res = run_qemu(build.machine, elf, timeout=60)
    report = res.stderr + res.stdout
    assert res.returncode == 0, report
    assert f"edgekit micro tests: {len(cases)} passed, 0 failed" in report, report
