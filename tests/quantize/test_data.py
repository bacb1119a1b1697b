"""Calibration data loading: every kind of spec, preprocessing, and every error path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.quantize import Dataset, FewSamplesWarning, load_dataset

SHAPE = (1, 4, 3, 2)  # the model input, batch first
rng = np.random.default_rng(0)


def samples(n: int, shape=SHAPE) -> np.ndarray:
    return rng.normal(size=(n,) + tuple(shape[1:])).astype(np.float32)


@pytest.fixture(autouse=True)
def _no_few_samples_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)
        yield


# -- spec kinds --------------------------------------------------------------------------

def test_npz_with_x_and_y(tmp_path):
    x, y = samples(60), np.arange(60)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(tmp_path / "d.npz", input_shape=SHAPE)
    assert isinstance(ds, Dataset) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.source.endswith("d.npz") and len(ds) == 60


def test_npz_with_one_array_of_any_name(tmp_path):
    x = samples(55)
    np.savez(tmp_path / "a.npz", features=x)
    np.testing.assert_array_equal(load_dataset(str(tmp_path / "a.npz"), input_shape=SHAPE).x, x)
    # The only array besides the labels (like kws01's x_int8 + y).
    np.savez(tmp_path / "b.npz", x_int8=x, y=np.zeros(55))
    ds = load_dataset(tmp_path / "b.npz", input_shape=SHAPE)
    np.testing.assert_array_equal(ds.x, x)
    assert ds.y is not None and len(ds.y) == 55


def test_npz_ambiguous_arrays_are_rejected(tmp_path):
    np.savez(tmp_path / "c.npz", a=samples(5), b=samples(5))
    with pytest.raises(BadInputError, match=r"holds arrays \['a', 'b'\]; name the inputs 'x'"):
        load_dataset(tmp_path / "c.npz", input_shape=SHAPE)


def test_npy_batch_and_single_sample(tmp_path):
    x = samples(70)
    np.save(tmp_path / "b.npy", x)
    np.testing.assert_array_equal(load_dataset(tmp_path / "b.npy", input_shape=SHAPE).x, x)
    np.save(tmp_path / "one.npy", x[0])  # no batch axis: one sample
    ds = load_dataset(tmp_path / "one.npy", input_shape=SHAPE)
    assert ds.x.shape == (1, 4, 3, 2) and ds.y is None


def test_folder_of_npy_in_name_order(tmp_path):
    x = samples(60)
    folder = tmp_path / "calib"
    folder.mkdir()
    np.save(folder / "b_batch.npy", x[1:40])       # a batch
    np.save(folder / "a_first.npy", x[0])          # one sample
    np.save(folder / "c_rest.npy", x[40:])
    (folder / "notes.txt").write_text("ignored")
    ds = load_dataset(folder, input_shape=SHAPE)
    np.testing.assert_array_equal(ds.x, x)


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="holds no .npy files"):
        load_dataset(empty, input_shape=SHAPE)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", samples(3))
    np.save(mixed / "b.npy", samples(3, (1, 4, 3, 5)))
    with pytest.raises(BadInputError, match="different sample shapes"):
        load_dataset(mixed, input_shape=SHAPE)


def _write_module(tmp_path, body: str, name: str = "calib_src") -> None:
    (tmp_path / f"{name}.py").write_text("import numpy as np\n" + body)


def test_module_function_returning_an_array(tmp_path, monkeypatch):
    _write_module(tmp_path, "def data():\n    return np.ones((60, 4, 3, 2), np.float32)\n", "calib_mod_a")
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = load_dataset("calib_mod_a:data", input_shape=SHAPE)
    assert ds.x.shape == (60, 4, 3, 2) and ds.y is None and ds.source == "calib_mod_a:data"


def test_file_function_returning_x_y(tmp_path):
    _write_module(tmp_path, "def data():\n    return np.zeros((60, 4, 3, 2)), np.arange(60)\n")
    ds = load_dataset(f"{tmp_path}/calib_src.py:data", input_shape=SHAPE)
    assert ds.x.dtype == np.float32 and ds.x.shape == (60, 4, 3, 2)
    np.testing.assert_array_equal(ds.y, np.arange(60))


def test_generator_of_batches_and_limit(tmp_path):
    _write_module(tmp_path, (
        "calls = []\n"
        "def batches():\n"
        "    for i in range(100):\n"
        "        calls.append(i)\n"
        "        yield np.full((8, 4, 3, 2), i, np.float32), np.full(8, i)\n"))
    spec = f"{tmp_path}/calib_src.py:batches"
    ds = load_dataset(spec, input_shape=SHAPE)
    assert ds.x.shape == (800, 4, 3, 2) and ds.y.shape == (800,)
    assert ds.x[8, 0, 0, 0] == 1 and ds.y[-1] == 99
    ds = load_dataset(spec, input_shape=SHAPE, limit=20)  # stops pulling batches at the limit
    assert ds.x.shape == (20, 4, 3, 2) and ds.y.shape == (20,)
    assert ds.x[19, 0, 0, 0] == 2


def test_function_errors(tmp_path):
    _write_module(tmp_path, (
        "def boom():\n    raise RuntimeError('no data here')\n"
        "def nothing():\n    return iter(())\n"
        "def text():\n    return 42\n"))
    base = f"{tmp_path}/calib_src.py"
    with pytest.raises(BadInputError, match="failed: RuntimeError: no data here"):
        load_dataset(f"{base}:boom", input_shape=SHAPE)
    with pytest.raises(BadInputError, match="yielded no batches"):
        load_dataset(f"{base}:nothing", input_shape=SHAPE)
    with pytest.raises(BadInputError, match="returned int"):
        load_dataset(f"{base}:text", input_shape=SHAPE)
    with pytest.raises(BadInputError, match="has no function 'missing'"):
        load_dataset(f"{base}:missing", input_shape=SHAPE)
    with pytest.raises(BadInputError, match="importing no_such_module_xyz failed"):
        load_dataset("no_such_module_xyz:data", input_shape=SHAPE)


def test_array_passthrough_and_limit():
    x = samples(80)
    ds = load_dataset(x, input_shape=SHAPE, limit=64)
    np.testing.assert_array_equal(ds.x, x[:64])
    assert ds.source == "array"


# -- preprocessing ----------------------------------------------------------------------------

def test_scale_then_mean():
    x = rng.integers(0, 256, size=(60, 4, 3, 2)).astype(np.uint8)
    ds = load_dataset(x, input_shape=SHAPE, scale=1 / 255, mean=0.5)
    np.testing.assert_allclose(ds.x, x.astype(np.float32) / 255 - 0.5, rtol=1e-6, atol=1e-7)


def test_per_channel_mean_on_the_channel_axis():
    x = np.ones((60, 2, 4, 3), np.float32)  # NCHW model input [1, 2, 4, 3]
    ds = load_dataset(x, input_shape=(1, 2, 4, 3), mean=[0.25, 0.5])
    np.testing.assert_allclose(ds.x[:, 0], 0.75)
    np.testing.assert_allclose(ds.x[:, 1], 0.5)
    x = np.ones((60, 4, 3, 2), np.float32)  # NHWC
    ds = load_dataset(x, input_shape=SHAPE, mean=[0.25, 0.5])
    np.testing.assert_allclose(ds.x[..., 1], 0.5)
    with pytest.raises(BadInputError, match="3 mean values match no channel axis"):
        load_dataset(x, input_shape=SHAPE, mean=[1, 2, 3])


def test_layout_transposes_4d_data():
    x = samples(60, (1, 8, 8, 3))  # NHWC data for an NCHW model
    ds = load_dataset(x, input_shape=(1, 3, 8, 8), layout="nhwc->nchw")
    np.testing.assert_array_equal(ds.x, x.transpose(0, 3, 1, 2))
    back = load_dataset(ds.x, input_shape=(1, 8, 8, 3), layout="nchw->nhwc")
    np.testing.assert_array_equal(back.x, x)
    with pytest.raises(BadInputError, match="needs 4-D data"):
        load_dataset(np.zeros((60, 10), np.float32), input_shape=(1, 10), layout="nhwc->nchw")
    with pytest.raises(BadInputError, match="unknown layout"):
        load_dataset(x, input_shape=(1, 3, 8, 8), layout="hwc")


def test_integer_model_input_dtype():
    x = rng.integers(-128, 128, size=(60, 4, 3, 2))
    assert load_dataset(x, input_shape=SHAPE, input_dtype="int8").x.dtype == np.int8
    with pytest.raises(BadInputError, match="do not fit the model's int8 input"):
        load_dataset(x + 200, input_shape=SHAPE, input_dtype="int8")


# -- validation ----------------------------------------------------------------------------------

def test_wrong_shape_message_names_the_expected_shape():
    with pytest.raises(BadInputError) as e:
        load_dataset(np.zeros((60, 49, 10), np.float32), input_shape=(1, 49, 10, 1))
    assert str(e.value) == ("calibration data: sample shape [49, 10] does not match the model input "
                            "[1, 49, 10, 1] (expected [N, 49, 10, 1])")
    with pytest.raises(BadInputError, match=r"sample shape \[4, 3, 5\] does not match the model input "
                                            r"\[1, 4, 3, 2\] \(expected \[N, 4, 3, 2\]\)"):
        load_dataset(np.zeros((60, 4, 3, 5)), input_shape=SHAPE)
    with pytest.raises(BadInputError, match=r"sample shape \[4, 3, 2, 1\]"):
        load_dataset(np.zeros((60, 4, 3, 2, 1)), input_shape=SHAPE)


def test_non_numeric_data_is_rejected():
    with pytest.raises(BadInputError, match="values must be numbers"):
        load_dataset(np.full((60, 4, 3, 2), "a"), input_shape=SHAPE)
    with pytest.raises(BadInputError, match="values must be numbers"):
        load_dataset(np.zeros((60, 4, 3, 2), bool), input_shape=SHAPE)


def test_nan_and_inf_are_counted_and_located():
    x = samples(60)
    x[3, 1, 2, 0] = np.nan
    x[3, 0, 0, 1] = np.nan
    x[17, 2, 1, 1] = np.inf
    with pytest.raises(BadInputError) as e:
        load_dataset(x, input_shape=SHAPE)
    msg = str(e.value)
    assert "2 NaN and 1 inf values in 2 sample(s)" in msg
    assert "samples 3, 17" in msg and "first at index [3, 0, 0, 1]" in msg


def test_empty_data_set():
    with pytest.raises(BadInputError, match=r"the data set is empty \(no samples; expected \[N, 4, 3, 2\]\)"):
        load_dataset(np.zeros((0, 4, 3, 2), np.float32), input_shape=SHAPE)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"this is not numpy")
    with pytest.raises(BadInputError, match=r"cannot read .*bad\.npy"):
        load_dataset(bad, input_shape=SHAPE)
    badz = tmp_path / "bad.npz"
    badz.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(BadInputError, match=r"cannot read .*bad\.npz"):
        load_dataset(badz, input_shape=SHAPE)
    with pytest.raises(BadInputError, match=r"missing\.npz not found"):
        load_dataset(tmp_path / "missing.npz", input_shape=SHAPE)
    other = tmp_path / "data.csv"
    other.write_text("1,2,3")
    with pytest.raises(BadInputError, match="is not an .npz or .npy file"):
        load_dataset(other, input_shape=SHAPE)


def test_label_count_must_match(tmp_path):
    np.savez(tmp_path / "d.npz", x=samples(60), y=np.arange(59))
    with pytest.raises(BadInputError, match="60 samples but 59 labels"):
        load_dataset(tmp_path / "d.npz", input_shape=SHAPE)


def test_few_samples_warn_with_count_and_advice():
    with pytest.warns(FewSamplesWarning, match=r"only 12 samples .* use at least 200"):
        load_dataset(samples(12), input_shape=SHAPE)
    assert issubclass(FewSamplesWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewSamplesWarning)
        load_dataset(samples(50), input_shape=SHAPE)  # 50 is enough: no warning
