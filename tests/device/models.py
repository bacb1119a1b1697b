"""Models and vectors the device tests (and hwtests/) run: the shared MLPerf Tiny KWS and
AD int8 models with their real inputs, and edgekit's bundled digits CNN quantized here.
Loaded once per process."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

from tests.support.shared import shared_file


def require_firmware_tools():
    """Skip unless the firmware builder, its cross compiler and QEMU are here."""
    import shutil

    try:
        import edgekit.bundle.micro_package_writer  # noqa: F401
        import edgekit.firmware  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the model-slot firmware builder is not available ({exc})")
    for tool, apt in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                      ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: sudo apt-get install -y {apt}")


@functools.lru_cache(maxsize=None)
def slot_elf(target: str):
    require_firmware_tools()
    from edgekit.hil.rig import slot_firmware

    return slot_firmware(target)


@functools.lru_cache(maxsize=None)
def kws():
    """(graph, int8 vectors [1000, 49, 10, 1])"""
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(str(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")))
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return g, z["x_int8"]


@functools.lru_cache(maxsize=None)
def ad():
    """(graph, float32 windows [196, 640]; quantized with the input's parameters)"""
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(str(shared_file("models/mlperf-tiny/ad01_int8.tflite")))
    x = np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))
    return g, x


@functools.lru_cache(maxsize=None)
def digits(per_channel: bool = True):
    """(int8 graph of the bundled digits CNN, float32 NCHW samples [32, 1, 8, 8])"""
    from importlib import resources

    from edgekit.frontends import load_model
    from edgekit.quantize import quantize

    data = resources.files("edgekit") / "data"
    graph = load_model(str(data / "digits_cnn.onnx"))
    with np.load(str(data / "digits_samples.npz")) as z:
        x = z["x"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration samples: fine for a test model
        q = quantize(graph, x, per_channel=per_channel).graph
    q.name = "digits" if per_channel else "digits_pt"
    return q, x


MODELS = {"kws": kws, "ad": ad, "digits": digits}


def _image_float_graph(side: int, features_out: bool, seed: int):
    """A small float CNN on a side x side x 3 image (NHWC): conv 3x3 stride 2 (8 channels,
    RELU), depthwise 3x3; then either that feature map as the output (``features_out``:
    an output larger than a frame) or max pooling, a fully connected layer and
    softmax over 2 classes (a person detector's head)."""
    from edgekit.ir import DType, Graph, OpType, verify

    rng = np.random.default_rng(seed)
    h = side // 2
    g = Graph(f"image{side}")
    for name, shape in (("x", (1, side, side, 3)), ("c1", (1, h, h, 8)), ("d1", (1, h, h, 8)),
                        ("p1", (1, 1, 1, 8)), ("flat", (1, 8)), ("logits", (1, 2)),
                        ("probs", (1, 2))):
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("w1", (rng.normal(size=(8, 3, 3, 3)) * 0.3).astype(np.float32))
    g.add_const("b1", (rng.normal(size=8) * 0.1).astype(np.float32))
    g.add_const("wd", (rng.normal(size=(1, 3, 3, 8)) * 0.3).astype(np.float32))
    g.add_const("bd", (rng.normal(size=8) * 0.1).astype(np.float32))
    g.add_op(OpType.CONV_2D, ["x", "w1", "b1"], ["c1"],
             {"pads": (0, 0, 1, 1), "strides": (2, 2), "activation": "RELU"}, "conv")
    g.add_op(OpType.DEPTHWISE_CONV_2D, ["c1", "wd", "bd"], ["d1"], {"pads": (1, 1, 1, 1)}, "dw")
    if features_out:
        for t in ("p1", "flat", "logits", "probs"):
            g.tensors.pop(t)
        g.inputs, g.outputs = ["x"], ["d1"]
    else:
        g.add_const("wf", (rng.normal(size=(2, 8)) * 1.0).astype(np.float32))
        g.add_const("bf", (rng.normal(size=2) * 0.1).astype(np.float32))
        g.add_op(OpType.MAX_POOL_2D, ["d1"], ["p1"], {"kernel": (h, h), "strides": (h, h)}, "pool")
        g.add_op(OpType.RESHAPE, ["p1"], ["flat"], {"shape": (1, 8)}, "flatten")
        g.add_op(OpType.FULLY_CONNECTED, ["flat", "wf", "bf"], ["logits"], name="fc")
        g.add_op(OpType.SOFTMAX, ["logits"], ["probs"], name="softmax")
        g.inputs, g.outputs = ["x"], ["probs"]
    verify(g)
    return g


@functools.lru_cache(maxsize=None)
def image(side: int, features_out: bool = False):
    """(int8 graph, float32 NHWC images [8, side, side, 3]) of a CNN on side x side x 3
    images (32: CIFAR-10 sized, 3,072 B; 96: person-detection sized, 27,648 B), quantized
    here with edgekit's quantizer."""
    from edgekit.quantize import quantize

    rng = np.random.default_rng(side)
    # images of different contrast and brightness, so the class scores differ between them
    contrast = rng.uniform(0.1, 1.0, size=(8, 1, 1, 3))
    brightness = rng.uniform(-0.5, 0.5, size=(8, 1, 1, 3))
    x = (rng.uniform(-1.0, 1.0, size=(8, side, side, 3)) * contrast + brightness).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration samples: fine for a test model
        q = quantize(_image_float_graph(side, features_out, seed=side + features_out), x).graph
    q.name = f"image{side}" + ("_features" if features_out else "")
    return q, x
