"""pytest plugin of ``make mutation`` (``-p mutation_order``): each mutant's tests fastest first,
each with a time limit after its own clean time.

mutmut runs a mutant's tests with ``-x`` and passes them in no particular order (a set), so a
mutant that a 0.1 s test catches could first sit through a 10 s one, and the tests of one file
could be interleaved with others' (their module fixtures set up again and again). Here the tests of
a file stay together, files with the fastest tests come first and, within a file, the fastest tests
first: a caught mutant ends at about its cheapest failing test. The durations are those mutmut
measured in its stats run (``mutmut-stats.json`` in the folder the tests run from); before that run
has written them (the stats run itself), the order is left as it is.

Each test also gets its own time limit (pytest-timeout's ``timeout`` marker, over ``--timeout``):
``TIMEOUT_BASE_S`` for its set-up (a reference service to start among dozens of mutants), the
tests' liveness bound and its tear-down, plus ``TIMEOUT_FACTOR`` times its time in the stats run.
A mutant that makes a test hang where no liveness bound reaches (a blocking wait that ignores its
deadline) is caught then, rather than at the one limit for all that the slowest test needs.

mutmut's *clean run* (``MUTANT_UNDER_TEST`` empty: no mutant switched on) is left with nothing to
run when every one of its tests was timed by the stats run. That run has just run the same tests
(the same arguments, ``-x``) on the same unmutated code in the same kind of forked child, and mutmut
stops when it fails; only its recording of which test calls which function differs. Running them
all again, one at a time, cost about 3.5 of ``make mutation``'s minutes (docs/mutation.md, run 10).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

STATS_FILE = Path("mutmut-stats.json")
_SKIPPED_CLEAN_RUN = pytest.StashKey[bool]()
#: Seconds every test may take besides its own clean time (see the module docstring).
TIMEOUT_BASE_S = 30.0
#: How many times its clean time a test may take on top (the machine is loaded under mutation).
TIMEOUT_FACTOR = 3.0


def _durations() -> dict[str, float]:
    try:
        return dict(json.loads(STATS_FILE.read_text("utf-8"))["duration_by_test"])
    except (OSError, ValueError, KeyError):
        return {}


def _is_clean_run() -> bool:
    # mutmut sets "stats" for its stats run, "fail" for its forced-failure check, a mutant's name
    # in a mutant's run, and the empty string for the clean run only.
    return os.environ.get("MUTANT_UNDER_TEST") == ""


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    durations = _durations()
    if not durations:
        return
    if _is_clean_run() and all(item.nodeid in durations for item in items):
        config.hook.pytest_deselected(items=list(items))
        items.clear()
        config.stash[_SKIPPED_CLEAN_RUN] = True
        return

    def cost(item: pytest.Item) -> float:
        # A test the stats run did not time (new since) goes last in its file.
        return durations.get(item.nodeid, float("inf"))

    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    for tests in by_file.values():
        tests.sort(key=cost)
        for item in tests:
            if item.nodeid in durations:
                item.add_marker(pytest.mark.timeout(TIMEOUT_BASE_S + TIMEOUT_FACTOR * durations[item.nodeid]))
    files = sorted(by_file.values(), key=lambda tests: (cost(tests[0]), sum(map(cost, tests)) / len(tests)))
    items[:] = [item for tests in files for item in tests]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest reports a session that deselected every test as "no tests ran" (5); mutmut reads any
    # exit code but 0 as a failed clean run.
    if session.config.stash.get(_SKIPPED_CLEAN_RUN, False) and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
