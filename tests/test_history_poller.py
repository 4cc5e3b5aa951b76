"""The shared ``HistoryPoller`` against the reference service's ``real`` profile (no batch status,
no watch: only Modzy's job history), counting requests at the service (``GET /api/_test/stats``).

No assertion is about wall-clock time: only what was asked, how often, and how each wait ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import coalesce_history, inference
from airflow_jobwait.client.coalesce import Notice, running_pollers, wait_coalesced
from airflow_jobwait.client.coalesce_history import HistoryPoller
from airflow_jobwait.client.http import HttpResponse
from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S
from tests._pollers import delta, failures, outcome_of, submit_many, until
from tests.conftest import API_KEY, CONN_ID, connection_json

POLL = 0.5


@pytest.fixture(scope="module")
def real_service() -> Iterator[ServiceProcess]:
    """A reference service in the real profile (test controls on, for stats and finish)."""
    with ServiceProcess(api_key=API_KEY, test_controls=True, profile="real", rate_limit=10_000) as proc:
        yield proc


@pytest.fixture
def hook(real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> JobsHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(real_service))
    return JobsHook(CONN_ID)


def use_mode(monkeypatch: pytest.MonkeyPatch, service: ServiceProcess, mode: str) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service, status_mode=mode))
    return CONN_ID


def _api(service: ServiceProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = requests.request(
        method,
        f"{service.base_url}/api{path}",
        json=body,
        headers={"Authorization": f"ApiKey {service.api_key}"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()


async def astats(service: ServiceProcess) -> dict[str, Any]:
    return dict(await asyncio.to_thread(_api, service, "GET", "/_test/stats"))


async def finish(service: ServiceProcess, job_ids: list[str], status: str) -> None:
    if job_ids:
        await asyncio.to_thread(_api, service, "POST", "/_test/finish", {"identifiers": job_ids, "status": status})


def history_poller() -> HistoryPoller:
    pollers = [p for p in running_pollers() if isinstance(p, HistoryPoller)]
    assert len(pollers) == 1, running_pollers()
    return pollers[0]


def has_history_poller(waiting: int) -> bool:
    pollers = [p for p in running_pollers() if isinstance(p, HistoryPoller)]
    return len(pollers) == 1 and pollers[0].waiting == waiting and len(pollers[0].windowed) == waiting


async def test_n_waits_cost_one_history_request_per_round_and_end_with_their_true_statuses(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    count, rounds = 30, 3
    job_ids = await asyncio.to_thread(submit_many, hook, count, 3600.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    before_start = await astats(real_service)
    tasks = {j: asyncio.ensure_future(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL))) for j in job_ids}
    try:
        await until(lambda: has_history_poller(count))
        poller = history_poller()
        first = poller.rounds + 1
        await until(lambda: poller.rounds >= first)
        before = await astats(real_service)
        # Each wait's job was read once, at first contact, for its status and submit time.
        assert delta(before_start, before, "get_job") == count
        await until(lambda: poller.rounds >= first + rounds)
        after = await astats(real_service)
        # Steady state: one history request per round (the stats reads are not atomic with a
        # round); no job is read alone. Polled per job, that would be count * rounds reads.
        assert rounds - 1 <= delta(before, after, "history") <= rounds + 1
        assert delta(before, after, "get_job") == 0

        # The jobs end in every terminal status, one group by a real cancel.
        groups = {
            "COMPLETED": job_ids[:10],
            "FAILED": job_ids[10:15],
            "TIMEDOUT": job_ids[15:20],
            "CANCELED": job_ids[20:25],
        }
        before_end = await astats(real_service)
        for status in ("COMPLETED", "FAILED", "TIMEDOUT"):
            await finish(real_service, groups[status], status)
        for job_id in groups["CANCELED"]:
            await asyncio.to_thread(hook.cancel_job, job_id)
        ended = [j for group in groups.values() for j in group]
        outcomes = await asyncio.wait_for(asyncio.gather(*(tasks[j] for j in ended)), LIVENESS_S)
        after_end = await astats(real_service)
        # Found in the history: no read alone was needed for any of them.
        assert delta(before_end, after_end, "get_job") == 0
        assert poller.waiting == count - len(ended)
        for status, group in groups.items():
            for job_id in group:
                outcome = outcomes[ended.index(job_id)]
                # Exactly the outcome a per-job read of the job gives.
                job = await asyncio.to_thread(hook.get_job, job_id)
                expected = WaitLoop(job_id, POLL).on_state(job.state)
                assert outcome == expected, (outcome, expected)
                assert outcome.kind == "terminal" and outcome.status is JobStatus(status)

        rest = job_ids[25:]
        await finish(real_service, rest, "COMPLETED")
        tail = await asyncio.wait_for(asyncio.gather(*(tasks[j] for j in rest)), LIVENESS_S)
        assert {o.status for o in tail} == {JobStatus.COMPLETED}
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await finish(real_service, job_ids, "CANCELED")
    assert running_pollers() == [] and active_clients() == 0


async def test_auto_mode_on_a_real_service_goes_through_the_history(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await asyncio.to_thread(submit_many, hook, 3, 1.0)
    conn_id = use_mode(monkeypatch, real_service, "auto")
    before = await astats(real_service)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL)) for j in job_ids)), LIVENESS_S
    )
    after = await astats(real_service)
    assert {o.status for o in outcomes} == {JobStatus.COMPLETED}
    # The batch probe met the real profile's 404/405; the history took over.
    assert delta(before, after, "history") >= 1
    assert running_pollers() == [] and active_clients() == 0


async def old_and_new(hook: JobsHook, service: ServiceProcess, between: int) -> tuple[str, str]:
    """Two running hour-long jobs, ``old`` and ``new``, with ``between`` jobs submitted between them
    and completed: the terminated listing has those before ``new``'s entry once it ends."""
    (old,) = await asyncio.to_thread(submit_many, hook, 1, 3600.0)
    await asyncio.sleep(0.05)  # distinct submit times (milliseconds on the wire)
    ended = await asyncio.to_thread(submit_many, hook, between, 3600.0)
    await finish(service, ended, "COMPLETED")
    await asyncio.sleep(0.05)
    (new,) = await asyncio.to_thread(submit_many, hook, 1, 3600.0)
    return old, new


