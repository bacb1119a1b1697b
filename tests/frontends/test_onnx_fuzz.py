"""Fuzz the ONNX importer with damaged files: it must import them or raise
ModelFormatError / BadInputError (UnsupportedOpError is one), never anything else,
and never hang. Seeded, so a failure names a mutation that reproduces it."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import BadInputError, ModelFormatError  # noqa: E402
from edgekit.frontends.onnx_importer import load_onnx  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ONNX_DIR = SHARED / "models" / "mlperf-tiny" / "onnx"
CASE_TIMEOUT_S = 10


def _small_float_model() -> bytes:
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Shape", ["p"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0, name="gather"),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "m1"], ["tgt"], axis=0, name="concat"),
             helper.make_node("Reshape", ["p", "tgt"], ["f"], name="reshape"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["g"], transB=1, name="fc"),
             helper.make_node("Softmax", ["g"], ["y"], name="softmax")]
    inits = {"w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "b": np.zeros(4, np.float32),
             "zero": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64),
             "wf": rng.standard_normal((3, 16)).astype(np.float32), "bf": np.zeros(3, np.float32)}
    graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def _small_qdq_model() -> bytes:
    rng = np.random.default_rng(8)
    f32, i8 = np.float32, np.int8
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], group=3, pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "sy", "zy"], ["y"])]
    inits = {"sx": np.array(0.05, f32), "zx": np.array(3, i8), "sy": np.array(0.1, f32), "zy": np.array(-2, i8),
             "wq": rng.integers(-127, 128, (3, 1, 3, 3)).astype(i8), "sw": np.array([0.01, 0.02, 0.03], f32),
             "zw": np.zeros(3, i8)}
    graph = helper.make_graph(nodes, "fuzz_qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def _models() -> dict[str, bytes]:
    models = {"small_float": _small_float_model(), "small_qdq": _small_qdq_model()}
    for p in sorted(ONNX_DIR.glob("*.onnx")) if ONNX_DIR.exists() else []:
        models[p.name] = p.read_bytes()
    return models


def _mutations(data: bytes, rng: np.random.Generator, n: int):
    """(description, mutated bytes): truncations, byte flips, deleted and repeated spans."""
    size = len(data)
    for k in range(n):
        kind = k % 5
        if kind == 0:  # truncation, biased towards the start (headers, graph structure)
            cut = int(size * rng.random() ** 2)
            yield f"truncate to {cut} bytes", data[:cut]
        elif kind in (1, 2):  # a few random byte changes
            buf = bytearray(data)
            pos = rng.integers(0, size, size=int(rng.integers(1, 9)))
            for p in pos:
                buf[p] = int(rng.integers(0, 256))
            yield f"set bytes at {sorted(int(p) for p in pos)}", bytes(buf)
        elif kind == 3:  # flip one bit of a byte in the first 2 KiB (field tags and lengths)
            buf = bytearray(data)
            p = int(rng.integers(0, min(size, 2048)))
            buf[p] ^= 1 << int(rng.integers(0, 8))
            yield f"flip a bit at {p}", bytes(buf)
        else:  # delete or repeat a span
            a = int(rng.integers(0, size))
            b = min(size, a + int(rng.integers(1, 64)))
            if rng.random() < 0.5:
                yield f"delete bytes {a}:{b}", data[:a] + data[b:]
            else:
                yield f"repeat bytes {a}:{b}", data[:b] + data[a:b] + data[b:]


class _Timeout(Exception):
    """A load took longer than the fuzz budget allows."""


def _alarm(signum, frame):
    raise _Timeout()


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM for the per-case time limit")
def test_damaged_models_fail_cleanly():
    models = _models()
    per_model = 300 // len(models) + 1
    rng = np.random.default_rng(20260101)
    problems, outcomes = [], {"imported": 0, "rejected": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name, data in models.items():
            cases = [("as is", data), ("empty", b""), ("one byte", data[:1])]
            cases += list(_mutations(data, rng, per_model))
            for desc, blob in cases:
                signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
                try:
                    load_onnx(blob)
                    outcomes["imported"] += 1
                except (ModelFormatError, BadInputError):
                    outcomes["rejected"] += 1
                except _Timeout:
                    problems.append(f"{name}: {desc}: no answer within {CASE_TIMEOUT_S} s")
                except Exception as exc:  # noqa: BLE001 - this is what the test looks for
                    problems.append(f"{name}: {desc}: {type(exc).__name__}: {exc}")
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    total = sum(outcomes.values()) + len(problems)
    print(f"\nONNX fuzz: {total} cases over {len(models)} models: {outcomes['imported']} imported, "
          f"{outcomes['rejected']} rejected cleanly, {len(problems)} problems")
    assert total >= 200
    assert not problems, "\n".join(problems[:20])


def test_unmodified_models_import():
    for name, data in _models().items():
        g = load_onnx(data)
        assert g.ops, name
