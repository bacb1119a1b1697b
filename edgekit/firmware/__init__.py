"""Board firmware (firmware/ at the top of the repository) built from Python.

    elf = build_firmware("cortex-m4", "build/fw")              # model-slot firmware
    elf = build_firmware("cortex-m4", "build/fw", model=graph)  # model linked in
"""

from __future__ import annotations

from edgekit.firmware.build import (
    BoardPort,
    FirmwareBuild,
    board_for_target,
    build_firmware,
    firmware_root,
    list_boards,
    load_board,
)

__all__ = ["BoardPort", "FirmwareBuild", "board_for_target", "build_firmware", "firmware_root",
           "list_boards", "load_board"]