async def test_a_job_the_capped_history_does_not_reach_is_read_alone(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One page of two entries per round: the listing cannot reach back to the old job.
    monkeypatch.setattr(coalesce_history, "PER_PAGE", 2)
    monkeypatch.setattr(coalesce_history, "MAX_PAGES", 1)
    old, new = await old_and_new(hook, real_service, 3)  # newer terminated jobs fill the page
    conn_id = use_mode(monkeypatch, real_service, "history")
    tasks = {j: asyncio.ensure_future(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL))) for j in (old, new)}
    try:
        await until(lambda: any(isinstance(p, HistoryPoller) for p in running_pollers()))
        poller = history_poller()
        await until(lambda: old in poller._alone)
        assert poller.windowed == [new]
        first = poller.rounds + 1
        await until(lambda: poller.rounds >= first)
        before = await astats(real_service)
        await until(lambda: poller.rounds >= first + 3)
        after = await astats(real_service)
        # The old job alone is read each round; the new one is covered by the history.
        assert 2 <= delta(before, after, "get_job") <= 4
        assert 2 <= delta(before, after, "history") <= 4
        await finish(real_service, [old], "FAILED")
        await finish(real_service, [new], "COMPLETED")
        got_old, got_new = await asyncio.wait_for(asyncio.gather(tasks[old], tasks[new]), LIVENESS_S)
        assert got_old.status is JobStatus.FAILED and got_new.status is JobStatus.COMPLETED
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert running_pollers() == [] and active_clients() == 0


