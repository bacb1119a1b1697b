"""edgekit's own .proto for the Open Inference Protocol: the checked-in Python modules are what
grpcio-tools makes of it today, and its wire form (service, methods, every field's number,
type and cardinality) is the one tritonclient's independently generated modules use."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tritonclient.grpc import service_pb2 as triton_pb

from edgekit.serve.oip_proto import grpc_predict_v2_pb2 as pb

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("generate_oip_proto", REPO / "tools/generate_oip_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_modules_equal_a_fresh_generation(tmp_path):
    # protoc runs in its own interpreter: inside a test worker that has loaded other
    # protobuf and gRPC builds it crashed the worker
    gen = _generator()
    run = subprocess.run([sys.executable, str(REPO / "tools/generate_oip_proto.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    written = [Path(line) for line in run.stdout.split()]
    assert sorted(p.name for p in written) == sorted(gen.GENERATED)
    for path in written:
        checked_in = REPO / gen.PROTO.parent / path.name
        assert checked_in.read_text() == path.read_text(), (
            f"{checked_in} is stale or was edited: run python tools/generate_oip_proto.py "
            "(with the grpcio-tools of requirements.lock) and commit the result")


def test_generated_descriptors_stay_out_of_the_default_pool():
    # tritonclient (imported above) defines the same names there; both imported is the proof
    assert pb.DESCRIPTOR.pool is not triton_pb.DESCRIPTOR.pool
    assert pb.DESCRIPTOR.package == "inference"


def _fields(message) -> dict:
    out = {}
    for f in message.fields:
        kind = f.message_type.full_name if f.message_type else f.type
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            kind = ("map", _fields(f.message_type))
        elif f.message_type is not None:
            kind = _fields(f.message_type)
        out[f.name] = (f.number, kind, f.is_repeated,
                       f.containing_oneof.name if f.containing_oneof else None)
    return out


def test_service_and_messages_match_tritons_on_the_wire():
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in ours.methods} == {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                                              "ModelMetadata", "ModelInfer", "RepositoryIndex",
                                              "RepositoryModelLoad"}
    for method in ours.methods:
        twin = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            twin.input_type.full_name, twin.output_type.full_name)
        assert (method.client_streaming, method.server_streaming) == (twin.client_streaming,
                                                                      twin.server_streaming)
        for ours_msg, their_msg in ((method.input_type, twin.input_type), (method.output_type, twin.output_type)):
            assert _fields(ours_msg) == _fields(their_msg), ours_msg.full_name


def test_a_message_survives_the_trip_to_tritons_classes_and_back():
    req = pb.ModelInferRequest(model_name="kws", model_version="2", id="a")
    t = req.inputs.add(name="input_1", datatype="INT8", shape=[1, 49, 10, 1])
    t.parameters["p"].int64_param = 7
    req.outputs.add(name="Identity")
    req.parameters["q"].string_param = "s"
    req.raw_input_contents.append(bytes(range(256)) * 2)
    theirs = triton_pb.ModelInferRequest.FromString(req.SerializeToString())
    assert theirs.inputs[0].shape == [1, 49, 10, 1] and theirs.inputs[0].parameters["p"].int64_param == 7
    assert theirs.parameters["q"].string_param == "s" and theirs.raw_input_contents[0] == bytes(range(256)) * 2
    assert pb.ModelInferRequest.FromString(theirs.SerializeToString()) == req
