"""The shared ``DatasetListPoller`` against the reference service's ``real`` profile (TensorBay's
job list per dataset, no batch status), counting requests at the service: a fault rule of a tiny
delay per dataset and route counts every request it matches (``fired``).

No assertion is about wall-clock time: only what was asked, how often, and how each wait ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import coalesce_datasets, datasets
from airflow_jobwait.client.coalesce import running_pollers
from airflow_jobwait.client.coalesce_datasets import DatasetListPoller
from airflow_jobwait.client.http import Call, HttpResponse
from airflow_jobwait.client.job_kinds import _dataset_state
from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.models.datasets import DatasetJobList
from airflow_jobwait.triggers import JobTrigger
from tests import reference_datasets as reference
from tests.conftest import API_KEY, TENSORBAY_CONN, connection_json

LIMIT = 60.0  # bound of every wait in this file; no assertion is about time
POLL = 0.5
TYPE = "squashAndMerge"
SLOW = {"queuing_s": 600}
FAILING = {"queuing_s": 2.0, "processing_s": 0.2, "outcome": "FAILED", "error_message": "merge conflict on a.txt"}
SUCCEEDING = {"queuing_s": 2.0, "processing_s": 0.2}


@pytest.fixture(scope="module")
def real_service() -> Iterator[ServiceProcess]:
    with ServiceProcess(api_key=API_KEY, test_controls=True, profile="real", rate_limit=10_000) as proc:
        yield proc


@pytest.fixture
def hook(real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> DatasetJobsHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{TENSORBAY_CONN.upper()}", connection_json(real_service, "tensorbay"))
    return DatasetJobsHook(TENSORBAY_CONN)


def use_mode(monkeypatch: pytest.MonkeyPatch, service: ServiceProcess, mode: str) -> str:
    value = connection_json(service, "tensorbay", status_mode=mode)
    monkeypatch.setenv(f"AIRFLOW_CONN_{TENSORBAY_CONN.upper()}", value)
    return TENSORBAY_CONN


def create(hook: DatasetJobsHook, dataset: str, test: dict[str, Any], count: int = 1) -> list[str]:
    return [
        hook.squash_and_merge(dataset, f"merge {n}", "feature", "main", extra_body={"test": test}).job_id
        for n in range(count)
    ]


def counting_rules(*dataset_ids: str) -> list[dict[str, Any]]:
    """Per dataset: one rule matching its per-job reads, then one its job lists (first match wins)."""
    rules = []
    for dataset_id in dataset_ids:
        jobs = f"{datasets.PREFIX}/{dataset_id}/jobs"
        rules.append({"kind": "delay", "delay_s": 0.001, "path_prefix": f"{jobs}/", "methods": ["GET"]})
        rules.append({"kind": "delay", "delay_s": 0.001, "path_prefix": jobs, "methods": ["GET"]})
    return rules


async def fired(faults: FaultControl) -> list[int]:
    state = await asyncio.to_thread(faults.state)
    return [int(rule["fired"]) for rule in state["rules"]]


def trigger(conn_id: str, dataset: str, job_id: str) -> JobTrigger:
    ref = {"dataset_id": dataset, "job_type": TYPE}
    return JobTrigger(job_id, conn_id, poll_interval=POLL, job_kind="dataset", job_ref=ref)


async def outcome_of(trigger: JobTrigger) -> WaitOutcome:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return WaitOutcome.model_validate(events[0].payload)


async def until(condition: Any, limit: float = LIMIT) -> None:
    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(spin(), limit)


def list_pollers() -> dict[str, DatasetListPoller]:
    return {p.group.dataset_id: p for p in running_pollers() if isinstance(p, DatasetListPoller)}


async def per_job_outcome(hook: DatasetJobsHook, dataset: str, job_id: str) -> WaitOutcome | None:
    job = await asyncio.to_thread(hook.get_job, dataset, job_id, TYPE)
    return WaitLoop(job_id, POLL).on_state(_dataset_state(job))


async def test_dataset_waits_cost_one_list_request_per_dataset_per_round_and_end_with_their_true_statuses(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = [await asyncio.to_thread(hook.call, reference.clone_dataset()) for _ in range(2)]
    jobs = {
        first: {
            "slow": await asyncio.to_thread(create, hook, first, SLOW, 8),
            "failing": await asyncio.to_thread(create, hook, first, FAILING, 3),
        },
        second: {
            "slow": await asyncio.to_thread(create, hook, second, SLOW, 8),
            "succeeding": await asyncio.to_thread(create, hook, second, SUCCEEDING, 3),
        },
    }
    count = {dataset: sum(map(len, groups.values())) for dataset, groups in jobs.items()}
    conn_id = use_mode(monkeypatch, real_service, "auto")
    rounds = 3
    tasks: dict[str, asyncio.Future[WaitOutcome]] = {}
    with FaultControl(real_service.base_url, real_service.api_key).injected(counting_rules(first, second)) as faults:
        try:
            for dataset, groups in jobs.items():
                for job_id in (j for group in groups.values() for j in group):
                    tasks[job_id] = asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, job_id)))
            await until(lambda: {d: len(p.windowed) for d, p in list_pollers().items()} == count)
            pollers = list_pollers()
            # Each wait's job was read once, at first contact, for its status and createdAt.
            start = {d: p.rounds + 1 for d, p in pollers.items()}
            await until(lambda: all(p.rounds >= start[d] for d, p in pollers.items()))
            before = await fired(faults)
            assert before[0] == count[first] and before[2] == count[second]
            await until(lambda: all(p.rounds >= start[d] + rounds for d, p in pollers.items()))
            after = await fired(faults)
            # One list request per dataset per round; no job read alone (per job: 22 per round).
            for index in (1, 3):
                assert rounds - 1 <= after[index] - before[index] <= rounds + 1
            assert after[0] == before[0] and after[2] == before[2]

            # The failing and succeeding jobs end by themselves; some slow ones are aborted.
            aborted = {first: jobs[first]["slow"][:3], second: jobs[second]["slow"][:3]}
            for dataset, job_ids in aborted.items():
                for job_id in job_ids:
                    await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
            ended = {
                first: [*jobs[first]["failing"], *aborted[first]],
                second: [*jobs[second]["succeeding"], *aborted[second]],
            }
            all_ended = [j for job_ids in ended.values() for j in job_ids]
            await asyncio.wait_for(asyncio.gather(*(tasks[j] for j in all_ended)), LIMIT)
            end = await fired(faults)
            # Listed with errorMessage: no failed or aborted job needed a read alone.
            assert end[0] == before[0] and end[2] == before[2]
            for dataset, job_ids in ended.items():
                for job_id in job_ids:
                    # Exactly the outcome a per-job read gives, failure reason included.
                    assert tasks[job_id].result() == await per_job_outcome(hook, dataset, job_id)
            failed = await asyncio.gather(*(tasks[j] for j in jobs[first]["failing"]))
            assert {o.status for o in failed} == {JobStatus.FAILED}
            assert all("merge conflict on a.txt" in o.message for o in failed)
            succeeded = await asyncio.gather(*(tasks[j] for j in jobs[second]["succeeding"]))
            assert {o.status for o in succeeded} == {JobStatus.COMPLETED}
            cancelled = await asyncio.gather(*(tasks[j] for j in [*aborted[first], *aborted[second]]))
            assert {o.status for o in cancelled} == {JobStatus.CANCELED}
            assert {d: p.waiting for d, p in pollers.items()} == {first: 5, second: 5}
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for dataset, groups in jobs.items():
                for job_id in groups["slow"][3:]:
                    await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
    assert running_pollers() == [] and active_clients() == 0


def _without_error_message(original: Any) -> Any:
    """``datasets.list_jobs`` whose entries lack ``errorMessage``, as a service may list them."""

    def list_jobs(*args: Any, **kwargs: Any) -> Call[DatasetJobList]:
        call = original(*args, **kwargs)

        def parse(response: HttpResponse) -> DatasetJobList:
            body = json.loads(response.body)
            for job in body.get("jobs", []):
                job.pop("errorMessage", None)
            return call.parse(HttpResponse(response.status, response.headers, json.dumps(body).encode()))

        return Call(call.request, parse)

    return list_jobs


async def test_a_failed_entry_without_its_error_message_is_read_alone(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalesce_datasets.datasets, "list_jobs", _without_error_message(datasets.list_jobs))
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    (failing,) = await asyncio.to_thread(create, hook, dataset, FAILING)
    (slow,) = await asyncio.to_thread(create, hook, dataset, SLOW)
    conn_id = use_mode(monkeypatch, real_service, "history")
    rules = [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{datasets.PREFIX}/{dataset}/jobs/{failing}"},
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{datasets.PREFIX}/{dataset}/jobs/{slow}"},
    ]
    with FaultControl(real_service.base_url, real_service.api_key).injected(rules) as faults:
        tasks = [asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, j))) for j in (failing, slow)]
        try:
            outcome = await asyncio.wait_for(tasks[0], LIMIT)
            reads = await fired(faults)
        finally:
            await asyncio.to_thread(hook.abort, dataset, slow, TYPE)
            await asyncio.gather(*tasks, return_exceptions=True)
    assert outcome == await per_job_outcome(hook, dataset, failing)
    assert outcome.status is JobStatus.FAILED and "merge conflict on a.txt" in outcome.message
    # First contact, then the read the entry without errorMessage asked for; the slow job: only
    # its first contact (running entries carry all a per-job read does).
    assert reads == [2, 1]
    assert running_pollers() == [] and active_clients() == 0


async def test_a_job_the_capped_list_does_not_reach_is_read_alone(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One page of two entries per round: the list cannot reach back to the old job.
    monkeypatch.setattr(coalesce_datasets, "PER_PAGE", 2)
    monkeypatch.setattr(coalesce_datasets, "MAX_PAGES", 1)
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    (old,) = await asyncio.to_thread(create, hook, dataset, SLOW)
    between = await asyncio.to_thread(create, hook, dataset, SLOW, 3)
    (new,) = await asyncio.to_thread(create, hook, dataset, SLOW)
    conn_id = use_mode(monkeypatch, real_service, "history")
    tasks = {j: asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, j))) for j in (old, new)}
    try:
        await until(lambda: dataset in list_pollers() and old in list_pollers()[dataset]._alone)
        poller = list_pollers()[dataset]
        assert poller.windowed == [new]
        start = poller.rounds + 1
        await until(lambda: poller.rounds >= start)
        listed = poller.list_requests
        await until(lambda: poller.rounds >= start + 3)
        assert 2 <= poller.list_requests - listed <= 4
        for job_id in (old, new):
            await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
        got_old, got_new = await asyncio.wait_for(asyncio.gather(tasks[old], tasks[new]), LIMIT)
        assert got_old.status is JobStatus.CANCELED and got_new.status is JobStatus.CANCELED
        assert got_old == await per_job_outcome(hook, dataset, old)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for job_id in between:
            await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
    assert running_pollers() == [] and active_clients() == 0


async def test_without_a_job_list_the_waits_poll_alone(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    job_ids = await asyncio.to_thread(create, hook, dataset, {"queuing_s": 1.0, "processing_s": 0.2}, 2)
    conn_id = use_mode(monkeypatch, real_service, "auto")
    jobs = f"{datasets.PREFIX}/{dataset}/jobs"
    rules = [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{jobs}/", "methods": ["GET"]},
        {"kind": "status", "status": 404, "path_prefix": jobs, "methods": ["GET"], "count": 1},
    ]
    with FaultControl(real_service.base_url, real_service.api_key).injected(rules) as faults:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(outcome_of(trigger(conn_id, dataset, j)) for j in job_ids)), LIMIT
        )
        reads, missing = await fired(faults)
    assert {o.status for o in outcomes} == {JobStatus.COMPLETED}
    assert missing == 1 and reads > len(job_ids)  # first contacts, then polled alone
    assert running_pollers() == [] and active_clients() == 0
