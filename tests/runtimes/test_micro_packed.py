"""The packed conv / fully-connected kernels (runtimes/micro, edgekit/backends/c/packed.py):

- host: the portable reference of each, on hypothesis-drawn layers packed by the
  compiler's own functions, reproduces the bytes of the reference interpreter;
- the SMMULR requantization of the dsp variants (numpy mirror, instruction by
  instruction) equals TFLM's MultiplyByQuantizedMultiplier on the boundary values of
  the range the compiler proves (|acc| < 2^29, shift in [-31, -1]), and the proof
  (``fast_requant_ok``) is tight: the worst input reaches the bound it computes;
- QEMU: the dsp variants on Cortex-M4, M7 and M55 (and the portable one on M3)
  reproduce every expected byte, including accumulators at the bound.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.backends.c import packed
from edgekit.reference import fixedpoint as fp
from tests.runtimes import micro_cases as mc
from tests.runtimes import micro_cgen as cgen
from tests.runtimes import packed_cases as pc
from tests.runtimes.micro_abi import call
from tests.runtimes.micro_build import BoardBuild, build_elf, require_tool, run_qemu
from tests.runtimes.test_micro_qemu import _instructions_by_function

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def assert_same(got, kc):
    bad = np.flatnonzero(got.reshape(-1) != kc.expected.reshape(-1))
    assert bad.size == 0, (f"{kc.name}: {bad.size} of {kc.expected.size} bytes differ, first at "
                           f"{bad[0]}: got {got.reshape(-1)[bad[0]]}, expected "
                           f"{kc.expected.reshape(-1)[bad[0]]}")


@pytest.mark.parametrize("op", sorted(pc.SAMPLERS))
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_packed_kernel_matches_reference(micro_lib, op, data):
    kc = pc.SAMPLERS[op](mc.HypothesisDraw(data), name=op)
    assert_same(call(micro_lib, kc), kc)


def test_layouts_put_each_weight_where_the_kernels_read_it():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(5, 2, 3, 3)).astype(np.int8)  # K = 18 -> Kp = 20
    p = packed.pack_conv_filter(w)
    flat = w.reshape(5, -1)
    assert p.size == 6 * 20
    for oc, k in itertools.product(range(6), range(20)):
        want = flat[oc, k] if oc < 5 and k < 18 else 0
        assert p[(oc // 2) * 40 + (k // 4) * 8 + (oc % 2) * 4 + k % 4] == want
    f = rng.integers(-128, 128, size=(6, 10)).astype(np.int8)
    q = packed.pack_fc_filter(f)
    assert q.size == 8 * 12
    for o, k in itertools.product(range(8), range(12)):
        want = f[o, k] if o < 6 and k < 10 else 0
        assert q[(o // 4) * 48 + (k // 4) * 16 + (o % 4) * 4 + k % 4] == want


def test_folded_bias_wraps_like_int32():
    w = np.full((2, 3), 127, np.int64)
    bias = np.array([2**31 - 1, -(2**31)], np.int64)
    got = packed.fold_bias(w, bias, 128)
    want = [(int(b) + 128 * 381 + 2**31) % 2**32 - 2**31 for b in bias]
    assert got.tolist() == want and got.dtype == np.int32


def _boundary_accs():
    b = packed.FAST_BOUND
    edge = [b - 1, b - 2, b - 3, 2**28, 2**28 - 1, 2**27 + 1, 65536, 65535, 3, 2, 1, 0]
    return np.array(sorted({s * v for v in edge for s in (1, -1)}), np.int64)


def test_fast_requantization_equals_tflm_on_the_proven_range():
    """Every shift in [-31, -1], the multipliers at both ends of [2^30, 2^31) and random
    ones, accumulators at the bound and at the rounding ties of each shift."""
    rng = np.random.default_rng(3)
    accs = _boundary_accs()
    mults = np.array([2**30, 2**30 + 1, 2**31 - 1, 2**31 - 2, 1518500250,
                      *rng.integers(2**30, 2**31, 8)], np.int64)
    checked = 0
    for shift in range(-31, 0):
        e = -shift
        # accumulators whose high product lands exactly on a rounding tie of 2^e
        ties = np.array([(k * 2**e + 2 ** (e - 1)) for k in (-3, -1, 0, 2)], np.int64)
        for m in mults:
            acc = np.concatenate([accs, ((ties << 31) // m).clip(-(2**29) + 1, 2**29 - 1),
                                  rng.integers(-(2**29) + 1, 2**29, 256)])
            want = np.clip(fp.multiply_by_quantized_multiplier(acc, int(m), shift) + 5, -128, 127)
            got = packed.fast_requant(acc, int(m), shift, 5, -128, 127)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (shift, int(m), int(acc[bad[0]]))
            checked += acc.size
    assert checked > 100_000


def test_fast_requantization_would_differ_outside_the_proof():
    """The proof's conditions are needed: shift 0 (e - 1 = -1) and |acc| >= 2^30 break the
    identity, and the compiler refuses both."""
    acc = np.array([3, -3, 7, 2**30 + 5], np.int64)
    m = 2**31 - 1
    exact = fp.multiply_by_quantized_multiplier(acc[:3], m, 0)
    with np.errstate(all="ignore"):
        assert not np.array_equal(packed.fast_requant(acc[:3], m, 0, 0, -(2**31), 2**31), exact)
    big = fp.multiply_by_quantized_multiplier(acc[3:], 2**30, -1)
    assert packed.fast_requant(acc[3:], 2**30, -1, 0, -(2**31), 2**31)[0] != big[0]
    w = np.ones((1, 4), np.int64)
    assert not packed.fast_requant_ok(w, None, 0, [0])
    assert not packed.fast_requant_ok(w, [packed.FAST_BOUND], 0, [-3])


def test_proven_bound_holds_and_is_reached():
    """No input exceeds the bound the compiler proves, and with weights of one sign (and
    a bias of the matching sign) the worst input, every x at the end farther from the
    zero point, reaches it exactly."""
    rng = np.random.default_rng(5)
    for zp in (-128, -7, 0, 50, 127):
        lo, hi = -128 - zp, 127 - zp  # the range of x - zp
        w = rng.integers(-128, 128, size=(3, 20)).astype(np.int64)
        bias = rng.integers(-(2**20), 2**20, 3)
        bound = packed.accumulator_bound(w, bias, zp)
        for oc in range(3):
            for xs in (np.where(w[oc] > 0, hi, lo), np.where(w[oc] > 0, lo, hi)):
                assert abs(int((w[oc] * xs).sum() + bias[oc])) <= bound[oc]
        pos = np.abs(w[:1]) + 1
        far = hi if hi >= -lo else lo
        b = np.array([12345 if far > 0 else -12345])
        worst = int((pos[0] * far).sum() + b[0])
        assert abs(worst) == packed.accumulator_bound(pos, b, zp)[0]


# --------------------------------------------------------------------------- on the boards

BUILDS = [
    BoardBuild("cortex-m3", "portable"),
    BoardBuild("cortex-m4", "dsp"),
    BoardBuild("cortex-m7", "dsp"),
    BoardBuild("cortex-m55", "dsp"),
]


@pytest.fixture(scope="module")
def packed_vectors(tmp_path_factory):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    work = tmp_path_factory.mktemp("micro_packed")
    cases = pc.qemu_cases()
    assert {c.notes["fast_requant"] for c in cases} == {True, False}
    return work, cgen.write_vectors(cases, work / "vectors.c"), len(cases)


# Where the dsp variants' instructions must be (functions, inlined or not).
PACKED_DSP_INSTRUCTIONS = {
    "conv2d_packed": ({"pair_block_full", "pair_block_clamp", "single_block_full"},
                      ("ldmia", "smlad", "sxtb16", "smmulr", "ssat")),
    "fully_connected_packed": ({"ek_fully_connected_packed_s8", "fc_rows"},
                               ("ldrd", "smlad", "sxtb16", "smmulr")),
}


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.id)
def test_board_reproduces_every_packed_case(packed_vectors, build):
    work, vectors, n = packed_vectors
    elf = build_elf(build, [cgen.RUNNER, vectors], work / f"{build.id}.elf", [cgen.HERE])
    res = run_qemu(build.machine, elf, timeout=60)
    report = res.stderr + res.stdout
    assert res.returncode == 0, f"{build.id}: exit {res.returncode}\n{report}"
    assert f"edgekit micro tests: {n} passed, 0 failed" in report, report
    if build.variant == "dsp":  # the cases really ran the SIMD code
        found = _instructions_by_function(elf)
        for kernel, (functions, mnemonics) in PACKED_DSP_INSTRUCTIONS.items():
            used = set().union(*(found.get(f, set()) for f in functions))
            missing = [m for m in mnemonics if m not in used]
            assert not missing, f"{build.id}: {kernel} has no {missing} in {sorted(functions)}"
