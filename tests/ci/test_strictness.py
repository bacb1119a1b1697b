"""CI must not hide a missing tool: the system-deps step and the test suite both fail
there when something is missing, and stay lenient on a user's machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install_system_deps.sh"


def _bare_path(tmp_path: Path) -> str:
    """A PATH with the shell tools the script needs, no toolchains, and an `id` that says
    we are not root (so the script prints the apt-get line instead of running it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "mktemp", "printf", "rm", "sed", "paste", "echo", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    return str(bin_dir)


def _run_script(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    path = _bare_path(tmp_path)
    return subprocess.run([shutil.which("bash"), str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "HOME": str(tmp_path), **env})


def test_missing_tools_fail_the_install_step_in_ci(tmp_path):
    r = _run_script(tmp_path, EDGEKIT_REQUIRE_SYSTEM_DEPS="1")
    assert r.returncode == 1, r.stdout + r.stderr
    for what in ("arm-none-eabi-gcc", "qemu-system-arm", "libc6-dev-arm64-cross"):
        assert what in r.stderr
    assert "apt-get install" in r.stdout and "libc6-dev-arm64-cross" in r.stdout


def test_missing_tools_only_warn_on_a_users_machine(tmp_path):
    r = _run_script(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "do not work yet" in r.stderr and "skip" in r.stderr


def _pytest(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text((REPO / "conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(textwrap.dedent("""
        import pytest

        def test_needs_a_tool():
            pytest.skip("frobnicator is not installed")

        @pytest.mark.allow_skip("only means something on aarch64")
        def test_other_architecture():
            pytest.skip("not an aarch64 host")

        def test_plain():
            assert 1 + 1 == 2
    """))
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "EDGEKIT_STRICT_SKIPS", "PYTEST_XDIST_WORKER")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**clean, **env})


def test_a_skip_fails_in_ci(tmp_path):
    r = _pytest(tmp_path, CI="true")
    assert r.returncode == 1, r.stdout
    assert "1 failed, 1 passed, 1 skipped" in r.stdout
    assert "skipped in CI" in r.stdout and "frobnicator is not installed" in r.stdout


def test_a_skip_stays_a_skip_outside_ci(tmp_path):
    r = _pytest(tmp_path)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 2 skipped" in r.stdout


def test_strictness_can_be_asked_for_outside_ci(tmp_path):
    r = _pytest(tmp_path, EDGEKIT_STRICT_SKIPS="1")
    assert r.returncode == 1 and "1 failed" in r.stdout
