"""ONNX node conformance: onnx's own node test cases, run through load_onnx + the interpreter.

Every bundled node test case is imported. One whose operators are all in
``SUPPORTED_ONNX_OPS`` is run; its outputs must equal the expected ones (rtol 1e-5,
atol 1e-6), or the importer must reject it with ``UnsupportedOpError`` /
``BadInputError`` (a variant edgekit deliberately does not take: a non-float type, a
3-D pool, a run-time weight, ...). Any other case must be rejected naming its
operator. A case that imports and computes something else is a failure.
``python tests/frontends/test_onnx_node_conformance.py`` prints the per-op table.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx_importer import SUPPORTED_ONNX_OPS, load_onnx  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
PASSED, PASSED_CONST, REJECTED, FAILED = "passed", "passed_const", "rejected", "failed"


def collect_node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return collect_testcases()


def case_ops(case) -> set[str]:
    return {n.op_type for n in case.model.graph.node}


def claimed(case) -> bool:
    """All the case's ops have converters of their own."""
    ops = case_ops(case)
    return bool(ops) and ops <= set(SUPPORTED_ONNX_OPS)


def _compare(case, outs, expected) -> str | None:
    """None when the outputs match; else what differs. Strict tolerances first; a few
    onnx cases hold hand-rounded expected values, for which the case's own (looser)
    tolerance is accepted and noted."""
    if len(outs) != len(expected):
        return f"{len(outs)} outputs, expected {len(expected)}"
    for k, (a, e) in enumerate(zip(outs, expected)):
        e = np.asarray(e)
        if a.shape != e.shape:
            return f"output {k}: shape {a.shape}, expected {e.shape}"
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        if not np.allclose(a64, e64, rtol=RTOL, atol=ATOL, equal_nan=True):
            err = float(np.max(np.abs(a64 - e64)))
            if np.allclose(a64, e64, rtol=case.rtol, atol=case.atol, equal_nan=True):
                return f"loose: output {k} max abs error {err:.3g}, within the case's own rtol={case.rtol:g}"
            return f"output {k}: max abs error {err:.3g}"
    return None


def _run(case, model, data_sets) -> tuple[str, str]:
    from edgekit.reference.interpreter import Interpreter

    try:
        g = load_onnx(model)
    except ModelFormatError as exc:
        return FAILED, f"valid model refused as malformed: {exc}"
    except (UnsupportedOpError, BadInputError) as exc:
        return REJECTED, str(exc).split(". Supported:")[0]
    except Exception as exc:  # noqa: BLE001 - any other error is a failure to report
        return FAILED, f"import raised {type(exc).__name__}: {exc}"
    init = {t.name for t in model.graph.initializer}
    in_names = [i.name for i in model.graph.input if i.name not in init]
    note = ""
    try:
        interp = Interpreter(g)
        for inputs, expected in data_sets:
            got = interp.run(dict(zip(in_names, inputs)), layout="source")
            diff = _compare(case, [got[n] for n in g.outputs], expected)
            if diff is not None and not diff.startswith("loose"):
                return "mismatch", diff
            note = diff or note
    except Exception as exc:  # noqa: BLE001
        return "crash", f"run raised {type(exc).__name__}: {exc}"
    return PASSED, note


def _frozen(model, inputs, keep) -> tuple:
    """The model with the graph inputs whose positions are not in ``keep`` turned into
    constants, and the values of the inputs kept."""
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    init = {t.name for t in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in init]
    for k, (name, value) in enumerate(zip(names, inputs)):
        if k in keep:
            continue
        if isinstance(value, onnx.TensorProto):
            t = onnx.TensorProto()
            t.CopyFrom(value)
            t.name = name
        else:
            t = numpy_helper.from_array(np.asarray(value), name)
        m.graph.initializer.append(t)
    return m, [v for k, v in enumerate(inputs) if k in keep]


def _float_positions(inputs) -> set[int]:
    return {k for k, v in enumerate(inputs) if isinstance(v, np.ndarray) and v.dtype == np.float32}


