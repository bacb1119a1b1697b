"""The fit check: what does not fit raises FitError (exit code 2) with a table of what
takes the space and how much is over; --flash / --sram override the target's sizes; a
large arena goes to another SRAM region or to PSRAM when the target has one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgekit.backends.c import FitError, compile_model
from edgekit.backends.c.fit import check_fit
from edgekit.targets import load_target
from tests.backends.c.support import KWS, kws_graph
from tests.support.shared import shared_file

EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]


def _cli(*args, cwd=None):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(EDGEKIT + [str(a) for a in args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


def test_too_small_sram_raises_with_table(tmp_path):
    g = kws_graph()
    with pytest.raises(FitError) as info:
        compile_model(g, "nucleo-l4r5zi", tmp_path / "out", sram="8KiB", measure=False)
    err = info.value
    assert err.exit_code == 2
    rep = err.report
    arena = next(p for p in rep.parts if p.name == "arena")
    stack = next(p for p in rep.parts if p.name == "stack")
    assert arena.region is None and arena.nbytes == 8384
    scratch = next((p.nbytes for p in rep.parts if p.name == "scratch"), 0)  # packed conv, dsp
    assert rep.over["ram"] == arena.nbytes + stack.nbytes + scratch - 8192
    assert rep.over["flash"] == 0
    msg = str(err)
    for text in ("does not fit target 'nucleo-l4r5zi'", "tensor arena", "8,384",
                 f"OVER by {rep.over['ram']:,}", "SRAM1 (override)", "-- does not fit"):
        assert text in msg, msg
    assert not (tmp_path / "out").exists(), "nothing is written when the model does not fit"


def test_too_small_flash_raises_with_table(tmp_path):
    g = kws_graph()
    with pytest.raises(FitError) as info:
        compile_model(g, "cortex-m4", tmp_path / "out", flash="16KiB", measure=False)
    rep = info.value.report
    flash_parts = [p for p in rep.parts if p.kind == "flash"]
    assert rep.over["flash"] == sum(p.nbytes for p in flash_parts) - 16 * 1024
    assert rep.over["ram"] == 0
    assert "weights and biases" in str(info.value) and "flash over by" in str(info.value)
    assert "SSRAM1 (override)" in str(info.value)


def test_large_arena_goes_to_psram(tmp_path):
    """cortex-m4 (mps2-an386) has 16 MiB PSRAM: with 8 KiB of SRAM the arena goes there."""
    r = compile_model(kws_graph(), "cortex-m4", tmp_path / "out", sram="8KiB", measure=False)
    placement = r.manifest["placement"]
    assert placement["arena"] == "PSRAM (psram)"
    assert placement["stack"] == "SSRAM2-3 (sram)"
    assert r.manifest["sections"]["arena"] == ".bss.edgekit_arena"
    assert '__attribute__((section(".bss.edgekit_arena"), aligned(16)))' in (r.out_dir / "model.c").read_text()


def test_a_target_without_psram_fails_where_one_with_psram_fits(tmp_path):
    with pytest.raises(FitError):
        compile_model(kws_graph(), "nucleo-l4r5zi", tmp_path / "a", sram="8KiB", measure=False)
    compile_model(kws_graph(), "cortex-m3", tmp_path / "b", sram="8KiB", measure=False)


def test_arena_too_big_for_the_first_sram_region_goes_to_the_next():
    """stm32h7: DTCM 128 KiB first, then AXI-SRAM 512 KiB."""
    rep = check_fit(load_target("stm32h7"), code=10_000, weights=100_000, constants=1_000,
                    arena=200 * 1024, stack=1024)
    assert rep.fits
    parts = {p.name: p.region for p in rep.parts}
    assert parts["stack"] == "DTCM (sram)" and parts["arena"] == "AXI-SRAM (sram)"
    rep = check_fit(load_target("stm32h7"), code=10_000, weights=100_000, constants=1_000,
                    arena=600 * 1024, stack=1024)
    assert not rep.fits and rep.over["ram"] == 600 * 1024 + 1024 - 128 * 1024


def test_weights_go_to_a_second_flash_region():
    """cortex-m55 (AN547): code in ITCM 512 KiB, weights that do not fit there in QSPI."""
    rep = check_fit(load_target("cortex-m55"), code=20_000, weights=1_000_000, constants=2_000,
                    arena=10_000, stack=1024)
    parts = {p.name: p.region for p in rep.parts}
    assert rep.fits and parts["code"] == "ITCM (flash)" and parts["weights"] == "QSPI (flash)"


def test_cli_too_small_sram_exits_2_with_the_table(tmp_path):
    out = tmp_path / "kws"
    r = _cli("compile", shared_file(KWS), "--target", "nucleo-l4r5zi", "--sram", "8KiB",
             "--out", out)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "does not fit target 'nucleo-l4r5zi'" in r.stderr
    assert "tensor arena" in r.stderr and "OVER by" in r.stderr
    assert not out.exists()


def test_cli_bad_size_exits_2(tmp_path):
    r = _cli("compile", shared_file(KWS), "--target", "cortex-m4", "--flash", "lots",
             "--out", tmp_path / "x")
    assert r.returncode == 2 and "--flash 'lots'" in r.stderr, r.stderr
