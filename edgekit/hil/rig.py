"""Hardware in the loop: flash a model, run test vectors on the device, compare every
output byte with edgekit's reference interpreter.

    result = run_hil(graph, "qemu:cortex-m4", x)          # QEMU started and stopped here
    result = run_hil(graph, "/dev/ttyACM0", x)            # a real board on a serial port
    print(result.passed, result.mismatches[:3], result.ticks_median)

``device`` is ``qemu:TARGET`` (the model-slot firmware is built for TARGET and run in
QEMU, which is always stopped afterwards), a port URL, a ``QemuBoard`` or a connected
``DeviceClient``.

Vectors are the model's inputs, batch first, in the model's own layout (NCHW for ONNX
and PyTorch models, as ``edgekit run`` takes them); float vectors for an int8 input are
quantized with the input's scale and zero point as TFLite's QUANTIZE does (the CLI does it
only with ``--quantize-inputs``: edgekit.reference.inputs), so the device and the
interpreter see the same bytes. Models with several inputs take their tensors
concatenated in input order in one INFER, and answer their outputs concatenated in
output order (the package's input/output tables).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgekit.errors import BadInputError

def qemu_instructions_per_tick(tick_hz: int) -> float:
    """Under ``-icount shift=0`` QEMU runs one guest instruction per virtual ns, so a
    timer at ``tick_hz`` advances once every 1e9 / tick_hz instructions (40 at 25 MHz)."""
    return 1e9 / tick_hz


@dataclass(frozen=True)
class Mismatch:
    index: int          # vector index
    output: str         # output tensor name
    differing: int      # elements that differ
    first: int          # flat index of the first differing element
    expected: list      # the expected output (flattened)
    got: list           # what the device answered (flattened)

    def describe(self) -> str:
        return (f"vector {self.index}, output {self.output!r}: {self.differing} of {len(self.expected)} "
                f"values differ; first at [{self.first}]: expected {self.expected[self.first]}, "
                f"got {self.got[self.first]}")


@dataclass
class HilResult:
    model: str
    device: str
    target: str
    board: str
    firmware: str
    package_bytes: int
    package_hash: str
    flash_seconds: float
    flash_restarts: int
    vectors: int
    failed: int
    mismatches: list[Mismatch] = field(default_factory=list)
    failed_indices: list[int] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)
    tick_hz: int = 0
    instructions_per_tick: float | None = None  # known for QEMU with -icount shift=0
    arena_size: int = 0
    arena_used: int = 0
    stack_size: int = 0
    stack_high_water: int = 0
    run_seconds: float = 0.0
    error: str | None = None  # a failure that stopped the run (flash or device error)
    op_ticks: list[list[int]] = field(default_factory=list)  # per vector, per op (profile=True)
    profile: list | None = None  # OpProfile rows (edgekit.hil.profile), medians over the vectors

    @property
    def passed(self) -> bool:
        return self.error is None and self.failed == 0 and self.vectors > 0

    @property
    def ticks_median(self) -> float:
        return float(statistics.median(self.ticks)) if self.ticks else 0.0

    @property
    def instructions_median(self) -> float | None:
        if self.instructions_per_tick is None or not self.ticks:
            return None
        return self.ticks_median * self.instructions_per_tick

    @property
    def seconds_per_inference_on_device(self) -> float | None:
        return self.ticks_median / self.tick_hz if self.tick_hz and self.ticks else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("ticks")
        d["passed"] = self.passed
        d["ticks"] = ({"min": min(self.ticks), "median": self.ticks_median, "max": max(self.ticks),
                       "per_vector": self.ticks} if self.ticks else None)
        d["instructions_median"] = self.instructions_median
        d["device_seconds_median"] = self.seconds_per_inference_on_device
        d["mismatches"] = [asdict(m) | {"message": m.describe()} for m in self.mismatches]
        d.pop("op_ticks")
        d["profile"] = None if self.profile is None else {
            "ops": [row.to_dict() for row in self.profile],
            "ticks_sum_per_vector": [sum(v) for v in self.op_ticks]}
        return d


Progress = Callable[[str, int, int], None]


def _vectors_for(graph, vectors) -> list[np.ndarray]:
    """One array per graph input, batch first, in the model's source layout."""
    names = list(graph.inputs)
    if isinstance(vectors, np.ndarray):
        if len(names) != 1:
            raise BadInputError(f"the model has {len(names)} inputs {names}: give one array per "
                                "input name (an .npz)")
        return [vectors]
    if isinstance(vectors, Mapping):
        if set(names) <= set(vectors):
            return [np.asarray(vectors[n]) for n in names]
        if len(names) == 1:
            for key in ("x", "x_int8", "input", "inputs"):
                if key in vectors:
                    return [np.asarray(vectors[key])]
            if len(vectors) == 1:
                return [np.asarray(next(iter(vectors.values())))]
        raise BadInputError(f"the vectors hold {sorted(vectors)}; the model's inputs are {names} "
                            "(or one array named 'x')")
    raise BadInputError(f"vectors must be an array or a mapping of arrays, not {type(vectors).__name__}")


