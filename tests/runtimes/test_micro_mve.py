"""The Helium (MVE) kernel variants on the emulated Cortex-M55 (QEMU mps3-an547, which
executes MVE): random and pinned cases of every kernel, computed by the numpy kernels
(the reference), compiled with the mve variant where a kernel has one (portable
elsewhere) and the semihosting harness; every output byte must match. Hypothesis on the
host is not possible for MVE intrinsics, so the draws here are many and pinned to each
vector path, tail and fallback. The shared KWS and AD models run on the same board
through the model-slot firmware in tests/firmware/test_qemu.py (mps3-an547), whose
kernels are these."""

from __future__ import annotations

import subprocess
import zlib

import numpy as np
import pytest

from tests.runtimes import micro_cases as mc
from tests.runtimes import micro_cgen as cgen
from tests.runtimes.micro_build import BoardBuild, build_elf, manifest, require_tool, run_qemu

M55 = BoardBuild("cortex-m55", "mve")
MVE_KERNELS = ("conv2d", "depthwise_conv2d", "fully_connected")
RANDOM_PER_KERNEL = 40
_PLAIN = dict(act="NONE", zp_out_kind="any", bias="small")
# Draws that reach each path of the mve/ files: long VMLADAVA runs, four-lane tails,
# in-place 1x1 pixels, padded im2col columns, the scalar fallbacks past the stack
# buffers, depth multipliers above 1, and both folded offsets of fully_connected.
PINNED = {
    "conv2d": [
        dict(kh=1, kw=1, padding="valid", cin=64, cout=64, h=3, w=5, **_PLAIN),  # KWS pointwise
        dict(kh=10, kw=4, padding="same", cin=1, cout=13, sh=2, sw=2, h=12, w=6, **_PLAIN),  # KWS first conv
        dict(kh=3, kw=3, padding="same", cin=33, cout=7, h=4, w=4, **_PLAIN),  # K = 297: tails
        dict(kh=3, kw=3, padding="same", cin=130, cout=6, h=3, w=3, **_PLAIN),  # K > 1024: scalar
        dict(kh=1, kw=1, padding="valid", cin=3, cout=515, h=2, w=2, **_PLAIN),  # Cout > 512: scalar
        dict(kh=2, kw=3, padding="explicit", dh=2, dw=3, cin=17, cout=5, **_PLAIN),  # dilated, padded
    ],
    "depthwise_conv2d": [
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=64, padding="same", h=5, w=5, **_PLAIN),  # KWS depthwise
        dict(kh=3, kw=3, m=1, cin=18, padding="same", sh=2, sw=2, h=7, w=6, **_PLAIN),  # lane tail
        dict(kh=5, kw=3, m=3, cin=6, padding="same", **_PLAIN),  # depth multiplier: scalar
        dict(kh=3, kw=3, m=1, cin=9, dh=2, dw=2, padding="explicit", h=6, w=6, **_PLAIN),  # dilated
        # the 3x3 path (C % 8 == 0, C <= 128): interior and padded windows, strides, batches
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=16, padding="same", n=2, h=4, w=3, **_PLAIN),
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=8, padding="valid", sh=2, sw=1, h=7, w=5, act="RELU6",
             zp_out_kind="any", bias="small"),
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=128, padding="same", sh=2, sw=2, h=5, w=4, **_PLAIN),
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=24, padding="explicit", sh=1, sw=3, h=4, w=7, act="RELU",
             zp_out_kind="any", bias="small"),
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=8, padding="same", h=1, w=1, **_PLAIN),  # one tap inside
        dict(kh=3, kw=3, m=1, dh=1, dw=1, cin=136, padding="same", h=3, w=3, **_PLAIN),  # C > 128: general
    ],
    "fully_connected": [
        dict(per_channel=False, zp_w_kind="zero", k=640, cout=128, batches=1, **_PLAIN),  # AD layer
        dict(per_channel=True, k=64, cout=12, batches=2, **_PLAIN),
        dict(per_channel=False, zp_w_kind="any", zp_w=-77, k=45, cout=7, batches=3, **_PLAIN),  # both offsets
        dict(per_channel=False, zp_w_kind="any", zp_w=9, zp_in_kind="zero", k=37, cout=6, **_PLAIN),
        dict(per_channel=False, zp_w_kind="zero", k=1, cout=1, **_PLAIN),
    ],
}


def _cases():
    cases = list(cgen.qemu_cases())  # every kernel, mve or portable on this board
    for op in MVE_KERNELS:
        sampler = mc.SAMPLERS[op]
        for i in range(RANDOM_PER_KERNEL):
            rng = np.random.default_rng([zlib.crc32(op.encode()), 55, i])
            cases.append(sampler(mc.RngDraw(rng), name=f"mve_{op}[{i}]"))
        for i, pinned in enumerate(PINNED[op]):
            rng = np.random.default_rng([zlib.crc32(op.encode()), 56, i])
            cases.append(sampler(mc.RngDraw(rng, **pinned), name=f"mve_{op}_pinned[{i}]"))
    return cases


@pytest.fixture(scope="module")
def m55_elf(tmp_path_factory):
    require_tool("arm-none-eabi-gcc")
    work = tmp_path_factory.mktemp("micro_mve")
    cases = _cases()
    vectors = cgen.write_vectors(cases, work / "vectors.c")
    return build_elf(M55, [cgen.RUNNER, vectors], work / "m55-mve.elf", [cgen.HERE]), len(cases)


def test_manifest_offers_mve_for_the_three_kernels():
    m = manifest()
    assert m["variant_order"][0] == "mve" and m["variants"]["mve"]["requires"] == ["mve"]
    assert {k for k, spec in m["kernels"].items() if "mve" in spec["variants"]} == set(MVE_KERNELS)


def test_cortex_m55_reproduces_every_case_with_mve_kernels(m55_elf):
    require_tool("qemu-system-arm")
    elf, n = m55_elf
    res = run_qemu(M55.machine, elf, timeout=300)
    report = res.stderr + res.stdout
    assert res.returncode == 0, report
    assert f"edgekit micro tests: {n} passed, 0 failed" in report, report


def test_mve_build_uses_helium_instructions(m55_elf):
    objdump = require_tool("arm-none-eabi-objdump")
    dis = subprocess.run([objdump, "-d", "-m", "armv8.1-m.main", str(m55_elf[0])], capture_output=True,
                         text=True, check=True).stdout
    found: dict[str, set[str]] = {}
    current = None
    for line in dis.splitlines():
        if line.endswith(">:") and "<" in line:
            current = line[line.index("<") + 1:-2]
            continue
        parts = line.split("\t")
        if current and len(parts) >= 3:
            found.setdefault(current, set()).add(parts[2].strip())
    # VMLADAVA disassembles as vmlava; the requantization's VQRDMULH and VRSHL
    # (the depthwise file's general path is dw_general, its 3x3 path dw3x3: VMULLB / VMULLT)
    want = {"ek_conv2d_s8": ("vmlava.s8", "vqrdmulh.s32", "vrshl.s32"),
            "ek_fully_connected_s8": ("vmlava.s8", "vaddva.s8", "vqrdmulh.s32"),
            "dw_general": ("vmul.i32", "vqrdmulh.s32"),
            "dw3x3": ("vmullb.s16", "vmullt.s16", "vqrdmulh.s32", "vrshl.s32")}
    for fn, mnemonics in want.items():
        used = set().union(*(v for k, v in found.items() if k == fn or k.startswith("pixel_vector")))
        missing = [m for m in mnemonics if m not in used]
        assert not missing, f"{fn}: no {missing}"
