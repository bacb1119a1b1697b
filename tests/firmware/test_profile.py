"""The per-op profiler (edgekit hil --profile) on QEMU cortex-m4 with the small AD model:
the per-op counts add up to the whole inference within what the marks cannot see (the
input and output copies), the MACs are those of the layer shapes, the package executor
and the generated C model (linked firmware) time the same ops, and a normal build keeps
no trace of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.device import DeviceClient, QemuBoard
from edgekit.device import protocol as P
from edgekit.device.errors import DeviceError
from edgekit.hil import timed_ops
from tests.firmware import support
from tests.firmware.support import require_tool

IPT = 40  # instructions per tick of mps2-an386 (25 MHz timer) under -icount shift=0


def _gap_bound_ticks(graph) -> int:
    """Ticks outside the first and last mark: the copies of the input into the arena
    and of the output out of it (at most two instructions per byte), plus the call."""
    io_bytes = sum(graph.tensor(n).nbytes for n in graph.inputs + graph.outputs)
    return (2 * io_bytes + 400) // IPT


def _fc_macs_by_hand(graph, op) -> int:
    """batches x out features x in features, from the tensors' shapes."""
    x, w = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    cout, k = w.shape
    return int(np.prod(x.shape)) // k * cout * k


def test_profile_message_round_trip():
    page = P.parse_profile_response(P.pack_profile_response(300, 253, [7, 8, 9]))
    assert (page.ops, page.first, page.ticks) == (300, 253, (7, 8, 9))
    with pytest.raises(ValueError):
        P.parse_profile_response(P.pack_profile_response(2, 1, [7, 8]))  # past the ops timed
    with pytest.raises(ValueError):
        P.parse_profile_response(P.pack_profile_response(3, 0, [1, 2, 3])[:-1])
    assert P.type_name(P.PROFILE) == "PROFILE"
    assert P.HelloInfo(1, "0.3.0", 1024, 4, 2, 0, 0, "t", "b", P.CAP_PROFILE).profiles_ops
    assert not P.HelloInfo(1, "0.3.0", 1024, 4, 2, 0, 0, "t", "b", P.CAP_CHUNKED_TENSORS).profiles_ops


def test_hil_profile_on_cortex_m4(tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli
    from tests.support.shared import shared_file

    _register()
    graph = support.ad_graph()
    x = support.ad_inputs(3).reshape(3, 640)
    np.savez(tmp_path / "v.npz", x=x)
    res = CliRunner().invoke(cli, ["hil", str(shared_file("models/mlperf-tiny/ad01_int8.tflite")), "--device",
                                   "qemu:cortex-m4", "--vectors", str(tmp_path / "v.npz"), "--profile",
                                   "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")],
                             catch_exceptions=False, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "per-op profile" in res.output and "instructions/MAC" in res.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["passed"] and r["instructions_per_tick"] == IPT
    rows = r["profile"]["ops"]
    ops = timed_ops(graph)
    assert [row["name"] for row in rows] == [op.name for op in ops] and len(ops) == 10

    # The per-op ticks add up to the whole inference less the input/output copies.
    whole = r["ticks"]["per_vector"]
    sums = r["profile"]["ticks_sum_per_vector"]
    for w, s in zip(whole, sums):
        assert 0 < w - s <= _gap_bound_ticks(graph), (w, s)
    for op, row in zip(ops, rows):
        assert row["macs"] == _fc_macs_by_hand(graph, op) > 0
        assert row["instructions"] == row["ticks"] * IPT
        assert row["instructions_per_mac"] == pytest.approx(row["ticks"] * IPT / row["macs"])
        assert row["kernel"] == "ek_fully_connected_s8"
    # The 640 -> 128 layers carry five times the MACs of 128 -> 128 and cost more.
    assert rows[0]["ticks"] > 3 * rows[1]["ticks"]
    page = (tmp_path / "r.html").read_text()
    assert "Per-op profile" in page and rows[0]["name"] in page and "instructions/MAC" in page


def test_linked_model_marks_the_same_ops_and_normal_builds_do_not_profile(tmp_path, tmp_path_factory):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from edgekit.firmware.build import build_firmware

    graph = support.ad_graph()
    x = support.ad_inputs(1)
    elf = build_firmware("cortex-m4", tmp_path / "fw", model=graph, profile=True)
    model_c = (tmp_path / "fw" / "model" / "model.c").read_text()
    assert model_c.count("EK_PROFILE_MARK();") == len(timed_ops(graph))
    with QemuBoard("cortex-m4", elf) as qb, DeviceClient(qb, timeout=3.0) as client:
        assert client.hello.profiles_ops
        out, ticks = client.infer(np.ascontiguousarray(x).tobytes())
        assert out == support.reference_output(graph, x)
        per_op = client.profile()
        assert len(per_op) == len(timed_ops(graph))
        assert 0 < ticks - sum(per_op) <= _gap_bound_ticks(graph)

    # The model-slot firmware of a normal build: no capability, PROFILE is unknown.
    normal = support.firmware_elf(tmp_path_factory, "mps2-an386")
    with QemuBoard("cortex-m4", normal) as qb, DeviceClient(qb, timeout=3.0) as client:
        assert not client.hello.profiles_ops
        with pytest.raises(DeviceError, match="--profile"):
            client.profile()
        with pytest.raises(DeviceError) as info:
            client.request(P.PROFILE, P.pack_profile_request(0))
        assert info.value.code == P.E_UNKNOWN


def test_hil_profiles_the_linked_model(tmp_path):
    """run_hil(linked=True): the generated C linked into the firmware, nothing uploaded;
    the rows name the kernels the C backend chose for the target."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from edgekit.backends.c import lower_op
    from edgekit.hil import run_hil
    from edgekit.targets import load_target

    graph = support.ad_graph()
    r = run_hil(graph, "qemu:cortex-m4", support.ad_inputs(2).reshape(2, 640), profile=True, linked=True,
                firmware_dir=tmp_path)
    assert r.passed and r.flash_seconds == 0.0 and len(r.profile) == len(timed_ops(graph, linked=True))
    features = load_target("cortex-m4").features
    assert [row.kernel for row in r.profile] == [lower_op(graph, op, features).function
                                                 for op in timed_ops(graph, linked=True)]
    for w, v in zip(r.ticks, r.op_ticks):
        assert 0 < w - sum(v) <= _gap_bound_ticks(graph)
