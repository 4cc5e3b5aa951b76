"""One real Airflow deployment for the whole e2e session (see ``harness.py``).

Logs of every process stay in the deployment's temporary folder; when a test fails, the tail of
each is attached to the failure report and the folder is kept (its path is printed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import Deployment

#: Measures the tests record, printed in the terminal summary.
MEASURES: list[str] = []
_DEPLOYMENT: list[Deployment] = []


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    started = Deployment().start()  # stops everything it started and raises with the logs on failure
    _DEPLOYMENT.append(started)
    failed_before = request.session.testsfailed
    try:
        yield started
    finally:
        if request.session.testsfailed > failed_before:
            started.keep = True
            MEASURES.append(f"e2e logs kept in {started.logs}")
        started.stop()
        _DEPLOYMENT.clear()


@pytest.fixture
def record(record_property: Any) -> Any:
    """Record a measure: in the JUnit XML and the terminal summary."""

    def _record(name: str, value: Any) -> None:
        record_property(name, value)
        MEASURES.append(f"{name}: {value}")

    return _record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _DEPLOYMENT:
        report.sections.append(("e2e deployment logs", _DEPLOYMENT[0].report()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURES:
        terminalreporter.write_sep("-", "e2e measures")
        for line in MEASURES:
            terminalreporter.write_line(line)
