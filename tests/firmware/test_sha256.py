"""The firmware's SHA-256 (firmware/app/ek_sha256.c, written from FIPS 180-4) against
hashlib: every length from 0 to 200 bytes (all padding cases), lengths around block and
page sizes up to 100,003 bytes, each hashed in one call and fed in uneven pieces; on the
sanitized host build and on the emulated Cortex-M4."""

from __future__ import annotations

import hashlib
import os
import subprocess


from tests.firmware.support import FIRMWARE, HERE, SAN_ENV, SANITIZE, cache_root, require_tool

LENGTHS = list(range(201)) + [255, 256, 257, 511, 512, 513, 1000, 4095, 4096, 4097, 65535, 65536,
                              100003]
SOURCES = [FIRMWARE / "app" / "ek_sha256.c", HERE / "sha256_check.c"]


def _message(n: int) -> bytes:
    """The pseudo-random stream sha256_check.c hashes."""
    x, out = 12345, bytearray()
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append(x >> 24)
    return bytes(out)


def _check(lines: list[str]) -> None:
    assert lines and lines[-1] == "done", lines[-3:]
    message = _message(max(LENGTHS))
    rows = [line.split() for line in lines[:-1]]
    assert [int(r[0]) for r in rows] == LENGTHS
    for n, one, pieces in rows:
        want = hashlib.sha256(message[:int(n)]).hexdigest()
        assert (one, pieces) == (want, want), f"length {n}"


def test_sha256_on_the_host_build(tmp_path):
    gcc = require_tool("gcc")
    exe = tmp_path / "sha256_check"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", *SANITIZE,
                    f"-I{FIRMWARE / 'app'}", *map(str, SOURCES), "-o", str(exe)], check=True,
                   capture_output=True, timeout=120)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, env=dict(os.environ, **SAN_ENV))
    assert res.returncode == 0, res.stderr
    _check(res.stdout.splitlines())


def test_sha256_on_qemu_cortex_m4(tmp_path_factory):
    from edgekit.targets import load_target

    cc = require_tool("arm-none-eabi-gcc")
    qemu = require_tool("qemu-system-arm")
    tgt = load_target("cortex-m4")
    common = FIRMWARE / "common"
    elf = cache_root(tmp_path_factory) / "sha256_check_m4.elf"
    build = subprocess.run(
        [cc, *tgt.toolchain.cflags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-DEK_SEMIHOSTING",
         f"-I{FIRMWARE / 'app'}", f"-I{common}", *map(str, SOURCES), str(common / "startup.c"),
         str(common / "semihosting.c"), "-T", str(common / "mps2.ld"), *tgt.linker_symbols(),
         "-nostartfiles", *tgt.toolchain.ldflags, "-o", str(elf)],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    res = subprocess.run([qemu, "-M", tgt.emulator.machine, "-display", "none", "-monitor", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    _check(res.stderr.splitlines())
