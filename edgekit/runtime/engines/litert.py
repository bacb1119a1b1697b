"""The LiteRT engine: runs a bundle's ``.tflite`` with ``ai_edge_litert`` (XNNPACK by
default), or with ``tflite_runtime`` where ai-edge-litert does not install (glibc < 2.34:
JetPack 5, Debian 11; docs/runtime.md). Both have the same Interpreter API.

Engine options: ``op_resolver``: "auto" (XNNPACK, the default), "builtin" (the builtin
kernels without delegates) or "reference" (LiteRT's reference kernels: the exact
semantics tests compare against); ``num_threads``: threads for the kernels.
"""

from __future__ import annotations

from edgekit.errors import BadInputError
from edgekit.runtime.engines import Engine, EngineUnavailableError, check_io

RESOLVERS = {"auto": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
        return "ai_edge_litert", interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter
        return "tflite_runtime", interpreter
    except ImportError:
        raise EngineUnavailableError("the litert engine needs ai-edge-litert: pip install 'edgekit[runtime-litert]' "
                                     "(on images with glibc < 2.34: 'edgekit[runtime-tflite]')") from None


class LiteRTEngine(Engine):
    name = "litert"
    options = ("op_resolver", "num_threads")

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        resolver = self.engine_options.get("op_resolver", "auto")
        if resolver not in RESOLVERS:
            raise BadInputError(f"engine litert: op_resolver {resolver!r} is not one of {', '.join(RESOLVERS)}")
        threads = self.engine_options.get("num_threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BadInputError(f"engine litert: num_threads must be a positive integer, not {threads!r}")
        self.library, mod = _interpreter_module()
        self.resolver = resolver
        self.tflm_exact = resolver == "reference"
        kind = getattr(mod.OpResolverType, RESOLVERS[resolver])
        try:
            it = mod.Interpreter(model_content=bundle.read(bundle.payload("model")),
                                 experimental_op_resolver_type=kind, num_threads=threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            from edgekit.bundle.bundle_format import BundleError

            raise BundleError(f"bundle {bundle.path}: {self.library} cannot load the model: {exc}") from None
        ins, outs = it.get_input_details(), it.get_output_details()
        check_io(bundle, "inputs", [(d["shape"], d["dtype"].__name__) for d in ins])
        check_io(bundle, "outputs", [(d["shape"], d["dtype"].__name__) for d in outs])
        self._it = it
        self._set = [(d["index"]) for d in ins]
        self._get = [(d["index"]) for d in outs]
        self._set_tensor, self._invoke, self._get_tensor = it.set_tensor, it.invoke, it.get_tensor

    def run(self, inputs: list) -> list:
        set_tensor = self._set_tensor
        for index, x in zip(self._set, inputs):
            set_tensor(index, x)
        self._invoke()
        get = self._get_tensor
        return [get(index) for index in self._get]

    def close(self) -> None:
        self._it = self._set_tensor = self._invoke = self._get_tensor = None

    def describe(self) -> str:
        mod = __import__(self.library)
        version = getattr(mod, "__version__", "")
        kernels = {"auto": "XNNPACK", "builtin": "builtin kernels", "reference": "reference kernels"}[self.resolver]
        return f"{self.library} {version} ({kernels})".replace("  ", " ")


ENGINE = LiteRTEngine
