"""The training loop: distillation on digits (real accuracies), determinism, resume after
a kill, NaN losses, QAT fake quantization in edgekit's int8 scheme."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")

from edgekit.compress import distill as kd  # noqa: E402
from edgekit.compress.data import TrainData  # noqa: E402
from edgekit.compress.digits import load_digits_data, train_digits_teacher  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from tests.compress import models as tm  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    return load_digits_data(0)


@pytest.fixture(scope="module")
def teacher(digits):
    model, _ = train_digits_teacher(seed=0, epochs=6, width=16, data=digits)
    return model


def test_teacher_is_a_good_digits_classifier(teacher, digits):
    acc = kd.evaluate(teacher, digits.x_test, digits.y_test, "top1")
    assert acc >= 0.95


def test_distillation_trains_a_small_student_close_to_the_teacher(teacher, digits):
    student = tm.tiny_student()  # ends in softmax: distillation uses its log-probabilities
    untrained = kd.evaluate(student, digits.x_test, digits.y_test, "top1")
    t_acc = kd.evaluate(teacher, digits.x_test, digits.y_test, "top1")
    r = kd.train(student, digits, kd.TrainConfig(epochs=12, lr=3e-3, seed=0), teacher=teacher)
    acc = kd.evaluate(student, digits.x_test, digits.y_test, "top1")
    assert untrained < 0.2
    assert acc >= 0.9 and acc > untrained + 0.7
    assert acc >= t_acc - 0.06, (acc, t_acc)
    assert r.best_val >= r.start_val and len(r.history) >= 1
    # the distillation term is active: the student's outputs move toward the teacher's
    s_out = kd.predict(student, digits.x_test)
    t_out = torch.softmax(torch.from_numpy(kd.predict(teacher, digits.x_test)), 1).numpy()
    assert (s_out.argmax(1) == t_out.argmax(1)).mean() >= 0.9


def test_feature_distillation_with_adapters(teacher, digits):
    student = copy.deepcopy(teacher)
    from edgekit.compress.prune import prune

    student, _ = prune(student, (torch.from_numpy(digits.x_train[:1]),), 0.5)
    cfg = kd.TrainConfig(epochs=2, lr=1e-3, seed=0, feature_layers=("conv2",), feature_weight=1.0)
    r = kd.train(student, digits, cfg, teacher=teacher)
    assert len(r.history) == 2 and np.isfinite(r.history[-1]["loss"])
    assert kd.evaluate(student, digits.x_val, digits.y_val, "top1") > 0.8


def test_same_seed_same_weights(digits):
    small = TrainData(digits.x_train[:300], digits.y_train[:300], digits.x_val[:100], digits.y_val[:100])
    outs = []
    for _ in range(2):
        m = tm.digits_small()
        kd.train(m, small, kd.TrainConfig(epochs=2, seed=3))
        outs.append(m.state_dict())
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
    m = tm.digits_small()
    kd.train(m, small, kd.TrainConfig(epochs=2, seed=4))
    assert not all(torch.equal(outs[0][k], m.state_dict()[k]) for k in outs[0])


def test_huge_learning_rate_stops_with_a_clear_error(digits):
    m = tm.conv_bn()
    with pytest.raises(kd.TrainingDiverged, match=r"loss (became (nan|inf)|exploded).*lower the learning rate"):
        kd.train(m, digits, kd.TrainConfig(epochs=3, lr=1e9, seed=0))
    assert issubclass(kd.TrainingDiverged, BadInputError)


def test_shape_mismatch_between_model_and_data(digits):
    bad = TrainData(np.zeros((20, 3, 8, 8), np.float32), np.zeros(20, np.int64),
                    np.zeros((5, 3, 8, 8), np.float32), np.zeros(5, np.int64))
    with pytest.raises(BadInputError, match=r"does not accept the data: samples of shape \[3, 8, 8\]"):
        kd.check_compatible(tm.conv_bn(), bad)
    labels = TrainData(digits.x_train, digits.y_train + 5, digits.x_val, digits.y_val)
    with pytest.raises(BadInputError, match="10 outputs but the labels go up to 14"):
        kd.check_compatible(tm.conv_bn(), labels)


_RESUME_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from edgekit.compress import distill as kd
    from edgekit.compress.digits import load_digits_data
    from tests.compress import models as tm
    ckpt, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    data = load_digits_data(0)
    model = tm.digits_small()
    teacher = tm.conv_bn()
    r = kd.train(model, data, kd.TrainConfig(epochs=5, lr=2e-3, seed=7, patience=50), teacher=None,
                 checkpoint=ckpt, key="resume-test", on_epoch_end=lambda e, row: time.sleep(delay))
    torch.save({"state": model.state_dict(), "resumed_from": r.resumed_from,
                "epochs": [h["epoch"] for h in r.history]}, out)
""")


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", _RESUME_SCRIPT] + [str(a) for a in args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path):
    ckpt = tmp_path / "run.pt"
    p = _run([ckpt, tmp_path / "never.pt", 3.0])
    t0 = time.time()
    while not ckpt.exists():
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() - t0 < 90, "no checkpoint after 90 s"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert not (tmp_path / "never.pt").exists()
    done = kd.load_checkpoint(ckpt, "resume-test")
    assert done is not None and 1 <= done["epoch"] < 5 and not done["done"]

    resumed = _run([ckpt, tmp_path / "resumed.pt", 0.0])
    straight = _run([tmp_path / "straight_ckpt.pt", tmp_path / "straight.pt", 0.0])
    for proc in (resumed, straight):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    a = torch.load(tmp_path / "resumed.pt", weights_only=False)
    b = torch.load(tmp_path / "straight.pt", weights_only=False)
    assert a["resumed_from"] == done["epoch"] and b["resumed_from"] == 0
    assert a["epochs"] == b["epochs"] == [1, 2, 3, 4, 5]  # the history continues from the checkpoint
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in b["state"])
    # a finished checkpoint returns at once with the best weights
    m = tm.digits_small()
    r = kd.train(m, load_digits_data(0), kd.TrainConfig(epochs=5, lr=2e-3, seed=7, patience=50),
                 checkpoint=ckpt, key="resume-test")
    assert r.resumed_from == 5 and all(torch.equal(m.state_dict()[k], a["state"][k]) for k in a["state"])


