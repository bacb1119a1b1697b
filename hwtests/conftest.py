"""The hardware-in-the-loop suite: every test runs on every board given.

    pytest hwtests                                   # the five QEMU boards (default)
    pytest hwtests --device qemu:cortex-m4           # one emulated board
    pytest hwtests --port /dev/ttyACM0               # a real board running edgekit firmware
    pytest hwtests --vectors 100 -n 2                # more vectors per model, two workers

Each board is started (or connected) once per session and shared by its tests. A board
on --port must run the model-slot firmware; it ends up holding the last model tested.
"""

from __future__ import annotations

import pytest

QEMU_BOARDS = ("qemu:cortex-m3", "qemu:cortex-m4", "qemu:cortex-m7", "qemu:cortex-m33",
               "qemu:cortex-m55")
_RESULTS: list[dict] = []


def pytest_addoption(parser):
    group = parser.getgroup("edgekit hwtests")
    group.addoption("--device", action="append", default=None, metavar="qemu:TARGET",
                    help="Board(s) to test, comma-separated or repeated (default: "
                         + ",".join(QEMU_BOARDS) + ").")
    group.addoption("--port", action="append", default=None, metavar="PORT",
                    help="A real board's serial port, e.g. /dev/ttyACM0 (replaces the QEMU boards "
                         "unless --device is also given).")
    group.addoption("--vectors", type=int, default=20, metavar="N",
                    help="Test vectors per model (default 20).")
    group.addoption("--baudrate", type=int, default=115200, help="Baud rate for --port.")


def _devices(config) -> list[str]:
    devices = [d.strip() for opt in (config.getoption("--device") or []) for d in opt.split(",")
               if d.strip()]
    ports = config.getoption("--port") or []
    if not devices and not ports:
        devices = list(QEMU_BOARDS)
    return devices + ports


def explicit_devices(config) -> bool:
    """True when the user named the boards (--device or --port), False for the default
    QEMU boards."""
    return bool(config.getoption("--device") or config.getoption("--port"))


def pytest_generate_tests(metafunc):
    # a module with ``device_cases(function_name, devices, explicit)`` chooses its own
    # (device_spec, name) pairs instead of every test on every board
    cases = getattr(metafunc.module, "device_cases", None)
    if "device_spec" in metafunc.fixturenames and cases is not None:
        pairs = cases(metafunc.function.__name__, _devices(metafunc.config),
                      explicit_devices(metafunc.config))
        metafunc.parametrize(("device_spec", "name"), pairs, ids=[f"{d}-{n}" for d, n in pairs],
                             scope="session")
    elif "device_spec" in metafunc.fixturenames:
        devs = _devices(metafunc.config)
        metafunc.parametrize("device_spec", devs, ids=devs, scope="session")


class Board:
    """A connected board for the session: ``client`` (DeviceClient), ``target``,
    ``instructions_per_tick`` (QEMU only)."""

    def __init__(self, spec: str, baudrate: int):
        from edgekit.device.client import DeviceClient
        from edgekit.device.qemu import QemuBoard, parse_device_spec

        self.spec = spec
        self.qemu = None
        target = parse_device_spec(spec)
        if target is not None:
            from tests.device.models import slot_elf

            self.qemu = QemuBoard(target, slot_elf(target)).start()
            self.client = DeviceClient(self.qemu, timeout=1.0)
        else:
            self.client = DeviceClient(spec, timeout=1.0, baudrate=baudrate)
        self.target = self.client.hello.target
        self.expected_target = target

    def close(self) -> None:
        self.client.close()
        if self.qemu is not None:
            self.qemu.stop()


@pytest.fixture(scope="session")
def board(device_spec, request):
    b = Board(device_spec, request.config.getoption("--baudrate"))
    yield b
    b.close()


@pytest.fixture(scope="session")
def n_vectors(request) -> int:
    return request.config.getoption("--vectors")


def record(row: dict) -> None:
    _RESULTS.append(row)


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("edgekit hwtests: per inference")
    tr.write_line(f"{'device':<18} {'board':<12} {'model':<8} {'vectors':>7} {'result':<6} "
                  f"{'ticks':>12} {'instructions':>14} {'arena B':>9} {'stack B':>8} {'flash s':>8}")
    for r in _RESULTS:
        instr = f"{r['instructions']:,.0f}" if r["instructions"] is not None else "-"
        tr.write_line(f"{r['device']:<18} {r['board']:<12} {r['model']:<8} {r['vectors']:>7} "
                      f"{'PASS' if r['passed'] else 'FAIL':<6} {r['ticks']:>12,.0f} {instr:>14} "
                      f"{r['arena_used']:>9,} {r['stack']:>8,} {r['flash_seconds']:>8.1f}")
