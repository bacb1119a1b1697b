"""Model compression before quantization: structured pruning (Torch-Pruning DepGraph),
knowledge distillation, quantization-aware fine-tuning, and a report of what it bought.

    from edgekit.compress import compress
    result = compress("model.py:build", "train.npz", ratio=0.5, out_dir="out")
    result.accuracies, result.int8_graph, result.files

- ``data``: training / validation / test arrays from .npz, module:function or torch datasets;
- ``prune``: channel pruning by ratio or to a parameter / MAC / flash / SRAM target;
- ``distill``: the training loop (fine-tuning and distillation, checkpoints, resume);
- ``qat``: fake quantization in edgekit's int8 scheme;
- ``pipeline``: ``compress`` and its report; ``digits``: the bundled demo.

torch and torch-pruning are imported only when these functions run.
"""

from edgekit.compress.data import TrainData, load_train_data
from edgekit.compress.distill import TrainConfig, TrainingDiverged, TrainResult, train
from edgekit.compress.pipeline import CompressResult, compress

__all__ = ["CompressResult", "TrainConfig", "TrainData", "TrainResult", "TrainingDiverged", "compress",
           "load_train_data", "train"]
