"""Model packages of the data-movement kernels on the firmware's host build: the
movement graphs of tests/backends/c/graphs_movement.py run bit-exact with the reference,
and a parameter block damaged where only the new kinds' checks can catch it (a gather
index past its axis, a slice leaving its input, a split into too many outputs, a block
size that does not divide) is refused with reason 10 naming the op, never run."""

from __future__ import annotations

import struct

import numpy as np

from edgekit.bundle import pack_model
from edgekit.bundle.micro_package_reader import OP_ENTRY_BYTES, OP_KINDS
from edgekit.device import protocol as P
from tests.backends.c.graphs import random_inputs
from tests.backends.c.graphs_movement import movement_cases
from tests.firmware.support import Stream, reference_output, restamp, run_host

E_OP_PARAMS = 10


def _ops(pkg: bytes):
    """(kind, parameter offset) of every op of ``pkg``."""
    num_ops, op_table = struct.unpack_from("<II", pkg, 108)
    return [(struct.unpack_from("<H", pkg, op_table + i * OP_ENTRY_BYTES)[0],
             struct.unpack_from("<I", pkg, op_table + i * OP_ENTRY_BYTES + 4)[0]) for i in range(num_ops)]


def _poke(pkg: bytes, offset: int, value: int) -> bytes:
    d = bytearray(pkg)
    struct.pack_into("<i", d, offset, value)
    return restamp(d)


def test_movement_packages_run_and_damage_is_refused(host_fw):
    rng = np.random.default_rng(11)
    graphs = movement_cases(rng)
    g = graphs["movement"]
    pkg = pack_model(g, "cortex-m4")
    ops = _ops(pkg)
    first = {kind: (i, off) for i, (kind, off) in reversed(list(enumerate(ops)))}
    idx_ref = struct.unpack_from("<I", pkg, first[OP_KINDS["ek_gather_s8"]][1] + 4 * 5)[0] & 0x7FFFFFFF
    bad = {
        "gather index": (first[OP_KINDS["ek_gather_s8"]][0], _poke(pkg, idx_ref, 4)),   # axis has 4 entries
        "slice begin": (first[OP_KINDS["ek_slice_s8"]][0], _poke(pkg, first[OP_KINDS["ek_slice_s8"]][1] + 4, 99)),
        "split count": (first[OP_KINDS["ek_split_s8"]][0], _poke(pkg, first[OP_KINDS["ek_split_s8"]][1], 33)),
        "block size": (first[OP_KINDS["ek_depth_to_space_s8"]][0],
                       _poke(pkg, first[OP_KINDS["ek_depth_to_space_s8"]][1] + 4 * 4, 3)),
    }
    s = Stream()
    runs = []
    for name, graph in graphs.items():
        xs = random_inputs(graph, rng, 3)
        up = s.upload(pack_model(graph, "cortex-m4"), name)
        runs.append((name, graph, xs, up["commit"], [s.add(P.INFER, np.ascontiguousarray(x).tobytes()) for x in xs]))
    refusals = [(what, op, s.upload(data, f"bad-{i}")["commit"]) for i, (what, (op, data)) in enumerate(bad.items())]
    run = run_host(host_fw, bytes(s))
    for name, graph, xs, commit, infers in runs:
        assert len(run.payload(commit, P.UPLOAD_COMMIT)) == 1, name  # the slot it went to
        for x, q in zip(xs, infers):
            out = run.payload(q, P.INFER)
            assert out[0] == 0 and out[5:] == reference_output(graph, x[None]), name
    for what, op, commit in refusals:
        code, detail, message = run.error(commit)
        assert code == P.E_HEADER and detail & 0xFFFF == E_OP_PARAMS and detail >> 16 == op, (what, detail, message)
