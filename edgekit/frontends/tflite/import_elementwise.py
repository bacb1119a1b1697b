"""TFLite -> IR for the elementwise ops: HARD_SWISH, LEAKY_RELU, PRELU, ABS, NEG, EXP, LOG,
SQRT, RSQRT, GELU, MAXIMUM, MINIMUM, DIV, SQUARED_DIFFERENCE (one to one)."""

from __future__ import annotations

from edgekit.ir import OpType

TFLITE_ELEMENTWISE = {name: OpType[name] for name in (
    "HARD_SWISH", "LEAKY_RELU", "PRELU", "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "GELU",
    "MAXIMUM", "MINIMUM", "DIV", "SQUARED_DIFFERENCE")}
ELEMENTWISE_MIN_INPUTS = {"PRELU": 2, "MAXIMUM": 2, "MINIMUM": 2, "DIV": 2, "SQUARED_DIFFERENCE": 2}


def elementwise_attrs(opname: str, opts: dict, activation) -> dict:
    """IR attributes from the builtin options; ``activation()`` reads a checked fused activation."""
    if opname == "LEAKY_RELU":
        return {"alpha": float(opts.get("alpha", 0.0))}
    if opname == "GELU":
        return {"approximate": bool(opts.get("approximate", False))}
    if opname == "DIV":
        return {"activation": activation()}
    return {}
