"""ONNX node conformance: onnx's own node test cases, run through load_onnx + the interpreter.

Every bundled node test case whose operators are all in ``SUPPORTED_ONNX_OPS`` is
imported and run; its outputs must equal the expected ones (rtol 1e-5, atol 1e-6),
or the importer must reject it with ``UnsupportedOpError`` / ``BadInputError`` (a
variant edgekit deliberately does not take: a non-float type, a 3-D pool, a
run-time weight, ...). A claimed case that imports and computes something else is a
failure. ``python tests/frontends/test_onnx_node_conformance.py`` prints the table.
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
PASSED, REJECTED, FAILED = "passed", "rejected", "failed"


def collect_node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return collect_testcases()


def case_ops(case) -> set[str]:
    return {n.op_type for n in case.model.graph.node}


def claimed(case) -> bool:
    ops = case_ops(case)
    return bool(ops) and ops <= set(SUPPORTED_ONNX_OPS)


def run_case(case) -> tuple[str, str]:
    """(status, detail) of one node test case."""
    from edgekit.reference.interpreter import Interpreter

    try:
        g = load_onnx(case.model)
    except (UnsupportedOpError, BadInputError) as exc:
        if isinstance(exc, ModelFormatError):
            return FAILED, f"valid model refused as malformed: {exc}"
        return REJECTED, str(exc).split(". Supported:")[0]
    except Exception as exc:  # noqa: BLE001 - any other error is a failure to report
        return FAILED, f"import raised {type(exc).__name__}: {exc}"
    init = {t.name for t in case.model.graph.initializer}
    in_names = [i.name for i in case.model.graph.input if i.name not in init]
    try:
        interp = Interpreter(g)
        for inputs, expected in case.data_sets:
            feeds = dict(zip(in_names, inputs))
            got = interp.run(feeds, layout="source")
            outs = [got[n] for n in g.outputs]
            if len(outs) != len(expected):
                return FAILED, f"{len(outs)} outputs, expected {len(expected)}"
            for k, (a, e) in enumerate(zip(outs, expected)):
                e = np.asarray(e)
                if a.shape != e.shape:
                    return FAILED, f"output {k}: shape {a.shape}, expected {e.shape}"
                if not np.allclose(a.astype(np.float64), e.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True):
                    err = np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)))
                    return FAILED, f"output {k}: max abs error {err:.3g}"
    except BadInputError as exc:
        return FAILED, f"interpreter refused the imported graph: {exc}"
    except Exception as exc:  # noqa: BLE001
        return FAILED, f"run raised {type(exc).__name__}: {exc}"
    return PASSED, ""


def conformance_summary(cases=None) -> dict:
    """Run every claimed case. Returns {"cases": [(name, ops, status, detail)],
    "per_op": {op: Counter(status)}, "totals": Counter(status), "unclaimed": n}."""
    cases = collect_node_cases() if cases is None else cases
    rows, per_op, totals, unclaimed = [], defaultdict(Counter), Counter(), 0
    for case in cases:
        if not claimed(case):
            unclaimed += 1
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            status, detail = run_case(case)
        ops = sorted(case_ops(case))
        rows.append((case.name, ops, status, detail))
        totals[status] += 1
        for op in ops:
            per_op[op][status] += 1
    for op in SUPPORTED_ONNX_OPS:
        per_op.setdefault(op, Counter())
    return {"cases": rows, "per_op": dict(per_op), "totals": totals, "unclaimed": unclaimed}


def format_table(summary: dict) -> str:
    lines = ["| ONNX op | cases | passed | rejected | failed |", "| --- | ---: | ---: | ---: | ---: |"]
    for op in sorted(summary["per_op"]):
        c = summary["per_op"][op]
        n = sum(c.values())
        lines.append(f"| {op} | {n} | {c[PASSED]} | {c[REJECTED]} | {c[FAILED]} |")
    t = summary["totals"]
    lines.append(f"| **all** | {sum(t.values())} | {t[PASSED]} | {t[REJECTED]} | {t[FAILED]} |")
    lines.append("")
    lines.append(f"{len(SUPPORTED_ONNX_OPS)} ONNX ops claimed; {summary['unclaimed']} bundled node cases use "
                 "other ops and are not run. A case counts under every op it uses.")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def summary():
    return conformance_summary()


def test_no_claimed_case_fails(summary):
    print("\n" + format_table(summary))
    rejected = [(n, d) for n, _, s, d in summary["cases"] if s == REJECTED]
    print("\nrejected cases:\n" + "\n".join(f"  {n}: {d}" for n, d in rejected))
    failed = [(n, d) for n, _, s, d in summary["cases"] if s == FAILED]
    assert not failed, "claimed ONNX node cases that fail:\n" + "\n".join(f"  {n}: {d}" for n, d in failed)


def test_conformance_coverage(summary):
    t = summary["totals"]
    assert t[PASSED] >= 150, f"only {t[PASSED]} node cases pass"
    # Every claimed op that can run on a run-time tensor passes at least one case.
    must_pass = set(SUPPORTED_ONNX_OPS) - {"Constant", "ConstantOfShape", "Gather", "Range", "Shape", "Size",
                                           "Slice", "QuantizeLinear", "DequantizeLinear", "Cast"}
    missing = sorted(op for op in must_pass if summary["per_op"][op][PASSED] == 0)
    assert not missing, f"ops with no passing conformance case: {missing}"


if __name__ == "__main__":
    print(format_table(conformance_summary()))
