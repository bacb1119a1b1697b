"""ONNX -> IR for the elementwise family: HardSwish, LeakyRelu, PRelu, Abs, Neg, Exp, Log,
Sqrt, Reciprocal, Max / Min (any number of inputs), Div by a run-time tensor, Pow with a
constant exponent, Gelu (opset 20) and the Erf form of GELU.

- HardSwish -> HARD_SWISH; LeakyRelu -> LEAKY_RELU; PRelu -> PRELU (the slope
  broadcast to the input in the IR layout, constant slopes only); Abs, Neg, Exp, Log,
  Sqrt -> one op each; Reciprocal -> DIV(1, x); Max / Min -> a chain of MAXIMUM /
  MINIMUM with numpy broadcasting; Div by a run-time tensor -> DIV (by a constant it
  stays a MUL by the reciprocal, handlers.py); Pow with exponent 2 -> MUL(x, x), 1 ->
  x, 0.5 -> SQRT, -0.5 -> RSQRT, -1 -> DIV(1, x) (the exponent must be constant).
- Gelu -> GELU (``approximate="tanh"`` sets ``approximate``).
- ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (the form torch, Keras and transformers export,
  with the Div or a Mul by 1/sqrt(2), and the 0.5 applied first or last) is rewritten
  to one Gelu node before conversion (``fuse_erf_gelu``). An Erf anywhere else is
  refused: the IR has no ERF op.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.frontends.onnx import handlers as _base
from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.values import NHWC, Act, QConst
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType

_UNARY = {"HardSwish": OpType.HARD_SWISH, "Abs": OpType.ABS, "Neg": OpType.NEG, "Exp": OpType.EXP,
          "Log": OpType.LOG, "Sqrt": OpType.SQRT}


def _emit(c: Converter, op: OpType, inputs: list[str], attrs: dict | None = None, out: str | None = None) -> str:
    return c.emit(op, inputs, attrs, out=out, dtype=DType.FLOAT32)


def _out(c: Converter, node) -> str:
    return c.out_name(node.output[0])


def _operands(c: Converter, values: list) -> list[str]:
    """IR tensors for broadcasting operands (numpy rules on the source shapes): run-time
    tensors of lower rank than a 4-D result are made 4-D in source order, then NHWC;
    constants are laid out the same way."""
    def rank_of(v):
        if isinstance(v, Act):
            return c.g.tensor(v.name).rank
        return np.ndim(v.q if isinstance(v, QConst) else v)

    r = max(rank_of(v) for v in values)
    act_ranks = [c.g.tensor(v.name).rank for v in values if isinstance(v, Act)]
    names = []
    for i, v in enumerate(values):
        if isinstance(v, Act):
            t = c.g.tensor(v.name)
            if t.dtype is not DType.FLOAT32:
                raise c.unsupported(f"input {i} is {t.dtype.value}; this op is imported for float32 tensors")
            name = v.name
            if t.rank < r and r == 4:
                src = (1,) * (4 - t.rank) + c.sshape(name)
                name = c.from_src(c.emit(OpType.RESHAPE, [name], {"shape": src}))
            names.append(name)
            continue
        arr = np.asarray(v.value() if isinstance(v, QConst) else v)
        if arr.dtype.kind not in "fiub":
            raise c.unsupported(f"constant operand of type {arr.dtype}")
        arr = arr.astype(np.float32)
        if r == 4:
            arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(NHWC)
        keep = max(act_ranks) if act_ranks else 0
        while arr.ndim > keep and arr.ndim > 0 and arr.shape[0] == 1:
            arr = arr.reshape(arr.shape[1:])
        names.append(c.const(arr, f"{c.node_name()}_operand{i}", ir_layout=True))
    return names


@handler(*_UNARY)
def _unary(c: Converter, node, a):
    x = c.act_inp(node, 0)
    c.set_out(node, 0, Act(_emit(c, _UNARY[node.op_type], [x], out=_out(c, node))))


@handler("LeakyRelu")
def _leaky_relu(c: Converter, node, a):
    x = c.act_inp(node, 0)
    c.set_out(node, 0, Act(_emit(c, OpType.LEAKY_RELU, [x], {"alpha": float(a.get("alpha", 0.01))},
                                 out=_out(c, node))))


@handler("PRelu")
def _prelu(c: Converter, node, a):
    x = c.act_inp(node, 0)
    slope = c.inp(node, 1)
    if isinstance(slope, Act):
        raise c.unsupported("a slope computed at run time (PRelu is imported with a constant slope)")
    x_rank = c.g.tensor(x).rank
    arr = np.asarray(slope.value() if isinstance(slope, QConst) else slope, np.float32)
    if arr.ndim > x_rank:
        raise c.malformed(f"slope of rank {arr.ndim} for an input of rank {x_rank}")
    if x_rank == 4:
        arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(NHWC)
    while arr.ndim > 1 and arr.shape[0] == 1:
        arr = arr.reshape(arr.shape[1:])
    alpha = c.const(arr, f"{c.node_name()}_slope", ir_layout=True)
    c.set_out(node, 0, Act(_emit(c, OpType.PRELU, [x, alpha], out=_out(c, node))))


@handler("Max", "Min")
def _max_min(c: Converter, node, a):
    values = [c.inp(node, i) for i in range(len(node.input)) if node.input[i]]
    if not values:
        raise c.malformed("needs at least one input")
    if all(not isinstance(v, Act) for v in values):  # folding normally takes these
        fn = np.maximum if node.op_type == "Max" else np.minimum
        arrs = [np.asarray(v.value() if isinstance(v, QConst) else v) for v in values]
        out = arrs[0]
        for arr in arrs[1:]:
            out = fn(out, arr)
        c.set_out(node, 0, out)
        return
    if len(values) == 1:
        c.set_out(node, 0, values[0])
        return
    op = OpType.MAXIMUM if node.op_type == "Max" else OpType.MINIMUM
    names = _operands(c, values)
    y = names[0]
    for i, n in enumerate(names[1:], start=1):
        y = _emit(c, op, [y, n], out=_out(c, node) if i == len(names) - 1 else None)
    c.set_out(node, 0, Act(y))


@handler("Div")
def _div(c: Converter, node, a):
    if not isinstance(c.inp(node, 1), Act):
        return _base._binary(c, node, a)  # by a constant: MUL by the reciprocal
    names = _operands(c, [c.inp(node, 0), c.inp(node, 1)])
    c.set_out(node, 0, Act(_emit(c, OpType.DIV, names, out=_out(c, node))))


@handler("Reciprocal")
def _reciprocal(c: Converter, node, a):
    x = c.act_inp(node, 0)
    one = c.const(np.ones(1, np.float32), f"{c.node_name()}_one", ir_layout=True)
    c.set_out(node, 0, Act(_emit(c, OpType.DIV, [one, x], out=_out(c, node))))


@handler("Pow")
def _pow(c: Converter, node, a):
    x = c.act_inp(node, 0)
    e = c.const_inp(node, 1, "the exponent")
    e = np.asarray(e)
    if e.size != 1:
        raise c.unsupported("Pow with a tensor of exponents (one constant exponent is supported)")
    e = float(e.reshape(-1)[0])
    out = _out(c, node)
    if e == 1.0:
        c.set_out(node, 0, Act(x))
    elif e == 2.0:
        c.set_out(node, 0, Act(_emit(c, OpType.MUL, [x, x], out=out)))
    elif e == 0.5:
        c.set_out(node, 0, Act(_emit(c, OpType.SQRT, [x], out=out)))
    elif e == -0.5:
        c.set_out(node, 0, Act(_emit(c, OpType.RSQRT, [x], out=out)))
    elif e == -1.0:
        one = c.const(np.ones(1, np.float32), f"{c.node_name()}_one", ir_layout=True)
        c.set_out(node, 0, Act(_emit(c, OpType.DIV, [one, x], out=out)))
    else:
        raise c.unsupported(f"Pow with exponent {e:g} (2, 1, 0.5, -0.5 and -1 are supported)")


@handler("Gelu")
def _gelu(c: Converter, node, a):
    x = c.act_inp(node, 0)
    approximate = a.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    if approximate not in ("none", "tanh"):
        raise c.malformed(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    c.set_out(node, 0, Act(_emit(c, OpType.GELU, [x], {"approximate": approximate == "tanh"}, out=_out(c, node))))


@handler("Erf")
def _erf(c: Converter, node, a):
    raise c.unsupported("Erf is imported only as part of GELU, x * 0.5 * (1 + erf(x / sqrt(2))); "
                        "the IR has no ERF op")


# -- the Erf form of GELU ---------------------------------------------------------------

def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and len(n.output) == 1:
            for at in n.attribute:
                if at.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(at.t)
                elif at.name == "value_float":
                    out[n.output[0]] = np.float32(at.f)
    return out


def _scalar_of(consts: dict, name: str) -> float | None:
    v = consts.get(name)
    if v is None or np.size(v) != 1:
        return None
    return float(np.asarray(v).reshape(-1)[0])


def _near(v: float | None, want: float) -> bool:
    return v is not None and abs(v - want) <= 1e-6 * abs(want)


def fuse_erf_gelu(model):
    """A copy of ``model`` with each ``x * 0.5 * (1 + erf(x / sqrt(2)))`` replaced by one
    Gelu node (the converter reads it whatever the model's opset); ``model`` itself when
    it has no Erf. The intermediate values must have no other consumer."""
    if not any(n.op_type == "Erf" for n in model.graph.node):
        return model
    import onnx
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes = list(g.node)
    consts = _constants(g)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    outputs = {o.name for o in g.output}

    def only_consumer(name):
        lst = consumers.get(name, [])
        return lst[0] if len(lst) == 1 and name not in outputs else None

    def other(i, name):
        ins = list(nodes[i].input)
        if len(ins) != 2 or name not in ins:
            return None
        return ins[1] if ins[0] == name else ins[0]

    def is_mul_by(i, name, value) -> bool:
        return nodes[i].op_type == "Mul" and _near(_scalar_of(consts, other(i, name)), value)

    replaced: dict[int, object] = {}  # index of the node producing y -> the Gelu node
    dropped: set[int] = set()
    for e, erf in enumerate(nodes):
        if erf.op_type != "Erf":
            continue
        p = producer.get(erf.input[0])
        if p is None or only_consumer(erf.input[0]) != e or len(nodes[p].input) != 2:
            continue
        a, b = nodes[p].input
        if nodes[p].op_type == "Div" and _near(_scalar_of(consts, b), math.sqrt(2.0)):
            x = a
        elif nodes[p].op_type == "Mul" and _near(_scalar_of(consts, b), math.sqrt(0.5)):
            x = a
        elif nodes[p].op_type == "Mul" and _near(_scalar_of(consts, a), math.sqrt(0.5)):
            x = b
        else:
            continue
        add = only_consumer(erf.output[0])
        if add is None or nodes[add].op_type != "Add" or not _near(_scalar_of(consts, other(add, erf.output[0])), 1.0):
            continue
        m1 = only_consumer(nodes[add].output[0])
        if m1 is None or nodes[m1].op_type != "Mul":
            continue
        o = other(m1, nodes[add].output[0])
        if o == x:  # (x * (1 + erf)) * 0.5
            m2 = only_consumer(nodes[m1].output[0])
            if m2 is None or not is_mul_by(m2, nodes[m1].output[0], 0.5):
                continue
            chain, last = [p, e, add, m1, m2], m2
        else:  # (x * 0.5) * (1 + erf)
            h = producer.get(o)
            if h is None or only_consumer(o) != m1 or x not in nodes[h].input or not is_mul_by(h, x, 0.5):
                continue
            chain, last = [p, e, add, h, m1], m1
        y = nodes[last].output[0]
        replaced[last] = helper.make_node("Gelu", [x], [y], name=(erf.name or y) + "/gelu")
        dropped.update(i for i in chain if i != last)
    if not replaced:
        return model
    new_nodes = [replaced.get(i, n) for i, n in enumerate(nodes) if i not in dropped]
    del g.node[:]
    g.node.extend(new_nodes)
    return out
