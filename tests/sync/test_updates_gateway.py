"""A gateway installs an MCU bundle for the board behind it: the update is verified like any
other (signature, target among the gateway's, version, hashes, bundle), then serve flashes
it to the board (an emulated mps2-an386, ``qemu:cortex-m4``) after its self-test there."""

from __future__ import annotations

import asyncio

import numpy as np

import edgekit
from edgekit.bundle import compile_bundle
from edgekit.serve.protocol import InferRequest, InferTensor
from edgekit.serve.service import InferenceService
from edgekit.sync.signing import create_key
from edgekit.sync.updates import DirUpdateSource, UpdateClient
from tests.backends.c.graphs import cases, random_inputs
from tests.device import models
from tests.sync.update_fixtures import RecordingQueue, export_update, signed_update, trust_dir_with

TARGET = "cortex-m4"


def _mcu_bundle(out, seed, version):
    graph = cases(seed=seed)["handmade"]
    graph.name = "tiny_m4"
    compile_bundle(graph, TARGET, out, model_version=version)
    return graph


def _update(tmp_path, graph_seed, version):
    keys = tmp_path / "keys"
    if not keys.exists():
        create_key(keys, "hub")
    bundle = tmp_path / f"tiny_m4-{version}-build.ekb"
    graph = _mcu_bundle(bundle, graph_seed, version)
    m = signed_update(bundle, keys, "hub", name="tiny_m4", version=version, target=TARGET, engine="micro",
                      chunk_size=4096)
    export_update(m, bundle.read_bytes(), tmp_path / "usb")
    return keys, graph, m


def test_gateway_without_the_boards_target_rejects_the_mcu_update(tmp_path):
    keys, _graph, _m = _update(tmp_path, 11, "4")
    repo = tmp_path / "repo"
    repo.mkdir()
    client = UpdateClient(tmp_path / "state", trust_dir_with(keys, "hub", tmp_path / "trust"), repo,
                          targets=["x86_64"], queue=RecordingQueue())
    (result,) = client.run_once(DirUpdateSource(tmp_path / "usb"))
    assert result.state == "rejected" and "for target 'cortex-m4'" in result.reason
    assert list(repo.iterdir()) == []


def test_gateway_installs_and_serve_flashes_the_board(tmp_path):
    models.require_firmware_tools()
    models.slot_elf(TARGET)
    repo = tmp_path / "repo"
    repo.mkdir()
    graph3 = _mcu_bundle(repo / "tiny_m4-3.ekb", 0, "3")
    keys, graph4, m = _update(tmp_path, 11, "4")
    x = random_inputs(graph4, np.random.default_rng(5), 1)

    def request(graph):
        return InferRequest([InferTensor(graph.inputs[0], "INT8", tuple(x.shape), np.ascontiguousarray(x))])

    def reference(graph):
        return edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]]

    async def scenario():
        service = InferenceService([repo], boards={"m4": f"qemu:{TARGET}"}, poll_interval_s=0.2,
                                   request_timeout_s=20)
        await service.start()
        try:
            assert (await service.infer("tiny_m4", None, request(graph3))).model_version == "3"

            def activation(model, version):
                for row in service.repository_index():
                    if (row["name"], row["version"]) == (model, version) and row["state"] == "READY":
                        return "ready", ""
                return None, ""
            queue = RecordingQueue()
            client = UpdateClient(tmp_path / "state", trust_dir_with(keys, "hub", tmp_path / "trust"), repo,
                                  targets=["x86_64", TARGET], queue=queue, activation=activation,
                                  activation_timeout_s=120)
            (result,) = await asyncio.get_running_loop().run_in_executor(
                None, client.run_once, DirUpdateSource(tmp_path / "usb"))
            assert result.state == "installed" and result.reason == "serving after its self-test", result
            res = await service.infer("tiny_m4", None, request(graph4))
            assert res.model_version == "4"
            assert np.array_equal(res.outputs[0].data, reference(graph4))
            assert not np.array_equal(reference(graph3), reference(graph4))
            assert queue.states() == ["fetching", "installed"]
        finally:
            await service.stop(drain_timeout_s=5)

    asyncio.run(scenario())