def _run_frozen(case, keep_of) -> tuple[str, str]:
    """Every data set with the inputs ``keep_of(inputs)`` names kept and the others
    made constants: (status, detail) of the first that does not pass, else passed."""
    for inputs, expected in case.data_sets:
        m, kept = _frozen(case.model, inputs, keep_of(inputs))
        st, det = _run(case, m, [(kept, expected)])
        if st != PASSED:
            return st, det
    return PASSED, ""


def run_case(case) -> tuple[str, str]:
    """(status, detail) of one node test case.

    Run as given; if the importer rejects it or the interpreter cannot take its
    inputs, run it again with the non-float32 inputs (shapes, axes, pads, masks, ...
    usually come as graph inputs in these cases) frozen into constants, and then with
    the trailing inputs frozen, one more at a time down to the first alone (masks,
    caches, weights): ``passed_const`` when one of those works. A wrong number in any
    run is a failure.
    """
    status, detail = _run(case, case.model, case.data_sets)
    if status == PASSED or status == FAILED:
        return status, detail
    if status == "mismatch":
        return FAILED, detail
    first = detail
    if any(not isinstance(i, np.ndarray) for inputs, _ in case.data_sets for i in inputs[:1]):
        return (FAILED if status == "crash" else REJECTED), first
    n_inputs = len(case.data_sets[0][0])
    tries = [lambda inputs: _float_positions(inputs) | {0}]  # only integer/bool inputs frozen
    # then the trailing inputs (masks, caches, weights), one more at a time
    tries += [lambda inputs, j=j: set(range(j)) for j in range(n_inputs - 1, 0, -1)]
    tried, last = [], ""
    for keep_of in tries:
        keep = [frozenset(keep_of(inputs)) for inputs, _ in case.data_sets]
        if keep in tried or all(k >= set(range(len(i))) for k, (i, _) in zip(keep, case.data_sets)):
            continue  # the same run again, or the case as given
        tried.append(keep)
        st, det = _run_frozen(case, keep_of)
        if st in ("mismatch", "crash", FAILED):
            return FAILED, f"with constant inputs: {det} (as given: {first})"
        if st == PASSED:
            return PASSED_CONST, f"as given: {first}"
        last = det
    if status == "crash":
        return FAILED, first
    if last and last != first:
        return REJECTED, f"{first}; with its inputs made constant: {last}"
    return REJECTED, first


def conformance_summary(cases=None) -> dict:
    """Run every bundled case through the importer (ops without a converter of their
    own are imported through their ONNX function definition, where they have one).
    Returns
    {"cases": [(name, ops, status, detail)], "per_op": {op: Counter(status)},
    "totals": Counter(status), "claimed": n}."""
    cases = collect_node_cases() if cases is None else cases
    rows, per_op, totals, n_claimed = [], defaultdict(Counter), Counter(), 0
    for case in cases:
        ops = sorted(case_ops(case))
        n_claimed += claimed(case)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            status, detail = run_case(case)
        missing = sorted(set(ops) - set(SUPPORTED_ONNX_OPS))
        if status == REJECTED and missing:
            detail = f"ONNX op(s) without a converter: {', '.join(missing)} ({detail})"
        rows.append((case.name, ops, status, detail))
        totals[status] += 1
        for op in ops:
            per_op[op][status] += 1
    for op in SUPPORTED_ONNX_OPS:
        per_op.setdefault(op, Counter())
    return {"cases": rows, "per_op": dict(per_op), "totals": totals, "claimed": n_claimed}


def reason_class(detail: str) -> str:
    """The kind of a rejection, for the summary (the details are per case)."""
    if detail.startswith("ONNX op(s) without a converter"):
        return "op not imported" if "function definition" not in detail else "op's ONNX function needs an op"
    if "element type" in detail or "is uint8" in detail or "is not a tensor" in detail:
        return "input element type (float32/int8 graphs)"
    if " is int" in detail or " is uint" in detail or " is bool" in detail or " is float64" in detail:
        return "non-float run-time tensor"
    if "is a constant (it does not depend" in detail:
        return "output is a constant"
    if "every dimension must be positive" in detail:
        return "empty tensor"
    if "compile time" in detail or "must be a constant" in detail or "must be constant" in detail \
            or "run-time" in detail:
        return "needs a constant input"
    return "operator variant"


