"""The shared ``DatasetListPoller`` against the reference service's ``real`` profile (TensorBay's
job list per dataset, no batch status), counting requests at the service: a fault rule of a tiny
delay per dataset and route counts every request it matches (``fired``).

No assertion is about wall-clock time: only what was asked, how often, and how each wait ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import coalesce_datasets, datasets
from airflow_jobwait.client.coalesce import Notice, round_phase, running_pollers
from airflow_jobwait.client.coalesce_datasets import DatasetListPoller, wait_dataset_coalesced
from airflow_jobwait.client.http import Call, HttpResponse
from airflow_jobwait.client.job_kinds import dataset_state
from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import JobWaitError, NotFound
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobSummaryList
from airflow_jobwait.triggers import JobTrigger
from tests import reference_datasets as reference
from tests._liveness import LIVENESS_S
from tests._pollers import failures, outcome_of, until
from tests.conftest import API_KEY, TENSORBAY_CONN, connection_json

T = TypeVar("T")
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


def list_pollers() -> dict[str, DatasetListPoller]:
    return {p.group.dataset_id: p for p in running_pollers() if isinstance(p, DatasetListPoller)}


async def per_job_outcome(hook: DatasetJobsHook, dataset: str, job_id: str) -> WaitOutcome | None:
    job = await asyncio.to_thread(hook.get_job, dataset, job_id, TYPE)
    return WaitLoop(job_id, POLL).on_state(dataset_state(job))


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
            await asyncio.wait_for(asyncio.gather(*(tasks[j] for j in all_ended)), LIVENESS_S)
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


async def test_the_job_lists_of_datasets_on_one_service_are_read_at_phases_apart(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pollers created together would send their pages together each round, and the service would
    answer them together; each new poller of a service takes the next phase of ``round_phase``."""
    first, second = [await asyncio.to_thread(hook.call, reference.clone_dataset()) for _ in range(2)]
    jobs = {dataset: await asyncio.to_thread(create, hook, dataset, SLOW, 2) for dataset in (first, second)}
    conn_id = use_mode(monkeypatch, real_service, "auto")
    sent: dict[str, list[float]] = {first: [], second: []}
    original = datasets.list_job_summaries

    def list_job_summaries(dataset_id: str, *args: Any, **kwargs: Any) -> Call[DatasetJobSummaryList]:
        sent[dataset_id].append(asyncio.get_running_loop().time())
        return original(dataset_id, *args, **kwargs)

    monkeypatch.setattr(datasets, "list_job_summaries", list_job_summaries)
    tasks = [
        asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, job_id)))
        for dataset, job_ids in jobs.items()
        for job_id in job_ids
    ]
    try:
        await until(lambda: all(len(times) >= 3 for times in sent.values()))
        # Both started within the same few ms; their rounds keep phases 0 and 0.618 of the
        # interval: 0.382 of it apart on the circle (a round's page is sent within ms of its phase).
        gaps = [abs((a - b) % POLL) for a, b in zip(sent[first][1:3], sent[second][1:3], strict=True)]
        assert all(min(gap, POLL - gap) > 0.1 * POLL for gap in gaps), (gaps, sent)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dataset, job_ids in jobs.items():
            for job_id in job_ids:
                await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
    assert running_pollers() == [] and active_clients() == 0


def test_round_phases_keep_any_number_of_pollers_apart() -> None:
    for count in range(2, 21):
        phases = sorted(round_phase(rank) for rank in range(count))
        gaps = [b - a for a, b in zip(phases, [*phases[1:], phases[0] + 1.0], strict=True)]
        # The golden-ratio sequence: no gap under a third of an even spread's.
        assert min(gaps) > 1 / count / 3, (count, gaps)
    assert round_phase(0) == 0.0  # a service's first poller runs its rounds as before


def _without_error_message(original: Any) -> Any:
    """``datasets.list_job_summaries`` whose entries lack ``errorMessage``, as a service may list them."""

    def list_job_summaries(*args: Any, **kwargs: Any) -> Call[DatasetJobSummaryList]:
        call = original(*args, **kwargs)

        def parse(response: HttpResponse) -> DatasetJobSummaryList:
            body = json.loads(response.body)
            for job in body.get("jobs", []):
                job.pop("errorMessage", None)
            return call.parse(HttpResponse(response.status, response.headers, json.dumps(body).encode()))

        return Call(call.request, parse)

    return list_job_summaries


