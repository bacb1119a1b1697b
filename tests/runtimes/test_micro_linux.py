"""The linux variant of runtimes/micro (conv2d, depthwise_conv2d, fully_connected written
for GCC to vectorize) against edgekit.reference.int8_kernels, byte for byte: built with
-O3 and the x86_64 target's flags (AVX2) when this CPU has AVX2, on the same random cases
as the portable variant, plus shapes that cross its channel blocks and row chunks and
offsets outside int8 zero points (its fallback loops). The aarch64 build is checked for
NEON code here and run bit-exact under qemu-aarch64 in tests/backends/c/test_cgen_linux.py."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.ir.dtypes import QuantParams
from edgekit.targets import load_target
from tests.runtimes import micro_abi
from tests.runtimes import micro_cases as mc
from tests.runtimes.micro_abi import call
from tests.runtimes.micro_build import MICRO, WARNINGS, include_flags, manifest, run
from tests.runtimes.test_micro_host import assert_same_bytes

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KERNELS = ("conv2d", "depthwise_conv2d", "fully_connected")
EXAMPLES = 100


def _has_avx2() -> bool:
    try:
        return any(line.startswith("flags") and " avx2" in line
                   for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return False


def linux_cflags() -> list[str]:
    """-O3 with the x86_64 target's flags where this CPU can run them (else plain -O3:
    the same C, vectorized for SSE2 only)."""
    flags = ["-O3"]
    if _has_avx2():
        flags += list(load_target("x86_64").toolchain.cflags)
    return flags


@pytest.fixture(scope="module")
def linux_lib(tmp_path_factory) -> ctypes.CDLL:
    from tests.runtimes.micro_build import build_host_library

    so = build_host_library(tmp_path_factory.mktemp("micro_linux"), variant="linux",
                            cflags=linux_cflags())
    lib = ctypes.CDLL(str(so))
    micro_abi.bind(lib)
    return lib


def test_manifest_selects_linux_only_with_neon_or_avx2():
    from edgekit.backends.c import library

    for name, variant in (("rpi4", "linux"), ("rpi5", "linux"), ("jetson-orin-nano", "linux"),
                          ("x86_64", "linux"), ("cortex-m4", "dsp"), ("cortex-m0plus", "portable")):
        t = load_target(name)
        assert {library.choose(k, t.features).variant for k in KERNELS} == {variant}, name
    assert library.choose("softmax", load_target("rpi4").features).variant == "portable"
    assert library.choose("conv2d", {"sse2"}).variant == "portable"
    assert manifest()["variants"]["linux"]["requires_any"] == ["neon", "avx2"]


@pytest.mark.parametrize("op", KERNELS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_linux_kernel_matches_reference(linux_lib, op, data):
    kc = mc.SAMPLERS[op](mc.HypothesisDraw(data), name=op)
    assert_same_bytes(call(linux_lib, kc), kc)


def qp(scale, zp=0):
    return QuantParams.per_tensor(scale, zp)


def rand_i8(rng, shape):
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def test_conv_across_channel_blocks_and_row_chunks(linux_lib):
    """70 output channels (a block of 64 and a rest), rows of 3*3*500 = 4500 values
    (longer than one 4096-value chunk), and a 1x1 conv like KWS's pointwise layers."""
    rng = np.random.default_rng(11)
    cases = [((1, 5, 4, 500), (70, 3, 3, 500), (1, 1, 1, 1), (1, 1)),
             ((1, 6, 5, 64), (64, 1, 1, 64), (0, 0, 0, 0), (1, 1)),
             ((2, 7, 7, 9), (131, 3, 2, 9), (1, 0, 1, 1), (2, 1))]
    for xs, ws, pads, stride in cases:
        x, w = rand_i8(rng, xs), rand_i8(rng, ws)
        cout = ws[0]
        bias = rng.integers(-20000, 20000, cout).astype(np.int32)
        wq = QuantParams.per_axis(rng.uniform(0.001, 0.01, cout), [0] * cout, 0)
        for zp_in in (-128, 5, 127):
            kc = mc.conv2d_case("conv_blocks", x, w, bias, qp(0.05, zp_in), wq, qp(0.5 * ws[-1] ** 0.5, -3),
                                stride=stride, pads=pads, dilation=(1, 1), activation="RELU")
            assert_same_bytes(call(linux_lib, kc), kc)


