"""The history poller's audit: a job the Modzy job history never lists is still found.

Modzy's history is filtered by submitter and does not document what it shows of jobs that others
submitted, so "not listed" may not mean "running". The history is made to hide one job (its entry
dropped from every page, as a history scoped to another user would), and the job must still end
with its true status, found by the poller's lone reads, well before the wait's deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import coalesce_history, inference
from airflow_jobwait.client.coalesce import running_pollers
from airflow_jobwait.client.http import Call, HttpResponse
from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.models.inference import HistoryEntry
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S
from tests._pollers import delta, outcome_of, submit_many, until
from tests.test_history_poller import (  # noqa: F401 - fixtures
    astats,
    finish,
    history_poller,
    hook,
    real_service,
    use_mode,
)

POLL = 0.5
HISTORY = "history"
GET_JOB = "get_job"


def _hiding(original: Any, hidden: set[str]) -> Any:
    """``inference.history_entries`` whose pages never list the ``hidden`` jobs."""

    def history_entries(*args: Any, **kwargs: Any) -> Call[list[HistoryEntry]]:
        call = original(*args, **kwargs)

        def parse(response: HttpResponse) -> list[HistoryEntry]:
            shown = [job for job in json.loads(response.body) if job.get("jobIdentifier") not in hidden]
            return call.parse(HttpResponse(response.status, response.headers, json.dumps(shown).encode()))

        return Call(call.request, parse)

    return history_entries


async def test_a_job_the_history_never_lists_is_found_by_the_audit(
    hook: JobsHook,  # noqa: F811
    real_service: ServiceProcess,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    listed, hidden = await asyncio.to_thread(submit_many, hook, 2, 3600.0)
    monkeypatch.setattr(coalesce_history.inference, "history_entries", _hiding(inference.history_entries, {hidden}))
    monkeypatch.setattr(coalesce_history, "AUDIT_PERIOD", 2.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    caplog.set_level(logging.WARNING, logger=coalesce_history.__name__)
    tasks = {j: asyncio.ensure_future(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL))) for j in (listed, hidden)}
    try:
        await until(lambda: len(running_pollers()) == 1 and len(history_poller().windowed) == 2)
        await finish(real_service, [listed, hidden], "COMPLETED")
        # Without the audit the hidden job would wait until its deadline (an hour): LIVENESS_S fails it.
        outcomes = await asyncio.wait_for(asyncio.gather(tasks[listed], tasks[hidden]), LIVENESS_S)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert [o.status for o in outcomes] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert outcomes[1].job_id == hidden
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(hidden in w and "did not list it" in w for w in warnings), warnings
    assert running_pollers() == [] and active_clients() == 0


async def test_the_audit_reads_each_job_once_per_period_spread_over_the_rounds(
    hook: JobsHook,  # noqa: F811
    real_service: ServiceProcess,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count, period = 20, 2.0
    # 20 jobs, a 0.5 s poll, a 2 s period: a share of ceil(20 * 0.5 / 2) = 5 lone reads per round.
    share = 5
    job_ids = await asyncio.to_thread(submit_many, hook, count, 3600.0)
    monkeypatch.setattr(coalesce_history, "AUDIT_PERIOD", period)
    conn_id = use_mode(monkeypatch, real_service, "history")
    tasks = [asyncio.ensure_future(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL))) for j in job_ids]
    try:
        await until(lambda: len(running_pollers()) == 1 and len(history_poller().windowed) == count)
        poller = history_poller()
        before, rounds_before = await astats(real_service), poller.rounds
        # Every job audited twice over: two periods' worth of reads.
        await until(lambda: poller.audit_reads >= 2 * count)
        after, rounds_after = await astats(real_service), poller.rounds
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await finish(real_service, job_ids, "COMPLETED")
    rounds = rounds_after - rounds_before
    reads = delta(before, after, GET_JOB)
    # The audit is the only lone read here (no job is out of the window), at most a share a round...
    assert 2 * count <= reads <= share * (rounds + 1), (reads, rounds)
    # ...one history request per round besides.
    assert rounds - 1 <= delta(before, after, HISTORY) <= rounds + 1
    assert running_pollers() == [] and active_clients() == 0