async def test_a_failed_entry_without_its_error_message_is_read_alone(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        coalesce_datasets.datasets, "list_job_summaries", _without_error_message(datasets.list_job_summaries)
    )
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
            outcome = await asyncio.wait_for(tasks[0], LIVENESS_S)
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
        got_old, got_new = await asyncio.wait_for(asyncio.gather(tasks[old], tasks[new]), LIVENESS_S)
        assert got_old.status is JobStatus.CANCELED and got_new.status is JobStatus.CANCELED
        assert got_old == await per_job_outcome(hook, dataset, old)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for job_id in between:
            await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
    assert running_pollers() == [] and active_clients() == 0


async def test_a_job_that_ended_is_told_from_its_page_before_the_later_pages_are_read(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three pages of two entries, newest first: the newest job is on the first page.
    monkeypatch.setattr(coalesce_datasets, "PER_PAGE", 2)
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    jobs = await asyncio.to_thread(create, hook, dataset, SLOW, 6)
    newest = jobs[-1]
    conn_id = use_mode(monkeypatch, real_service, "history")
    ref = {"dataset_id": dataset, "job_type": TYPE}
    # Rounds a few seconds apart: the abort and the rules below land between two of them.
    waits = [JobTrigger(j, conn_id, poll_interval=3.0, job_kind="dataset", job_ref=ref) for j in jobs]
    tasks = {w.job_id: asyncio.ensure_future(outcome_of(w)) for w in waits}
    list_path = f"{datasets.PREFIX}/{dataset}/jobs"
    rules = [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{list_path}/", "methods": ["GET"]},  # reads alone
        {"kind": "delay", "delay_s": 0.001, "path_prefix": list_path, "methods": ["GET"], "count": 1},  # page 1
        {"kind": "delay", "delay_s": 5.0, "path_prefix": list_path, "methods": ["GET"], "count": 1},  # page 2 held
    ]
    try:
        await until(lambda: dataset in list_pollers() and len(list_pollers()[dataset].windowed) == len(jobs))
        poller = list_pollers()[dataset]
        await until(lambda after=poller.rounds + 1: poller.rounds >= after)
        with FaultControl(real_service.base_url, real_service.api_key).injected(rules):
            await asyncio.to_thread(hook.abort, dataset, newest, TYPE)
            asked = poller.list_requests
            pages_asked: list[int] = []
            tasks[newest].add_done_callback(lambda _: pages_asked.append(poller.list_requests - asked))
            got = await asyncio.wait_for(tasks[newest], LIVENESS_S)
    finally:
        await settle(tasks, hook, dataset)
    # The wait ended from the first page, while the second was held: the third not asked yet.
    assert pages_asked == [2]
    assert got == await per_job_outcome(hook, dataset, newest)
    assert got.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0


async def test_no_page_of_a_round_is_kept_once_the_next_is_asked_for(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round at 10,000 waits reads ~80 pages one after another; entries kept for the whole round
    outlive the young generations and bring the full collections several times as often. Each
    page is read for what the round needs, and its models are gone when the next is requested."""
    monkeypatch.setattr(coalesce_datasets, "PER_PAGE", 2)  # three pages of two a round
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    jobs = await asyncio.to_thread(create, hook, dataset, SLOW, 6)
    conn_id = use_mode(monkeypatch, real_service, "auto")
    parsed: list[weakref.ref[Any]] = []  # the page models read so far
    alive_when_asked: list[int] = []  # of those, alive when a later page is requested
    original = datasets.list_job_summaries

    def list_job_summaries(dataset_id: str, job_type: str, offset: int, limit: int) -> Call[DatasetJobSummaryList]:
        if offset > 0:  # no collection asked for: freed as the page's call returns, not promoted
            alive_when_asked.append(sum(ref() is not None for ref in parsed))
        call = original(dataset_id, job_type, offset, limit)

        def parse(response: HttpResponse) -> DatasetJobSummaryList:
            page = call.parse(response)
            parsed.extend(weakref.ref(model) for model in (page, *page.jobs))
            return page

        return Call(call.request, parse)

    monkeypatch.setattr(datasets, "list_job_summaries", list_job_summaries)
    tasks = [asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, job_id))) for job_id in jobs]
    try:
        await until(lambda: len(alive_when_asked) >= 4)  # the later pages of two rounds
        assert not any(task.done() for task in tasks)
    finally:
        await settle(dict(zip(jobs, tasks, strict=True)), hook, dataset)
    assert len(parsed) >= 4 * 3  # each page: the list and its two entries
    assert alive_when_asked[:4] == [0, 0, 0, 0]
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
            asyncio.gather(*(outcome_of(trigger(conn_id, dataset, j)) for j in job_ids)), LIVENESS_S
        )
        reads, missing = await fired(faults)
    assert {o.status for o in outcomes} == {JobStatus.COMPLETED}
    assert missing == 1 and reads > len(job_ids)  # first contacts, then polled alone
    assert running_pollers() == [] and active_clients() == 0


# ---- errors, deadlines, a deleted dataset, a job without createdAt -------------------------------

#: The client's attempts per call (``RetryPolicy.max_attempts``): a round fails for good after
#: this many 503s in a row (``Retry-After: 0``, so the retries do not stretch the test).
ATTEMPTS = 5


def failing_list(dataset_id: str, rounds: int) -> list[dict[str, Any]]:
    """Fault rules: per-job reads of the dataset counted (first rule), its next ``rounds`` job
    list rounds failed for good (second rule: 503 on every attempt)."""
    jobs = f"{datasets.PREFIX}/{dataset_id}/jobs"
    return [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{jobs}/", "methods": ["GET"]},
        {
            "kind": "status",
            "status": 503,
            "retry_after": 0,
            "path_prefix": jobs,
            "methods": ["GET"],
            "count": ATTEMPTS * rounds,
        },
    ]


def wait_with_budget(
    conn_id: str, dataset: str, job_id: str, budget: int, notices: list[Notice]
) -> asyncio.Future[WaitOutcome | None]:
    """A list wait with its own error budget (a trigger's is always the default), its notices kept."""
    config = DatasetJobsHook(conn_id).client_config
    loop = WaitLoop(job_id, POLL, max_consecutive_errors=budget)
    return asyncio.ensure_future(
        wait_dataset_coalesced(conn_id, config, dataset, TYPE, job_id, loop, "history", notices.append)
    )


async def abort_and_wait(hook: DatasetJobsHook, dataset: str, job_id: str, task: asyncio.Future[T]) -> T:
    """Abort the job, then answer its wait's outcome (which the abort ends)."""
    await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
    return await asyncio.wait_for(task, LIVENESS_S)


async def settle(
    tasks: Mapping[str, asyncio.Future[Any]], hook: DatasetJobsHook, dataset: str, jobs: Iterable[str] | None = None
) -> None:
    """A test's end, passed or not: its waits cancelled, and its jobs that still run aborted.

    :param jobs: The jobs of ``dataset`` to abort; the waited ones (``tasks``' keys) by default.
    """
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    for job_id in tasks if jobs is None else jobs:
        with contextlib.suppress(JobWaitError):  # ended already: fine
            await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)


async def test_a_failed_list_round_spends_each_windowed_waits_own_budget(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    short, aborted = await asyncio.to_thread(create, hook, dataset, SLOW, 2)
    (failing,) = await asyncio.to_thread(create, hook, dataset, FAILING)
    conn_id = use_mode(monkeypatch, real_service, "history")
    budgets = {short: 2, aborted: 20, failing: 20}
    notices: dict[str, list[Notice]] = {job_id: [] for job_id in budgets}
    tasks: dict[str, asyncio.Future[WaitOutcome | None]] = {}
    with FaultControl(real_service.base_url, real_service.api_key).injected(failing_list(dataset, 2)) as faults:
        try:
            for job_id, budget in budgets.items():
                tasks[job_id] = wait_with_budget(conn_id, dataset, job_id, budget, notices[job_id])
            # Two list rounds fail: one error against each windowed wait; the short budget runs out.
            ended = await asyncio.wait_for(tasks[short], LIVENESS_S)
            poller = list_pollers()[dataset]
            assert poller.waiting == 2 and sorted(poller.windowed) == sorted([aborted, failing])
            assert not tasks[aborted].done()
            # The list answers again (the round that failed ends, one more answers).
            await until(lambda after=poller.rounds + 2: poller.rounds >= after)
            assert not tasks[aborted].done()
            await asyncio.to_thread(hook.abort, dataset, aborted, TYPE)
            got_aborted, got_failed = await asyncio.wait_for(asyncio.gather(tasks[aborted], tasks[failing]), LIVENESS_S)
            reads, failed_lists = await fired(faults)
        finally:
            await settle(tasks, hook, dataset)
    assert failed_lists == ATTEMPTS * 2
    # The wait whose budget ran out ends with an error naming the failure, as polled alone
    # (WaitLoop.on_error: "failed N times in a row; last error: ...").
    assert ended is not None and ended.kind == "error" and ended.job_id == short
    assert ended.message.startswith(f"polling job {short} failed 2 times in a row; last error:")
    assert "503" in ended.message
    assert ended.status is not None and not ended.status.is_terminal  # the status it had last
    # Each wait was told of each failed round once: its own budget, not a share of one.
    assert [len(failures(notices[j])) for j in (short, aborted, failing)] == [2, 2, 2]
    # The others end with their true statuses, exactly as a per-job read gives them (the failure
    # reason included), from the list: first contacts were the only reads alone.
    assert got_aborted == await per_job_outcome(hook, dataset, aborted)
    assert got_aborted is not None and got_aborted.status is JobStatus.CANCELED
    assert got_failed == await per_job_outcome(hook, dataset, failing)
    assert got_failed is not None and got_failed.status is JobStatus.FAILED
    assert "merge conflict on a.txt" in got_failed.message
    assert reads == len(budgets)
    assert running_pollers() == [] and active_clients() == 0


async def test_a_list_round_that_answers_ends_each_waits_run_of_errors(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget counts failures in a row (WaitLoop.max_consecutive_errors): a round in which the
    # list answered for the job is a successful poll of it.
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    (job_id,) = await asyncio.to_thread(create, hook, dataset, SLOW)
    conn_id = use_mode(monkeypatch, real_service, "history")
    notices: list[Notice] = []
    control = FaultControl(real_service.base_url, real_service.api_key)
    task = wait_with_budget(conn_id, dataset, job_id, 3, notices)
    try:
        await until(lambda: dataset in list_pollers() and list_pollers()[dataset].windowed == [job_id])
        poller = list_pollers()[dataset]
        for _ in range(2):
            # Two failed rounds, then two that answer.
            with control.injected(failing_list(dataset, 2)):
                await until(lambda: len(failures(notices)) >= 2 or task.done())
            notices.clear()
            await until(lambda after=poller.rounds + 2: poller.rounds >= after or task.done())
            assert not task.done(), task.result()
        outcome = await abort_and_wait(hook, dataset, job_id, task)
    finally:
        await settle({job_id: task}, hook, dataset)
    assert outcome == await per_job_outcome(hook, dataset, job_id)
    assert outcome is not None and outcome.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0


async def test_a_waits_deadline_ends_it_alone_as_timed_out(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    short, other = await asyncio.to_thread(create, hook, dataset, SLOW, 2)
    (succeeding,) = await asyncio.to_thread(create, hook, dataset, SUCCEEDING)
    conn_id = use_mode(monkeypatch, real_service, "auto")
    deadline = time.time() + 2 * POLL  # a round or so after first contact
    ref = {"dataset_id": dataset, "job_type": TYPE}
    triggers = {
        short: JobTrigger(short, conn_id, poll_interval=POLL, job_kind="dataset", job_ref=ref, deadline=deadline),
        other: trigger(conn_id, dataset, other),
        succeeding: trigger(conn_id, dataset, succeeding),
    }
    tasks = {j: asyncio.ensure_future(outcome_of(t)) for j, t in triggers.items()}
    try:
        timed_out = await asyncio.wait_for(tasks[short], LIVENESS_S)
        poller = list_pollers()[dataset]
        assert poller.waiting == 2 and sorted(poller.windowed) == sorted([other, succeeding])
        await until(lambda after=poller.rounds + 1: poller.rounds >= after)
        assert not tasks[other].done()
        got_succeeding = await asyncio.wait_for(tasks[succeeding], LIVENESS_S)  # ends by itself
        got_other = await abort_and_wait(hook, dataset, other, tasks[other])
    finally:
        await settle(tasks, hook, dataset)
    # WaitLoop.timed_out: kind timeout, the last status the wait learnt (a running one).
    assert timed_out.kind == "timeout" and timed_out.job_id == short
    assert timed_out.message.startswith(f"timed out waiting for job {short} (last status ")
    assert timed_out.status is not None and not timed_out.status.is_terminal
    assert time.time() >= deadline
    assert got_succeeding == await per_job_outcome(hook, dataset, succeeding)
    assert got_succeeding.status is JobStatus.COMPLETED
    assert got_other == await per_job_outcome(hook, dataset, other) and got_other.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0


def delete_dataset(service: ServiceProcess, dataset_id: str) -> None:
    """Delete a dataset as TensorBay's own API would (the reference service has no such route, the
    provider no such call): gone from the service's store, its jobs answer ``ResourceNotExist``."""
    with contextlib.closing(sqlite3.connect(service.db_path, timeout=30)) as conn, conn:
        deleted = conn.execute("DELETE FROM tb_datasets WHERE dataset_id = ?", (dataset_id,)).rowcount
    assert deleted == 1


async def test_a_deleted_datasets_waits_poll_alone_and_other_datasets_keep_the_list(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed, kept = [await asyncio.to_thread(hook.call, reference.clone_dataset()) for _ in range(2)]
    (gone,) = await asyncio.to_thread(create, hook, doomed, SLOW)
    first, second = await asyncio.to_thread(create, hook, kept, SLOW, 2)
    conn_id = use_mode(monkeypatch, real_service, "auto")
    tasks: dict[str, asyncio.Future[WaitOutcome]] = {}
    with FaultControl(real_service.base_url, real_service.api_key).injected(counting_rules(doomed, kept)) as faults:
        try:
            tasks[gone] = asyncio.ensure_future(outcome_of(trigger(conn_id, doomed, gone)))
            await until(lambda: doomed in list_pollers() and list_pollers()[doomed].windowed == [gone])
            poller = list_pollers()[doomed]
            # The list has answered: the connection has a job list.
            await until(lambda: poller.list_requests >= 1 and poller.rounds >= 2)
            capabilities = poller.capabilities
            assert capabilities.dataset_list is True
            # What a per-job read of the job answered before the deletion, and answers after it.
            job = await asyncio.to_thread(hook.get_job, doomed, gone, TYPE)
            await asyncio.to_thread(delete_dataset, real_service, doomed)
            with pytest.raises(NotFound) as alone:
                await asyncio.to_thread(hook.get_job, doomed, gone, TYPE)
            assert alone.value.code == "ResourceNotExist"
            outcome = await asyncio.wait_for(tasks[gone], LIVENESS_S)
            after_gone = await fired(faults)
            # Not remembered for the connection (no other list answered since, to set it again):
            # waits on another dataset, started now, go through its list.
            assert list_pollers() == {} and capabilities.dataset_list is True
            tasks.update({j: asyncio.ensure_future(outcome_of(trigger(conn_id, kept, j))) for j in (first, second)})
            await until(lambda: kept in list_pollers() and len(list_pollers()[kept].windowed) == 2)
            kept_poller = list_pollers()[kept]
            start = kept_poller.rounds + 1
            await until(lambda: kept_poller.rounds >= start)
            before = await fired(faults)
            await until(lambda: kept_poller.rounds >= start + 3)
            after = await fired(faults)
            for job_id in (first, second):
                await asyncio.to_thread(hook.abort, kept, job_id, TYPE)
            kept_outcomes = await asyncio.wait_for(asyncio.gather(tasks[first], tasks[second]), LIVENESS_S)
        finally:
            await settle(tasks, hook, kept, (first, second))  # `gone`'s dataset is deleted
    # Handed back and polled alone, the wait ends as the per-job path does: the read's 404 is
    # not transient (WaitLoop.on_error after the status the wait last learnt).
    expected = WaitLoop(gone, POLL)
    expected.on_state(dataset_state(job))
    assert outcome == expected.on_error(alone.value)
    assert outcome.kind == "error" and "404" in outcome.message and "ResourceNotExist" in outcome.message
    # The deleted dataset: its first contact, then the one read alone (and this test's own two
    # reads); its list stopped at the 404.
    assert after_gone[0] == 2 + 2 and after[1] == after_gone[1]
    # The other dataset: one list request per round, no read alone beyond each first contact.
    assert 2 <= after[3] - before[3] <= 4
    assert after[2] == before[2] == 2
    for job_id, got in zip((first, second), kept_outcomes, strict=True):
        assert got == await per_job_outcome(hook, kept, job_id) and got.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0


def _without_created_at(original: Any, job_id: str, created_at: int | None = None) -> Any:
    """``datasets.get_job`` whose answer for ``job_id`` lacks ``createdAt``, as a service may send it
    (or has ``created_at`` there instead)."""

    def get_job(dataset_id: str, wanted: str, job_type: str) -> Call[DatasetJob]:
        call = original(dataset_id, wanted, job_type)
        if wanted != job_id:
            return call

        def parse(response: HttpResponse) -> DatasetJob:
            body = json.loads(response.body) if response.status == 200 else None
            if isinstance(body, dict):
                body.pop("createdAt", None)
                if created_at is not None:
                    body["createdAt"] = created_at
                response = HttpResponse(response.status, response.headers, json.dumps(body).encode())
            return call.parse(response)

        return Call(call.request, parse)

    return get_job


async def test_a_job_read_without_created_at_is_read_alone_every_round(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    bare, dated = await asyncio.to_thread(create, hook, dataset, SLOW, 2)
    # The reference service always sends createdAt: the per-job read's parse drops it for one job.
    monkeypatch.setattr(coalesce_datasets.datasets, "get_job", _without_created_at(datasets.get_job, bare))
    conn_id = use_mode(monkeypatch, real_service, "history")
    jobs = f"{datasets.PREFIX}/{dataset}/jobs"
    rules = [
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{jobs}/{bare}", "methods": ["GET"]},
        {"kind": "delay", "delay_s": 0.001, "path_prefix": f"{jobs}/{dated}", "methods": ["GET"]},
        {"kind": "delay", "delay_s": 0.001, "path_prefix": jobs, "methods": ["GET"]},
    ]
    tasks: dict[str, asyncio.Future[WaitOutcome]] = {}
    with FaultControl(real_service.base_url, real_service.api_key).injected(rules) as faults:
        try:
            tasks = {j: asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, j))) for j in (bare, dated)}
            await until(lambda: dataset in list_pollers() and list_pollers()[dataset].windowed == [dated])
            poller = list_pollers()[dataset]
            assert bare in poller._alone
            start = poller.rounds + 1
            await until(lambda: poller.rounds >= start)
            before = await fired(faults)
            await until(lambda: poller.rounds >= start + 3)
            after = await fired(faults)
            for job_id in (bare, dated):
                await asyncio.to_thread(hook.abort, dataset, job_id, TYPE)
            got_bare, got_dated = await asyncio.wait_for(asyncio.gather(tasks[bare], tasks[dated]), LIVENESS_S)
        finally:
            await settle(tasks, hook, dataset)
    # Over 3 rounds: the job without createdAt read alone once each round; the other covered by
    # the list (one request a round), never read alone after its first contact.
    assert 2 <= after[0] - before[0] <= 4
    assert after[1] == before[1] == 1
    assert 2 <= after[2] - before[2] <= 4
    assert got_bare == await per_job_outcome(hook, dataset, bare) and got_bare.status is JobStatus.CANCELED
    assert got_dated == await per_job_outcome(hook, dataset, dated) and got_dated.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0


async def test_a_lone_read_the_poller_cannot_take_fails_that_wait_only(
    hook: DatasetJobsHook, real_service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A createdAt past any date Python holds (the year 33658): taking the read fails that wait at
    # once, as any bug in reading a job does; the poller goes on for the dataset's other waits.
    dataset = await asyncio.to_thread(hook.call, reference.clone_dataset())
    odd, kept = await asyncio.to_thread(create, hook, dataset, SLOW, 2)
    monkeypatch.setattr(coalesce_datasets.datasets, "get_job", _without_created_at(datasets.get_job, odd, 10**12))
    conn_id = use_mode(monkeypatch, real_service, "history")
    tasks = {j: asyncio.ensure_future(outcome_of(trigger(conn_id, dataset, j))) for j in (odd, kept)}
    try:
        got_odd = await asyncio.wait_for(tasks[odd], LIVENESS_S)
        await until(lambda: dataset in list_pollers() and list_pollers()[dataset].windowed == [kept])
        poller = list_pollers()[dataset]
        await until(lambda after=poller.rounds + 2: poller.rounds >= after)
        assert not tasks[kept].done()
        got_kept = await abort_and_wait(hook, dataset, kept, tasks[kept])
    finally:
        await settle(tasks, hook, dataset)
    assert got_odd.kind == "error" and got_odd.job_id == odd
    assert got_odd.message.startswith(f"polling job {odd} failed: status poll failed: ")
    assert "out of range" in got_odd.message
    assert got_kept == await per_job_outcome(hook, dataset, kept) and got_kept.status is JobStatus.CANCELED
    assert running_pollers() == [] and active_clients() == 0
