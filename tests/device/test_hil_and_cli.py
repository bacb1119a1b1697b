"""run_hil and its reports against the protocol test double, and the device commands of
the CLI (edgekit flash / device / hil) against the double and an emulated board."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import _register, cli
from edgekit.hil import prepare_inputs, run_hil, write_json, write_junit
from tests.device import models
from tests.device.reference_device import expected_output, make_package

_register()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False,
                              env={"COLUMNS": "200"})


# ----------------------------------------------------------------------------- run_hil


def _double_case(n: int = 6):
    graph, x = models.digits()
    pkg = make_package(input_size=64, output_size=10, body=2000)
    feeds = prepare_inputs(graph, x[:n])
    blobs = [feeds[graph.inputs[0]][i].tobytes() for i in range(n)]
    want = np.stack([np.frombuffer(expected_output(pkg, b), np.int8) for b in blobs]).reshape(n, 1, 10)
    return graph, x[:n], pkg, {graph.outputs[0]: want}


def test_run_hil_passes_and_reports(device, tmp_path):
    graph, x, pkg, want = _double_case()
    stages = []
    r = run_hil(graph, device.url, x, package=pkg, expected=want, name="toy",
                progress=lambda stage, done, total: stages.append(stage))
    assert r.passed and r.vectors == 6 and r.failed == 0 and not r.mismatches
    assert r.board == "ref-double" and r.target == "cortex-m4" and r.package_bytes == len(pkg)
    assert len(r.ticks) == 6 and r.tick_hz == 25_000_000 and r.instructions_per_tick is None
    assert r.stack_high_water == 1234 and {"flash", "infer"} <= set(stages)
    doc = json.loads(write_json(r, tmp_path / "r.json").read_text())
    assert doc["passed"] and doc["ticks"]["median"] == r.ticks_median
    root = ET.parse(write_junit(r, tmp_path / "r.xml")).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "7" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.findall("testcase")][:2] == ["flash", "vector[0]"]


def test_run_hil_records_the_first_mismatches(device, tmp_path):
    graph, x, pkg, want = _double_case()
    out = graph.outputs[0]
    want[out] = want[out].copy()
    want[out][2, 0, 7] ^= 3
    want[out][4, 0, 0] ^= 1
    r = run_hil(graph, device.url, x, package=pkg, expected=want, max_mismatches=1)
    assert not r.passed and r.failed == 2 and r.failed_indices == [2, 4]
    (m,) = r.mismatches
    assert (m.index, m.first, m.differing) == (2, 7, 1)
    assert m.describe().startswith(f"vector 2, output {out!r}: 1 of 10 values differ; first at [7]")
    suite = ET.parse(write_junit(r, tmp_path / "r.xml")).getroot().find("testsuite")
    assert suite.get("failures") == "2"
    fails = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in fails] == ["vector[2]", "vector[4]"]


def test_vectors_are_checked_against_the_model(device):
    graph, x, pkg, want = _double_case()
    from edgekit.errors import BadInputError

    with pytest.raises(BadInputError, match="have shape"):
        run_hil(graph, device.url, x[:, :, :4], package=pkg, expected=want)
    with pytest.raises(BadInputError, match="the vectors hold"):
        run_hil(graph, device.url, {"a": x, "b": x}, package=pkg, expected=want)


# ----------------------------------------------------------------------------- CLI, double


def test_cli_device_info_and_reset(device):
    r = invoke("device", "info", "--port", device.url)
    assert r.exit_code == 0, r.output
    assert "ref-double" in r.output and "cortex-m4" in r.output and "model slots" in r.output
    r = invoke("device", "info", "--port", device.url, "--json")
    doc = json.loads(r.output)
    assert doc["hello"]["max_payload"] == 1024 and len(doc["info"]["slots"]) == 2
    r = invoke("device", "reset", "--port", device.url)
    assert r.exit_code == 0 and "is back" in r.output


def test_cli_device_infer_raw(device, tmp_path):
    from edgekit.device.client import DeviceClient

    pkg = make_package()
    with DeviceClient(device.url) as dev:
        dev.upload(pkg, "toy")
    x = np.arange(32, dtype=np.int8).reshape(2, 16)
    np.save(tmp_path / "x.npy", x)
    r = invoke("device", "infer", "--port", device.url, "--input", tmp_path / "x.npy",
               "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, 4)
    for i in range(2):
        assert y[i].tobytes() == expected_output(pkg, x[i].tobytes())


def test_cli_errors_are_one_line_with_the_right_exit_code(device, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(16, np.int8))
    r = invoke("device", "infer", "--port", device.url, "--input", tmp_path / "x.npy")
    assert r.exit_code == 1 and "E_NO_MODEL" in r.output and "edgekit flash" in r.output
    r = invoke("device", "info", "--port", "socket://127.0.0.1:1", "--retries", "0")
    assert r.exit_code == 2 and "cannot open port socket://127.0.0.1:1" in r.output
    r = invoke("hil", "m.tflite", "--vectors", "v.npz")
    assert r.exit_code == 2 and "exactly one of --device qemu:TARGET or --port PORT" in r.output
    r = invoke("hil", "m.tflite", "--device", "stm32", "--vectors", "v.npz")
    assert r.exit_code == 2 and "expected qemu:TARGET" in r.output
    r = invoke("flash", tmp_path / "none.bin", "--port", device.url)
    assert r.exit_code == 2 and "file not found" in r.output


# ----------------------------------------------------------------------------- CLI, QEMU


@pytest.fixture
def qemu_port():
    from edgekit.device.qemu import QemuBoard

    elf = models.slot_elf("cortex-m4")
    with QemuBoard("cortex-m4", elf) as board:
        board.connect().close()  # QEMU serves one connection at a time: free it for the CLI
        yield board.url


def test_cli_flash_info_infer_on_qemu(qemu_port, tmp_path):
    from edgekit.bundle.micro_package_writer import pack_model
    from edgekit.ir import save

    graph, x = models.digits()
    save(graph, tmp_path / "digits.json")
    (tmp_path / "digits.ekpkg").write_bytes(pack_model(graph, "cortex-m7"))
    r = invoke("flash", tmp_path / "digits.ekpkg", "--port", qemu_port)
    assert r.exit_code == 2 and "is a package for cortex-m7; the device is a cortex-m4" in r.output
    r = invoke("flash", models.shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"),
               "--port", qemu_port)
    assert r.exit_code == 2 and "quantize it to int8 first" in r.output
    r = invoke("flash", tmp_path / "digits.json", "--port", qemu_port, "--name", "digits-cli")
    assert r.exit_code == 0, r.output
    assert "flashed 'digits-cli' to slot 0" in r.output and "active: slot 0 'digits-cli'" in r.output
    r = invoke("device", "info", "--port", qemu_port)
    assert "mps2-an386" in r.output and "digits-cli" in r.output
    np.save(tmp_path / "x.npy", x[:5])
    r = invoke("device", "infer", "--port", qemu_port, "--input", tmp_path / "x.npy", "--model",
               tmp_path / "digits.json", "--out", tmp_path / "y.npy", "--quantize-inputs")
    assert r.exit_code == 0, r.output
    from edgekit.hil import reference_outputs

    want = reference_outputs(graph, prepare_inputs(graph, x[:5]))[graph.outputs[0]]
    assert np.array_equal(np.load(tmp_path / "y.npy"), want.reshape(5, 10))


def test_cli_hil_on_qemu_writes_junit_and_json(tmp_path):
    from edgekit.ir import save

    models.slot_elf("cortex-m4")
    graph, x = models.digits()
    save(graph, tmp_path / "digits.json")
    np.savez(tmp_path / "v.npz", x=x[:8])
    r = invoke("hil", tmp_path / "digits.json", "--device", "qemu:cortex-m4", "--vectors",
               tmp_path / "v.npz", "--junit", tmp_path / "h.xml", "--json", tmp_path / "h.json",
               "--quantize-inputs")
    assert r.exit_code == 0, r.output
    assert "PASS: 8 of 8 vectors bit-exact" in r.output and "instructions" in r.output
    doc = json.loads((tmp_path / "h.json").read_text())
    assert doc["passed"] and doc["board"] == "mps2-an386"
    # Under -icount shift=0 one instruction takes 1 ns and mps2-an386's timer runs at 25 MHz:
    # 40 instructions per tick, exactly; the table prints the same figure as the JSON.
    ticks = doc["ticks"]["per_vector"]
    assert doc["tick_hz"] == 25_000_000 and len(ticks) == 8
    assert doc["instructions_median"] == float(np.median(ticks)) * 40
    assert f"= {doc['instructions_median']:,.0f} instructions" in r.output
    # The Python API on the same model and vectors measures the same ticks per vector (QEMU
    # is deterministic; the timer's phase at the start moves a count by at most one tick).
    api = run_hil(graph, "qemu:cortex-m4", x[:8])
    assert api.passed and len(api.ticks) == 8
    assert all(abs(a - b) <= 1 for a, b in zip(api.ticks, ticks)), (api.ticks, ticks)
    # And within what the MACs allow: Armv7E-M does at most two MACs per instruction
    # (SMLAD), and no edgekit kernel needs 20 instructions per MAC (docs/benchmarks.md: 2.2 to 16.2).
    from edgekit.ir.stats import graph_stats

    macs = graph_stats(graph).macs
    assert macs / 2 <= doc["instructions_median"] <= 20 * macs
    assert doc["arena_used"] > 0 and doc["stack_high_water"] > 0
    suite = ET.parse(tmp_path / "h.xml").getroot().find("testsuite")
    assert suite.get("tests") == "9" and suite.get("failures") == "0"