def test_depthwise_across_channel_blocks(linux_lib):
    rng = np.random.default_rng(12)
    for c, m, stride, k in ((150, 1, 1, 3), (64, 1, 2, 3), (65, 1, 1, 5), (40, 2, 1, 3)):
        x, w = rand_i8(rng, (1, 8, 6, c)), rand_i8(rng, (1, k, k, c * m))
        bias = rng.integers(-5000, 5000, c * m).astype(np.int32)
        wq = QuantParams.per_axis(rng.uniform(0.002, 0.02, c * m), [0] * (c * m), 3)
        kc = mc.depthwise_case("dw_blocks", x, w, bias, qp(0.04, -128), wq, qp(0.3, 11),
                               stride=(stride, stride), pads=(1, 1, 1, 1), dilation=(1, 1),
                               depth_multiplier=m, activation="RELU6")
        assert_same_bytes(call(linux_lib, kc), kc)


def test_fully_connected_long_rows_and_filter_offsets(linux_lib):
    rng = np.random.default_rng(13)
    for k, cout, zp_w in ((5000, 70, 0), (5000, 3, -128), (640, 128, 127), (7, 65, 3)):
        x, w = rand_i8(rng, (2, k)), rand_i8(rng, (cout, k))
        bias = rng.integers(-30000, 30000, cout).astype(np.int32)
        kc = mc.fully_connected_case("fc_long", x, w, bias, qp(0.1, -7), qp(0.01, zp_w),
                                     qp(2.0 * k ** 0.5, 4), activation="NONE")
        assert_same_bytes(call(linux_lib, kc), kc)


def test_offsets_outside_int8_zero_points_take_the_exact_fallback(linux_lib):
    """An input offset of 200 does not fit the int16 widening: the variant falls back to
    int32 products and still equals the reference."""
    rng = np.random.default_rng(14)
    x = rand_i8(rng, (1, 5, 5, 8))
    kc = mc.conv2d_case("conv_off", x, rand_i8(rng, (6, 3, 3, 8)), None, qp(0.05, -200), qp(0.01),
                        qp(2.0, 0), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), activation="NONE")
    assert_same_bytes(call(linux_lib, kc), kc)
    kc = mc.depthwise_case("dw_off", x, rand_i8(rng, (1, 3, 3, 8)), None, qp(0.05, -200), qp(0.01),
                           qp(1.0, 0), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1),
                           depth_multiplier=1, activation="NONE")
    assert_same_bytes(call(linux_lib, kc), kc)
    kc = mc.fully_connected_case("fc_off", rand_i8(rng, (2, 50)), rand_i8(rng, (9, 50)), None,
                                 qp(0.05, -200), qp(0.01, 0), qp(3.0, 0), activation="NONE")
    assert_same_bytes(call(linux_lib, kc), kc)


# ------------------------------------------------------------------------------ vectorized?

# The multiply-accumulate instructions of a vectorized inner loop, per compiler.
VECTOR_MAC = {
    "gcc": ("-march=x86-64-v3", r"\bvpmaddwd\b|\bvpmullw\b"),
    "aarch64-linux-gnu-gcc": ("-mcpu=cortex-a72", r"\bsmlal2?\b|\bsdot\b"),
}


@pytest.mark.parametrize("cc", sorted(VECTOR_MAC))
def test_hot_loops_vectorize(cc, tmp_path):
    """GCC -O3 turns the inner loops of the three kernels into SIMD multiply-accumulates
    (AVX2 on x86-64-v3, NEON on Cortex-A72): what the variant is for."""
    import re

    path = shutil.which(cc)
    if path is None:
        pytest.skip(f"{cc} is not installed: sudo apt-get install -y "
                    f"{'gcc' if cc == 'gcc' else 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross'}")
    objdump = "objdump" if cc == "gcc" else "aarch64-linux-gnu-objdump"
    flag, pattern = VECTOR_MAC[cc]
    for kernel in KERNELS:
        obj = tmp_path / f"{kernel}.o"
        run([path, *WARNINGS, "-O3", flag, *include_flags(), "-c",
             MICRO / "src" / "linux" / f"{kernel}.c", "-o", obj])
        text = subprocess.run([objdump, "-d", str(obj)], capture_output=True, text=True,
                              check=True).stdout
        assert re.search(pattern, text), f"{kernel}: no vector multiply-accumulate for {cc} {flag}"
