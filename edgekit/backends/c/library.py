"""The kernel library of runtimes/micro as the code generator sees it: its manifest
(``kernels.json``), the variant of each kernel a target gets, and the files to copy.

Per kernel, ``variant="auto"`` takes the first variant in the manifest's
``variant_order`` whose ``requires`` features the target has, and at least one of its
``requires_any`` when listed (the rule of runtimes/micro/README.md); ``"portable"``
takes the portable variant everywhere; ``"dsp"`` (``"linux"``, ``"mve"``) prefers the dsp
(linux, mve) variants, the target must have their features, and falls back to portable
for kernels that have no such variant (``"mve"``: to dsp, then portable).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.resources import micro_runtime_dir

VARIANTS = ("auto", "portable", "dsp", "linux", "mve")


def micro_root() -> Path:
    """runtimes/micro: in the checkout, or the copy a wheel carries (edgekit.resources)."""
    return micro_runtime_dir()


@functools.lru_cache(maxsize=4)
def _manifest(path: str) -> dict:
    return json.loads(Path(path).read_text())


def manifest() -> dict:
    path = micro_root() / "kernels.json"
    if not path.is_file():
        raise BadInputError(f"the kernel library is missing: {path} not found")
    return _manifest(str(path))


@dataclass(frozen=True)
class KernelChoice:
    kernel: str          # key of kernels.json
    function: str
    variant: str         # "portable", "dsp", "linux" or "mve"
    sources: tuple[str, ...]   # paths relative to runtimes/micro
    headers: tuple[str, ...]


def fits(variant: dict, features) -> bool:
    """Whether a target with ``features`` can run a variant of the manifest."""
    features = set(features)
    any_of = set(variant.get("requires_any", []))
    return set(variant["requires"]) <= features and (not any_of or bool(any_of & features))


def choose(kernel: str, features, variant: str = "auto") -> KernelChoice:
    """The variant of ``kernel`` for a target with ``features``."""
    m = manifest()
    if variant not in VARIANTS:
        raise BadInputError(f"unknown kernel variant {variant!r}; choose from {', '.join(VARIANTS)}")
    spec = m["kernels"][kernel]
    features = set(features)
    if variant == "portable":
        order = ["portable"]
    else:
        if variant == "dsp" and not fits(m["variants"]["dsp"], features):
            raise BadInputError("the dsp kernels need a target with the 'dsp' feature "
                                "(Armv7E-M / Armv8-M DSP extension)")
        if variant == "linux" and not fits(m["variants"]["linux"], features):
            raise BadInputError("the linux kernels need a target with the 'neon' or 'avx2' feature")
        if variant == "mve" and not fits(m["variants"]["mve"], features):
            raise BadInputError("the mve kernels need a target with the 'mve' feature (Helium, "
                                "e.g. cortex-m55)")
        order = list(m["variant_order"])
        if variant in ("dsp", "linux"):
            order = [variant, "portable"]
        elif variant == "mve":
            order = ["mve", "dsp", "portable"]
    for v in order:
        if v in spec["variants"] and fits(m["variants"][v], features):
            files = spec["variants"][v]
            return KernelChoice(kernel, spec["function"], v, tuple(files["sources"]),
                                tuple(files["headers"]))
    raise BadInputError(f"no variant of kernel {kernel} fits features {sorted(features)}")


def copy_kernels(choices: list[KernelChoice], out_dir: Path) -> dict[str, list[str]]:
    """Copy the public header to ``out_dir/edgekit/kernels.h`` and the chosen sources with
    their internal headers (and always ``fixedpoint.h``) into ``out_dir/kernels/`` (sources
    include headers by file name). Returns {"sources": [...], "headers": [...]} relative
    to ``out_dir``."""
    root = micro_root()
    m = manifest()
    (out_dir / "edgekit").mkdir(parents=True, exist_ok=True)
    kdir = out_dir / "kernels"
    kdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / m["public_header"], out_dir / "edgekit" / "kernels.h")
    sources, headers = [], ["edgekit/kernels.h"]
    always = KernelChoice("fixedpoint", "", "portable", (), ("src/fixedpoint.h",))
    for c in [always, *choices]:
        for s in c.sources:
            dst = kdir / Path(s).name
            shutil.copyfile(root / s, dst)
            sources.append(f"kernels/{dst.name}")
        for h in c.headers:
            dst = kdir / Path(h).name
            rel = f"kernels/{dst.name}"
            if rel not in headers:
                shutil.copyfile(root / h, dst)
                headers.append(rel)
    return {"sources": sorted(set(sources)), "headers": headers}
