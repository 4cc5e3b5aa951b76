"""The shared ``StatusPoller`` over real HTTP: requests per round, cancellation, fallbacks, watch.

Counts come from the reference service's request stats (``GET /api/_test/stats``, test controls);
no assertion depends on wall-clock time, only on what was asked and in which order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable
from typing import Any

import pytest
import requests
from airflow.jobs.triggerer_job_runner import TriggerRunner
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.coalesce import StatusPoller, running_pollers
from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.exceptions import Conflict
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.connection import status_polling
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S
from tests._pollers import delta, outcome_of, submit_many, until
from tests.conftest import CONN_ID, connection_json


def stats(service: ServiceProcess) -> dict[str, Any]:
    resp = requests.get(
        f"{service.base_url}/api/_test/stats", headers={"Authorization": f"ApiKey {service.api_key}"}, timeout=10
    )
    resp.raise_for_status()
    result: dict[str, Any] = resp.json()
    return result


async def astats(service: ServiceProcess) -> dict[str, Any]:
    return await asyncio.to_thread(stats, service)


def cancel_all(hook: JobsHook, job_ids: list[str]) -> None:
    for job_id in job_ids:
        with contextlib.suppress(Conflict):  # already terminal: fine
            hook.cancel_job(job_id)


def use_conn(monkeypatch: pytest.MonkeyPatch, service: ServiceProcess, **extra: object) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service, **extra))
    return CONN_ID


def only_poller() -> StatusPoller:
    pollers = running_pollers()
    assert len(pollers) == 1, pollers
    return pollers[0]


async def gather_bounded(*aws: Awaitable[WaitOutcome]) -> list[WaitOutcome]:
    return list(await asyncio.wait_for(asyncio.gather(*aws), LIVENESS_S))


@pytest.fixture
def hook(jobwait_conn: str) -> JobsHook:
    return JobsHook(jobwait_conn)


async def test_waits_share_one_poller_and_one_request_per_batch_per_round(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    count, batch_size, rounds = 200, 50, 3
    job_ids = await asyncio.to_thread(submit_many, hook, count, 120.0)
    conn_id = use_conn(monkeypatch, service, status_mode="batch", batch_size=batch_size)
    # Through Airflow's own trigger runner, as in a triggerer.
    runner = TriggerRunner()
    tasks = []
    for n, job_id in enumerate(job_ids, start=1):
        runner.triggers[n] = {"name": f"wait-{n}", "events": 0}
        # Long enough that reading the stats between two rounds never overlaps the next round.
        trigger = JobTrigger(job_id, conn_id, poll_interval=2.0)
        tasks.append(asyncio.ensure_future(runner.run_trigger(n, trigger)))
    try:
        await until(lambda: len(running_pollers()) == 1 and only_poller().waiting == count)
        poller = only_poller()
        # Right after a round ends the next one is a whole interval away: a safe time to read stats.
        first = poller.rounds + 1
        await until(lambda: poller.rounds >= first)
        before = await astats(service)
        await until(lambda: poller.rounds >= first + rounds)
        after = await astats(service)
        # One request per batch per round; the stats reads are not atomic with a round, so one
        # round's requests may straddle a read (per-job polling would be 200 requests a round).
        per_round = math.ceil(count / batch_size)
        assert (rounds - 1) * per_round <= delta(before, after, "batch_status") <= (rounds + 1) * per_round
        assert delta(before, after, "get_job") == 0
        assert delta(before, after, "watch") == 0
        assert after["connections"] == before["connections"], "steady state opens no TCP connection"

        # A cancelled trigger leaves its poller at once.
        for task in tasks[: count // 2]:
            task.cancel()
        await asyncio.gather(*tasks[: count // 2], return_exceptions=True)
        assert poller.waiting == count - count // 2
        assert running_pollers() == [poller]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # The last wait out stops the poller and releases the pooled client: nothing outlives the waits.
    assert running_pollers() == []
    assert active_clients() == 0
    assert all(events["events"] == 0 for events in runner.triggers.values())
    await asyncio.to_thread(cancel_all, hook, job_ids)


async def test_unknown_job_in_a_batch_fails_only_its_own_wait(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = await asyncio.to_thread(submit_many, hook, 1, 1.0)
    conn_id = use_conn(monkeypatch, service, status_mode="batch")
    known, unknown = await gather_bounded(
        outcome_of(JobTrigger(job_id, conn_id, poll_interval=0.2)),
        outcome_of(JobTrigger("no-such-job-in-batch", conn_id, poll_interval=0.2)),
    )
    assert known.kind == "terminal" and known.status is JobStatus.COMPLETED
    # The batch reply omits unknown ids; a plain GET then says 404, as when polled alone.
    assert unknown.kind == "error" and "404" in unknown.message
    assert running_pollers() == [] and active_clients() == 0


async def test_per_job_mode_from_the_connection_extra(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await asyncio.to_thread(submit_many, hook, 3, 1.0)
    conn_id = use_conn(monkeypatch, service, status_mode="per_job")
    before = await astats(service)
    seen_pollers: list[int] = []

    async def watch_pollers() -> None:
        while True:
            seen_pollers.append(len(running_pollers()))
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(watch_pollers())
    try:
        results = await gather_bounded(*(outcome_of(JobTrigger(j, conn_id, poll_interval=0.2)) for j in job_ids))
    finally:
        sampler.cancel()
    after = await astats(service)
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert delta(before, after, "batch_status") == 0 and delta(before, after, "watch") == 0
    assert delta(before, after, "get_job") >= len(job_ids)
    assert max(seen_pollers) == 0


# How real gateways answer a route they lack: not only 404/405/501 (issue "Real services").
@pytest.mark.parametrize("status", [404, 405, 501, 400, 403, 415, 422])
async def test_falls_back_to_the_history_when_the_batch_endpoint_is_missing(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    first, second = await asyncio.to_thread(submit_many, hook, 2, 1.0)
    conn_id = use_conn(monkeypatch, service, status_mode="auto")
    # The probe (the first GET under /api/jobs) meets what a service without the [ext] route answers.
    rules = [{"kind": "status", "status": status, "path_prefix": "/api/jobs", "methods": ["GET"], "count": 1}]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        before = await astats(service)
        result = await asyncio.wait_for(outcome_of(JobTrigger(first, conn_id, poll_interval=0.2)), LIVENESS_S)
        # What was learnt is kept for the loop: the next wait goes straight to the history poller
        # (auto mode; client/coalesce_history.py), which reads each job alone at first contact.
        again = await asyncio.wait_for(outcome_of(JobTrigger(second, conn_id, poll_interval=0.2)), LIVENESS_S)
        after = await astats(service)
        fired = faults.state()["rules"][0]["fired"]
    assert result.status is JobStatus.COMPLETED and again.status is JobStatus.COMPLETED
    assert fired == 1
    assert delta(before, after, "batch_status") == 0 and delta(before, after, "watch") == 0
    assert delta(before, after, "get_job") >= 2
    assert delta(before, after, "history") >= 1


async def test_watch_wakes_the_wait_before_the_next_round(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await asyncio.to_thread(submit_many, hook, 3, 1.0)
    conn_id = use_conn(monkeypatch, service, status_mode="auto")
    before = await astats(service)
    # A poll interval far longer than the jobs: only the watch can bring the news before it ends.
    triggers = [JobTrigger(j, conn_id, poll_interval=60) for j in job_ids]
    results = await gather_bounded(*(outcome_of(t) for t in triggers))
    after = await astats(service)
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    # New waits are asked about once (together, or as they arrive); no round follows.
    assert 1 <= delta(before, after, "batch_status") <= len(job_ids)
    assert delta(before, after, "get_job") == 0
    assert delta(before, after, "watch") >= 1
    assert running_pollers() == [] and active_clients() == 0


async def test_without_the_watch_endpoint_the_rounds_carry_on(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = await asyncio.to_thread(submit_many, hook, 1, 1.0)
    conn_id = use_conn(monkeypatch, service, status_mode="auto")
    rules = [{"kind": "status", "status": 404, "path_prefix": "/api/jobs:watch"}]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        before = await astats(service)
        result = await asyncio.wait_for(outcome_of(JobTrigger(job_id, conn_id, poll_interval=0.2)), LIVENESS_S)
        after = await astats(service)
        fired = faults.state()["rules"][0]["fired"]
    assert result.status is JobStatus.COMPLETED
    assert fired == 1, "a missing watch endpoint is probed once, then left alone"
    assert delta(before, after, "batch_status") >= 2
    assert delta(before, after, "get_job") == 0


async def test_a_failed_batch_spends_each_waits_own_budget(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await asyncio.to_thread(submit_many, hook, 2, 1.5)
    conn_id = use_conn(monkeypatch, service, status_mode="batch")
    # Two rounds fail for good (the client's own retries included); the waits go on.
    rules = [{"kind": "status", "status": 503, "retry_after": 0, "path_prefix": "/api/jobs", "count": 10}]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        results = await gather_bounded(*(outcome_of(JobTrigger(j, conn_id, poll_interval=0.2)) for j in job_ids))
        injected = faults.stats()["injected"]
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert injected["status"] == 10


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ("auto", 500)),
        ({"status_mode": "per_job", "batch_size": 50}, ("per_job", 50)),
        ({"batch_size": None}, ("auto", 500)),
    ],
)
def test_status_polling_extras(extra: dict[str, Any], expected: tuple[str, int]) -> None:
    polling = status_polling("c", extra)
    assert (polling.mode, polling.batch_size) == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"status_mode": "watch-ish"}, "status_mode"),
        ({"batch_size": 501}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_bad_status_polling_extras_name_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        status_polling("c", extra)
