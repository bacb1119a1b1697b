"""The model zoo: small real architectures users bring (MobileNetV2/V3, recurrent and
attention keyword spotters, a detector head, a 1-D conv network, the MLPerf streaming
wake-word model), built with random or quickly trained weights and no downloads.

Each model is a module of this package (named in ``ZOO``) with three functions:

- ``float_graph() -> Graph``: the model built in its framework (torch, ONNX or Keras)
  and imported through edgekit's own frontend;
- ``int8_graph() -> Graph``: that graph quantized to int8 by edgekit's quantizer on the
  model's calibration inputs;
- ``inputs(n: int) -> numpy.ndarray``: ``n`` deterministic float inputs.

The host tests run every zoo model through the reference interpreter against TFLM;
``hwtests/test_zoo_on_boards.py`` flashes each one to the emulated boards.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Names of the zoo modules, in the order reports list them.
ZOO: tuple[str, ...] = ("keyword_transformer", "lstm_kws", "gru_kws", "detector_head", "accel_conv1d",
                        "streaming_wakeword", "split_heads",
                        "mobilenet_v2", "mobilenet_v3_small")


def load(name: str) -> ModuleType:
    if name not in ZOO:
        raise KeyError(f"no zoo model {name!r}; the zoo has {', '.join(ZOO)}")
    return importlib.import_module(f"tests.zoo.{name}")