async def test_a_job_that_ended_is_told_from_its_page_before_the_later_pages_are_read(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two entries, newest submitted first: the newest job is on the first of three.
    monkeypatch.setattr(coalesce_history, "PER_PAGE", 2)
    old, new = await old_and_new(hook, real_service, 4)  # four terminated entries after the newest
    conn_id = use_mode(monkeypatch, real_service, "history")
    # Rounds a few seconds apart: the finish and the rules below land between two of them.
    tasks = {j: asyncio.ensure_future(outcome_of(JobTrigger(j, conn_id, poll_interval=3.0))) for j in (old, new)}
    history = f"{inference.PREFIX}/jobs/history"
    rules = [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": history, "methods": ["GET"], "count": 1},  # page 1
        {"kind": "delay", "delay_s": 5.0, "path_prefix": history, "methods": ["GET"], "count": 1},  # page 2 held
    ]
    try:
        await until(lambda: has_history_poller(2))
        poller = history_poller()
        await until(lambda after=poller.rounds + 1: poller.rounds >= after)
        with FaultControl(real_service.base_url, real_service.api_key).injected(rules):
            await finish(real_service, [new], "COMPLETED")
            asked = poller.history_requests
            pages_asked: list[int] = []
            tasks[new].add_done_callback(lambda _: pages_asked.append(poller.history_requests - asked))
            got = await asyncio.wait_for(tasks[new], LIVENESS_S)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await finish(real_service, [old], "CANCELED")
    # The wait ended from the first page, while the second was held: the third not asked yet.
    assert pages_asked == [2]
    assert got.status is JobStatus.COMPLETED and got.job_id == new
    assert running_pollers() == [] and active_clients() == 0


async def test_without_a_history_the_waits_poll_alone(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await asyncio.to_thread(submit_many, hook, 2, 1.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    rules = [{"kind": "status", "status": 404, "path_prefix": "/api/jobs/history", "count": 1}]
    with FaultControl(real_service.base_url, real_service.api_key).injected(rules) as faults:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(outcome_of(JobTrigger(j, conn_id, poll_interval=POLL)) for j in job_ids)), LIVENESS_S
        )
        fired = faults.state()["rules"][0]["fired"]
    assert {o.status for o in outcomes} == {JobStatus.COMPLETED}
    assert fired == 1
    assert running_pollers() == [] and active_clients() == 0


def test_history_entries_call_asks_as_the_sdk_does_and_reads_a_bare_array() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=timezone(timedelta(hours=2)))
    call = inference.history_entries("terminated", since, page=3, per_page=50)
    assert call.request.path == "/api/jobs/history"
    assert dict(call.request.params) == {
        "status": "terminated",
        "startDate": "2026-01-02T01:04:05.678+00:00",  # the service's clock, UTC, milliseconds
        "direction": "desc",
        "page": "3",
        "per-page": "50",
    }
    body = b'[{"jobIdentifier": "a", "status": "CANCELED", "submittedAt": "2026-01-02T01:04:05.678"},'
    body += b' {"jobIdentifier": "b"}]'
    first, second = call.parse(HttpResponse(200, {}, body))
    assert first.state is not None and first.state.status is JobStatus.CANCELED
    assert first.submitted_at == datetime(2026, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)  # naive is UTC
    assert second.state is None and second.submitted_at is None  # read alone by the poller
    with pytest.raises(InvalidResponse):
        call.parse(HttpResponse(200, {}, b'{"jobs": []}'))
    with pytest.raises(ValueError, match="per_page"):
        inference.history_entries("terminated", since, per_page=inference.MAX_HISTORY_PER_PAGE + 1)


# ---- errors and deadlines: each wait's own budget and deadline -----------------------------------

#: The client's attempts per call (``RetryPolicy.max_attempts``): a round fails for good after
#: this many 503s in a row (``Retry-After: 0``, so the retries do not stretch the test).
ATTEMPTS = 5


def failing_history(rounds: int) -> list[dict[str, Any]]:
    """Fault rules failing the next ``rounds`` history rounds for good (the retries included)."""
    return [
        {
            "kind": "status",
            "status": 503,
            "retry_after": 0,
            "path_prefix": "/api/jobs/history",
            "count": ATTEMPTS * rounds,
        }
    ]


def wait_with_budget(
    conn_id: str, job_id: str, budget: int, notices: list[Notice], deadline: float | None = None
) -> asyncio.Future[WaitOutcome | None]:
    """A history wait with its own error budget (a trigger's is always the default), its notices kept."""
    config = JobsHook(conn_id).client_config
    loop = WaitLoop(job_id, POLL, deadline, max_consecutive_errors=budget)
    return asyncio.ensure_future(wait_coalesced(conn_id, config, job_id, loop, "history", on_notice=notices.append))


async def per_job_outcome(hook: JobsHook, job_id: str) -> WaitOutcome | None:
    """What polling the job alone would end with now (``WaitLoop.on_state`` of a plain read)."""
    job = await asyncio.to_thread(hook.get_job, job_id)
    return WaitLoop(job_id, POLL).on_state(job.state)


