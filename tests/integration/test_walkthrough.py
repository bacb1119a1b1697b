"""docs/walkthrough.md runs as written: its ```sh blocks, in order, in one bash, in an empty
folder, on free ports (the only thing substituted: the doc reads SERVE_PORT, HUB_PORT and
MQTT_PORT from the environment). Then the end state is checked against oracles of our
own: the hub holds the captures, which decode to the inputs sent and onnxruntime's outputs
of the original ONNX model; the rollout is installed; serve answers with version 2. The
doc's last block (clean up) must stop every process it started."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "walkthrough.md"
PORT_VARS = ("SERVE_PORT", "HUB_PORT", "MQTT_PORT")
MOSQUITTO = "/usr/sbin/mosquitto"


def sh_blocks(text: str) -> list:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_script(script: str, cwd: Path, env: dict, timeout_s: float) -> tuple:
    """bash -eu over the script, in its own process group (so whatever it leaves running
    can be found and stopped): (exit code, output, process group id)."""
    proc = subprocess.Popen(["bash", "-eu", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the walk-through did not finish in {timeout_s} s; its output:\n{out[-6000:]}")
    return proc.returncode, out, proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def onnx_outputs(x: np.ndarray) -> np.ndarray:
    """The oracle: the packaged ONNX model in onnxruntime (exact, unoptimized: the same on
    every CPU), NCHW as it was exported."""
    import edgekit.data
    from tests.support.ort_oracle import exact_session

    session = exact_session(str(Path(edgekit.data.__path__[0], "digits_cnn.onnx")))
    return session.run(None, {session.get_inputs()[0].name: x.reshape(1, 1, 8, 8)})[0]


def test_the_doc_defines_the_ports_the_test_substitutes():
    text = DOC.read_text()
    for var in PORT_VARS:
        assert re.search(rf"^{var}=\$\{{{var}:-\d+\}}", text, flags=re.M), f"{DOC.name} should define {var}"
    assert "7. Clean up" in text and "kill" in sh_blocks(text)[-1]


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    pytest.importorskip("onnxruntime")
    import httpx

    from edgekit.hub import Database, HubStore
    from edgekit.serve.capture import decode_capture
    from edgekit.sync.queue import SyncQueue

    import edgekit.data

    blocks = sh_blocks(DOC.read_text())
    story, cleanup = blocks[:-1], blocks[-1]
    ports = dict(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS)))))
    # the doc defines its ports first and everything after reads them: the test runs the
    # blocks as one script (as pasted into one shell), the clean-up block apart, after the checks
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    env.update(ports, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    group = None
    try:
        started = time.monotonic()
        code, out, group = run_script("\n".join(story), tmp_path, env, timeout_s=120)
        assert code == 0, out[-6000:]
        assert time.monotonic() - started < 90, "the walk-through takes too long"
        assert "digits_cnn 2: installed" in out and "1 installed" in out, out[-3000:]

        samples = np.load(Path(edgekit.data.__path__[0], "digits_samples.npz"))
        xs = [samples["x"][i].astype(np.float32) for i in range(5)]

        # the hub: 8 captures from pump-7 (5 by stick, 3 over MQTT), each once, each the
        # input that was sent and the ONNX model's output for it
        store = HubStore(Database(f"sqlite:///{tmp_path / 'hub' / 'hub.db'}"))
        try:
            captures = store.records(device="pump-7", stream="captures")
            results = store.records(device="pump-7", stream="results")
            deploys = store.records(device="pump-7", stream="deploy")
        finally:
            store.db.close()
        assert len(captures) == 8 and len({r["id"] for r in captures}) == 8
        assert len(results) == 8                    # one summary per inference of version 1
        assert sorted(json.loads(r["payload"])["state"] for r in deploys) == ["fetching", "installed"]
        sent = [xs[i] for i in (0, 1, 2, 3, 4, 0, 1, 2)]
        for record, x in zip(captures, sent):       # oldest first: in the order sent
            header, tensors = decode_capture(record["payload"])
            assert (header["model"], header["version"]) == ("digits_cnn", "1")
            np.testing.assert_array_equal(tensors[("input", "input")].reshape(-1), x.reshape(-1))
            np.testing.assert_allclose(tensors[("output", "probs")], onnx_outputs(x), rtol=1e-4, atol=1e-6)
        exported = [json.loads(line) for line in (tmp_path / "hub" / "captures.jsonl").read_text().splitlines()]
        assert [base64.b64decode(r["payload_b64"]) for r in exported] == [r["payload"] for r in captures[:5]]

        # the device: everything of the story went upstream; what is left is the last
        # inference's (version 2), whose capture thread may or may not have written it yet
        queue = SyncQueue(tmp_path / "device" / "sync.db")
        try:
            left = queue.peek_batch(1 << 20)
        finally:
            queue.close()
        assert len(left) <= 2 and {r.stream for r in left} <= {"captures", "results"}, left
        for record in left:
            if record.stream == "captures":
                assert decode_capture(record.payload)[0]["version"] == "2"
        meta = httpx.get(f"http://127.0.0.1:{ports['SERVE_PORT']}/v2/models/digits_cnn", timeout=30).json()
        assert meta["versions"] == ["1", "2"]
        body = json.loads((tmp_path / "device" / "digit-3.json").read_text())
        r = httpx.post(f"http://127.0.0.1:{ports['SERVE_PORT']}/v2/models/digits_cnn/infer", json=body,
                       timeout=30).json()
        assert r["model_version"] == "2"
        np.testing.assert_allclose(np.array(r["outputs"][0]["data"]), onnx_outputs(xs[3]).reshape(-1),
                                   rtol=1e-4, atol=1e-6)

        pids = [int((tmp_path / p).read_text()) for p in ("device/serve.pid", "hub/serve.pid", "hub/mosquitto.pid")]
        assert all(alive(p) for p in pids)
        code, out, _ = run_script(cleanup, tmp_path, env, timeout_s=30)
        assert code == 0, out
        deadline = time.monotonic() + 20
        while any(alive(p) for p in pids):
            assert time.monotonic() < deadline, "the clean-up block left processes running"
            time.sleep(0.1)
    finally:
        if group is not None:
            try:
                os.killpg(group, signal.SIGKILL)     # whatever the doc left running (hub workers too)
            except ProcessLookupError:
                pass
