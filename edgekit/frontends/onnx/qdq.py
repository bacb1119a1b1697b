"""Turn an imported QDQ graph into an int8 graph.

The converter imports QuantizeLinear / DequantizeLinear on run-time tensors as
QUANTIZE / DEQUANTIZE ops around float ops, and remembers the integer form of every
weight that came from a DequantizeLinear (``qinfo``). The rewrites here, repeated
until nothing changes, make the float islands int8:

- DEQUANTIZE followed by RESHAPE / TRANSPOSE or another data-movement op (SLICE, SPLIT,
  GATHER, ...): move the DEQUANTIZE after it, one per output (the data movement then
  runs on int8, with the same parameters);
- RESHAPE / TRANSPOSE followed by QUANTIZE: move the QUANTIZE before it;
- ``DEQUANTIZE -> op [-> RELU/RELU6] -> QUANTIZE``: the op becomes an int8 op with
  the input and output parameters of that pair (weights int8, bias int32);
- ``DEQUANTIZE -> QUANTIZE``: nothing when the parameters agree, an int8 -> int8
  requantize otherwise.

An op that is not wrapped this way stays float, with its DEQUANTIZE/QUANTIZE
neighbours, so the result always computes what the source graph computes.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgekit.frontends.onnx.values import QConst
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import FUSABLE, OpType

_MOVE = (OpType.RESHAPE, OpType.TRANSPOSE)
# Data movement a DEQUANTIZE sinks through too (every output gets its own DEQUANTIZE).
_MOVE_SINK = _MOVE + (OpType.SLICE, OpType.STRIDED_SLICE, OpType.SPLIT, OpType.UNPACK, OpType.SQUEEZE,
                      OpType.EXPAND_DIMS, OpType.GATHER, OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH,
                      OpType.RESIZE_NEAREST_NEIGHBOR)
_WEIGHT_AXIS = {OpType.CONV_2D: 0, OpType.DEPTHWISE_CONV_2D: 3, OpType.FULLY_CONNECTED: 0,
                OpType.TRANSPOSE_CONV: 0}
_FIXED_OUT = {OpType.SOFTMAX: (1 / 256, -128), OpType.LOGISTIC: (1 / 256, -128), OpType.TANH: (1 / 128, 0)}
# int8 kernels that need equal input and output parameters: run them in the input's
# parameters and requantize after.
_SAME_QUANT = (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D, OpType.PAD, OpType.RELU6, OpType.RESIZE_BILINEAR)
_UNARY = (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D, OpType.PAD, OpType.RELU, OpType.RELU6,
          OpType.MEAN, OpType.SOFTMAX, OpType.LOGISTIC, OpType.TANH, OpType.RESIZE_BILINEAR)
_BINARY = (OpType.ADD, OpType.SUB, OpType.MUL)


def simplify_transposes(g: Graph) -> bool:
    """A TRANSPOSE that keeps the batch axis and only moves size-1 axes is a RESHAPE."""
    changed = False
    for op in g.ops:
        if op.type is not OpType.TRANSPOSE:
            continue
        perm = tuple(op.attrs["perm"])
        shape = g.tensor(op.inputs[0]).shape
        if not perm or perm[0] != 0:
            continue
        moved = [p for p in perm if shape[p] != 1]
        if moved == sorted(moved):
            op.type = OpType.RESHAPE
            op.attrs = {"shape": tuple(g.tensor(op.outputs[0]).shape)}
            changed = True
    return changed


def fuse_qdq(g: Graph, qinfo: dict[str, QConst]) -> None:
    if not any(op.type in (OpType.QUANTIZE, OpType.DEQUANTIZE) for op in g.ops):
        return
    f = _Fuser(g, qinfo)
    for _ in range(20 * len(g.ops) + 100):
        if not (f.sink_dequantize() or f.hoist_quantize() or f.fuse_ops() or f.fold_roundtrips()):
            break
    g.toposort()
    g.remove_unused()


class _Fuser:
    def __init__(self, g: Graph, qinfo: dict[str, QConst]):
        self.g = g
        self.qinfo = qinfo
        self._n = 0

    # -- helpers -----------------------------------------------------------------
    def maps(self):
        prod = {o: op for op in self.g.ops for o in op.outputs}
        cons: dict[str, list[Op]] = defaultdict(list)
        for op in self.g.ops:
            for i in op.inputs:
                if i:
                    cons[i].append(op)
        return prod, cons

    def name(self, base: str, ops: bool = False) -> str:
        taken = {o.name for o in self.g.ops} if ops else self.g.tensors
        while True:
            self._n += 1
            cand = f"{base}_q{self._n}"
            if cand not in taken:
                return cand

    def int8_per_tensor(self, name: str) -> bool:
        t = self.g.tensor(name)
        return t.dtype is DType.INT8 and t.quant is not None and t.quant.is_per_tensor

    def dq_source(self, prod, name: str) -> str | None:
        """The int8 tensor a DEQUANTIZE turned into ``name``, if that is how it was made."""
        p = prod.get(name)
        if p is not None and p.type is OpType.DEQUANTIZE and self.int8_per_tensor(p.inputs[0]):
            return p.inputs[0]
        return None

    def insert_after(self, anchor: Op, op: Op) -> None:
        self.g.ops.insert(self.g.ops.index(anchor) + 1, op)

    def requant(self, after: Op, src: str, dst: str) -> None:
        self.insert_after(after, Op(OpType.QUANTIZE, [src], [dst], {}, self.name(f"{dst}_requantize", ops=True)))

    # -- rewrites --------------------------------------------------------------
    def sink_dequantize(self) -> bool:
        prod, _ = self.maps()
        for op in self.g.ops:
            if op.type not in _MOVE_SINK:
                continue
            xq = self.dq_source(prod, op.inputs[0])
            if xq is None:
                continue
            outs = list(op.outputs)
            mids = []
            for out in outs:
                mids.append(self.name(out))
                self.g.add_tensor(mids[-1], self.g.tensor(out).shape, DType.INT8, self.g.tensor(xq).quant)
            op.inputs[0], op.outputs = xq, mids
            for mid, out in zip(mids, outs):
                self.insert_after(op, Op(OpType.DEQUANTIZE, [mid], [out], {},
                                         self.name(f"{out}_dequantize", ops=True)))
            return True
        return False

    def hoist_quantize(self) -> bool:
        prod, cons = self.maps()
        for q in self.g.ops:
            if q.type is not OpType.QUANTIZE or self.g.tensor(q.inputs[0]).dtype is not DType.FLOAT32:
                continue
            r = prod.get(q.inputs[0])
            if r is None or r.type not in _MOVE or len(cons[r.outputs[0]]) != 1 or r.outputs[0] in self.g.outputs:
                continue
            x = r.inputs[0]
            if self.g.tensor(x).dtype is not DType.FLOAT32:
                continue
            out_t = self.g.tensor(q.outputs[0])
            mid = self.name(q.outputs[0])
            self.g.add_tensor(mid, self.g.tensor(x).shape, out_t.dtype, out_t.quant)
            final = q.outputs[0]
            q.inputs, q.outputs = [x], [mid]
            r.inputs, r.outputs = [mid], [final]
            i, j = self.g.ops.index(r), self.g.ops.index(q)
            self.g.ops[i], self.g.ops[j] = q, r
            return True
        return False

    def fold_roundtrips(self) -> bool:
        prod, _ = self.maps()
        for q in list(self.g.ops):
            if q.type is not OpType.QUANTIZE:
                continue
            xq = self.dq_source(prod, q.inputs[0])
            out_t = self.g.tensor(q.outputs[0])
            if xq is None or out_t.dtype is not DType.INT8:
                continue
            if self.g.tensor(xq).quant == out_t.quant and q.outputs[0] not in self.g.outputs:
                self.g.replace_uses(q.outputs[0], xq)
                self.g.ops.remove(q)
                return True
            if q.inputs[0] != xq:
                q.inputs[0] = xq  # int8 -> int8 requantize instead of a float round trip
                return True
        return False

    def fuse_ops(self) -> bool:
        prod, cons = self.maps()
        for op in self.g.ops:
            if self.g.tensor(op.outputs[0]).dtype is not DType.FLOAT32 or op.outputs[0] in self.g.outputs:
                continue
            if op.type not in _WEIGHT_AXIS and op.type not in _UNARY and op.type not in _BINARY \
                    and op.type is not OpType.CONCATENATION:
                continue
            users = cons[op.outputs[0]]
            if len(users) != 1:
                continue
            act, q = None, users[0]
            if q.type in (OpType.RELU, OpType.RELU6) and op.type in FUSABLE \
                    and op.attrs.get("activation", "NONE") == "NONE":
                act = q
                nxt = cons[act.outputs[0]]
                if len(nxt) != 1 or act.outputs[0] in self.g.outputs:
                    continue
                q = nxt[0]
            if q.type is not OpType.QUANTIZE or not self.int8_per_tensor(q.outputs[0]):
                continue
            if self._fuse(op, act, q, prod):
                return True
        return False

    def _fuse(self, op: Op, act: Op | None, q: Op, prod) -> bool:
        g = self.g
        out = q.outputs[0]
        oq = g.tensor(out).quant
        if op.type in _WEIGHT_AXIS:
            return self._fuse_weighted(op, act, q, prod)
        if op.type in _BINARY:
            ins = [self.dq_source(prod, i) or self._int8_const(i) for i in op.inputs]
            if any(i is None for i in ins):
                return False
        elif op.type is OpType.CONCATENATION:
            ins = [self.dq_source(prod, i) for i in op.inputs]
            if any(i is None for i in ins):
                return False
            if op.attrs.get("activation", "NONE") != "NONE" or act is not None:
                return False
            for k, i in enumerate(ins):
                if g.tensor(i).quant != oq:
                    mid = self.name(i)
                    g.add_tensor(mid, g.tensor(i).shape, DType.INT8, oq)
                    g.ops.insert(g.ops.index(op), Op(OpType.QUANTIZE, [i], [mid], {},
                                                     self.name(f"{op.name}_requantize", ops=True)))
                    ins[k] = mid
        else:
            xq = self.dq_source(prod, op.inputs[0])
            if xq is None:
                return False
            if op.type in _FIXED_OUT:
                scale, zp = _FIXED_OUT[op.type]
                if np.float32(oq.scale[0]) != np.float32(scale) or oq.zero_point[0] != zp or act is not None:
                    return False
            ins = [xq] + list(op.inputs[1:])
        self._rewire(op, act, q, ins)
        if op.type is OpType.AVERAGE_POOL_2D and g.tensor(ins[0]).quant != oq and self._global_window(op):
            # A window over the whole input is a MEAN, whose int8 kernel rescales to the
            # output parameters in one rounding (pool + requantize would round twice).
            act_name = op.attrs.get("activation", "NONE")
            if act_name == "NONE":
                op.type, op.attrs = OpType.MEAN, {"axes": (1, 2), "keep_dims": True}
                return True
        if op.type in _SAME_QUANT and g.tensor(ins[0]).quant != oq:
            mid = self.name(out)
            g.add_tensor(mid, g.tensor(out).shape, DType.INT8, g.tensor(ins[0]).quant)
            op.outputs = [mid]
            self.requant(op, mid, out)
        return True

    def _rewire(self, op: Op, act: Op | None, q: Op, ins: list[str]) -> None:
        op.inputs = list(ins)
        op.outputs = [q.outputs[0]]
        if act is not None:
            op.attrs["activation"] = "RELU" if act.type is OpType.RELU else "RELU6"
            self.g.ops.remove(act)
        self.g.ops.remove(q)

    def _global_window(self, op: Op) -> bool:
        h, w = self.g.tensor(op.inputs[0]).shape[1:3]
        return (tuple(op.attrs["kernel"]) == (h, w) and not any(op.attrs.get("pads", (0, 0, 0, 0)))
                and tuple(self.g.tensor(op.outputs[0]).shape[1:3]) == (1, 1))

    def _int8_const(self, name: str) -> str | None:
        qc = self.qinfo.get(name)
        if qc is None or not qc.per_tensor or qc.q.dtype != np.int8:
            return None
        t = self.g.tensor(name)
        qname = self.name(name)
        self.g.add_tensor(qname, t.shape, DType.INT8, QuantParams.per_tensor(float(qc.scale), int(qc.zp)),
                          qc.q.reshape(t.shape))
        return qname

    def _fuse_weighted(self, op: Op, act: Op | None, q: Op, prod) -> bool:
        g = self.g
        xq = self.dq_source(prod, op.inputs[0])
        qc = self.qinfo.get(op.inputs[1])
        if xq is None or qc is None or qc.q.dtype != np.int8 or np.any(qc.zp != 0):
            return False
        axis = _WEIGHT_AXIS[op.type]
        w_t = g.tensor(op.inputs[1])
        n = w_t.shape[axis]
        if qc.axis is not None and (qc.axis != axis or qc.scale.size != n):
            return False
        sw = qc.scales_for(n).astype(np.float32)
        if np.any(sw <= 0) or not np.all(np.isfinite(sw)):
            return False
        sx = np.float32(g.tensor(xq).quant.scale[0])
        w_quant = QuantParams.per_tensor(float(qc.scale), 0) if qc.axis is None \
            else QuantParams.per_axis(qc.scale, np.zeros(n, np.int64), axis)
        wname = self.name(op.inputs[1])
        g.add_tensor(wname, w_t.shape, DType.INT8, w_quant, qc.q.reshape(w_t.shape))
        ins = [xq, wname]
        if op.input(2):
            ins.append(self._int32_bias(op.inputs[2], sx, sw, qc.axis is not None))
        self._rewire(op, act, q, ins)
        return True

    def _int32_bias(self, name: str, sx, sw: np.ndarray, per_channel: bool) -> str:
        g = self.g
        expected = np.float64(sx) * sw.astype(np.float64)
        qb = self.qinfo.get(name)
        data = None
        if qb is not None and qb.q.dtype == np.int32 and not np.any(qb.zp != 0):
            got = qb.scales_for(expected.size).astype(np.float64)
            if np.allclose(got, expected, rtol=1e-6, atol=0):
                data = qb.q.reshape(expected.size)
        if data is None:  # float bias, or other parameters: quantize at input_scale * weight_scale
            real = g.const(name).astype(np.float64).reshape(-1)
            data = np.clip(np.rint(real / expected), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
        quant = QuantParams.per_axis(expected, np.zeros(expected.size, np.int64), 0) if per_channel \
            else QuantParams.per_tensor(float(expected[0]), 0)
        bname = self.name(name)
        g.add_tensor(bname, (expected.size,), DType.INT32, quant, data.astype(np.int32))
        return bname