async def test_a_failed_history_round_spends_each_windowed_waits_own_budget(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    short, completing, failing = await asyncio.to_thread(submit_many, hook, 3, 3600.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    budgets = {short: 2, completing: 20, failing: 20}
    notices: dict[str, list[Notice]] = {job_id: [] for job_id in budgets}
    tasks: dict[str, asyncio.Future[WaitOutcome | None]] = {}
    with FaultControl(real_service.base_url, real_service.api_key).injected(failing_history(2)) as faults:
        try:
            for job_id, budget in budgets.items():
                tasks[job_id] = wait_with_budget(conn_id, job_id, budget, notices[job_id])
            # Two history rounds fail: one error against each windowed wait; the short budget runs out.
            ended = await asyncio.wait_for(tasks[short], LIVENESS_S)
            injected = (await asyncio.to_thread(faults.stats))["injected"]
            poller = history_poller()
            assert poller.waiting == 2 and sorted(poller.windowed) == sorted([completing, failing])
            assert not tasks[completing].done() and not tasks[failing].done()
            # The history answers again (the round that failed ends, one more answers): the
            # other waits carry on through it.
            answered = poller.rounds + 2
            await until(lambda: poller.rounds >= answered)
            assert not tasks[completing].done() and not tasks[failing].done()
            await finish(real_service, [completing], "COMPLETED")
            await finish(real_service, [failing], "FAILED")
            got_completed, got_failed = await asyncio.wait_for(
                asyncio.gather(tasks[completing], tasks[failing]), LIVENESS_S
            )
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            await finish(real_service, list(budgets), "CANCELED")
    assert injected["status"] == ATTEMPTS * 2
    # The wait whose budget ran out ends with an error naming the failure, as polled alone
    # (WaitLoop.on_error: "failed N times in a row; last error: ...").
    assert ended is not None and ended.kind == "error" and ended.job_id == short
    assert ended.message.startswith(f"polling job {short} failed 2 times in a row; last error:")
    assert "503" in ended.message
    assert ended.status is not None and not ended.status.is_terminal  # the status it had last
    # Each wait was told of each failed round once: its own budget, not a share of one.
    assert [len(failures(notices[j])) for j in (short, completing, failing)] == [2, 2, 2]
    assert all("503" in str(n.error) for n in failures(notices[completing]))
    # The others end with their true statuses, exactly as a per-job read gives them.
    assert got_completed == await per_job_outcome(hook, completing)
    assert got_completed is not None and got_completed.status is JobStatus.COMPLETED
    assert got_failed == await per_job_outcome(hook, failing)
    assert got_failed is not None and got_failed.status is JobStatus.FAILED
    assert running_pollers() == [] and active_clients() == 0


async def test_a_history_round_that_answers_ends_each_waits_run_of_errors(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget counts failures in a row (WaitLoop.max_consecutive_errors): a round in which the
    # history answered (the job not listed: still running) is a successful poll of the job.
    (job_id,) = await asyncio.to_thread(submit_many, hook, 1, 3600.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    notices: list[Notice] = []
    control = FaultControl(real_service.base_url, real_service.api_key)
    task = wait_with_budget(conn_id, job_id, 3, notices)
    try:
        await until(lambda: has_history_poller(1))
        poller = history_poller()
        for _ in range(2):
            # Two failed rounds, then two that answer.
            with control.injected(failing_history(2)):
                await until(lambda: len(failures(notices)) >= 2 or task.done())
            notices.clear()
            await until(lambda after=poller.rounds + 2: poller.rounds >= after or task.done())
            assert not task.done(), task.result()
        await finish(real_service, [job_id], "COMPLETED")
        outcome = await asyncio.wait_for(task, LIVENESS_S)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await finish(real_service, [job_id], "CANCELED")
    assert outcome == await per_job_outcome(hook, job_id)
    assert outcome is not None and outcome.status is JobStatus.COMPLETED
    assert running_pollers() == [] and active_clients() == 0


async def test_a_waits_deadline_ends_it_alone_as_timed_out(
    hook: JobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    short, other, another = await asyncio.to_thread(submit_many, hook, 3, 3600.0)
    conn_id = use_mode(monkeypatch, real_service, "history")
    deadline = time.time() + 2 * POLL  # a round or so after first contact
    triggers = {
        short: JobTrigger(short, conn_id, poll_interval=POLL, deadline=deadline),
        other: JobTrigger(other, conn_id, poll_interval=POLL),
        another: JobTrigger(another, conn_id, poll_interval=POLL, deadline=time.time() + 3600),
    }
    tasks = {j: asyncio.ensure_future(outcome_of(t)) for j, t in triggers.items()}
    try:
        timed_out = await asyncio.wait_for(tasks[short], LIVENESS_S)
        poller = history_poller()
        assert poller.waiting == 2 and sorted(poller.windowed) == sorted([other, another])
        # The others carry on through the history and end with their true statuses.
        rounds = poller.rounds + 1
        await until(lambda: poller.rounds >= rounds)
        assert not tasks[other].done() and not tasks[another].done()
        await finish(real_service, [other], "TIMEDOUT")
        await finish(real_service, [another], "COMPLETED")
        got_other, got_another = await asyncio.wait_for(asyncio.gather(tasks[other], tasks[another]), LIVENESS_S)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await finish(real_service, list(triggers), "CANCELED")
    # WaitLoop.timed_out: kind timeout, the last status the wait learnt (a running one).
    assert timed_out.kind == "timeout" and timed_out.job_id == short
    assert timed_out.message.startswith(f"timed out waiting for job {short} (last status ")
    assert timed_out.status is not None and not timed_out.status.is_terminal
    assert time.time() >= deadline
    assert got_other == await per_job_outcome(hook, other) and got_other.status is JobStatus.TIMEDOUT
    assert got_another == await per_job_outcome(hook, another) and got_another.status is JobStatus.COMPLETED
    assert running_pollers() == [] and active_clients() == 0
