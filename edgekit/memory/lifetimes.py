"""Buffers of one op order: which activation bytes exist, for how long, and which may share.

A *buffer* is the storage of one activation tensor, or of several when they are the same
bytes: a RESHAPE output is an *alias* of its input (same bytes, same row-major element
order, no copy), so a reshape chain is one buffer that lives from the first member's
definition to the last member's last use. Constants are not activations (they stay in
flash). A *scratch* buffer is an op's temporary (see ``scratch.py``); it lives during its
op only.

Time is the op index in the execution order: a buffer is live during op ``t`` when
``first <= t <= last``. Graph inputs live from op 0, graph outputs up to the last op.

Sharing bytes between an op's input and its output
--------------------------------------------------
An op may write its output over an input that dies at that op, when no later step of the
kernel reads an input byte the op has already overwritten. edgekit states this precisely
for one kernel contract, which the C code generator must honour for every op the plan
lists in ``MemoryPlan.inplace``:

    *Write contract*: the kernel writes its output elements in increasing row-major order,
    each element once, and reads every input element an output element needs before it
    writes that output element. (TFLM's reference loops do: conv walks
    ``batch, out_y, out_x, out_channel`` and depthwise ``batch, out_y, out_x, in_channel,
    multiplier``; so do kernels that gather a window or a few pixels into a buffer and then
    write them in order.)

Under that contract, let ``reads[o]`` be the smallest input element index output element
``o`` reads and ``m(o) = min(reads[o:])``. If the output starts ``shift`` bytes below the
input (``offset(out) = offset(in) - shift``), writing output element ``o`` overwrites the
input bytes ``[o*os - shift, (o+1)*os - shift)`` (``os``, ``is``: element sizes); every
later read is at or above byte ``m(o+1)*is``. So the sharing is safe exactly when::

    shift >= max over o of ((o+1)*os - m(o+1)*is)        (the op's *minimum shift*)

and any larger shift is safe too (the output only moves further below the input). A
minimum shift of 0 is true in-place execution (same offset). ``min_shift`` computes
``reads`` with numpy for each op; the rule per op:

- RELU, RELU6, LOGISTIC, TANH, QUANTIZE (int8 -> int8 requantize), BATCH_NORM, and the
  unary elementwise ops (HARD_SWISH, LEAKY_RELU, ABS, NEG, EXP, LOG, SQRT, RSQRT, GELU): element
  ``i`` reads element ``i``: in place (shift 0) when input and output element sizes are
  equal. DEQUANTIZE int8 -> float32 writes 4 bytes per byte read: the shift comes out at
  about three times the input, so it practically never shares.
- ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU, DIV, SQUARED_DIFFERENCE: an input with the
  output's shape is read at the same index: in place. A
  broadcast input is read again for later outputs: its shift is about the output size, so
  it does not share.
- DEPTHWISE_CONV_2D, AVERAGE/MAX_POOL_2D: output ``(y, x, c)`` reads input rows from
  ``y*stride - pad_top`` on. Exactly in place when no output is written over an input
  element a later output still reads: 1x1 windows with depth multiplier 1, windows
  without top/left padding (VALID), and often strided windows, whose input rows run
  ahead of the output (2x2 stride-2 pooling; the computed shift decides). In general it
  is NOT: with a 3x3 window, stride 1 and padding 1, outputs of row ``y+1`` read input row
  ``y``, so writing output row ``y`` at the input's offset destroys what they need. The
  shift then comes out at ``(W+1)*C`` bytes (one input row plus one pixel): the output
  starts that far below the input and the two share all the rest. A depth multiplier
  above 1 writes faster than it reads and needs a shift too.
- CONV_2D: an output pixel reads every input channel of its window: even a 1x1 conv
  cannot run in place (writing output channel 0 destroys input channel 0 that output
  channel 1 still needs), but with a shift of one input pixel less one byte
  (``Cin - 1`` bytes when ``Cout == Cin``) it can.
- FULLY_CONNECTED, SOFTMAX: an output row reads its whole input row (softmax is taken as
  reading the whole row for every element, which any two-pass kernel satisfies): the
  shift is about one row, so with batch 1 these practically never share.
- PAD, CONCATENATION, TRANSPOSE, SLICE, STRIDED_SLICE (``reads_movement``): from the exact
  index map of the copy; e.g. a slice from its input's first element runs in place, a concat
  output may start at its first input (shift 0 for that input), and a later input may sit
  inside the output where the copy puts it.
- REDUCE_MAX, SUM, ARG_MAX/ARG_MIN, L2_NORMALIZATION: from the group each output element
  reduces (``reads_reduction``); a reduction can write over its input from the same offset.
- RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR: from their exact source pixels
  (``reads_resample``); a downscaling resize runs in place.
- RESHAPE (and SQUEEZE, EXPAND_DIMS) is an alias, not a copy. MEAN and anything else
  (SPLIT/UNPACK, whose several outputs are not modeled, included): never shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op
from edgekit.memory.reads_reduction import REDUCTION_READ_OPS, reduction_read_map
from edgekit.memory.reads_resample import RESAMPLE_READ_OPS, resample_read_map
from edgekit.memory.reads_movement import MOVEMENT_READ_OPS, movement_read_map
from edgekit.ir.ops import OpType, normalize_attrs

_NONE = np.iinfo(np.int64).max  # "this output element reads nothing of that input"

_ELEMENTWISE = {OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH, OpType.QUANTIZE,
                OpType.DEQUANTIZE, OpType.BATCH_NORM}
_BINARY = {OpType.ADD, OpType.SUB, OpType.MUL}
# The elementwise family (runtimes/micro ek_lut_s8 and the broadcast walks of MAXIMUM,
# MINIMUM, PRELU, DIV, SQUARED_DIFFERENCE) reads element i (or its broadcast source)
# before writing element i, in order, like the ops above.
_ELEMENTWISE |= {OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.ABS, OpType.NEG, OpType.EXP, OpType.LOG,
                 OpType.SQRT, OpType.RSQRT, OpType.GELU}
_BINARY |= {OpType.MAXIMUM, OpType.MINIMUM, OpType.PRELU, OpType.DIV, OpType.SQUARED_DIFFERENCE}
_WINDOWED = {OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D}
# Ops that only relabel the shape: their output is an alias of their input's bytes.
RESHAPES = frozenset({OpType.RESHAPE, OpType.SQUEEZE, OpType.EXPAND_DIMS})


class MemoryPlanError(EdgekitError):
    """A memory plan is invalid, or a graph cannot be planned."""


def align_up(n: int, alignment: int) -> int:
    return -(-int(n) // alignment) * alignment


# --------------------------------------------------------------------------- per-op reads


def read_map(graph: Graph, op: Op, slot: int) -> np.ndarray | None:
    """Smallest element index of input ``slot`` that each output element reads.

    One int64 per output element in row-major order (``_NONE`` where the element reads
    nothing of that input), for the straightforward kernel loop of the module docstring.
    None when the op is not modeled (it then never shares its input's bytes).
    """
    if len(op.outputs) != 1:
        return None
    t = op.type
    x = graph.tensor(op.inputs[slot])
    y = graph.tensor(op.outputs[0])
    n_out = y.size
    attrs = normalize_attrs(t, op.attrs)
    if t in _ELEMENTWISE:
        if slot != 0 or x.size != n_out:
            return None
        return np.arange(n_out, dtype=np.int64)
    if t in _BINARY:
        if len(x.shape) > len(y.shape):
            return None
        idx = np.arange(x.size, dtype=np.int64).reshape(x.shape)
        return np.ascontiguousarray(np.broadcast_to(idx, y.shape)).ravel()
    if t in _WINDOWED:
        return _window_reads(t, x.shape, y.shape, attrs, graph, op) if slot == 0 else None
    if t is OpType.FULLY_CONNECTED:
        if slot != 0:
            return None
        k = graph.tensor(op.inputs[1]).shape[1]
        cout = y.shape[-1]
        rows = np.arange(n_out, dtype=np.int64) // cout
        return rows * k
    if t is OpType.SOFTMAX:
        c = x.shape[-1] if x.shape else 1
        return (np.arange(n_out, dtype=np.int64) // c) * c
    if t is OpType.PAD:
        p = attrs["pads"]
        out = np.full(y.shape, _NONE, dtype=np.int64)
        inner = tuple(slice(p[2 * i], p[2 * i] + d) for i, d in enumerate(x.shape))
        out[inner] = np.arange(x.size, dtype=np.int64).reshape(x.shape)
        return out.ravel()
    if t is OpType.CONCATENATION:
        axis = attrs["axis"] % len(y.shape)
        start = sum(graph.tensor(op.inputs[i]).shape[axis] for i in range(slot))
        out = np.full(y.shape, _NONE, dtype=np.int64)
        sl = [slice(None)] * len(y.shape)
        sl[axis] = slice(start, start + x.shape[axis])
        out[tuple(sl)] = np.arange(x.size, dtype=np.int64).reshape(x.shape)
        return out.ravel()
    if t is OpType.TRANSPOSE:
        idx = np.arange(x.size, dtype=np.int64).reshape(x.shape)
        return np.ascontiguousarray(idx.transpose(attrs["perm"])).ravel()
    if t in REDUCTION_READ_OPS:
        return reduction_read_map(t, x.shape, n_out, attrs) if slot == 0 else None
    if t in RESAMPLE_READ_OPS:
        return resample_read_map(t, x.shape, y.shape, attrs) if slot == 0 else None
    if t in MOVEMENT_READ_OPS:
        return movement_read_map(t, x.shape, attrs) if slot == 0 else None
    return None


def _first_valid(out_len: int, in_len: int, k: int, stride: int, dil: int, pad: int) -> np.ndarray:
    """First input coordinate each output coordinate's window reads (-1: all padding)."""
    start = np.arange(out_len, dtype=np.int64) * stride - pad
    skip = np.where(start >= 0, 0, (-start + dil - 1) // dil)  # taps that land in the padding
    first = start + skip * dil
    return np.where((skip < k) & (first < in_len), first, -1)


def _window_reads(t: OpType, xs, ys, attrs, graph: Graph, op: Op) -> np.ndarray | None:
    if len(xs) != 4 or len(ys) != 4:
        return None
    n, h, w, cin = xs
    _, oh, ow, cout = ys
    if t is OpType.CONV_2D or t is OpType.DEPTHWISE_CONV_2D:
        fs = graph.tensor(op.inputs[1]).shape
        kh, kw = fs[1], fs[2]
        dh, dw = attrs["dilations"]
    else:
        kh, kw = attrs["kernel"]
        dh = dw = 1
    sh, sw = attrs["strides"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    ry = _first_valid(oh, h, kh, sh, dh, top)
    rx = _first_valid(ow, w, kw, sw, dw, left)
    oc = np.arange(cout, dtype=np.int64)
    if t is OpType.CONV_2D:
        ch = np.zeros_like(oc)  # every input channel of the window, from channel 0
    elif t is OpType.DEPTHWISE_CONV_2D:
        ch = oc // attrs["depth_multiplier"]
    else:
        ch = oc
    b = np.arange(n, dtype=np.int64)
    idx = (((b[:, None, None, None] * h + ry[None, :, None, None]) * w + rx[None, None, :, None]) * cin
           + ch[None, None, None, :])
    empty = (ry[None, :, None, None] < 0) | (rx[None, None, :, None] < 0)
    return np.where(np.broadcast_to(empty, idx.shape), _NONE, idx).ravel()


def shift_from_reads(reads: np.ndarray, out_itemsize: int, in_itemsize: int) -> int:
    """The minimum shift in bytes for a read map (see the module docstring)."""
    if reads.size == 0:
        return 0
    suffix = np.minimum.accumulate(reads[::-1])[::-1]
    later = suffix[1:]  # m(o+1) for o = 0 .. n-2; m(n) reads nothing
    used = later != _NONE
    if not used.any():
        return 0
    o = np.arange(len(later), dtype=np.int64)[used]
    need = (o + 1) * out_itemsize - later[used] * in_itemsize
    return max(0, int(need.max()))


def reverse_rows_shift(graph: Graph, op: Op, input_name: str) -> int | None:
    """Bytes the output of ``op`` must start *above* ``input_name`` to share its bytes when
    the op runs by output rows from the last to the first (one call of the forward kernel
    per output row, each keeping the write contract within its row). None when the op is
    not run that way.

    Modeled: CONV_2D and DEPTHWISE_CONV_2D, batch 1, reading ``input_name`` as their data
    input. Output row ``r`` reads input rows up to ``top(r) + (KH-1)*DH`` with
    ``top(r) = r*SH - pad_top``. While row ``r`` is written, the rows of its own window and
    every row the rows ``< r`` read are still to be read, all of them below input row
    ``end(r) = min(H, top(r) + (KH-1)*DH + 1)``; the output's row ``r`` (from
    ``d + r*Rout``, ``d`` above the input) must start at or above that:
    ``d >= max over r of end(r)*Rin - r*Rout`` (``Rin``, ``Rout``: row bytes). For a
    pointwise conv with equal rows that is one row, against ``Cin - 1`` bytes below the
    input in the forward order: alternating the two keeps a chain of layers from drifting
    through the arena. (Whole rows are a conservative unit: safe for every kernel that
    keeps the contract within a row.)
    """
    if op.type not in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D) or len(op.outputs) != 1:
        return None
    if not op.inputs or op.inputs[0] != input_name or input_name in op.inputs[1:] or len(op.inputs) < 2:
        return None
    x, y, w = graph.tensor(input_name), graph.tensor(op.outputs[0]), graph.tensor(op.inputs[1])
    if len(x.shape) != 4 or len(y.shape) != 4 or len(w.shape) != 4 or x.shape[0] != 1 or y.shape[0] != 1:
        return None
    a = normalize_attrs(op.type, op.attrs)
    sh, dh, pad_top = int(a["strides"][0]), int(a["dilations"][0]), int(a["pads"][0])
    kh, h, rows = int(w.shape[1]), int(x.shape[1]), int(y.shape[1])
    if (rows - 1) * sh - pad_top >= h:
        return None  # a window wholly below the input: its row view would be empty
    r_in = int(x.shape[2]) * int(x.shape[3]) * x.dtype.itemsize
    r_out = int(y.shape[2]) * int(y.shape[3]) * y.dtype.itemsize
    need = max(min(h, r * sh - pad_top + (kh - 1) * dh + 1) * r_in - r * r_out for r in range(rows))
    return max(need, 0)


def min_shift(graph: Graph, op: Op, input_name: str) -> int | None:
    """Bytes the output of ``op`` must start below ``input_name`` to share its bytes safely.

    Every slot of ``op`` reading ``input_name`` (or a tensor given as the same name) is
    taken into account. None when the op is not modeled or the dtypes do not allow it.
    """
    slots = [i for i, name in enumerate(op.inputs) if name == input_name]
    if not slots or len(op.outputs) != 1:
        return None
    maps = []
    for s in slots:
        m = read_map(graph, op, s)
        if m is None:
            return None
        maps.append(m)
    reads = maps[0] if len(maps) == 1 else np.minimum.reduce(maps)
    x = graph.tensor(input_name)
    y = graph.tensor(op.outputs[0])
    return shift_from_reads(reads, y.dtype.itemsize, x.dtype.itemsize)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class LiveBuffer:
    """One block of the arena over one op order."""

    key: str                    # root tensor name, or "<op>:scratch"
    tensors: tuple[str, ...]    # root first, then its aliases; () for scratch
    nbytes: int                 # bytes the tensors use
    size: int                   # nbytes rounded up to the alignment
    first: int
    last: int
    kind: str = "tensor"        # "tensor" or "scratch"

    def live_at(self, t: int) -> bool:
        return self.first <= t <= self.last

    def overlaps_in_time(self, other: "LiveBuffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Sharing:
    """Permission for ``output`` to share bytes with ``input``, which dies at ``op``.

    Valid placements: ``offset(output) <= offset(input) - min_shift`` (overlapping), or
    the two disjoint; with ``rev_shift`` (the op can run its rows in reverse:
    ``reverse_rows_shift``) also ``offset(output) >= offset(input) + rev_shift``. Indices
    refer to ``Lifetimes.buffers``.
    """

    op: str
    op_index: int
    output: int
    input: int
    input_tensor: str
    min_shift: int  # aligned bytes
    rev_shift: int | None = None  # aligned bytes above the input, for rows run in reverse

    def savings(self, buffers: Sequence[LiveBuffer]) -> int:
        """The most bytes the two can share."""
        return max(0, min(buffers[self.input].size, buffers[self.output].size - self.min_shift))


class MemoryModel:
    """Order-independent facts about a graph's activations: alias groups, sizes, producers,
    consumers, scratch needs and the sharing each op would allow. Ops whose type is in
    ``no_share`` never write over their inputs (for kernels that break the write contract)."""

    def __init__(self, graph: Graph, *, alignment: int = 16, inplace: bool = True,
                 target_features: Iterable[str] = (), alias_reshape: bool = True,
                 preserve_inputs: bool = False, no_share: Iterable[OpType] = (), reverse_rows: bool = False):
        from edgekit.memory.scratch import scratch_bytes

        if alignment < 1:
            raise MemoryPlanError(f"alignment must be >= 1, got {alignment}")
        self.graph = graph
        self.alignment = alignment
        self.reverse_rows = reverse_rows  # the backend can run ops by rows in reverse
        self.ops: dict[str, Op] = {}
        for op in graph.ops:
            if op.name in self.ops:
                raise MemoryPlanError(f"graph {graph.name!r} has two ops named {op.name!r}")
            self.ops[op.name] = op
        self.op_names = [op.name for op in graph.ops]
        tensors = graph.tensors

        def is_activation(name: str) -> bool:
            return bool(name) and name in tensors and not tensors[name].is_const

        # Alias groups: a RESHAPE output is its (non-constant) input's bytes.
        self.root: dict[str, str] = {}
        names: list[str] = []
        for n in graph.inputs:
            if is_activation(n) and n not in self.root:
                self.root[n] = n
                names.append(n)
        for op in graph.ops:
            for n in op.inputs:
                if is_activation(n) and n not in self.root:
                    self.root[n] = n  # read but never produced: treated like a graph input
                    names.append(n)
            for n in op.outputs:
                if not is_activation(n) or n in self.root:
                    continue
                src = op.inputs[0] if op.inputs else ""
                if (alias_reshape and op.type in RESHAPES and is_activation(src)
                        and tensors[src].nbytes == tensors[n].nbytes):
                    self.root[n] = self.root[src]
                else:
                    self.root[n] = n
                names.append(n)
        for n in graph.outputs:
            if is_activation(n) and n not in self.root:
                self.root[n] = n
                names.append(n)
        self.members: dict[str, list[str]] = {}
        for n in names:
            self.members.setdefault(self.root[n], []).append(n)
        self.nbytes = {r: tensors[r].nbytes for r in self.members}
        self.size = {r: align_up(b, alignment) for r, b in self.nbytes.items()}

        producers = graph.producers()
        self.producer: dict[str, str | None] = {}
        for r in self.members:
            p = producers.get(r)
            self.producer[r] = p.name if p is not None else None
        self.consumers: dict[str, set[str]] = {r: set() for r in self.members}
        for op in graph.ops:
            for n in op.inputs:
                if n in self.root:
                    self.consumers[self.root[n]].add(op.name)
        self.is_output = {r: any(m in graph.outputs for m in ms) for r, ms in self.members.items()}
        self.is_input = {r: self.producer[r] is None for r in self.members}

        self.scratch = {op.name: align_up(scratch_bytes(op, graph, target_features), alignment)
                        for op in graph.ops}
        # Sharing each op would allow if its input died there: op -> [(in root, out root,
        # input tensor, aligned min shift, aligned reverse shift or None)].
        self.shares: dict[str, list[tuple[str, str, str, int, int | None]]] = {op.name: [] for op in graph.ops}
        if inplace:
            no_share = frozenset(no_share)
            for op in graph.ops:
                if op.type not in no_share:
                    self.shares[op.name] = self._op_shares(op, preserve_inputs)

    def _op_shares(self, op: Op, preserve_inputs: bool) -> list[tuple[str, str, str, int, int | None]]:
        if len(op.outputs) != 1 or op.outputs[0] not in self.root:
            return []
        out = op.outputs[0]
        if self.root[out] != out:  # an alias (reshape) writes nothing
            return []
        found = []
        seen = set()
        for name in op.inputs:
            if name not in self.root or name in seen:
                continue
            seen.add(name)
            r = self.root[name]
            if r == out or self.is_output[r] or (preserve_inputs and self.is_input[r]):
                continue
            if any(self.root.get(other) == r for other in op.inputs if other and other != name):
                continue  # two views of one buffer read by one op: not modeled
            shift = min_shift(self.graph, op, name)
            if shift is None:
                continue
            shift = align_up(shift, self.alignment)
            rev = reverse_rows_shift(self.graph, op, name) if self.reverse_rows else None
            if rev is not None:
                rev = align_up(rev, self.alignment)
                rev = rev if rev < self.size[r] else None  # above a whole input: nothing shared
            if (shift >= self.size[out] and rev is None) or self.size[r] == 0:
                continue  # nothing to gain
            found.append((r, out, name, shift, rev))
        return found

    # -- one order ----------------------------------------------------------
    def lifetimes(self, order: Sequence[str] | None = None) -> "Lifetimes":
        order = list(self.op_names if order is None else order)
        if sorted(order) != sorted(self.op_names):
            raise MemoryPlanError("the order must name every op of the graph exactly once")
        pos = {name: i for i, name in enumerate(order)}
        end = max(len(order) - 1, 0)
        buffers: list[LiveBuffer] = []
        index: dict[str, int] = {}
        for r, ms in self.members.items():
            first = 0 if self.producer[r] is None else pos[self.producer[r]]
            uses = [pos[c] for c in self.consumers[r]]
            last = max([first] + uses)
            if self.is_output[r]:
                last = end
            index[r] = len(buffers)
            for m in ms:
                index[m] = len(buffers)
            buffers.append(LiveBuffer(r, tuple(ms), self.nbytes[r], self.size[r], first, last))
        scratch_index: dict[str, int] = {}
        for name in order:
            if self.scratch[name]:
                scratch_index[name] = len(buffers)
                buffers.append(LiveBuffer(f"{name}:scratch", (), self.scratch[name], self.scratch[name],
                                          pos[name], pos[name], kind="scratch"))
        sharing = []
        for name in order:
            t = pos[name]
            for r_in, r_out, tensor, shift, rev in self.shares[name]:
                bi, bo = buffers[index[r_in]], buffers[index[r_out]]
                if bi.last == t and bo.first == t:
                    sharing.append(Sharing(name, t, index[r_out], index[r_in], tensor, shift, rev))
        return Lifetimes(order, buffers, index, scratch_index, sharing, self.alignment)


@dataclass
class Lifetimes:
    order: list[str]
    buffers: list[LiveBuffer]
    index: dict[str, int]            # tensor name -> buffer index
    scratch_index: dict[str, int]    # op name -> its scratch buffer index
    sharing: list[Sharing]
    alignment: int
    _by_pair: dict[tuple[int, int], Sharing] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_pair = {(s.output, s.input): s for s in self.sharing}

    @property
    def steps(self) -> int:
        return max(len(self.order), 1)

    def live_at(self, t: int) -> list[int]:
        return [i for i, b in enumerate(self.buffers) if b.live_at(t) and b.size]

    def sharing_of(self, output: int, input: int) -> Sharing | None:
        return self._by_pair.get((output, input))

    def profile(self) -> list[int]:
        """Per op: bytes live during it, minus the most the allowed sharing can save."""
        saved = [0] * self.steps
        for s in self.sharing:
            saved[s.op_index] += s.savings(self.buffers)
        return [sum(self.buffers[i].size for i in self.live_at(t)) - saved[t] for t in range(self.steps)]

    def lower_bound(self) -> int:
        """No placement of these buffers can use fewer bytes (a peak of the profile)."""
        return max(self.profile(), default=0)
