"""The digits compression demo: scikit-learn's 8x8 handwritten digits (bundled with
scikit-learn, no download), a CNN teacher wide enough that pruning half its channels
matters, and the whole compress pipeline on it.

The split is the one of ``tools/train_digits_model.py``: 25% held out as the test set
(stratified, ``random_state=seed``); 15% of the rest is the validation split of early
stopping.

    teacher, data = train_digits_teacher(seed=0)
    result = demo_compress("out/digits", seed=0)
    result.accuracies, result.int8_graph
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from edgekit.compress.data import TrainData
from edgekit.errors import BadInputError, EdgekitError

VAL_FRACTION = 0.15


def load_digits_data(seed: int = 0) -> TrainData:
    """Digits as [N, 1, 8, 8] floats in [0, 1]: train / val / test (test = the tools split)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise BadInputError("the digits demo needs scikit-learn: pip install 'edgekit[demo]'") from None
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    xtr, xva, ytr, yva = train_test_split(xtr, ytr, test_size=VAL_FRACTION, random_state=seed, stratify=ytr)
    return TrainData(xtr, ytr, xva, yva, xte, yte, metric="top1", source="sklearn digits")


def digits_teacher_model(width: int = 32):
    """conv 3x3 (w) + BN + ReLU -> conv 3x3/2 (2w) + BN + ReLU -> conv 3x3 (2w) + BN + ReLU
    -> flatten -> linear 10 (logits). About 63k parameters and 0.9M MACs at width 32."""
    import torch
    from torch import nn

    class DigitsTeacher(nn.Module):
        input_shape = (1, 1, 8, 8)

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(2 * width)
            self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(2 * width)
            self.drop = nn.Dropout(0.2)
            self.fc = nn.Linear(2 * width * 4 * 4, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            x = torch.relu(self.bn3(self.conv3(x)))
            return self.fc(self.drop(x.flatten(1)))

    return DigitsTeacher()


def train_digits_teacher(seed: int = 0, epochs: int = 25, width: int = 32, data: TrainData | None = None,
                         progress=None):
    """-> (trained teacher in eval mode, TrainData). Adam 3e-3, early stopping on val."""
    import torch

    from edgekit.compress import distill as kd

    data = data if data is not None else load_digits_data(seed)
    torch.manual_seed(seed)
    model = digits_teacher_model(width)
    kd.train(model, data, kd.TrainConfig(epochs=epochs, lr=3e-3, batch_size=64, patience=10, seed=seed),
             label="teacher", progress=progress)
    model.eval()
    return model, data


def demo_compress(out_dir, seed: int = 0, *, ratio: float = 0.5, epochs: int = 20, teacher_epochs: int = 25,
                  target: str | None = None, qat: bool = False, progress=None, console=None):
    """Train the digits teacher, prune ``ratio`` of its channels (0.5 -> about 75% fewer MACs)
    in two steps with fine-tuning between them, fine-tune and distill, quantize to int8.

    Returns the :class:`~edgekit.compress.pipeline.CompressResult`: ``result.accuracies``
    (teacher, pruned, distilled, int8 on the 450 held-out test digits), ``result.rows``
    (size, MACs, flash, arena, estimated cycles), ``result.int8_graph`` (edgekit int8 IR,
    ready for compile), the torch models and ``result.data`` (the splits; test = held out).
    """
    from edgekit.compress.pipeline import compress

    out = Path(out_dir)
    teacher, data = train_digits_teacher(seed=seed, epochs=teacher_epochs, progress=progress)
    result = compress(copy.deepcopy(teacher), data, ratio=ratio, target=target, steps=2, step_epochs=3,
                      epochs=epochs, lr=2e-3, distill=True, qat=qat, out_dir=out, seed=seed, resume=False,
                      progress=progress, console=console)
    if result.prune_info.get("macs_reduction", 0) < 0.5:
        raise EdgekitError(f"the demo pruned only {result.prune_info['macs_reduction']:.0%} of the MACs "
                           f"(ratio {ratio}); it needs at least 50%")
    return result
