"""``compress`` end to end: outputs (.pt2, ONNX, int8 IR, report), accuracies, memory
budgets, resume of an interrupted run, QAT, MSE models and every bad-input path; and
the ``edgekit compress`` command with its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.ort_oracle import exact_session

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")

from click.testing import CliRunner  # noqa: E402

from edgekit.cli.main import _register, cli  # noqa: E402
from edgekit.compress import compress  # noqa: E402
from edgekit.compress import distill as kd  # noqa: E402
from edgekit.compress import prune as pr  # noqa: E402
from edgekit.compress.digits import load_digits_data  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from tests.compress import models as tm  # noqa: E402

_register()
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
MODELS = str(Path(__file__).with_name("models.py"))
CONV = f"{MODELS}:conv_bn"
FAST = dict(epochs=2, steps=2, step_epochs=1, patience=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Digits as .npz files and a conv_bn teacher trained on them (state dict file)."""
    d = tmp_path_factory.mktemp("compress_data")
    data = load_digits_data(0)
    np.savez(d / "train.npz", x=np.concatenate([data.x_train, data.x_val]),
             y=np.concatenate([data.y_train, data.y_val]))
    np.savez(d / "test.npz", x=data.x_test, y=data.y_test)
    model = tm.conv_bn()
    kd.train(model, data, kd.TrainConfig(epochs=6, lr=3e-3, seed=0))
    torch.save(model.state_dict(), d / "teacher.pt")
    bad = d / "bad"
    bad.mkdir()
    np.savez(bad / "rgb.npz", x=np.zeros((40, 3, 8, 8), np.float32), y=np.arange(40) % 10)
    x_nan = data.x_train[:40].copy()
    x_nan[3, 0, 2, 2] = np.nan
    np.savez(bad / "nan_x.npz", x=x_nan, y=data.y_train[:40])
    y_nan = data.y_train[:40].astype(np.float32)
    y_nan[7] = np.nan
    np.savez(bad / "nan_y.npz", x=data.x_train[:40], y=y_nan)
    return {"dir": d, "train": str(d / "train.npz"), "test": str(d / "test.npz"), "sd": str(d / "teacher.pt"),
            "rgb": str(bad / "rgb.npz"), "nan_x": str(bad / "nan_x.npz"), "nan_y": str(bad / "nan_y.npz")}


@pytest.fixture(scope="module")
def result(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("compressed")
    return compress(CONV, files["train"], test=files["test"], state_dict=files["sd"], ratio=0.5, out_dir=out,
                    seed=0, **FAST)


def test_accuracies_and_sizes(result):
    acc = result.accuracies
    assert result.metric == "top1" and result.eval_split == "test"
    assert acc["teacher"] >= 0.9
    assert acc["pruned"] >= 0.85 and acc["distilled"] >= 0.85
    assert abs(acc["int8"] - acc["student"]) <= 0.03  # int8 stays within 3 points of its fp32 model
    assert {"int8_pruned", "int8_distilled"} <= set(acc)
    assert result.prune_info["macs_reduction"] >= 0.5
    assert result.prune_info["channels_after"] == {"bn1|conv1": 8, "conv2": 16}
    teacher, int8 = result.row("teacher"), result.row("int8")
    assert teacher.precision == "fp32" and int8.precision == "int8"
    assert int8.macs < 0.5 * teacher.macs and int8.params < teacher.params
    assert int8.flash_bytes * 3 < teacher.flash_bytes
    assert int8.arena_bytes < teacher.arena_bytes
    assert int8.est_cycles == round(int8.macs * 2.7) and teacher.est_cycles is None
    assert result.chosen in ("pruned", "distilled")


def test_output_files(result):
    from edgekit.frontends.torch_importer import load_torch
    from edgekit.ir import load, verify
    from edgekit.reference.interpreter import Interpreter

    f = result.files
    doc = json.loads(Path(f["report_json"]).read_text())
    assert [r["name"] for r in doc["rows"]] == ["teacher", "pruned", "distilled", "int8"]
    assert doc["accuracies"]["teacher"] == result.accuracies["teacher"]
    assert "<svg" in Path(f["report_html"]).read_text()
    x = torch.from_numpy(result.data.x_test[:20])
    with torch.no_grad():
        ref = result.student(x).numpy()
    ep = torch.export.load(f["pt2"])  # exported with batch 1, as it deploys
    with torch.no_grad():
        got = np.concatenate([ep.module()(x[i:i + 1]).numpy() for i in range(len(x))])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    g = load_torch(f["pt2"])
    np.testing.assert_allclose(Interpreter(g).run([x.numpy()], layout="source")[g.outputs[0]], ref,
                               rtol=1e-5, atol=1e-5)
    import onnx

    onnx.checker.check_model(onnx.load(f["onnx"]))
    sess = exact_session(f["onnx"])
    got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1].numpy()})[0]
                          for i in range(len(x))])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    q = load(f["int8_ir"])
    verify(q)
    assert q.input_tensors()[0].dtype.value == "int8"
    assert json.loads(Path(f["pruning"]).read_text())["history"]


