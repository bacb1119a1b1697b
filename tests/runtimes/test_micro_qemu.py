"""runtimes/micro on emulated Cortex-M boards: test vectors from the numpy kernels are
compiled with the kernels (portable or dsp variant) and the semihosting harness of
firmware/common, run under qemu-system-arm, and must reproduce every expected byte.

Boards: mps2-an385 (Cortex-M3, portable), mps2-an386 (Cortex-M4, portable and dsp),
mps2-an500 (Cortex-M7, dsp). The dsp ELFs must really contain the SIMD instructions.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgekit.ir.dtypes import QuantParams
from tests.runtimes import micro_cases as mc
from tests.runtimes import micro_cgen as cgen
from tests.runtimes.micro_build import MICRO, BoardBuild, build_elf, include_flags, require_tool, run_qemu

BUILDS = [
    BoardBuild("cortex-m3", "portable"),
    BoardBuild("cortex-m4", "portable"),
    BoardBuild("cortex-m4", "dsp"),
    BoardBuild("cortex-m7", "dsp"),
]
SELFTEST = BoardBuild("cortex-m4", "portable")

# Where the dsp/ kernels' SIMD instructions must appear (functions, inlined or not).
DSP_INSTRUCTIONS = {
    "conv2d": ({"ek_conv2d_s8", "conv_1x1", "pixel_sums"}, ("smlad", "sxtb16", "sadd16")),
    "fully_connected": ({"ek_fully_connected_s8"}, ("smlad", "sxtb16", "sadd16")),
    "depthwise_conv2d": ({"ek_depthwise_conv2d_s8", "pixel_quad", "depthwise_general", "dw_quad_3x3"},
                         ("smlabb", "smlatt", "sxtb16")),
    "batch_matmul": ({"ek_batch_matmul_s8", "matrix_simd", "dot2x2"}, ("smlad", "sxtb16", "sadd16")),
}
SIMD_MNEMONICS = ("smlad", "smlabb", "smlatt", "sxtb16", "sadd16")


def _selftest_cases():
    """A passing case, a case whose expected bytes are wrong, and one whose expected
    output is one byte short (the kernel then writes into the guard)."""
    x = np.arange(-128, 128, dtype=np.int8)
    good = mc.relu6_case("selftest_good", x, QuantParams.per_tensor(0.05, -3))
    wrong = mc.relu6_case("selftest_wrong", x, QuantParams.per_tensor(0.05, -3))
    wrong.expected = wrong.expected.copy()
    wrong.expected[200] ^= 1
    short = mc.relu6_case("selftest_short", x, QuantParams.per_tensor(0.05, -3))
    short.expected = short.expected[:-1]  # the kernel writes 256 bytes where 255 are expected
    return [good, wrong, short]


@pytest.fixture(scope="module")
def elfs(tmp_path_factory):
    """Every ELF of this module, built in parallel once: {build id: path or exception}."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    work = tmp_path_factory.mktemp("micro_qemu")
    cases = cgen.qemu_cases()
    vectors = cgen.write_vectors(cases, work / "vectors.c")
    selftest = cgen.write_vectors(_selftest_cases(), work / "selftest_vectors.c")
    jobs = {b.id: (b, vectors) for b in BUILDS}
    jobs["selftest"] = (SELFTEST, selftest)

    def build(item):
        key, (b, vec) = item
        try:
            return key, build_elf(b, [cgen.RUNNER, vec], work / f"{key}.elf", [cgen.HERE])
        except Exception as exc:  # reported by the test that needs this ELF
            return key, exc

    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        built = dict(pool.map(build, jobs.items()))
    built["case_count"] = len(cases)
    return built


