"""Helpers of the C backend tests: tools (skipped with the apt-get line when missing),
the shared MLPerf Tiny models and data, and running a generated model on the host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.backends.c import build
from edgekit.frontends.tflite import load_tflite
from edgekit.ir.graph import Graph
from tests.support.shared import shared_file

HERE = Path(__file__).resolve().parent
HOST_RUNNER = HERE / "host_runner.c"
KWS = "models/mlperf-tiny/kws_ref_model_int8.tflite"
AD = "models/mlperf-tiny/ad01_int8.tflite"
MCU_TARGETS = ("cortex-m0plus", "cortex-m3", "cortex-m4", "nucleo-l4r5zi", "cortex-m7", "stm32h7",
               "cortex-m33", "cortex-m55")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: {build.APT_HINT[tool]}")
    return path


def kws_graph() -> Graph:
    return load_tflite(shared_file(KWS))


def ad_graph() -> Graph:
    return load_tflite(shared_file(AD))


def kws_inputs() -> np.ndarray:
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return z["x_int8"]


def ad_inputs(graph: Graph) -> np.ndarray:
    """The 196 AD windows quantized with the model's input parameters."""
    w = np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(w / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def host_exe(model_dir: Path) -> Path:
    """The generated model linked with host_runner.c by the host gcc (-Werror)."""
    require("gcc")
    exe = Path(model_dir).parent / (Path(model_dir).name + ".host")
    return build.host_executable(model_dir, [HOST_RUNNER], exe)


def host_run(exe: Path, x: np.ndarray, out_dtype, out_shape) -> np.ndarray:
    """Outputs of the host program for inputs ``x`` [N, ...]."""
    work = exe.parent
    fin, fout = work / (exe.name + ".in"), work / (exe.name + ".out")
    fin.write_bytes(np.ascontiguousarray(x).tobytes())
    subprocess.run([str(exe), str(fin), str(fout), str(len(x))], check=True, timeout=300)
    out = np.frombuffer(fout.read_bytes(), dtype=out_dtype)
    return out.reshape((len(x),) + tuple(out_shape[1:]))