def format_table(summary: dict) -> str:
    lines = ["| ONNX op | cases | passed | passed with constant inputs | rejected | failed |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for op in sorted(summary["per_op"]):
        c = summary["per_op"][op]
        n = sum(c.values())
        mark = "" if op in SUPPORTED_ONNX_OPS else (" (as its ONNX function)" if c[PASSED] + c[PASSED_CONST]
                                                     else " (not imported)")
        lines.append(f"| {op}{mark} | {n} | {c[PASSED]} | {c[PASSED_CONST]} | {c[REJECTED]} | {c[FAILED]} |")
    t = summary["totals"]
    lines.append(f"| **all** | {sum(t.values())} | {t[PASSED]} | {t[PASSED_CONST]} | {t[REJECTED]} | {t[FAILED]} |")
    lines.append("")
    reasons = Counter(reason_class(d) for _, _, st, d in summary["cases"] if st == REJECTED)
    lines.append("Rejected cases by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()) + ".")
    lines.append("")
    lines.append(f"{len(SUPPORTED_ONNX_OPS)} ONNX ops have converters; {summary['claimed']} of {sum(t.values())} "
                 "bundled node cases use only those; others are imported through the ONNX function definitions of "
                 "their ops where every op of the body has a converter. A case counts under every op it uses. "
                 "\"Passed with constant inputs\": the case feeds shapes, axes, pads or weights as graph inputs, "
                 "which edgekit takes only as constants; frozen to constants, the case passes.")
    return "\n".join(lines)


# Imported ops none of whose bundled cases can pass, and why; their own tests check
# them (tests/frontends/test_onnx_compositions.py and the family's ONNX tests).
TESTED_ELSEWHERE = {"ReduceLogSumExp": "float64 data", "Trilu": "int64 data", "Where": "bool condition inputs",
                    "Einsum": "float64 data", "Erf": "imported only inside the GELU pattern it forms",
                    "If": "every bundled case branches on a run-time condition"}

# Cases that must keep passing (as given or with constant inputs); raised as coverage grows.
PASS_FLOOR = 1000


@pytest.fixture(scope="module")
def summary():
    pytest.importorskip("edgekit.reference.interpreter", reason="the reference interpreter is not there yet")
    return conformance_summary()


def test_no_case_fails(summary):
    print("\n" + format_table(summary))
    for status in (PASSED_CONST, REJECTED):
        rows = [(n, d) for n, _, s, d in summary["cases"] if s == status]
        print(f"\n{status} cases:\n" + "\n".join(f"  {n}: {d}" for n, d in rows))
    failed = [(n, d) for n, _, s, d in summary["cases"] if s == FAILED]
    assert not failed, "ONNX node cases that fail:\n" + "\n".join(f"  {n}: {d}" for n, d in failed)


def test_every_rejection_names_its_reason(summary):
    vague = [(n, d) for n, _, s, d in summary["cases"] if s == REJECTED and len(d.strip()) < 20]
    assert not vague, f"rejections without a reason: {vague}"
    assert sum(summary["totals"].values()) == len(summary["cases"]) == len(collect_node_cases())


def test_conformance_coverage(summary):
    t = summary["totals"]
    assert t[PASSED] + t[PASSED_CONST] >= PASS_FLOOR, f"only {t[PASSED] + t[PASSED_CONST]} node cases pass"
    # Every imported op that can run on a run-time tensor passes at least one case.
    from edgekit.frontends.onnx.handlers_composite import CONST_ONLY_OPS

    must_pass = set(SUPPORTED_ONNX_OPS) - {"Constant", "ConstantOfShape", "Gather", "Range", "Shape", "Size",
                                           "Slice", "QuantizeLinear", "DequantizeLinear", "Cast", "CastLike",
                                           *CONST_ONLY_OPS, *TESTED_ELSEWHERE}
    missing = sorted(op for op in must_pass
                     if summary["per_op"][op][PASSED] + summary["per_op"][op][PASSED_CONST] == 0)
    assert not missing, f"ops with no passing conformance case: {missing}"


if __name__ == "__main__":
    print(format_table(conformance_summary()))