def test_interrupted_run_resumes_to_the_same_result(files, tmp_path):
    calls = []

    def interrupt(epoch, row):
        calls.append(epoch)
        if len(calls) == 2:  # after the prune step's fine-tune and the first epoch of the fine-tune stage
            raise KeyboardInterrupt

    kw = dict(test=files["test"], state_dict=files["sd"], ratio=0.5, seed=0, **FAST)
    with pytest.raises(KeyboardInterrupt):
        compress(CONV, files["train"], out_dir=tmp_path / "a", on_epoch_end=interrupt, **kw)
    assert (tmp_path / "a" / "checkpoints" / "finetune.pt").exists()
    resumed = compress(CONV, files["train"], out_dir=tmp_path / "a", **kw)
    straight = compress(CONV, files["train"], out_dir=tmp_path / "b", **kw)
    assert resumed.resumed and not straight.resumed
    assert resumed.accuracies == straight.accuracies
    assert resumed.training["finetune"]["resumed_from"] == 1
    sa, sb = resumed.student.state_dict(), straight.student.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sb)
    # a different configuration does not resume; --resume then says why
    with pytest.raises(BadInputError, match=r"another configuration \(differs in: epochs\)"):
        compress(CONV, files["train"], out_dir=tmp_path / "a", resume=True, **{**kw, "epochs": 3})
    with pytest.raises(BadInputError, match="no checkpoint"):
        compress(CONV, files["train"], out_dir=tmp_path / "c", resume=True, **kw)


def test_sram_budget_of_a_target(files, tmp_path):
    teacher = tm.conv_bn()
    teacher.load_state_dict(torch.load(files["sd"]))
    ex = (torch.zeros(1, 1, 8, 8),)
    arena = pr.int8_costs(teacher, ex, ("dsp", "fpu")).arena_bytes
    budget = int(arena * 0.6)
    r = compress(CONV, files["train"], state_dict=files["sd"], target="cortex-m4", sram=budget, out_dir=tmp_path,
                 epochs=1, steps=1, distill=False)
    assert r.target_name == "cortex-m4"
    assert r.row("int8").arena_bytes <= budget < arena
    assert any("fits" in n and "sram budget" in n for n in r.notes)
    assert r.accuracies["int8"] > 0.5


def test_user_student_feature_loss_qat_and_softmax_outputs(files, tmp_path):
    r = compress(CONV, files["train"], state_dict=files["sd"], student=f"{MODELS}:tiny_student", qat=True,
                 out_dir=tmp_path, epochs=2, qat_epochs=1, lr=5e-3, feature_layers=("conv1",), feature_weight=0.5)
    assert r.training["distill"]["history"] and r.training["qat"]["history"]
    assert not r.prune_info and r.rows[1].name == "student"
    assert [x.name for x in r.rows][-2:] == ["int8", "int8 QAT"]
    assert r.accuracies["distilled"] > 0.6 and r.accuracies["qat_int8"] > 0.6
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in r.student.modules())


def test_mse_metric_for_an_autoencoder(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 4)).astype(np.float32)
    x = np.tanh(z @ rng.standard_normal((4, 30)).astype(np.float32))
    path = tmp_path / "ae.npz"
    np.savez(path, x=x)  # no y: the target is the input
    src = tmp_path / "ae.py"
    src.write_text("import torch.nn as nn\n"
                   "def build():\n"
                   "    return nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(),\n"
                   "                         nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 30))\n")
    r = compress(f"{src}:build", str(path), ratio=0.25, out_dir=tmp_path / "out", epochs=3, steps=1)
    assert r.metric == "mse"
    assert all(v is None or v >= 0 for v in r.accuracies.values())
    assert r.prune_info["params_after"] < r.prune_info["params_before"]
    assert r.row("int8").metric is not None


@pytest.mark.parametrize("case, match", [
    ("rgb", r"does not accept the data: samples of shape \[3, 8, 8\]"),
    ("nan_x", r"x holds 1 NaN/inf values \(first in sample 3\)"),
    ("nan_y", r"labels y hold 1 NaN/inf values \(first at sample 7\)"),
])
def test_bad_data(files, tmp_path, case, match):
    with pytest.raises(BadInputError, match=match):
        compress(CONV, files[case], ratio=0.5, out_dir=tmp_path, **FAST)


