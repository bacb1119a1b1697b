"""runtimes/micro as a library: the manifest matches the files, the Python view of the
API (micro_abi) matches kernels.h, and every variant compiles cleanly with -Werror for
every Cortex-M target of targets/ and for the host."""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgekit.ir.ops import OpType
from tests.runtimes import micro_abi
from tests.runtimes.micro_build import (MICRO, WARNINGS, include_flags, manifest, require_tool,
                                        run, target)

HEADER = MICRO / "include" / "edgekit" / "kernels.h"
MCU_TARGETS = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _includes(path) -> set[str]:
    return set(re.findall(r'#include "([^"]+)"', path.read_text()))


def _internal_headers(path, seen=None) -> set[str]:
    """Paths (relative to runtimes/micro) of the internal headers ``path`` needs."""
    seen = set() if seen is None else seen
    for inc in _includes(path):
        if inc.startswith("edgekit/"):
            continue
        found = [p for p in (path.parent / inc, MICRO / "src" / inc) if p.is_file()]
        assert found, f"{path}: cannot find {inc}"
        rel = found[0].relative_to(MICRO).as_posix()
        if rel not in seen:
            seen.add(rel)
            _internal_headers(found[0], seen)
    return seen


def test_manifest_lists_existing_files_and_their_headers():
    m = manifest()
    assert (MICRO / m["public_header"]).is_file()
    ops = {o.value for o in OpType}
    for name, kernel in m["kernels"].items():
        assert set(kernel["ir_ops"]) <= ops, name
        assert "portable" in kernel["variants"], f"{name} has no portable variant"
        for variant, files in kernel["variants"].items():
            assert variant in m["variants"], f"{name}: unknown variant {variant}"
            needed = set()
            for src in files["sources"]:
                path = MICRO / src
                assert path.is_file(), src
                assert re.search(rf"\bvoid {kernel['function']}\(", path.read_text()), \
                    f"{src} does not define {kernel['function']}"
                needed |= _internal_headers(path)
            assert needed == set(files["headers"]), f"{name}/{variant}: headers {sorted(needed)}"
    covered = {op for k in m["kernels"].values() for op in k["ir_ops"]} | set(m["no_kernel"])
    assert covered == ops - {"BATCH_NORM"}, f"ops without a kernel: {sorted(ops - covered)}"


def test_every_source_file_is_in_the_manifest():
    listed = {s for k in manifest()["kernels"].values() for v in k["variants"].values()
              for s in v["sources"]}
    on_disk = {p.relative_to(MICRO).as_posix() for p in (MICRO / "src").rglob("*.c")}
    assert on_disk == listed


def test_python_abi_matches_the_header():
    text = _strip_comments(HEADER.read_text())
    structs = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\} (\w+);", text, flags=re.S):
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if not decl:
                continue
            assert decl.startswith("int32_t "), f"{name}: {decl}"
            for f in decl[len("int32_t "):].split(","):
                m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", f.strip())
                fields.append((m.group(1), int(m.group(2) or 0)))
        structs[name] = fields
    assert structs == micro_abi.STRUCTS

    functions = {}
    for name, params in re.findall(r"\bvoid (ek_\w+)\((.*?)\);", text, flags=re.S):
        kinds = []
        for p in params.split(","):
            p = " ".join(p.split())
            if m := re.fullmatch(r"const (ek_\w+) \*\w+", p):
                kinds.append(f"S:{m.group(1)}")
            elif re.fullmatch(r"const int8_t \*const \*\w+", p):
                kinds.append("P")
            elif re.fullmatch(r"int8_t \*const \*\w+", p):
                kinds.append("Q")
            elif m := re.fullmatch(r"const (int8_t|int32_t|float) \*\w+", p):
                kinds.append(f"A:{m.group(1)}")
            elif re.fullmatch(r"int16_t \*\w+", p):
                kinds.append("W:int16_t")
            elif m := re.fullmatch(r"(int8_t|int32_t|float) \*\w+", p):
                kinds.append(f"O:{m.group(1)}")
            elif re.fullmatch(r"int32_t \w+", p):
                kinds.append("i32")
            elif re.fullmatch(r"float \w+", p):
                kinds.append("f32")
            else:
                raise AssertionError(f"{name}: unexpected parameter {p!r}")
        functions[name] = kinds
    assert functions == micro_abi.FUNCTIONS
    assert {k["function"] for k in manifest()["kernels"].values()} == set(functions)


def _compile_all(cc: str, flags: list[str], sources, out_dir) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)  # objects land here, one per source
    run([cc, *flags, *WARNINGS, "-O2", *include_flags(), "-c", *sources], cwd=out_dir)


def _variant_sources(variant: str):
    return [MICRO / s for k in manifest()["kernels"].values()
            for s in k["variants"].get(variant, {}).get("sources", [])]


def test_every_variant_compiles_cleanly_for_every_target(tmp_path):
    """-std=c99 -Wall -Wextra -Werror -O2 with each target's own flags: portable/ for all,
    dsp/ (mve/) where the target has the dsp (mve) feature; the host compiler with -pedantic."""
    cc = require_tool("arm-none-eabi-gcc")
    jobs = []
    for name in MCU_TARGETS:
        t = target(name)
        variants = ["portable"] + [v for v in ("dsp", "mve") if v in t["features"]]
        for v in variants:
            flags = list(t["toolchain"]["cflags"])
            jobs.append((cc, flags, _variant_sources(v), tmp_path / name / v))
    host = shutil.which("gcc")
    if host:
        jobs.append((host, ["-pedantic"], _variant_sources("portable"), tmp_path / "host"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda j: _compile_all(*j), jobs))


def test_dsp_variant_refuses_a_target_without_dsp(tmp_path):
    cc = require_tool("arm-none-eabi-gcc")
    src = MICRO / "src" / "dsp" / "conv2d.c"
    with pytest.raises(AssertionError, match="need the Armv7E-M DSP extension"):
        run([cc, *target("cortex-m3")["toolchain"]["cflags"], *WARNINGS, *include_flags(),
             "-c", src, "-o", tmp_path / "x.o"])
