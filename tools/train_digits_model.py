"""Train edgekit's bundled demo model: a small CNN on scikit-learn's 8x8 digits.

Writes ``edgekit/data/digits_cnn.onnx`` (float, NCHW, opset 17) and
``edgekit/data/digits_samples.npz`` (held-out samples with labels). The ONNX graph
is written with ``onnx.helper`` from the trained weights, so no exporter is needed.

    .venv/bin/python tools/train_digits_model.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

DATA = Path(__file__).resolve().parents[1] / "edgekit" / "data"


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def load_split(seed: int = 0):
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]  # [N,1,8,8] in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def train(seed: int = 0, epochs: int = 40) -> tuple[DigitsCNN, float, tuple]:
    torch.manual_seed(seed)
    xtr, xte, ytr, yte = load_split(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean()
    return model, float(acc), (xte, yte)


def to_onnx(model: DigitsCNN) -> onnx.ModelProto:
    p = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()
         if v.dtype == torch.float32}
    inits = [numpy_helper.from_array(v, name=k) for k, v in p.items()]
    inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), name="flat_shape"))
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["b1"], name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Reshape", ["r2", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tools")
    m.doc_string = "edgekit demo: 8x8 handwritten digits CNN (trained by tools/train_digits_model.py)"
    onnx.checker.check_model(m)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--samples", type=int, default=32, help="held-out samples to ship")
    args = ap.parse_args()
    model, acc, (xte, yte) = train(args.seed, args.epochs)
    m = to_onnx(model)
    DATA.mkdir(parents=True, exist_ok=True)
    onnx.save(m, DATA / "digits_cnn.onnx")
    np.savez_compressed(DATA / "digits_samples.npz", x=xte[: args.samples], y=yte[: args.samples])
    # Check the written graph against torch on the shipped samples.
    import onnxruntime as ort
    sess = ort.InferenceSession(str(DATA / "digits_cnn.onnx"))
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(xte[:8])), 1).numpy()
    got = np.concatenate([sess.run(None, {"input": xte[i:i + 1]})[0] for i in range(8)])
    assert np.allclose(got, ref, atol=1e-5), np.abs(got - ref).max()
    print(f"held-out accuracy {acc:.4f} on {len(yte)} digits; wrote {DATA}/digits_cnn.onnx")


if __name__ == "__main__":
    main()