@pytest.mark.parametrize("spec, kw, match", [
    (CONV, {"ratio": 1.0}, "would remove every channel"),
    (CONV, {"ratio": 0.99}, r"whole layers 'conv2' \(32 channels\), 'conv1' \(16 channels\)"),
    (CONV, {"ratio": 0.5, "target_macs": 1000}, "give one pruning goal"),
    (CONV, {}, "nothing to compress"),
    (CONV, {"ratio": 0.5, "importance": "bogus"}, "unknown importance"),
    (CONV, {"ratio": 0.5, "lr": 1e9}, r"loss (became|exploded)"),
    (CONV, {"target_params": 5}, "cannot reach the target"),
    ("tests/compress/nope.py:conv_bn", {"ratio": 0.5}, "no such file"),
    (f"{MODELS}:no_such_factory", {"ratio": 0.5}, "no factory function named 'no_such_factory'"),
    ("model.txt", {"ratio": 0.5}, "not a PyTorch model spec"),
])
def test_bad_options_and_specs(files, tmp_path, spec, kw, match):
    with pytest.raises(BadInputError, match=match):
        compress(spec, files["train"], out_dir=tmp_path, **{**FAST, **kw})


def test_exported_program_teaches_but_cannot_be_pruned(files, tmp_path):
    m = tm.conv_bn()
    m.load_state_dict(torch.load(files["sd"]))
    pt2 = tmp_path / "teacher.pt2"
    torch.export.save(torch.export.export(m, (torch.zeros(1, 1, 8, 8),)), str(pt2))
    with pytest.raises(BadInputError, match="torch.export program.*--student"):
        compress(str(pt2), files["train"], ratio=0.5, out_dir=tmp_path / "o", **FAST)
    r = compress(str(pt2), files["train"], student=f"{MODELS}:tiny_student", out_dir=tmp_path / "s", epochs=1,
                 lr=5e-3)
    assert r.accuracies["teacher"] >= 0.9 and r.accuracies["distilled"] > 0.3


# -- the command line ------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


def test_cli_compress_to_a_mac_target(files, tmp_path):
    r = invoke("compress", CONV, "--state-dict", files["sd"], "--data", files["train"], "--test", files["test"],
               "--macs", "60k", "--epochs", "2", "--steps", "1", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["prune"]["goal"] == "macs" and doc["prune"]["macs_after"] <= 60_000
    assert doc["accuracies"]["int8"] > 0.8
    assert (tmp_path / "model.pt2").exists() and (tmp_path / "model.onnx").exists()
    r = invoke("compress", CONV, "--state-dict", files["sd"], "--data", files["train"], "--layer-ratio", "conv2=0.5",
               "--epochs", "2", "--steps", "1", "--out", tmp_path / "t", "--no-distill")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "int8" in text and "cycles" in text and "model.pt2" in text
    doc = json.loads((tmp_path / "t" / "report.json").read_text())
    assert doc["prune"]["channels_after"] == {"bn1|conv1": 16, "conv2": 16}


@pytest.mark.parametrize("args, match", [
    (["--ratio", "1.0"], "would remove every channel"),
    (["--ratio", "0.5", "--lr", "1e9"], "lower the learning rate"),
    (["--ratio", "0.5", "--macs", "10k"], "give one of --ratio, --macs, --params"),
    (["--macs", "lots"], "expected a count like 250000"),
    ([], "say how small"),
    (["--ratio", "0.5", "--resume"], "no checkpoint"),
    (["--ratio", "0.5", "--data", "RGB"], "does not accept the data"),
    (["--ratio", "0.5", "--data", "NANX"], "NaN/inf values"),
    (["--layer-ratio", "conv9=0.5"], "'conv9': not a prunable layer"),
    (["--layer-ratio", "conv1"], "expected LAYER=RATIO"),
])
def test_cli_errors_exit_2(files, tmp_path, args, match):
    args = [files["rgb"] if a == "RGB" else files["nan_x"] if a == "NANX" else a for a in args]
    base = ["compress", CONV, "--data", files["train"], "--epochs", "1", "--steps", "1", "--out", tmp_path]
    r = CliRunner().invoke(cli, [str(a) for a in base + args], env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    assert match in " ".join(r.output.split())
    assert "Traceback" not in r.output


def test_cli_bad_model_spec_exit_2(files, tmp_path):
    r = CliRunner().invoke(cli, ["compress", "nothing.py", "--data", files["train"], "--ratio", "0.5",
                                 "--out", str(tmp_path)], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "name the factory" in " ".join(r.output.split())


def test_digits_demo_pieces(tmp_path):
    from edgekit.compress.digits import demo_compress
    from edgekit.ir import verify

    r = demo_compress(tmp_path, seed=0, epochs=3, teacher_epochs=4)
    assert r.prune_info["macs_reduction"] >= 0.5
    assert len(r.data.x_test) == 450 and r.eval_split == "test"  # the held-out split of tools/train_digits_model.py
    verify(r.int8_graph)
    assert r.int8_graph.input_tensors()[0].dtype.value == "int8"
    assert {"teacher", "pruned", "distilled", "int8"} <= set(r.accuracies)
    assert r.accuracies["teacher"] > 0.9 and r.accuracies["int8"] > 0.9
    assert r.row("teacher").flash_bytes >= 4 * r.row("int8").flash_bytes
