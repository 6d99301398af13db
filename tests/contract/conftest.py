"""The project's own backends run every check they collect: a skip here is a failure.

Checks that do not apply to a backend are declared in its class's ``not_applicable`` (and not collected); a
skip would mean a missing fixture or protocol that nobody declared.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if getattr(report, "skipped", False) and not hasattr(report, "wasxfail"):
        report.outcome = "failed"  # type: ignore[attr-defined]
        report.longrepr = f"contract check skipped on a project backend: {report.longrepr}"  # type: ignore[attr-defined]
    return report
