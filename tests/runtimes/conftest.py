"""Fixtures of the runtimes/micro tests: the host build of the kernel library."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from tests.runtimes import micro_abi, micro_build

SHIM = Path(__file__).with_name("fixedpoint_shim.c")


@pytest.fixture(scope="session")
def micro_lib(tmp_path_factory) -> ctypes.CDLL:
    """The portable kernels (and the fixed-point test shim), built once per session."""
    so = micro_build.build_host_library(tmp_path_factory.mktemp("micro_host"), [SHIM])
    lib = ctypes.CDLL(str(so))
    micro_abi.bind(lib)
    return lib
