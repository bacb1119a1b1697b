"""Bundles for the serve tests, compiled through the public API (``compile_bundle``,
``write_bundle``), shared by every serve test module.

``bundle_factory(dest, name=..., version=..., ...)`` puts a bundle of a tiny float model
(a fully connected layer, 4 -> 3, LiteRT engine) into folder ``dest`` and returns its
path. Each (name, version) has its own weights, so a response tells which version
answered; ``tiny_expected(name, version, x)`` is the independent oracle (numpy's
``x @ W.T + b``). ``broken_golden=True`` stores golden outputs that are deliberately
wrong (the self-test fails); ``slow_self_test=N`` stores N golden vectors, correct, so
the self-test takes a while (N=40000: about 2 s here).
"""

from __future__ import annotations

import io
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle import compile_bundle, read_bundle, write_bundle
from edgekit.ir import DType, Graph, OpType, verify

IN_SHAPE = (1, 4)
OUT_SHAPE = (1, 3)


def tiny_weights(name: str, version: str):
    rng = np.random.default_rng(zlib.crc32(f"{name}/{version}".encode()))
    return (rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32))


def tiny_expected(name: str, version: str, x: np.ndarray) -> np.ndarray:
    w, b = tiny_weights(name, version)
    return (x.astype(np.float64) @ w.T.astype(np.float64) + b).astype(np.float32)


def tiny_graph(name: str, version: str) -> Graph:
    w, b = tiny_weights(name, version)
    g = Graph(name)
    g.add_tensor("x", IN_SHAPE, DType.FLOAT32)
    g.add_tensor("y", OUT_SHAPE, DType.FLOAT32)
    g.add_const("w", w)
    g.add_const("b", b)
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def _with_golden(src: Path, out: Path, golden_ins, golden_outs) -> Path:
    """A copy of bundle ``src`` with other golden vectors, written (and hashed) by the
    public bundle writer."""
    b = read_bundle(src)
    files = {n: b.read(n) for n in b.files}
    buf = io.BytesIO()
    np.savez(buf, **{"in.0": golden_ins, "out.0": golden_outs})
    files[b.manifest["golden"]["file"]] = buf.getvalue()
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    manifest["golden"] = dict(manifest["golden"], count=int(golden_ins.shape[0]))
    return write_bundle(out, manifest, files).path


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("serve-bundles")
    cache = {}

    def make(dest, *, name: str = "tiny", version: str = "1", broken_golden: bool = False,
             slow_self_test: int = 0, folder: bool = False, filename: str | None = None) -> Path:
        key = (name, version, broken_golden, slow_self_test, folder)
        if key not in cache:
            stem = f"{name}_v{version}" + ("_broken" if broken_golden else "") + \
                (f"_slow{slow_self_test}" if slow_self_test else "")
            good = cache_dir / f"{name}_v{version}{'' if folder else '.ekb'}"
            if not good.exists():
                compile_bundle(tiny_graph(name, version), "x86_64", good, backend="litert", model_version=version)
            path = good
            if broken_golden or slow_self_test:
                count = slow_self_test or 4
                x = np.random.default_rng(7).standard_normal((count, *IN_SHAPE)).astype(np.float32)
                y = tiny_expected(name, version, x)
                if broken_golden:
                    y = y + 1.0          # far outside the manifest's float tolerance
                path = _with_golden(good, cache_dir / (stem + ("" if folder else ".ekb")), x, y)
            cache[key] = path
        src = cache[key]
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / (filename or src.name)
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copyfile(src, target)
        return target

    return make


@pytest.fixture(scope="session")
def mcu_bundle(tmp_path_factory):
    """(path, graph) of a small int8 model compiled for cortex-m4 (an MCU bundle: its
    model package runs on a board's firmware)."""
    from tests.backends.c.graphs import handmade_int8_graph

    graph = handmade_int8_graph(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("serve-mcu") / "handmade_m4.ekb"
    compile_bundle(graph, "cortex-m4", path, model_version="1")
    return path, graph
