"""Every image edgekit links takes its FLASH and RAM from the target file: the board
ports (shared/memory.ld) and the semihosting test runner (firmware/common/mps2.ld, which
once assumed 4 MiB of RAM at 0x20000000 and locked up the 512 KiB mps3-an547).
"""

from __future__ import annotations

import subprocess

import pytest

from edgekit.errors import TargetError
from edgekit.targets import load_target
from tests.firmware.support import require_tool

QEMU_TARGETS = ["cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


def test_image_memory_follows_the_target_files(tmp_path):
    # expected values read off the target files' [[memories]] by hand
    expect = {
        "cortex-m4": ((0x0, 4 << 20), (0x2000_0000, 4 << 20)),
        "cortex-m33": ((0x1000_0000, 4 << 20), (0x3800_0000, 4 << 20)),
        "cortex-m55": ((0x0, 512 << 10), (0x2000_0000, 512 << 10)),
        "nucleo-l4r5zi": ((0x0800_0000, 2 << 20), (0x2000_0000, 640 << 10)),  # SRAM1..3 joined
    }
    for name, (flash, ram) in expect.items():
        code, data = load_target(name).image_memory()
        assert (code.base, code.size) == flash and (data.base, data.size) == ram, name
    # slots kept in flash end the code region where they begin
    code, _ = load_target("nucleo-l4r5zi").image_memory((0x0804_0000, 0x081C_0000))
    assert (code.base, code.size) == (0x0800_0000, 256 << 10)
    flags = load_target("cortex-m55").linker_symbols()
    assert "-Wl,--defsym=EK_RAM_LENGTH=0x80000" in flags and "-Wl,--defsym=EK_RAM_ORIGIN=0x20000000" in flags
    bad = tmp_path / "no-sram.toml"
    bad.write_text('name = "no-sram"\nfamily = "mcu"\ndescription = "x"\ncpu = "cortex-m4"\n'
                   'arch = "armv7e-m"\nfeatures = []\nclock_hz = 1000000\ndefault_backend = "c"\n'
                   '[[memories]]\nname = "F"\nkind = "flash"\nsize = "64KiB"\nbase = 0x0\n'
                   '[[memories]]\nname = "S"\nkind = "sram"\nsize = "16KiB"\n'
                   '[toolchain]\ncc = "arm-none-eabi-gcc"\n')
    with pytest.raises(TargetError, match="lists no sram memory with a base address"):
        load_target(str(bad)).image_memory()


def test_the_test_runner_links_nothing_without_a_memory_map(tmp_path):
    from edgekit.firmware import firmware_root

    cc = require_tool("arm-none-eabi-gcc")
    common = firmware_root() / "common"
    src = tmp_path / "main.c"
    src.write_text("int main(void) { return 0; }\n")
    res = subprocess.run([cc, "-mcpu=cortex-m4", "-mthumb", str(src), str(common / "startup.c"),
                          "-T", str(common / "mps2.ld"), "-nostartfiles", "--specs=nano.specs",
                          "-o", str(tmp_path / "a.elf")], capture_output=True, text=True)
    assert res.returncode != 0 and "EK_FLASH_ORIGIN" in res.stderr


@pytest.mark.parametrize("target", QEMU_TARGETS)
def test_generated_model_runs_on_every_qemu_board(target, tmp_path):
    """A model compiled to C, with the semihosting runner, on each QEMU board: exit status
    0 only when every output byte equals the reference interpreter's."""
    from edgekit.backends.c import build, compile_model
    from edgekit.hil import prepare_inputs, reference_outputs
    from tests.device import models

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    tgt = load_target(target)
    g, x = models.image(32)
    feeds = prepare_inputs(g, x[:3])
    want = reference_outputs(g, feeds)[g.outputs[0]]
    out = compile_model(g, tgt, tmp_path / "model", measure=False).out_dir
    vec = build.write_vectors(feeds[g.inputs[0]], want, tmp_path / "vectors.c")
    elf = build.build_firmware(out, tgt, vec, tmp_path / "model.elf")
    res = build.run_qemu(tgt, elf, timeout=60)
    assert res.returncode == 0, res.output[-2000:]
    assert res.inferences == 3 and res.mismatching_bytes == 0
    syms = subprocess.run([require_tool("arm-none-eabi-nm"), str(elf)], capture_output=True, text=True,
                          check=True).stdout
    top = next(int(line.split()[0], 16) for line in syms.splitlines() if line.endswith(" __stack_top"))
    _, ram = tgt.image_memory()
    assert top == ram.end  # the stack starts at the top of the target's RAM, not past it
