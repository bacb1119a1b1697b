"""The generated C compiles with -std=c99 -Wall -Wextra -Werror -O2 under each MCU
target's own flags (targets/*.toml): the KWS model and the graphs covering every op,
with the kernel variants each target selects."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgekit.backends.c import build, compile_model
from edgekit.targets import list_targets, load_target
from tests.backends.c import graphs
from tests.backends.c.support import MCU_TARGETS, kws_graph, require


def test_every_mcu_target_is_covered():
    assert sorted(t.name for t in list_targets() if t.is_mcu) == sorted(MCU_TARGETS)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{target: [generated folders]}, variant auto (dsp kernels where the target has dsp)."""
    work = tmp_path_factory.mktemp("cross")
    models = dict(graphs.cases())
    models["kws"] = kws_graph()
    out = {}
    for t in MCU_TARGETS:
        out[t] = [compile_model(g, t, work / t / name, measure=False).out_dir
                  for name, g in models.items()]
    return out


def _compile(target: str, dirs: list[Path], work: Path) -> list[str]:
    """Compile every model.c and the union of the kernel sources; returns the commands' errors."""
    tgt = load_target(target)
    cc = require(tgt.toolchain.cc)
    flags = [*tgt.toolchain.cflags, *build.WARNINGS, *build.OPT, "-ffunction-sections",
             "-fdata-sections"]
    work.mkdir(parents=True, exist_ok=True)
    kernels: dict[str, Path] = {}
    jobs = []
    for i, d in enumerate(dirs):
        jobs.append([cc, *flags, f"-I{d}", "-c", str(d / "model.c"), "-o", str(work / f"model{i}.o")])
        for src in sorted((d / "kernels").glob("*.c")):
            kernels.setdefault(src.name, src)
    for name, src in kernels.items():
        jobs.append([cc, *flags, f"-I{src.parent.parent}", "-c", str(src), "-o",
                     str(work / (Path(name).stem + ".o"))])
    errors = []
    for cmd in jobs:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0 or res.stderr.strip():
            errors.append(f"{' '.join(cmd)}\n{res.stderr}")
    return errors


def test_generated_code_compiles_with_werror_for_every_mcu_target(folders, tmp_path):
    require("arm-none-eabi-gcc")
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = dict(zip(MCU_TARGETS, pool.map(
            lambda t: _compile(t, folders[t], tmp_path / t), MCU_TARGETS)))
    failed = {t: e for t, e in results.items() if e}
    assert not failed, "\n\n".join(f"[{t}]\n" + "\n".join(e) for t, e in failed.items())


def test_targets_get_their_kernel_variants(folders):
    import json

    for t in MCU_TARGETS:
        m = json.loads((folders[t][-1] / "manifest.json").read_text())  # the KWS folder
        variants = {k["kernel"]: k["variant"] for k in m["kernels"]}
        features = load_target(t).features
        dsp = "dsp" in features
        if "mve" in features:  # Helium kernels read the generic layout
            assert variants["conv2d"] == "mve" and "conv2d_packed" not in variants, t
        elif dsp:  # KWS's convs all take the packed kernel (the cost model's choice)
            assert variants["conv2d_packed"] == "dsp" and "conv2d" not in variants, t
        else:
            assert variants["conv2d"] == "portable" and "conv2d_packed" not in variants, t
        if "mve" not in features:
            assert variants["depthwise_conv2d"] == ("dsp" if dsp else "portable"), t
        assert variants["softmax"] == "portable", t
