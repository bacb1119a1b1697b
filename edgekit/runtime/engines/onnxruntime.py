"""The onnxruntime engine: runs a bundle's ``.onnx`` (float, or QDQ for int8) on the CPU
execution provider.

Engine options: ``graph_optimization``: "all" (onnxruntime's default: fused, CPU-specific
int8 kernels), "basic", or "disable" (each QDQ op as written: the same result on every
CPU, what tests compare against; ../shared notes); ``num_threads``: intra-op threads.
"""

from __future__ import annotations

from edgekit.errors import BadInputError
from edgekit.runtime.engines import Engine, EngineUnavailableError, check_io

LEVELS = {"all": "ORT_ENABLE_ALL", "basic": "ORT_ENABLE_BASIC", "disable": "ORT_DISABLE_ALL"}
# onnxruntime's element type names -> numpy dtype names
_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
          "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(int16)": "int16"}


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    options = ("graph_optimization", "num_threads")

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineUnavailableError("the onnxruntime engine needs onnxruntime: "
                                         "pip install 'edgekit[runtime-onnxruntime]'") \
                from None
        level = self.engine_options.get("graph_optimization", "all")
        if level not in LEVELS:
            raise BadInputError(f"engine onnxruntime: graph_optimization {level!r} is not one of "
                                f"{', '.join(LEVELS)}")
        threads = self.engine_options.get("num_threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BadInputError(f"engine onnxruntime: num_threads must be a positive integer, not {threads!r}")
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
        so.log_severity_level = 3
        if threads is not None:
            so.intra_op_num_threads = threads
        self.level = level
        self.version = ort.__version__
        try:
            sess = ort.InferenceSession(bundle.read(bundle.payload("model")), so,
                                        providers=self.execution_providers(ort))
        except Exception as exc:  # onnxruntime raises its own exception types for a bad model
            from edgekit.bundle.bundle_format import BundleError

            raise BundleError(f"bundle {bundle.path}: onnxruntime cannot load the model: {exc}") from None
        ins, outs = sess.get_inputs(), sess.get_outputs()
        check_io(bundle, "inputs", [(i.shape, _TYPES.get(i.type, i.type)) for i in ins])
        check_io(bundle, "outputs", [(o.shape, _TYPES.get(o.type, o.type)) for o in outs])
        self._sess = sess
        self.providers_used = list(sess.get_providers())
        self._names = [i.name for i in ins]
        self._run = sess.run

    def run(self, inputs: list) -> list:
        return self._run(None, dict(zip(self._names, inputs)))

    def execution_providers(self, ort) -> list:
        """The execution providers the session asks for, in order of preference (the
        tensorrt engine's fallback prefers CUDA where onnxruntime has it)."""
        return ["CPUExecutionProvider"]

    def close(self) -> None:
        self._sess = self._run = None

    def describe(self) -> str:
        where = "CUDA" if "CUDAExecutionProvider" in self.providers_used else "CPU"
        return f"onnxruntime {self.version} ({where}, graph optimization {self.level})"


ENGINE = OnnxRuntimeEngine
