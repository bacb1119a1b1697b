"""The models of the zoo (tests/zoo, ``ZOO``) on the boards (see ``device_cases``), two ways:

- flashed into a model slot over the serial protocol (the ``board`` fixture), run on
  the model's own inputs and compared with the reference interpreter bit for bit;
  the model package must carry each of its kernels as an op kind
  (docs/model-package.md): a kernel it lacks makes this an expected failure that
  names it;
- on an emulated board, the C backend's generated model linked into the model-runner
  firmware (firmware/common) with its test vectors: every output byte checked on the
  board, instructions per inference from ``-icount`` ticks.

Which models on which boards (``device_cases``): with ``--device`` or ``--port`` given,
every model on every board given, both ways. By default (no board named) the issue's
board, qemu:cortex-m7, takes every model linked into the model-runner firmware and every
model whose package is at most ``SLOT_PACKAGE_MAX`` bytes in a slot: the serial upload
runs at about 29 KB/s, so the MobileNets (``LARGE_PACKAGES``, 478 KB and 1.6 MB: 16 s and
56 s per board) are not generated for the slot run, the linked runner covers them; the
other default boards take one small model (``SMALL``) both ways. Those combinations are
not generated, not skipped.

Flash (the C backend's figure for the board), arena, stack and instructions per
inference are recorded in the session summary. A model that does not fit a board's
memory (or, for the runner, the one flash and RAM range its firmware links into) is
skipped on that board, naming what takes the space."""

from __future__ import annotations

import functools

import pytest

from edgekit.backends.c import FitError, build, compile_model
from edgekit.errors import UnsupportedOpError
from edgekit.hil import run_hil
from edgekit.hil.rig import qemu_instructions_per_tick
from edgekit.reference.interpreter import Interpreter
from edgekit.targets import load_target
from hwtests.conftest import explicit_devices, record
from tests import zoo

VECTORS = 5  # zoo models are larger than the MLPerf ones; a few vectors cover every op
MAIN_BOARD = "qemu:cortex-m7"  # issue 13: "compiles for cortex-m7, and runs bit-exact on the emulated board"
SMALL = "accel_conv1d"  # 6.6 KB package: the other default boards run this one
SLOT_PACKAGE_MAX = 256 * 1024  # a larger package is not uploaded into a slot by default
LARGE_PACKAGES = ("mobilenet_v2", "mobilenet_v3_small")  # packages over SLOT_PACKAGE_MAX (cortex-m7)


def device_cases(function: str, devices: list[str], explicit: bool) -> list[tuple[str, str]]:
    """(device_spec, model) pairs for a test of this module (hwtests/conftest.py calls it)."""
    if explicit:
        return [(d, n) for d in devices for n in zoo.ZOO]
    slot = function == "test_zoo_model_in_a_slot_bit_exact"
    main = [n for n in zoo.ZOO if not (slot and n in LARGE_PACKAGES)]
    return [(d, n) for d in devices for n in (main if d == MAIN_BOARD else (SMALL,))]


@functools.lru_cache(maxsize=None)
def _int8_graph(name: str):
    return zoo.load(name).int8_graph()


def _compile(graph, target, out, name):
    try:
        return compile_model(graph, target, out)
    except FitError as exc:
        pytest.skip(f"{name} does not fit {target}: {exc}")


@pytest.mark.allow_skip("a zoo model may not fit a small board's flash or RAM")
def test_zoo_model_in_a_slot_bit_exact(board, name, n_vectors, tmp_path, request):
    from edgekit.bundle.micro_package_writer import pack_model

    graph = _int8_graph(name)
    built = _compile(graph, board.target, tmp_path / name, name)
    try:
        package = pack_model(graph, board.target, name=name)
    except UnsupportedOpError as exc:
        pytest.xfail(f"the model package cannot carry {name} yet: {str(exc).split('. Supported')[0]}")
    if not explicit_devices(request.config):
        assert len(package) <= SLOT_PACKAGE_MAX, (
            f"{name}'s package is {len(package):,} bytes: add it to LARGE_PACKAGES (the default "
            "run leaves packages over SLOT_PACKAGE_MAX out of the slot run)")
    x = zoo.load(name).inputs(min(n_vectors, VECTORS))
    result = run_hil(graph, board.client, x, target=board.target, name=name)
    if board.qemu is not None:
        result.instructions_per_tick = qemu_instructions_per_tick(result.tick_hz)
    record(dict(device=board.spec, board=result.board, model=name, vectors=result.vectors,
                passed=result.passed, ticks=result.ticks_median, instructions=result.instructions_median,
                arena_used=result.arena_used, stack=result.stack_high_water,
                flash_seconds=result.flash_seconds, flash_bytes=built.flash["total"]))
    assert result.passed, "\n".join(m.describe() for m in result.mismatches) or result.error


@pytest.mark.allow_skip("a zoo model may not fit a small board's flash or RAM; --port boards run slot firmware")
def test_zoo_model_runner_bit_exact(device_spec, name, n_vectors, tmp_path):
    from edgekit.device.qemu import parse_device_spec
    from edgekit.reference.inputs import to_input_dtype

    target_name = parse_device_spec(device_spec)
    if target_name is None:
        pytest.skip("the model-runner firmware runs on emulated boards (qemu:TARGET)")
    tgt = load_target(target_name)
    graph = _int8_graph(name)
    built = _compile(graph, tgt, tmp_path / name, name)
    xin = graph.input_tensors()[0]
    x = zoo.load(name).inputs(min(n_vectors, VECTORS))
    if graph.metadata.get("io_layout", {}).get(xin.name) == "NCHW":
        x = x.transpose(0, 2, 3, 1)  # the C model takes the IR's NHWC bytes
    x = to_input_dtype(xin.name, xin.dtype, xin.quant, x, quantize_floats=True)
    ref = Interpreter(graph).run([x])[graph.outputs[0]]
    vectors = build.write_vectors(x, ref, tmp_path / "vectors.c")
    try:
        elf = build.build_firmware(built.out_dir, tgt, vectors, tmp_path / f"{name}.elf")
    except build.FirmwareFitError as exc:  # e.g. weights in cortex-m55's QSPI
        pytest.skip(f"{name} does not fit the model-runner firmware on {tgt.name}: {exc}")
    run = build.run_qemu(tgt, elf, icount=True, timeout=900)
    instructions = run.instructions_per_inference(tgt.clock_hz)
    record(dict(device=device_spec, board=tgt.name, model=f"{name} (runner)", vectors=run.inferences or 0,
                passed=run.returncode == 0 and run.mismatching_bytes == 0, ticks=run.ticks or 0,
                instructions=instructions, arena_used=built.arena_bytes, stack=built.stack_bytes,
                flash_seconds=0.0, flash_bytes=built.flash["total"]))
    assert run.returncode == 0 and run.inferences == len(x), run.output[-2000:]
    assert run.mismatching_bytes == 0, f"{run.mismatching_bytes} output bytes differ on {tgt.name}"