def prepare_inputs(graph, vectors, *, quantize_floats: bool = True) -> dict[str, np.ndarray]:
    """Vectors -> {input name: array in the IR layout (NHWC), with the input's dtype}.
    ``quantize_floats=False`` refuses float vectors for an integer input (the CLI's rule
    without ``--quantize-inputs``)."""
    from edgekit.reference.inputs import check_finite, to_input_dtype

    arrays = _vectors_for(graph, vectors)
    feeds = {}
    count = None
    for name, x in zip(graph.inputs, arrays):
        t = graph.tensor(name)
        want = tuple(t.shape)
        x = np.asarray(x)
        layout = graph.metadata.get("io_layout", {}).get(name, "NHWC")
        check_finite(name, x)  # before any transpose: the index named is the caller's
        if x.ndim == len(want) - 1:
            x = x[None]
        if layout == "NCHW" and x.ndim == 4 and len(want) == 4:
            x = x.transpose(0, 2, 3, 1)
        if x.ndim != len(want) or tuple(x.shape[1:]) != want[1:]:
            raise BadInputError(f"vectors for input {name!r} have shape {list(x.shape)}; the model "
                                f"takes {list(want)} (batch first, in the model's own layout)")
        # The one input rule of edgekit.reference.inputs: NaN/inf refused, float data for an
        # integer input quantized with the input's scale and zero point only when asked.
        x = np.ascontiguousarray(to_input_dtype(name, t.dtype, t.quant, x, quantize_floats=quantize_floats))
        if count is not None and len(x) != count:
            raise BadInputError(f"inputs hold different numbers of vectors ({count} and {len(x)})")
        count = len(x)
        feeds[name] = x
    if not count:
        raise BadInputError("no test vectors")
    return feeds


def reference_outputs(graph, feeds: dict[str, np.ndarray], batch: int = 256) -> dict[str, np.ndarray]:
    """The interpreter's outputs (IR layout), computed in batches."""
    from edgekit.reference.interpreter import Interpreter

    interp = Interpreter(graph)
    n = len(next(iter(feeds.values())))
    batched = all(graph.tensor(name).shape[0] == 1 for name in graph.inputs)
    step = batch if batched else 1
    parts: dict[str, list[np.ndarray]] = {o: [] for o in graph.outputs}
    for i in range(0, n, step):
        res = interp.run({k: v[i:i + step] for k, v in feeds.items()}, layout="ir")
        for o in graph.outputs:
            parts[o].append(res[o])
    return {o: np.concatenate(v) for o, v in parts.items()}


