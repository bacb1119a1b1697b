"""bench/: run_all knows every benchmark script and each one starts; the stack-peak
measurement of bench/mcu.py finds a frame of known size on the emulated board."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def _module(name: str):
    """A bench/ module (bench/ is a folder of scripts, not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_run_all_lists_every_bench_script():
    run_all = _module("run_all")
    assert run_all.unlisted_scripts() == []
    for b in run_all.BENCHES:
        assert (BENCH / b.script).is_file(), b.script


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")
                                          if p.name not in ("report.py", "tflm_figures.py")))
def test_every_bench_script_starts(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_run_all_refuses_an_unknown_benchmark():
    r = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--only", "no_such_bench"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2
    assert "no_such_bench" in r.stdout + r.stderr and "mcu" in r.stdout + r.stderr


def test_results_file_that_is_a_folder_is_refused_before_any_work(tmp_path):
    report = _module("report")
    with pytest.raises(SystemExit) as e:
        report.Report(tmp_path)
    assert e.value.code == 2


MAIN_WITH_FRAME = r"""
#include <stdint.h>
#include "semihosting.h"
void ek_main_returned(int status) { ek_semihosting_exit(status); }
void ek_fault(void) { ek_semihosting_exit(126); }
/* A frame of FRAME bytes that the compiler cannot drop: every word is written. */
__attribute__((noinline)) static uint32_t touch(volatile uint32_t *buf, uint32_t n) {
  uint32_t s = 0u, i;
  for (i = 0; i < n; i++) { buf[i] = i; }
  for (i = 0; i < n; i++) { s += buf[i]; }
  return s;
}
__attribute__((noinline)) static uint32_t deep(void) {
  volatile uint32_t buf[FRAME / 4];
  return touch(buf, FRAME / 4);
}
int main(void) { return deep() == 0u ? 1 : 0; }
"""


@pytest.mark.parametrize("frame", [1024, 6000])
def test_stack_peak_finds_a_frame_of_known_size(tmp_path, frame):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                        "qemu-system-arm")
    from edgekit.resources import firmware_dir
    from edgekit.targets import load_target

    tgt = load_target("cortex-m4")
    common = firmware_dir() / "common"
    main_c = tmp_path / "main.c"
    main_c.write_text(MAIN_WITH_FRAME)
    elf = tmp_path / "fw.elf"
    build = subprocess.run([tgt.toolchain.cc, *tgt.toolchain.cflags, "-O2", f"-DFRAME={frame}", f"-I{common}",
                            str(main_c), str(BENCH / "c" / "stack_peak.c"), str(common / "startup.c"),
                            str(common / "semihosting.c"), *tgt.linker_symbols(), "-T", str(common / "mps2.ld"),
                            "-nostartfiles", *tgt.toolchain.ldflags, "-Wl,--wrap=main", "-o", str(elf)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    r = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                        "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    peak = int(re.search(r"stack peak: (\d+) bytes", r.stderr + r.stdout).group(1))
    # the array, plus a few small frames (reset handler, the wrapper, main, deep, touch)
    assert frame <= peak <= frame + 256, peak
