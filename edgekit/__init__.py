"""edgekit: a TinyML deployment compiler and runtime.

The public API is small; each name comes from the pipeline stage that owns it::

    import edgekit
    graph = edgekit.load_model("model.tflite")      # frontends -> IR
    outputs = edgekit.run(graph, {"input": x})      # numpy reference interpreter

Heavy libraries (torch, onnx, LiteRT) are imported only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Graph", "Interpreter", "load_model", "load_target", "run", "save_ir", "load_ir", "verify"]


def __getattr__(name: str):
    # Lazy: `import edgekit` stays cheap on a device that only runs models.
    if name == "load_model":
        from edgekit.frontends import load_model
        return load_model
    if name in ("Interpreter", "run"):
        from edgekit.reference import interpreter
        return getattr(interpreter, name)
    if name == "Graph":
        from edgekit.ir import Graph
        return Graph
    if name == "verify":
        from edgekit.ir import verify
        return verify
    if name == "save_ir":
        from edgekit.ir import save
        return save
    if name == "load_ir":
        from edgekit.ir import load
        return load
    if name == "load_target":
        from edgekit.targets import load_target
        return load_target
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
