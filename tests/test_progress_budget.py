"""The waits of one triggerer share a budget of progress lines (``triggers/progress_budget.py``).

Airflow 3.3's triggerer supervisor reads at most 4 KiB of its runner's log lines per round of its
loop, and the runner writes them blocking: thousands of waits with a line a minute each stalled
and then deadlocked a 5,000-wait deployment (docs/deployment-scale.md). Progress lines are "at
most this often": over the budget they are skipped, and nothing else is.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.triggers import JobTrigger
from airflow_jobwait.triggers.progress_budget import (
    PROGRESS_BURST,
    PROGRESS_LINES_PER_S,
    ProgressBudget,
    retry_delay,
)
from tests._pollers import bounded_outcome, submit_many
from tests.conftest import set_connection

PROGRESS_LINE = re.compile(r"inference job (\S+) is \S+ after \d+s")


class _Clock:
    """Stands in for the monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget(clock: _Clock, rate: float, burst: float) -> ProgressBudget:
    return ProgressBudget(rate, burst, clock)


def test_the_budget_grants_a_burst_then_its_rate_and_no_more() -> None:
    clock = _Clock()
    budget = _budget(clock, rate=5.0, burst=3.0)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    clock.now += 0.1  # half a line's worth
    assert budget.take() is False
    clock.now += 0.1
    assert [budget.take(), budget.take()] == [True, False]
    # A long quiet spell fills it up to the burst, not to everything it could have written.
    clock.now += 3600
    assert sum(budget.take() for _ in range(100)) == 3
    # Over ten seconds of waits asking all the time: the rate, whatever the number of askers.
    granted = 0
    for _ in range(1000):
        clock.now += 0.01
        granted += sum(budget.take() for _ in range(50))
    assert granted == 50


def test_a_skipped_line_tries_again_within_half_an_interval_of_one_at_random() -> None:
    delays = [retry_delay(60.0) for _ in range(2000)]
    assert min(delays) >= 30.0 and max(delays) <= 90.0
    # Spread over the range (not one delay for all), about an interval on average.
    assert max(delays) - min(delays) > 50.0 and 55.0 < sum(delays) / len(delays) < 65.0
    # A wait asks the budget: after a line it asks again an interval on; after a skipped one, so.
    budget = _budget(_Clock(), rate=5.0, burst=1.0)
    assert budget.ask(60.0) == (True, 60.0)
    write, then = budget.ask(60.0)
    assert write is False and 30.0 <= then <= 90.0


@pytest.mark.parametrize("status_mode", ["auto", "per_job"])
async def test_many_waits_write_their_progress_within_the_budget_and_end_each_with_its_line(
    jobwait_conn: str,
    service: ServiceProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status_mode: str,
) -> None:
    job_ids = submit_many(JobsHook(jobwait_conn), 40, duration_s=3.0)
    conn_id = set_connection(monkeypatch, service, "modzy", status_mode=status_mode)
    capsys.readouterr()
    began = time.monotonic()
    triggers = [JobTrigger(job_id, conn_id, poll_interval=0.2, progress_interval=0.5) for job_id in job_ids]
    outcomes = await asyncio.gather(*(bounded_outcome(trigger) for trigger in triggers))
    elapsed = time.monotonic() - began
    assert [outcome.status for outcome in outcomes] == [JobStatus.COMPLETED] * len(job_ids)
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if PROGRESS_LINE.search(line)]
    # Alone, 40 waits of ~3 s would write ~240 lines at one per 0.5 s each.
    assert PROGRESS_BURST <= len(progress) <= PROGRESS_BURST + PROGRESS_LINES_PER_S * elapsed, len(progress)
    if status_mode == "auto":
        # Waits that start together come due together, in the same order: a skipped line tries
        # again at a random time, so the lines are not the same few waits' each time. Measured
        # here: 13-17 writers of ~17 lines at random, 7-8 when a skipped line waited an interval.
        # (Polled alone, a wait checks its line at its polls, which these waits take in step.)
        writers = {found.group(1) for line in progress if (found := PROGRESS_LINE.search(line))}
        assert len(writers) >= 2 * PROGRESS_BURST + 1, (len(writers), len(progress))
    # What happened is never skipped: every wait's end is in the log.
    for job_id in job_ids:
        assert any(job_id in line and "COMPLETED" in line and not PROGRESS_LINE.search(line) for line in out), job_id
