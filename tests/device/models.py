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
        import edgekit.bundle.micro_package  # noqa: F401
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
