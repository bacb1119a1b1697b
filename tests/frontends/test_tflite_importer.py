"""The .tflite importer: model structure, hybrid weights, and its error paths."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from tests.support.shared import shared_file
from edgekit.errors import BadInputError, EdgekitError, ModelFormatError, UnsupportedOpError
from edgekit.frontends.tflite import SUPPORTED_TFLITE_OPS, load_tflite
from edgekit.ir import DType

from tests.support import tflite_oracle  # noqa: E402

needs_schema = pytest.mark.skipif(not tflite_oracle.HAVE_SCHEMA, reason="ai-edge-litert not installed")


def test_kws_int8_structure():
    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))
    assert g.op_types() == ["CONV_2D", "DEPTHWISE_CONV_2D"] * 4 + ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                                                                  "FULLY_CONNECTED", "SOFTMAX"]
    first = g.ops[0]
    assert first.attrs["strides"] == (2, 2) and first.attrs["activation"] == "RELU"
    assert first.attrs["pads"] == (4, 1, 5, 1)  # SAME for 49x10 with a 10x4 kernel, stride 2
    x = g.input_tensors()[0]
    assert x.shape == (1, 49, 10, 1) and x.dtype is DType.INT8
    assert x.quant.zero_point == (83,) and x.quant.scale[0] == pytest.approx(0.5847029)
    w = g.tensor(first.inputs[1])
    assert w.quant.axis == 0 and len(w.quant.scale) == 64
    assert g.metadata["source_format"] == "tflite"


def test_hybrid_model_keeps_int8_weights_with_float_activations():
    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"))
    convs = [op for op in g.ops if op.type.value == "CONV_2D"]
    assert len(convs) == 5
    for op in convs:
        assert g.tensor(op.inputs[0]).dtype is DType.FLOAT32
        assert g.tensor(op.inputs[1]).dtype is DType.INT8
        assert g.tensor(op.inputs[1]).quant.is_per_tensor


@needs_schema
def test_unsupported_op_names_op_node_and_supported_list():
    # FLOOR (builtin 8) is not in edgekit's op set.
    model = tflite_oracle.single_op_model(
        8, [{"shape": (1, 4), "dtype": np.float32}], [{"shape": (1, 4), "dtype": np.float32}])
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite(model)
    msg = str(err.value)
    assert "'FLOOR'" in msg and "#0 FLOOR" in msg and "CONV_2D" in msg and "FULLY_CONNECTED" in msg
    assert err.value.exit_code == 2
    assert set(err.value.supported) == set(SUPPORTED_TFLITE_OPS)


@needs_schema
def test_unsupported_fused_activation():
    schema = tflite_oracle.schema
    opts = schema.AddOptionsT()
    opts.fusedActivationFunction = 4  # TANH: TFLite allows it, edgekit's kernels do not
    spec = {"shape": (1, 4), "dtype": np.float32}
    model = tflite_oracle.single_op_model(0, [spec, spec], [spec], schema.BuiltinOptions.AddOptions, opts)
    with pytest.raises(UnsupportedOpError, match="fused activation TANH"):
        load_tflite(model)


def _mutations(data: bytes, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        b = bytearray(data)
        kind = rng.integers(3)
        if kind == 0:
            yield bytes(b[: rng.integers(0, len(b))])
            continue
        for _ in range(rng.integers(1, 6)):
            pos = int(rng.integers(0, min(len(b), 4096) if rng.random() < 0.7 else len(b)))
            if kind == 1:
                b[pos] ^= 1 << int(rng.integers(8))
            else:
                b[pos:pos + 4] = int(rng.choice([0, 0xFFFFFFFF, rng.integers(0, 2**32)])).to_bytes(4, "little")
        yield bytes(b)


@pytest.mark.parametrize("model", ["kws_ref_model_int8", "ad01_int8"])
def test_fuzzed_files_fail_cleanly_through_the_whole_importer(model):
    data = shared_file(f"models/mlperf-tiny/{model}.tflite").read_bytes()
    outcomes = {"ok": 0, "error": 0}
    for blob in _mutations(data, 250, seed=zlib.crc32(model.encode())):
        t0 = time.perf_counter()
        try:
            load_tflite(blob)
            outcomes["ok"] += 1
        except EdgekitError as exc:
            assert exc.exit_code == 2, f"{type(exc).__name__}: {exc}"
            assert str(exc)
            outcomes["error"] += 1
        assert time.perf_counter() - t0 < 5
    assert outcomes["error"] > 50  # the mutations do break files


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelFormatError, match="m.tflite"):
        load_tflite(p)
    with pytest.raises(BadInputError):
        load_tflite(tmp_path / "missing.tflite")
