"""Skips are for users' machines, not for CI.

A test that needs a system tool, header, broker, Python extra or the ../shared
material skips on a user's machine that lacks it, with the command that installs it.
In CI (``CI=true``, or ``EDGEKIT_STRICT_SKIPS=1``) such a skip is a failure: a green
run must not hide a missing install step. A test that may rightly skip everywhere
(say, one that only means something on another CPU architecture) carries
``@pytest.mark.allow_skip("why")``.
"""

from __future__ import annotations

import os

import pytest


def strict_skips() -> bool:
    flag = os.environ.get("EDGEKIT_STRICT_SKIPS")
    if flag is not None:
        return flag not in ("", "0", "false")
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_skip(reason): this test may skip even in CI, for the reason given")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(report, where: str) -> None:
    report.outcome = "failed"
    report.longrepr = (f"{where} skipped in CI, where every tool must be present: "
                       f"{_skip_reason(report)}\n(mark it @pytest.mark.allow_skip(\"why\") "
                       "only if it can never run on this kind of machine)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (strict_skips() and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("allow_skip") is None):
        _fail_skip(report, "test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    # A module that skips itself at import (importorskip of an extra, absent data).
    if strict_skips() and report.skipped and isinstance(collector, pytest.Module):
        _fail_skip(report, f"module {collector.nodeid}")
