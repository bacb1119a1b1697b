"""The model-runner firmware (build.build_firmware, firmware/common/mps2.ld) links code and
constants into the target's first flash region and data, bss and stack into its first
SRAM range. A model the fit check placed elsewhere (weights in cortex-m55's QSPI, an
arena in PSRAM) is refused with a FitError naming the region and the bytes, before any
compiler or linker runs (no toolchain or QEMU needed)."""

from __future__ import annotations

import pytest

from edgekit.backends.c import FitError, build, compile_model
from edgekit.targets import load_target
from tests.backends.c.support import kws_graph


def _small_itcm_m55(tmp_path):
    """cortex-m55 with a 16 KiB ITCM: the KWS weights (24,368 bytes) go to QSPI."""
    text = load_target("cortex-m55").source.read_text()
    text = text.replace('name = "cortex-m55"', 'name = "m55-small-itcm"', 1)
    text = text.replace('name = "ITCM"\nkind = "flash"\nsize = "512KiB"',
                        'name = "ITCM"\nkind = "flash"\nsize = "16KiB"', 1)
    path = tmp_path / "m55-small-itcm.toml"
    path.write_text(text)
    return load_target(path)


def test_weights_in_a_second_flash_region_are_refused_before_linking(tmp_path):
    tgt = _small_itcm_m55(tmp_path)
    r = compile_model(kws_graph(), tgt, tmp_path / "model", measure=False)
    assert r.manifest["placement"]["weights"] == "QSPI (flash)"  # the fit check accepts it
    with pytest.raises(FitError) as info:
        build.build_firmware(r.out_dir, tgt, tmp_path / "vectors.c", tmp_path / "model.elf")
    err = info.value
    assert isinstance(err, build.FirmwareFitError) and err.exit_code == 2
    weights = r.flash["weights"]
    assert err.misplaced == [("QSPI", "flash", weights, ["weights"])]
    msg = str(err)
    for text in ("'m55-small-itcm'", "weights and biases", f"{weights:,} bytes", "'QSPI'", "'ITCM'",
                 "16,384 bytes at 0x0"):
        assert text in msg, msg
    assert not (tmp_path / "model.elf").exists()


def test_an_arena_in_psram_is_refused(tmp_path):
    r = compile_model(kws_graph(), "cortex-m4", tmp_path / "model", sram="8KiB", measure=False)
    assert r.manifest["placement"]["arena"] == "PSRAM (psram)"
    want = rf"tensor arena \({r.arena_bytes:,} bytes\) in psram region 'PSRAM'"
    with pytest.raises(build.FirmwareFitError, match=want):
        build.check_firmware_placement(r.out_dir, load_target("cortex-m4"))


def test_a_model_in_the_first_regions_passes(tmp_path):
    tgt = load_target("cortex-m55")
    r = compile_model(kws_graph(), tgt, tmp_path / "model", measure=False)
    assert set(r.manifest["placement"].values()) == {"ITCM (flash)", "DTCM (sram)"}
    build.check_firmware_placement(r.out_dir, tgt)  # no error


def test_model_and_vectors_over_the_flash_region_are_refused(tmp_path):
    """The fit check counts the model; the runner also keeps the test vectors in flash."""
    import numpy as np

    tgt = load_target("cortex-m55")
    r = compile_model(kws_graph(), tgt, tmp_path / "model", measure=False)
    x = np.zeros((1, 500 * 1024), np.int8)
    vec = build.write_vectors(x, x[:, :10], tmp_path / "vectors.c")
    assert build.vector_bytes(vec) == 500 * 1024 + 10
    over = r.flash["total"] + 500 * 1024 + 10 - 512 * 1024
    with pytest.raises(build.FirmwareFitError, match=f"overflow flash region 'ITCM' .* by {over:,} bytes"):
        build.build_firmware(r.out_dir, tgt, vec, tmp_path / "model.elf")
    assert not (tmp_path / "model.elf").exists()
