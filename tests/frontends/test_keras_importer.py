"""The Keras / TensorFlow frontend: the MLPerf Tiny Keras originals against TensorFlow's own
predictions and against the shared .tflite files in LiteRT's reference kernels, a Keras model
saved and re-imported, the CLI on a Keras file, and bad input.

TensorFlow takes seconds to import, so it is imported once, in this module's process, by the
module-scoped fixtures; CLI runs use click's in-process runner."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit.cli.main import _register, cli
from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError
from edgekit.frontends import detect_format, load_model
from edgekit.frontends.tflite import load_tflite
from tests.support.shared import SHARED, litert_outputs, shared_file

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

pytestmark = pytest.mark.slow
_register()

KERAS = "models/mlperf-tiny/keras"
KWS_INPUT_SCALE, KWS_INPUT_ZERO_POINT = 0.5847029, 83  # the int8 model's input quantization (PROVENANCE.md)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "300"})


def refused(r, *words):
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.output, f"{w!r} not in: {r.output}"
    assert "Traceback" not in r.output, r.output


@pytest.fixture(scope="module")
def tf_keras():
    from edgekit.frontends.keras_importer import load_keras  # noqa: F401 - sets TensorFlow's environment first
    import tf_keras
    return tf_keras


@pytest.fixture(scope="module")
def ad_window():
    return np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))


@pytest.fixture(scope="module")
def kws_samples():
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        x = (z["x_int8"].astype(np.float32) - KWS_INPUT_ZERO_POINT) * KWS_INPUT_SCALE
        return x, z["y"]


def shared_folder(rel: str):
    p = SHARED / rel
    if not p.is_dir():
        pytest.skip(f"test data {p} is absent (it lives in ../shared next to the checkout)")
    return p


def keras_predict(tf_keras, path, x):
    model = tf_keras.models.load_model(str(path), compile=False)
    return model.predict(x, verbose=0, batch_size=256)


def test_formats_are_detected_without_tensorflow(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert detect_format(tmp_path / "m.keras") == "keras"
    assert detect_format(tmp_path / "m.h5") == "keras"
    assert detect_format(tmp_path / "sm") == "keras"
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInputError, match="no saved_model.pb"):
        detect_format(tmp_path / "plain")


def test_ad_h5_matches_keras_and_has_the_shared_tflite_weights(tf_keras, ad_window):
    path = shared_file(f"{KERAS}/ad01.h5")
    g = load_model(path)
    assert g.op_types() == ["FULLY_CONNECTED"] * 10
    assert g.inputs == ["input_1"] and g.outputs == ["dense_9"]
    assert g.tensor("input_1").shape == (1, 640)
    y = edgekit.run(g, {"input_1": ad_window})["dense_9"]
    # Oracle 1: TensorFlow running the Keras model. Float sums in another order: 1e-4 of the
    # output's range (the outputs reach about 60).
    expected = keras_predict(tf_keras, path, ad_window)
    assert np.abs(y - expected).max() <= 1e-4 * np.abs(expected).max()
    # Oracle 2: the shared ad01_fp32.tflite in LiteRT's reference kernels. Its weights are the
    # .h5's (BatchNorm scales folded in) to float rounding, but its biases differ by up to 0.6
    # (other BatchNorm moving means), so its outputs are compared through the anomaly score,
    # which stays within 10% on every window.
    shared = load_tflite(shared_file("models/mlperf-tiny/ad01_fp32.tflite"))
    for a, b in zip(g.ops, shared.ops):
        wa, wb = g.const(a.inputs[1]), shared.const(b.inputs[1])
        assert np.abs(wa - wb).max() <= 1e-6 * np.abs(wb).max()
    litert = litert_outputs(shared_file("models/mlperf-tiny/ad01_fp32.tflite"), ad_window, reference=True)
    score, shared_score = ((ad_window - y) ** 2).mean(1), ((ad_window - litert) ** 2).mean(1)
    assert np.abs(score / shared_score - 1).max() < 0.10


def test_kws_saved_model_matches_keras_and_the_shared_float_tflite(tf_keras, kws_samples):
    path = shared_folder(f"{KERAS}/kws_ref_model")
    x, labels = kws_samples
    g = load_model(path)
    assert g.metadata["source_format"] == "saved_model"
    assert g.tensor("input_1").shape == (1, 49, 10, 1)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"}.isdisjoint(g.op_types())
    y = edgekit.run(g, {"input_1": x})[g.outputs[0]]
    expected = keras_predict(tf_keras, path, x)
    assert np.abs(y - expected).max() < 1e-5  # softmax probabilities
    # The shared kws_ref_model_float32.tflite was converted from this SavedModel, with its
    # conv filters stored as int8 (a hybrid model): top-1 agrees on >= 90% of the samples and
    # both reach MLPerf Tiny's 90% accuracy goal (91.3% and 90.5% measured).
    litert = litert_outputs(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"), x, reference=True)
    assert (y.argmax(1) == litert.argmax(1)).mean() >= 0.90
    assert (y.argmax(1) == labels).mean() >= 0.90 and (litert.argmax(1) == labels).mean() >= 0.90


def test_streaming_wake_word_h5_matches_keras_and_litert(tf_keras, tmp_path):
    from edgekit.frontends.keras_importer import keras_to_tflite
    path = shared_file(f"{KERAS}/str_ww_ref_model.h5")
    g = load_model(path)
    assert g.tensor("input_1").shape == (1, 30, 1, 40)
    # No .tflite of this model is shared: the oracles are Keras itself and LiteRT running the
    # file TensorFlow's converter writes. Small inputs keep the softmax away from 0/1, and the
    # log-probabilities are compared.
    x = (np.random.default_rng(7).normal(size=(64, 30, 1, 40)) * 0.01).astype(np.float32)
    y = edgekit.run(g, {"input_1": x})[g.outputs[0]]
    expected = keras_predict(tf_keras, path, x)
    assert expected.max() < 0.99
    assert np.abs(np.log(y) - np.log(expected)).max() < 1e-4
    tfl = tmp_path / "ww.tflite"
    tfl.write_bytes(keras_to_tflite(path))
    assert np.abs(np.log(litert_outputs(tfl, x, reference=True)) - np.log(y)).max() < 1e-4


def _small_cnn(keras):
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((12, 12, 2)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.DepthwiseConv2D(3, activation="relu6"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
        keras.layers.Softmax(),
    ])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras 3's predict
@pytest.mark.parametrize("which", ["keras2", "keras3"])
def test_small_keras_model_round_trips_through_a_keras_file(tf_keras, tmp_path, which):
    if which == "keras2":
        keras = tf_keras
    else:
        import keras
    model = _small_cnn(keras)
    path = tmp_path / "small.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:  # the file says which Keras wrote it
        assert json.loads(z.read("metadata.json"))["keras_version"][0] == ("2" if which == "keras2" else "3")
    g = load_model(path)
    assert g.op_types() == ["CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED",
                            "SOFTMAX"]
    x = np.random.default_rng(1).normal(size=(16, 12, 12, 2)).astype(np.float32)
    y = edgekit.run(g, {g.inputs[0]: x})[g.outputs[0]]
    assert np.abs(y - np.asarray(model.predict(x, verbose=0))).max() < 1e-5


def test_saved_model_without_keras_goes_through_its_serving_signature(tf_keras, tmp_path):
    import tensorflow as tf
    rng = np.random.default_rng(5)
    w, b = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)

    class Affine(tf.Module):
        def __init__(self):
            self.w, self.b = tf.Variable(w), tf.Variable(b)

        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32, name="features")])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w) + self.b)

    module = Affine()
    tf.saved_model.save(module, str(tmp_path / "affine"), signatures=module.__call__)
    g = load_model(tmp_path / "affine")
    x = rng.normal(size=(1, 6)).astype(np.float32)
    y = edgekit.run(g, {g.inputs[0]: x})[g.outputs[0]]
    np.testing.assert_allclose(y, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-6)


def test_cli_inspect_and_quantize_an_h5(tf_keras, ad_window, tmp_path):
    path = shared_file(f"{KERAS}/ad01.h5")
    r = invoke("inspect", path, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert json.dumps(report).count("FULLY_CONNECTED") >= 10
    np.savez(tmp_path / "calib.npz", x=ad_window[:128])
    np.savez(tmp_path / "eval.npz", x=ad_window[128:])
    out = tmp_path / "ad01_int8.tflite"
    r = invoke("quantize", path, "--calib", tmp_path / "calib.npz", "--eval", tmp_path / "eval.npz",
               "--out", out)
    assert r.exit_code == 0, r.output
    q = load_tflite(out)
    assert q.op_types().count("FULLY_CONNECTED") == 10
    assert q.tensor(q.inputs[0]).dtype.value == "int8"
    # The int8 model reconstructs the held-out windows about as well as the float one.
    inq = q.tensor(q.inputs[0]).quant
    outq = q.tensor(q.outputs[0]).quant
    xq = np.clip(np.round(ad_window[128:] / inq.scale[0]) + inq.zero_point[0], -128, 127).astype(np.int8)
    yq = (edgekit.run(q, {q.inputs[0]: xq})[q.outputs[0]].astype(np.float32) - outq.zero_point[0]) * outq.scale[0]
    yf = edgekit.run(load_model(path), {"input_1": ad_window[128:]})["dense_9"]
    err_q, err_f = ((ad_window[128:] - yq) ** 2).mean(), ((ad_window[128:] - yf) ** 2).mean()
    assert err_q < 1.2 * err_f


def test_truncated_h5_is_refused(tmp_path):
    data = shared_file(f"{KERAS}/ad01.h5").read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 3])
    refused(invoke("inspect", bad), "cut.h5", "not a readable Keras file")
    with pytest.raises(ModelFormatError):
        load_model(bad)
    (tmp_path / "junk.keras").write_bytes(b"this is not a zip archive")
    refused(invoke("inspect", tmp_path / "junk.keras"), "junk.keras", "not a readable Keras file")


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning")
def test_custom_layer_is_refused_by_name(tf_keras, tmp_path):
    class Doubling(tf_keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inp = tf_keras.Input((4,))
    tf_keras.Model(inp, Doubling(name="twice")(inp)).save(tmp_path / "custom.h5")
    refused(invoke("inspect", tmp_path / "custom.h5"), "custom.h5", "custom layer", "Doubling")


def test_folder_without_saved_model_pb_is_refused(tmp_path):
    (tmp_path / "variables").mkdir()
    refused(invoke("inspect", tmp_path), "not a TensorFlow SavedModel", "saved_model.pb")


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning")
def test_unsupported_layer_names_the_layer_and_the_op(tf_keras, tmp_path):
    inp = tf_keras.Input((8,))
    h = tf_keras.layers.Dense(4, name="hidden")(inp)
    h = tf_keras.layers.ELU(name="smooth_act")(h)
    out = tf_keras.layers.Dense(2, name="head")(h)
    path = tmp_path / "elu.h5"
    tf_keras.Model(inp, out).save(path)
    with pytest.raises(UnsupportedOpError) as err:
        load_model(path)
    assert err.value.op == "ELU" and "FULLY_CONNECTED" in err.value.supported
    refused(invoke("convert", path, "--to", "ir", "--out", tmp_path / "m.json"), "'ELU'", "smooth_act", "elu.h5")
    assert not (tmp_path / "m.json").exists()


def test_missing_tensorflow_names_the_extra(monkeypatch, tmp_path):
    from edgekit.frontends import keras_importer
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if it were not installed
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    with pytest.raises(BadInputError, match=r"pip install 'edgekit\[tensorflow\]'"):
        keras_importer.load_keras(path)