def run_hil(graph, device, vectors, *, target=None, package: bytes | None = None,
            name: str | None = None, expected: Mapping[str, np.ndarray] | None = None,
            max_mismatches: int = 10, progress: Progress | None = None,
            firmware_dir: str | Path | None = None, client_options: dict | None = None,
            flash: bool = True, quantize_floats: bool = True, profile: bool = False,
            linked: bool = False) -> HilResult:
    """Flash ``graph`` on ``device``, run every vector there and compare with the reference
    interpreter, bit for bit. Returns a HilResult; device and link failures after the
    connection raise EdgekitError.

    ``profile=True`` also reads the ticks of every op after each inference
    (``result.profile``: edgekit.hil.profile); with ``qemu:TARGET`` the firmware is built
    with ``--profile``, any other device must run such a firmware.

    ``linked=True`` (with ``qemu:TARGET``): the model is compiled to C (``compile_model``:
    the target's fastest kernels, its arena plan) and linked into the firmware, which runs
    the vectors with nothing uploaded: the figures of the generated C itself."""
    from edgekit.device.client import DeviceClient
    from edgekit.device.qemu import QemuBoard, parse_device_spec

    feeds = prepare_inputs(graph, vectors, quantize_floats=quantize_floats)
    want = dict(expected) if expected is not None else reference_outputs(graph, feeds)
    opts = dict(client_options or {})
    qemu_target = parse_device_spec(device) if isinstance(device, str) else None
    if linked and qemu_target is None:
        raise BadInputError("linked=True builds the firmware with the model linked in: it needs qemu:TARGET")
    if qemu_target is not None and linked:
        import tempfile

        from edgekit.firmware import build_firmware

        with tempfile.TemporaryDirectory(prefix="edgekit-hil-linked-") as tmp:
            elf = build_firmware(qemu_target, firmware_dir or tmp, model=graph, profile=profile)
            with QemuBoard(qemu_target, elf) as board:
                with DeviceClient(board, **opts) as client:
                    return _run(graph, client, feeds, want, device, target or qemu_target, package, name,
                                max_mismatches, progress, False, True, profile, linked=True)
    if qemu_target is not None:
        elf = slot_firmware(qemu_target, firmware_dir, profile=profile)
        with QemuBoard(qemu_target, elf) as board:
            with DeviceClient(board, **opts) as client:
                return _run(graph, client, feeds, want, device, target or qemu_target, package, name,
                            max_mismatches, progress, flash, True, profile)
    ipt = isinstance(device, QemuBoard) and device.icount
    if isinstance(device, DeviceClient):
        return _run(graph, device, feeds, want, device.port_name, target, package, name,
                    max_mismatches, progress, flash, ipt, profile)
    label = device if isinstance(device, str) else repr(device)
    with DeviceClient(device, **opts) as client:
        return _run(graph, client, feeds, want, label, target, package, name, max_mismatches,
                    progress, flash, ipt, profile)


def slot_firmware(target: str, out_dir: str | Path | None = None, *, profile: bool = False) -> Path:
    """The model-slot firmware ELF for ``target``, built once per content of its sources
    (firmware/, runtimes/micro/, the target file) and reused from a cache folder.
    ``profile``: the build that times every op (PROFILE)."""
    import hashlib
    import tempfile

    from edgekit.firmware import build_firmware
    from edgekit.resources import firmware_dir, micro_runtime_dir
    from edgekit.targets import load_target

    if out_dir is not None:
        return build_firmware(target, out_dir, profile=profile)
    roots = [firmware_dir(), micro_runtime_dir()]
    h = hashlib.sha256(target.encode() + (b"+profile" if profile else b""))
    for root in roots:
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix in (".c", ".h", ".ld", ".json", ".S", ".s"):
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    tgt = load_target(target)
    h.update(tgt.source.read_bytes())
    cache = Path(tempfile.gettempdir()) / "edgekit-firmware" / f"{target}-{h.hexdigest()[:12]}"
    marker = cache / "elf.path"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build once
        except ImportError:  # not POSIX: no lock
            pass
        if marker.is_file():
            elf = Path(marker.read_text().strip())
            if elf.is_file():
                return elf
        elf = build_firmware(target, cache, profile=profile)
        marker.write_text(str(elf))
    return elf


