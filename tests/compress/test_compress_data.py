"""Training data specs for compression: .npz, (x, y), module:function, torch datasets,
splits, metrics and the errors of bad data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.compress.data import TrainData, load_train_data  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402


def _arrays(n=100, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), (np.arange(n) % classes).astype(np.int64)


def test_npz_with_a_held_out_stratified_validation_split(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    td = load_train_data(str(tmp_path / "d.npz"), val_fraction=0.2, seed=1)
    assert td.metric == "top1" and len(td.x_train) == 80 and len(td.x_val) == 20
    assert np.bincount(td.y_val).tolist() == [5, 5, 5, 5]  # every class the same share
    assert td.eval_split[2] == "val"
    again = load_train_data(str(tmp_path / "d.npz"), val_fraction=0.2, seed=1)
    assert np.array_equal(again.x_val, td.x_val) and again.fingerprint() == td.fingerprint()
    assert load_train_data(str(tmp_path / "d.npz"), seed=2).fingerprint() != td.fingerprint()


def test_npz_with_its_own_val_and_test_arrays(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x[:60], y=y[:60], x_val=x[60:80], y_val=y[60:80], x_test=x[80:], y_test=y[80:])
    td = load_train_data(str(tmp_path / "d.npz"))
    assert (len(td.x_train), len(td.x_val), len(td.x_test)) == (60, 20, 20)
    assert td.eval_split[2] == "test"


def test_module_function_returning_torch_datasets(tmp_path):
    src = tmp_path / "mydata.py"
    src.write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def splits():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(50, 1, 4, 4, generator=g)\n"
        "    y = torch.arange(50) % 3\n"
        "    return TensorDataset(x[:30], y[:30]), TensorDataset(x[30:40], y[30:40]), TensorDataset(x[40:], y[40:])\n"
        "def arrays():\n"
        "    import numpy as np\n"
        "    return np.ones((20, 3), np.float32), np.linspace(0, 1, 20)\n")
    td = load_train_data(f"{src}:splits")
    assert td.x_train.shape == (30, 1, 4, 4) and td.y_val.shape == (10,) and td.x_test.shape == (10, 1, 4, 4)
    assert td.metric == "top1" and td.y_train.dtype == np.int64
    reg = load_train_data(f"{src}:arrays")
    assert reg.metric == "mse" and reg.y_train.shape[1:] == (1,)  # regression targets as a column


def test_arrays_and_autoencoder_without_labels():
    x, y = _arrays()
    td = load_train_data((x, y))
    assert td.metric == "top1"
    ae = load_train_data(x)
    assert ae.metric == "mse" and ae.y_train is None
    assert load_train_data(td) is td


@pytest.mark.parametrize("make, match", [
    (lambda p: np.savez(p, x=np.ones((10, 2), np.float32), y=np.arange(9)), "10 samples but 9 labels"),
    (lambda p: np.savez(p, inputs=np.ones((10, 2))), "name the inputs 'x'"),
    (lambda p: np.savez(p, x=np.ones((10, 2)), y=np.array([0.0] * 9 + [np.inf])), r"labels y hold 1 NaN/inf"),
    (lambda p: np.savez(p, x=np.ones(10), y=np.arange(10)), r"x must be \[samples, ...\]"),
    (lambda p: np.savez(p, x=np.ones((10, 2)), y=np.arange(10) - 3), "negative class index -3"),
    (lambda p: p.write_bytes(b"not a zip"), "cannot read"),
])
def test_bad_files(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(BadInputError, match=match):
        load_train_data(str(path))


def test_bad_specs(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        load_train_data(str(tmp_path / "missing.npz"))
    with pytest.raises(BadInputError, match="has no function 'nope'"):
        load_train_data("json:nope")
    with pytest.raises(BadInputError, match="cannot read a int"):
        load_train_data(5)
    with pytest.raises(BadInputError, match="metric top1 needs labels"):
        load_train_data(_arrays()[0], metric="top1")
    x, y = _arrays()
    with pytest.raises(BadInputError, match="validation samples have shape"):
        load_train_data((x, y), val=(x[:, :3], y))
    with pytest.raises(BadInputError, match="too few"):
        load_train_data((x[:1], y[:1]))
    assert isinstance(load_train_data((x, y), val=(x[:10], y[:10])), TrainData)
