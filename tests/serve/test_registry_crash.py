"""A crash in the middle of a swap: a real serving process (InferenceService polling its
repository) is killed with SIGKILL while a new version's self-test runs (a bundle with
20,000 golden vectors: seconds of self-test), and again right as it switches and writes
its state. Each time the state file is whole and a restart serves the old or the new
version, never nothing."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from edgekit.serve.protocol import InferRequest, InferTensor
from edgekit.serve.service import InferenceService
from tests.serve.conftest import tiny_expected

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = """
import asyncio, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from edgekit.serve.service import InferenceService

async def main():
    service = InferenceService([sys.argv[1]], state_dir=sys.argv[2], poll_interval_s=0.05)
    await service.start()
    print("started", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Server:
    """The serving process, with its log lines readable as they come."""

    def __init__(self, repo: Path, state_dir: Path):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(repo), str(state_dir)], cwd=REPO_ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.log = []          # every line, in order, also those wait_for has not looked at
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"server exited: {seen}"
                continue
            seen.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout} s: {seen}")

    def kill(self) -> list:
        """SIGKILL; returns every line the process wrote before it died."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)
        self.proc.stdout.close()
        return self.log


def _served_after_restart(repo: Path, state_dir: Path) -> str:
    """Restart on the same repository and state: the version that answers (checked
    against numpy) once start() returns."""

    async def main():
        service = InferenceService([repo], state_dir=state_dir, poll_interval_s=None)
        await service.start()
        try:
            assert service.ready()
            x = np.ones((1, 4), np.float32)
            r = await service.infer("tiny", None, InferRequest([InferTensor("x", "FP32", x.shape, x)]))
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", r.model_version, x),
                                       rtol=1e-5, atol=1e-5)
            return r.model_version
        finally:
            await service.stop()

    return asyncio.run(main())


def _active(state_dir: Path) -> str:
    return json.loads((state_dir / "state.json").read_text())["models"]["tiny"]["active"]


def test_kill_during_the_self_test_or_the_switch_leaves_the_old_or_the_new_version(bundle_factory, tmp_path):
    repo, state_dir, spare = tmp_path / "repo", tmp_path / "state", tmp_path / "spare"
    bundle_factory(repo, version="1")
    slow_v2 = bundle_factory(spare, version="2", slow_self_test=60000)

    server = Server(repo, state_dir)
    try:
        server.wait_for("started")
        assert _active(state_dir) == "1"
        os.replace(slow_v2, repo / slow_v2.name)        # a new version lands
        server.wait_for("model tiny version 2: self-test")
        time.sleep(0.3)                                  # well inside its seconds of self-test
    finally:
        log = server.kill()
    # Killed inside the self-test, the old state; should a loaded machine have let the
    # self-test finish first, the switch is in the log and the state is the new one.
    switched = any("serving version 2" in line for line in log)
    assert _active(state_dir) == ("2" if switched else "1"), log[-5:]
    # the restart serves version 1 first (the state's), then swaps to version 2 again
    assert _served_after_restart(repo, state_dir) == "2"
    assert _active(state_dir) == "2"

    # now kill right as a switch is logged, when the state file is being replaced
    (state_dir / "state.json").write_text(json.dumps({"format": "edgekit-serve-state", "version": 1,
                                                      "models": {"tiny": {"active": "1"}}}))
    server = Server(repo, state_dir)
    try:
        server.wait_for("model tiny: serving version 2 (was 1)")
    finally:
        server.kill()
    assert _active(state_dir) in ("1", "2")              # whole: the old state or the new one
    assert _served_after_restart(repo, state_dir) == "2"
