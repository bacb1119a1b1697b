"""What the REST and daemon tests share: real bundles compiled by edgekit (MLPerf Tiny KWS
through LiteRT, and a deliberately slow float CNN through onnxruntime for queueing and
draining), and the real daemon started as a subprocess (``python -m edgekit.cli.main
serve ...``) on a free loopback port or a unix socket."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from tests.support.shared import REPO, shared_file

KWS_NAME = "kws_ref_model_int8"
SLOW_NAME = "slow_cnn"
_SERVING = re.compile(r"serving \d+ ready model version\(s\) on (\S+)")


def compile_kws(folder: Path) -> Path:
    import edgekit
    from edgekit.bundle import compile_bundle

    graph = edgekit.load_model(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))
    folder.mkdir(parents=True, exist_ok=True)
    return compile_bundle(graph, "x86_64", folder / "kws.ekb", backend="litert").bundle.path


def slow_cnn_onnx(path: Path, layers: int = 12, channels: int = 64, size: int = 64) -> Path:
    """A float CNN of ``layers`` 3x3 convolutions on a size x size image: tens of ms per
    inference, so that requests queue up behind it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], "x", 8
    for i in range(layers):
        w = (rng.standard_normal((channels, cin, 3, 3)) * 0.05).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", channels
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, SLOW_NAME, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                [1, 8, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def compile_slow(folder: Path) -> Path:
    import edgekit
    from edgekit.bundle import compile_bundle

    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = slow_cnn_onnx(folder.parent / f"{SLOW_NAME}.onnx")
    return compile_bundle(edgekit.load_model(onnx_path), "x86_64", folder / "slow.ekb",
                          backend="onnxruntime").bundle.path


class Daemon:
    """A running ``edgekit serve``; ``url`` is its REST address, ``log()`` its stderr so far."""

    def __init__(self, args: list, env: dict | None = None, timeout_s: float = 60):
        cmd = [sys.executable, "-m", "edgekit.cli.main", "serve", *map(str, args)]
        if "--uds" not in args and "--port" not in args:
            cmd += ["--port", "0"]
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self._lines: list = []
        self._serving = threading.Event()
        self.url = None
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not self._serving.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"daemon did not start (rc {self.proc.returncode}):\n{self.log()}")

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._lines.append(line)
            m = _SERVING.search(line)
            if m:
                self.url = m.group(1)
                self._serving.set()

    def log(self) -> str:
        return "".join(self._lines)

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    def terminate(self, timeout_s: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon did not stop within {timeout_s} s of SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def running(args: list, env: dict | None = None):
    d = Daemon(args, env)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            rc = d.terminate()
            assert rc == 0, f"daemon exited {rc} on SIGTERM:\n{d.log()}"


def run_cli(args: list, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """``edgekit ARGS`` in a subprocess (what a user types), its exit code and output."""
    return subprocess.run([sys.executable, "-m", "edgekit.cli.main", *map(str, args)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=timeout_s)
