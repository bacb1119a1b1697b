"""The device runtime: open a bundle, check it, run it on its engine (docs/runtime.md).

    import edgekit.runtime
    with edgekit.runtime.open("kws.ekb", target="rpi4") as model:
        y = model.run({"input_1": x})            # {output name: array}
        model.stats()                            # latency of the calls so far
        model.self_test()                        # replays the bundle's golden vectors

It imports no model compiler (no torch, TensorFlow, onnx or TVM, no edgekit frontend,
quantizer or backend): a device installs edgekit with one engine's extra. Python 3.8
syntax and numpy 1.x or 2.x, for the system Pythons of the board images.
"""

from __future__ import annotations

import time

from edgekit.bundle.bundle_format import BundleError
from edgekit.bundle.bundle_reader import Bundle, verify
from edgekit.runtime.engines import EngineUnavailableError, engine_names, load_engine
from edgekit.runtime.model import Model, SelfTestResult, TensorSpec

__all__ = ["Bundle", "BundleError", "EngineUnavailableError", "Model", "SelfTestResult", "TensorSpec", "engine_names",
           "open"]


def open(bundle, target: str | None = None, engine: str | None = None,  # noqa: A001 - the API's verb
         engine_options: dict | None = None) -> Model:
    """Read and verify ``bundle`` (a folder, an ``.ekb`` file or a ``Bundle``), refusing
    it unless it is for ``target`` / ``engine`` when given, and open it on its engine.
    ``engine_options``: passed to the engine (e.g. ``{"op_resolver": "reference"}`` for
    LiteRT's reference kernels, ``{"graph_optimization": "disable"}`` for onnxruntime's
    exact QDQ semantics). ``engine="serial"`` runs an MCU bundle on an attached board
    (``engine_options={"port": "/dev/ttyACM0"}``, docs/runtime.md). ``Model.open_seconds``
    is the time this took."""
    t0 = time.perf_counter()
    # The serial engine takes the MCU bundles built for the firmware's engine ("micro").
    on_board = engine == "serial"
    b = verify(bundle, target=target, engine=None if on_board else engine)
    mcu = b.manifest.get("target_family") == "mcu"
    if mcu and not on_board:
        raise BundleError(f"bundle {b.path} is for microcontroller target {b.target!r}: its model package "
                          f"({b.payload('model')}) runs on the board's firmware (edgekit flash), not here")
    if on_board and not mcu:
        raise BundleError(f"bundle {b.path} is for {b.target!r} (engine {b.engine!r}): the serial engine runs "
                          "bundles compiled for a microcontroller target on an attached board")
    eng = load_engine("serial" if on_board else b.engine)(b, dict(engine_options or {}))
    model = Model(b, eng)
    model.open_seconds = time.perf_counter() - t0
    return model
