"""Test-only helper: build single-op .tflite models in memory and run them in the
TFLite Micro interpreter (the oracle for int8 semantics) and in LiteRT's reference
kernels (the oracle for float and hybrid kernels).

Models are written with the flatbuffers object API of ``ai_edge_litert``. Constant
buffers are packed 16-byte aligned (TFLite Micro reads int32/float data in place).
"""

from __future__ import annotations

import os
import sys

import numpy as np

try:  # optional dependencies: the tests skip when they are missing
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
except Exception:  # pragma: no cover - depends on the environment
    flatbuffers = None
    schema = None

try:
    from tflite_micro import runtime as tflm_runtime
except Exception:  # pragma: no cover
    tflm_runtime = None

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from ai_edge_litert.interpreter import OpResolverType
except Exception:  # pragma: no cover
    LiteRTInterpreter = None
    OpResolverType = None

HAVE_SCHEMA = schema is not None
HAVE_TFLM = tflm_runtime is not None and HAVE_SCHEMA
HAVE_LITERT = LiteRTInterpreter is not None and HAVE_SCHEMA

_TYPES = {
    np.dtype(np.float32): 0,
    np.dtype(np.int32): 2,
    np.dtype(np.int64): 4,
    np.dtype(np.int16): 7,
    np.dtype(np.int8): 9,
}

ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}


class _AlignedBufferT(schema.BufferT if HAVE_SCHEMA else object):
    """A BufferT whose data vector is placed on a 16-byte boundary."""

    def Pack(self, builder):  # noqa: N802 - flatbuffers naming
        data = None
        if self.data is not None:
            payload = bytes(np.asarray(self.data, dtype=np.uint8).tobytes())
            builder.StartVector(1, len(payload), 16)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def _quant(qp):
    if qp is None:
        return None
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in qp.scale]
    q.zeroPoint = [int(z) for z in qp.zero_point]
    q.quantizedDimension = int(qp.axis or 0)
    return q


class ModelBuilder:
    """Accumulates tensors and operators of one subgraph, then packs a model."""

    def __init__(self):
        self.tensors = []
        self.buffers = [_AlignedBufferT()]  # buffer 0: the empty sentinel
        self.opcodes: list[tuple[int, int]] = []
        self.operators = []

    def tensor(self, shape, dtype, *, data=None, quant=None, name=None) -> int:
        t = schema.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[np.dtype(dtype)]
        t.name = name or f"t{len(self.tensors)}"
        t.quantization = _quant(quant)
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            if tuple(arr.shape) != tuple(t.shape):
                arr = arr.reshape(t.shape)
            b = _AlignedBufferT()
            b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, builtin: int, inputs, outputs, options_type: int = 0, options=None, version: int = 1):
        key = (int(builtin), int(version))
        if key not in self.opcodes:
            self.opcodes.append(key)
        o = schema.OperatorT()
        o.opcodeIndex = self.opcodes.index(key)
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)

    def build(self, inputs, outputs) -> bytes:
        sg = schema.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = [int(i) for i in inputs]
        sg.outputs = [int(i) for i in outputs]
        sg.operators = self.operators
        sg.name = "main"
        m = schema.ModelT()
        m.version = 3
        m.description = "edgekit reference oracle"
        codes = []
        for code, version in self.opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            codes.append(oc)
        m.operatorCodes = codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        out = bytes(b.Output())
        check_alignment(out)
        return out


def check_alignment(model: bytes, alignment: int = 16) -> None:
    """Raise if a constant buffer's data does not start on an ``alignment`` boundary."""
    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength() == 0:
            continue
        o = buf._tab.Offset(4)
        start = buf._tab.Vector(o)
        if start % alignment:
            raise AssertionError(f"buffer {i} data at offset {start} is not {alignment}-byte aligned")


def single_op_model(builtin: int, inputs, outputs, options_type=0, options=None,
                    graph_inputs=None, graph_outputs=None) -> bytes:
    """Convenience for a model of one operator.

    ``inputs``/``outputs``: lists of dicts with keys shape, dtype, and optionally
    data (constant), quant (QuantParams), or None for an omitted optional input.
    Graph inputs default to the non-constant operator inputs.
    """
    mb = ModelBuilder()
    in_idx = []
    for spec in inputs:
        if spec is None:
            in_idx.append(-1)
            continue
        in_idx.append(mb.tensor(spec["shape"], spec["dtype"], data=spec.get("data"), quant=spec.get("quant")))
    out_idx = [mb.tensor(s["shape"], s["dtype"], quant=s.get("quant")) for s in outputs]
    mb.op(builtin, in_idx, out_idx, options_type, options)
    if graph_inputs is None:
        graph_inputs = [i for i, s in zip(in_idx, inputs) if s is not None and s.get("data") is None]
    if graph_outputs is None:
        graph_outputs = out_idx
    return mb.build(graph_inputs, graph_outputs)


class _Silence:
    """Redirect the C-level stdout/stderr (fd 1, 2) while a native runtime chatters."""

    def __enter__(self):
        self._saved = []
        for fd in (1, 2):
            try:
                sys.stdout.flush() if fd == 1 else sys.stderr.flush()
                self._saved.append((fd, os.dup(fd)))
            except OSError:
                pass  # a standard stream that cannot be duplicated stays as it is
        self._null = os.open(os.devnull, os.O_WRONLY)
        for fd, _ in self._saved:
            os.dup2(self._null, fd)
        return self

    def __exit__(self, *exc):
        for fd, saved in self._saved:
            os.dup2(saved, fd)
            os.close(saved)
        os.close(self._null)
        return False


def run_tflm(model: bytes, inputs, n_outputs: int = 1, arena_size: int | None = None):
    """Run ``model`` once in the TFLite Micro interpreter; returns the list of outputs."""
    if arena_size is None:
        arena_size = max(10 * len(model), 64 * 1024) + 8 * sum(int(np.asarray(x).nbytes) for x in inputs) + 256 * 1024
    interp = tflm_runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    for i, x in enumerate(inputs):
        interp.set_input(np.ascontiguousarray(x), i)
    interp.invoke()
    outs = []
    for i in range(n_outputs):
        outs.append(np.array(interp.get_output(i)))
    return outs


def run_litert(model: bytes, inputs, resolver: str = "BUILTIN_REF"):
    """Run ``model`` once in LiteRT with the given op resolver (reference kernels by default)."""
    rtype = getattr(OpResolverType, resolver)
    interp = LiteRTInterpreter(model_content=model, experimental_op_resolver_type=rtype)
    interp.allocate_tensors()
    for det, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(det["index"], np.ascontiguousarray(x))
    interp.invoke()
    return [np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()]
