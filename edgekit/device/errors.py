"""Errors of the device link. Each names the command and what the host saw, so the
one line the CLI prints is enough to act on."""

from __future__ import annotations

from edgekit.errors import BadInputError, EdgekitError


class DeviceError(EdgekitError):
    """A device did not do what was asked (exit code 1)."""


class PortError(BadInputError):
    """The port cannot be opened: a wrong name, a missing device, a refused socket (exit 2)."""


class DoesNotFitError(BadInputError):
    """The model does not fit the device (its tensors exceed the device's buffer, or the
    firmware cannot carry them): refused before anything is sent (exit 2)."""


class LinkLostError(DeviceError):
    """The link closed under us (USB unplugged, the emulator stopped, the socket reset)."""


class DeviceTimeoutError(DeviceError):
    """No valid response after every retransmission."""


class ProtocolError(DeviceError):
    """The device answered something the protocol does not allow (a malformed response,
    an unsupported protocol version)."""


class DeviceRejectedError(DeviceError):
    """The device answered ERROR. ``code``/``detail``/``device_message`` hold its payload."""

    def __init__(self, command: str, code: int, detail: int, device_message: str, hint: str = ""):
        from edgekit.device.protocol import TYPE_NAMES, describe_error, error_name

        self.command = command
        self.code = code
        self.detail = detail
        self.device_message = device_message
        # The request type from the command's first word ("UPLOAD_CHUNK at offset 1,020").
        types = {name: t for t, name in TYPE_NAMES.items()}
        meaning = describe_error(types.get(command.split(" ", 1)[0], -1), code, detail)
        text = f"{command}: the device answered {error_name(code)}"
        if device_message:
            text += f": {device_message}"
        if meaning:
            text += f" ({meaning})"
        elif detail:
            text += f" (detail {detail})"
        if hint:
            text += f". {hint}"
        super().__init__(text)