def test_checkpoint_of_another_config_is_not_resumed(tmp_path, digits):
    small = TrainData(digits.x_train[:200], digits.y_train[:200], digits.x_val[:50], digits.y_val[:50])
    ck = tmp_path / "c.pt"
    kd.train(tm.digits_small(), small, kd.TrainConfig(epochs=1, seed=0), checkpoint=ck, key="a")
    r = kd.train(tm.digits_small(), small, kd.TrainConfig(epochs=1, seed=0), checkpoint=ck, key="b")
    assert r.resumed_from == 0
    ck.write_bytes(b"torn file")
    r = kd.train(tm.digits_small(), small, kd.TrainConfig(epochs=1, seed=0), checkpoint=ck, key="b")
    assert r.resumed_from == 0 and kd.load_checkpoint(ck, "b")["done"]


def test_qat_fake_quant_matches_edgekit_int8(digits):
    from edgekit.compress.qat import fake_quant_weight, fold_batchnorm, prepare_qat
    from edgekit.quantize import scheme

    w = torch.randn(6, 3, 3, 3)
    fq = fake_quant_weight(w).detach().numpy()
    scales = scheme.weight_scales(w.numpy(), 0)
    ref = scheme.dequantize_weights(scheme.quantize_weights(w.numpy(), scales, 0), scales, 0)
    np.testing.assert_allclose(fq, ref, rtol=1e-6, atol=1e-7)
    # straight-through: the gradient of the fake-quantized weight is the identity
    wg = w.clone().requires_grad_()
    fake_quant_weight(wg).sum().backward()
    assert torch.equal(wg.grad, torch.ones_like(w))

    m = tm.conv_bn()
    ex = (torch.from_numpy(digits.x_train[:1]),)
    x = torch.from_numpy(digits.x_train[:16])
    with torch.no_grad():
        ref_out = m(x)
    assert fold_batchnorm(copy.deepcopy(m), ex) == 1
    folded = copy.deepcopy(m)
    fold_batchnorm(folded, ex)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref_out, rtol=1e-4, atol=1e-5)
    assert isinstance(folded.bn1, torch.nn.Identity)

    handle = prepare_qat(m, ex, calib_x=digits.x_train[:200])
    kd.train(m, TrainData(digits.x_train[:300], digits.y_train[:300], digits.x_val, digits.y_val),
             kd.TrainConfig(epochs=1, lr=1e-4, seed=0))
    handle.finish()
    # baked weights sit on edgekit's int8 grid
    w = m.conv2.weight.detach().numpy()
    s = scheme.weight_scales(w, 0)
    q = w / s.reshape(-1, 1, 1, 1)
    assert np.abs(q - np.round(q)).max() < 1e-3
    assert not torch.nn.utils.parametrize.is_parametrized(m.conv2)


def test_qat_ranges_travel_with_the_weights(digits, tmp_path):
    from edgekit.compress.qat import RANGES_ATTR, prepare_qat

    m = tm.conv_bn()
    handle = prepare_qat(m, (torch.from_numpy(digits.x_train[:1]),), calib_x=digits.x_train[:100])
    sd = m.state_dict()
    assert f"{RANGES_ATTR}.ranges" in sd and torch.isfinite(sd[f"{RANGES_ATTR}.ranges"]).all()
    small = TrainData(digits.x_train[:200], digits.y_train[:200], digits.x_val[:50], digits.y_val[:50])
    kd.train(m, small, kd.TrainConfig(epochs=1, lr=1e-4, seed=0), checkpoint=tmp_path / "q.pt", key="q")
    saved = kd.load_checkpoint(tmp_path / "q.pt", "q")["best"][f"{RANGES_ATTR}.ranges"]  # m holds the best
    assert torch.equal(saved, m.state_dict()[f"{RANGES_ATTR}.ranges"])
    handle.finish()
    assert not any(RANGES_ATTR in k for k in m.state_dict())