def _elf(elfs, key):
    v = elfs[key]
    if isinstance(v, Exception):
        raise v
    return v


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: f"{b.machine}-{b.variant}")
def test_board_reproduces_every_case(elfs, build):
    res = run_qemu(build.machine, _elf(elfs, build.id), timeout=60)
    report = res.stderr + res.stdout
    n = elfs["case_count"]
    assert res.returncode == 0, f"{build.id} on {build.machine}: exit {res.returncode}\n{report}"
    assert f"edgekit micro tests: {n} passed, 0 failed" in report, report


def _instructions_by_function(elf) -> dict[str, set[str]]:
    objdump = require_tool("arm-none-eabi-objdump")
    dis = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    found: dict[str, set[str]] = {}
    current = None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = m.group(1)
            continue
        parts = line.split("\t")
        if current and len(parts) >= 3:
            found.setdefault(current, set()).add(parts[2].strip().split(".")[0])
    return found


@pytest.mark.parametrize("build", [b for b in BUILDS if b.variant == "dsp"], ids=lambda b: b.id)
def test_dsp_build_uses_simd_instructions(elfs, build):
    found = _instructions_by_function(_elf(elfs, build.id))
    for kernel, (functions, mnemonics) in DSP_INSTRUCTIONS.items():
        used = set().union(*(found.get(f, set()) for f in functions))
        missing = [m for m in mnemonics if m not in used]
        assert not missing, f"{build.id}: {kernel} has no {missing} in {sorted(functions)}"


# depthwise_fast's own instructions: the SIMD multiply-accumulates of four channels and the
# SMMULR requantization that only the fast path uses.
DEPTHWISE_FAST_INSTRUCTIONS = ("smlabb", "smlatt", "sxtb16", "sxtab16", "smmulr")


@pytest.mark.parametrize("build", [b for b in BUILDS if b.variant == "dsp"], ids=lambda b: b.id)
def test_depthwise_fast_path_uses_simd_instructions(tmp_path, build):
    """At -O2 GCC inlines both static paths of the dsp depthwise kernel (depthwise_fast and
    depthwise_general, each called once) into ek_depthwise_conv2d_s8, so the check above
    cannot tell which path holds the instructions. Compiled with the build's flags and
    -fno-inline-functions-called-once, each path keeps its own symbol."""
    cc = require_tool("arm-none-eabi-gcc")
    source = MICRO / "src" / "dsp" / "depthwise_conv2d.c"
    obj = tmp_path / "depthwise_conv2d.o"
    subprocess.run([cc, *build.cflags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                    "-fno-inline-functions-called-once", *include_flags(), "-c", str(source), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    found = _instructions_by_function(obj)
    assert "depthwise_fast" in found and "depthwise_general" in found, sorted(found)
    # the fast path's windows run in dw_quad_* (assembly, one function per window shape)
    fast = set().union(*(v for k, v in found.items() if k == "depthwise_fast" or k.startswith("dw_")))
    missing = [m for m in DEPTHWISE_FAST_INSTRUCTIONS if m not in fast]
    assert not missing, f"{build.id}: depthwise_fast has no {missing}"
    # The general path keeps TFLM's requantization: SMMULR appearing there would mean the
    # two paths are no longer told apart.
    assert "smmulr" not in found["depthwise_general"]


def test_cortex_m3_build_has_no_dsp_instructions(elfs):
    found = _instructions_by_function(_elf(elfs, "cortex-m3-portable"))
    simd = set(SIMD_MNEMONICS)
    used = {f: sorted(ins & simd) for f, ins in found.items() if ins & simd}
    assert not used, f"Armv7E-M instructions in a Cortex-M3 build: {used}"


def test_harness_reports_mismatches_and_overruns(elfs):
    res = run_qemu(SELFTEST.machine, _elf(elfs, "selftest"), timeout=60)
    report = res.stderr + res.stdout
    assert res.returncode == 2, report
    assert "FAIL selftest_wrong: 1 of 256 bytes differ; first at byte 200" in report, report
    assert "FAIL selftest_short: wrote past the end of the output" in report, report
    assert "selftest_good" not in report, report
    assert "edgekit micro tests: 1 passed, 2 failed" in report, report
