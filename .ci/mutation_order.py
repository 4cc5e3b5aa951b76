"""pytest plugin of ``make mutation`` (``-p mutation_order``): each mutant's tests fastest first.

mutmut runs a mutant's tests with ``-x`` and passes them in no particular order (a set), so a
mutant that a 0.1 s test catches could first sit through a 10 s one, and the tests of one file
could be interleaved with others' (their module fixtures set up again and again). Here the tests of
a file stay together, files with the fastest tests come first and, within a file, the fastest tests
first: a caught mutant ends at about its cheapest failing test. The durations are those mutmut
measured in its stats run (``mutmut-stats.json`` in the folder the tests run from); before that run
has written them (the stats run itself), the order is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STATS_FILE = Path("mutmut-stats.json")


def _durations() -> dict[str, float]:
    try:
        return dict(json.loads(STATS_FILE.read_text("utf-8"))["duration_by_test"])
    except (OSError, ValueError, KeyError):
        return {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    durations = _durations()
    if not durations:
        return

    def cost(item: pytest.Item) -> float:
        # A test the stats run did not time (new since) goes last in its file.
        return durations.get(item.nodeid, float("inf"))

    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    for tests in by_file.values():
        tests.sort(key=cost)
    files = sorted(by_file.values(), key=lambda tests: (cost(tests[0]), sum(map(cost, tests)) / len(tests)))
    items[:] = [item for tests in files for item in tests]