def _run(graph, client, feeds, want, device_label, target, package, name, max_mismatches,
         progress, flash, instructions_per_tick, profile=False, linked=False) -> HilResult:
    hello = client.hello
    tname = target.name if hasattr(target, "name") else (target or hello.target)
    model_name = name or graph.name
    if flash and tname != hello.target:
        # Before the upload: the firmware would only refuse the package at commit.
        raise BadInputError(f"the firmware on {device_label} is built for {hello.target} (board "
                            f"{hello.board}); the model is packed for {tname}. Build the firmware "
                            f"for {tname} (edgekit build-firmware --target {tname}) or use that target")
    if package is None:
        from edgekit.bundle.micro_package_writer import pack_model

        package = pack_model(graph, tname, name=model_name[:24])
    if flash and len(package) > hello.slot_size:
        raise BadInputError(f"the package of {model_name!r} is {len(package):,} bytes; the slots of "
                            f"{hello.board} on {device_label} hold {hello.slot_size:,}")
    if profile and not hello.profiles_ops:
        raise BadInputError(f"the firmware on {device_label} ({hello.board}, firmware {hello.firmware}) "
                            "does not time ops: run one built with `edgekit build-firmware --profile`")
    import hashlib

    result = HilResult(model=model_name, device=device_label, target=tname, board=hello.board,
                       firmware=hello.firmware, package_bytes=len(package),
                       package_hash=hashlib.sha256(package).hexdigest()[:16], flash_seconds=0.0,
                       flash_restarts=0, vectors=len(next(iter(feeds.values()))), failed=0)
    if flash:
        cb = (lambda done, total: progress("flash", done, total)) if progress else None
        up = client.upload(package, model_name[:24], progress=cb)
        result.flash_seconds = up.seconds
        result.flash_restarts = up.restarts
    out_sizes = [(o, want[o].dtype, want[o].shape[1:]) for o in graph.outputs]
    out_bytes = sum(int(np.prod(s)) * np.dtype(d).itemsize for _, d, s in out_sizes)
    t0 = time.monotonic()
    n = result.vectors
    for i in range(n):
        data = b"".join(feeds[k][i].tobytes() for k in graph.inputs)
        out, ticks = client.infer(data, output_bytes=out_bytes)
        result.ticks.append(ticks)
        if profile:
            result.op_ticks.append(client.profile())
        bad = len(out) != out_bytes
        pos = 0
        for oname, dtype, shape in out_sizes:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            exp = np.ascontiguousarray(want[oname][i]).reshape(-1)
            got_raw = out[pos:pos + size]
            pos += size
            if len(got_raw) != size:
                got = np.frombuffer(got_raw[:len(got_raw) - len(got_raw) % np.dtype(dtype).itemsize],
                                    dtype)
            else:
                got = np.frombuffer(got_raw, dtype)
            if got.shape == exp.shape and got.tobytes() == exp.tobytes():
                continue
            bad = True
            if len(result.mismatches) < max_mismatches:
                bits = np.dtype(f"u{np.dtype(dtype).itemsize}")  # compare bit patterns
                if got.shape == exp.shape:
                    diff = np.flatnonzero(got.view(bits) != exp.view(bits))
                    first, count = int(diff[0]) if diff.size else 0, int(diff.size)
                else:
                    first, count = min(len(got), len(exp)), abs(len(exp) - len(got))
                    got = np.concatenate([got, np.zeros(max(0, len(exp) - len(got)), dtype)])
                result.mismatches.append(Mismatch(i, oname, count, first, exp.tolist(),
                                                  got[:len(exp)].tolist()))
        if bad:
            result.failed += 1
            result.failed_indices.append(i)
        if progress:
            progress("infer", i + 1, n)
    result.run_seconds = time.monotonic() - t0
    info = client.info()
    stats = client.device_stats()
    result.tick_hz = stats.tick_hz
    result.instructions_per_tick = (qemu_instructions_per_tick(stats.tick_hz)
                                    if instructions_per_tick and stats.tick_hz else None)
    result.arena_size, result.arena_used = info.arena_size, info.arena_used
    result.stack_size, result.stack_high_water = info.stack_size, info.stack_high_water
    if profile:
        from edgekit.hil.profile import build_profile

        features = None
        if linked:
            from edgekit.targets import load_target

            features = load_target(tname).features
        result.profile = build_profile(graph, result.op_ticks, result.instructions_per_tick, linked=linked,
                                       features=features)
    return result
