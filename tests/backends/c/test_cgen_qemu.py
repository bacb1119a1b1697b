"""Generated models on the emulated Cortex-M4 (qemu-system-arm -M mps2-an386): semihosting
firmware from firmware/common with the model and test vectors; exit status 0 only when
every output byte equals the reference interpreter's. Portable and dsp kernels, timed
with TIMER0 under -icount shift=0 (1 tick = 40 instructions at 25 MHz)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgekit.backends.c import build, compile_model
from edgekit.reference.interpreter import Interpreter
from edgekit.targets import load_target
from tests.backends.c import graphs
from tests.backends.c.support import ad_graph, ad_inputs, kws_graph, kws_inputs, require

TARGET = "cortex-m4"
# TFLM on the same emulated board (shared notes, toolchain.md): instructions per inference
TFLM_REFERENCE = {"kws": 43_021_432, "ad": 1_951_932}
TFLM_CMSIS_NN = {"kws": 7_699_884, "ad": 582_912}


def _jobs():
    kws, ad = kws_graph(), ad_graph()
    jobs = {}
    # The DSP build (the one a cortex-m4 ships) runs every kws01 input and every AD
    # window; the portable build, twice as slow under QEMU, the first 100 / all.
    x = kws_inputs()
    jobs["kws-dsp"] = (kws, x, "dsp")
    jobs["kws-portable"] = (kws, x[:100], "portable")
    x = ad_inputs(ad)
    for v in ("portable", "dsp"):
        jobs[f"ad-{v}"] = (ad, x, v)
    rng = np.random.default_rng(3)
    for name, g in graphs.cases().items():
        jobs[f"{name}-dsp"] = (g, graphs.random_inputs(g, rng, 16), "dsp")
    return jobs


@pytest.fixture(scope="module")
def elfs(tmp_path_factory):
    require("arm-none-eabi-gcc")
    require("qemu-system-arm")
    tgt = load_target(TARGET)
    work = tmp_path_factory.mktemp("qemu")

    def make(item):
        key, (g, x, variant) = item
        try:
            out = compile_model(g, tgt, work / key, variant=variant, measure=False).out_dir
            ref = Interpreter(g).run([x])[g.outputs[0]]
            vec = build.write_vectors(x, ref, work / f"{key}_vectors.c")
            return key, build.build_firmware(out, tgt, vec, work / f"{key}.elf")
        except Exception as exc:  # reported by the test that needs it
            return key, exc

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return dict(pool.map(make, _jobs().items()))


def _run(elfs, key) -> build.QemuRun:
    elf = elfs[key]
    if isinstance(elf, Exception):
        raise elf
    res = build.run_qemu(load_target(TARGET), elf, icount=True, timeout=300)
    assert res.returncode == 0, f"{key}: exit {res.returncode}\n{res.output}"
    assert res.mismatching_bytes == 0, res.output
    return res


@pytest.mark.parametrize("model", ["kws", "ad"])
def test_mlperf_models_bit_exact_on_cortex_m4(elfs, model):
    counts = {}
    for variant in ("portable", "dsp"):
        res = _run(elfs, f"{model}-{variant}")
        expect = {"kws": {"dsp": 1000, "portable": 100}, "ad": {"dsp": 196, "portable": 196}}[model][variant]
        assert res.inferences == expect
        counts[variant] = res.instructions_per_inference(25_000_000)
    print(f"\n{model} on mps2-an386 (-icount shift=0), instructions per inference: "
          f"portable {counts['portable']:,.0f}, dsp {counts['dsp']:,.0f} "
          f"(TFLM reference kernels {TFLM_REFERENCE[model]:,}, CMSIS-NN {TFLM_CMSIS_NN[model]:,})")
    assert counts["dsp"] < counts["portable"]
    assert counts["portable"] <= TFLM_REFERENCE[model] * 1.01


def test_icount_timing_is_deterministic(elfs):
    a = _run(elfs, "ad-dsp")
    b = _run(elfs, "ad-dsp")
    assert (a.ticks, a.ticks_min, a.ticks_max) == (b.ticks, b.ticks_min, b.ticks_max)


@pytest.mark.parametrize("name", sorted(graphs.cases()))
def test_random_graphs_bit_exact_with_dsp_kernels(elfs, name):
    """The dsp variants under the planner's in-place and shifted buffers."""
    res = _run(elfs, f"{name}-dsp")
    assert res.inferences == 16


def test_firmware_reports_a_mismatch(tmp_path):
    """The runner fails (exit 1) when an expected byte is wrong."""
    require("arm-none-eabi-gcc")
    require("qemu-system-arm")
    tgt = load_target(TARGET)
    g = ad_graph()
    x = ad_inputs(g)[:2]
    ref = Interpreter(g).run([x])[g.outputs[0]].copy()
    ref[1, 5] ^= 1
    out = compile_model(g, tgt, tmp_path / "ad", measure=False).out_dir
    vec = build.write_vectors(x, ref, tmp_path / "vectors.c")
    res = build.run_qemu(tgt, build.build_firmware(out, tgt, vec, tmp_path / "ad.elf"))
    assert res.returncode == 1 and res.mismatching_bytes == 1, res.output
