"""Errors edgekit raises on purpose.

Every error a user can cause carries an exit code: 2 for bad input (a file,
option or model edgekit cannot accept), 1 for a failure while doing the work.
The CLI prints the message alone; ``--verbose`` adds the traceback.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A failure edgekit detected and can explain."""

    exit_code = 1


class BadInputError(EdgekitError):
    """The user's input (file, option, data) cannot be accepted."""

    exit_code = 2


class ModelFormatError(BadInputError):
    """A model file is truncated, corrupt or not of the format its name says."""


class UnsupportedOpError(BadInputError):
    """A model uses an operator (or an operator variant) edgekit does not support."""

    def __init__(self, op: str, node: str, supported: list[str] | tuple[str, ...], detail: str = ""):
        self.op = op
        self.node = node
        self.supported = sorted(supported)
        msg = f"unsupported operator {op!r} at node {node!r}"
        if detail:
            msg += f": {detail}"
        msg += ". Supported: " + ", ".join(self.supported)
        super().__init__(msg)


class VerifyError(EdgekitError):
    """The IR graph breaks one of its invariants (shape, dtype, quantization)."""

    exit_code = 2


class TargetError(BadInputError):
    """A target description file is missing, malformed, or names an unknown target."""
