"""IR files: readable JSON + .npz weights, written atomically, read back identically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.shared import shared_file
from edgekit.errors import ModelFormatError
from edgekit.frontends.tflite import load_tflite
from edgekit.ir import load, save
from edgekit.reference.interpreter import Interpreter


@pytest.fixture(scope="module")
def kws():
    return load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))


def test_round_trip_keeps_everything(kws, tmp_path, kws_data):
    js, npz = save(kws, tmp_path / "kws.json")
    assert js.exists() and npz.exists()
    doc = json.loads(js.read_text())
    assert doc["format"] == "edgekit-ir" and doc["version"] == 1
    assert [o["type"] for o in doc["ops"]] == kws.op_types()
    back = load(js)
    assert back.op_types() == kws.op_types()
    for name, t in kws.tensors.items():
        u = back.tensor(name)
        assert (u.shape, u.dtype, u.quant) == (t.shape, t.dtype, t.quant)
        if t.is_const:
            assert np.array_equal(u.data, t.data)
    x, _ = kws_data
    a = Interpreter(kws).run([x[:20]])[kws.outputs[0]]
    b = Interpreter(back).run([x[:20]])[back.outputs[0]]
    assert np.array_equal(a, b)


def test_no_temporary_files_left(kws, tmp_path):
    save(kws, tmp_path / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]


@pytest.mark.parametrize("mutate,match", [
    (lambda p: p.write_text("{not json"), "not a readable edgekit IR file"),
    (lambda p: p.write_text(json.dumps({"format": "other"})), "not an edgekit IR file"),
    (lambda p: p.write_text(json.dumps({"format": "edgekit-ir", "version": 99})), "IR version 99"),
    (lambda p: p.with_suffix(".npz").write_bytes(b"garbage"), "cannot read the weights"),
    (lambda p: p.write_text(p.read_text().replace('"dtype": "int8"', '"dtype": "int7"', 1)), "malformed IR"),
])
def test_corrupt_files_give_clear_errors(kws, tmp_path, mutate, match):
    js, _ = save(kws, tmp_path / "m.json")
    mutate(js)
    with pytest.raises(ModelFormatError, match=match):
        load(js)
