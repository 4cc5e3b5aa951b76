"""JobTrigger against the live service: each terminal status, the deadline, serialization, secrets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.pool import active_clients
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import (
    JobInput,
    JobResults,
    JobStatus,
    ModelRef,
    ResultsReference,
    SubmitJobRequest,
)
from airflow_jobwait.triggers import JobTrigger
from tests._compat import AIRFLOW_V_3_3_PLUS
from tests._liveness import LIVENESS_S
from tests._pollers import bounded_outcome
from tests.conftest import set_connection


def submit(hook: JobsHook, **test: object) -> str:
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"),
        input=JobInput(sources={"a": {"input.txt": "hi"}}),
        test=test or None,
    )
    return hook.submit_job(body).job_identifier


@pytest.fixture
def hook(jobwait_conn: str) -> JobsHook:
    return JobsHook(jobwait_conn)


def use_mode(monkeypatch: pytest.MonkeyPatch, service: ServiceProcess, status_mode: str) -> str:
    """Point ``modzy_default`` at the service with the given ``status_mode`` extra."""
    return set_connection(monkeypatch, service, "modzy", status_mode=status_mode)


# Where each mode's status requests go: one job's URL alone, or the batch and watch endpoints too.
def status_prefix(status_mode: str, job_id: str) -> str:
    return f"/api/jobs/{job_id}" if status_mode == "per_job" else "/api/jobs"


@pytest.mark.parametrize("outcome", ["COMPLETED", "TIMEDOUT", "FAILED"])
async def test_trigger_runs_to_each_terminal_status(hook: JobsHook, outcome: str) -> None:
    job_id = submit(hook, duration_s=0.5, outcome=outcome)
    result = await bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.1))
    assert result.kind == "terminal"
    assert result.status is JobStatus(outcome)
    assert job_id in result.message and outcome in result.message


async def test_trigger_sees_a_canceled_job(hook: JobsHook) -> None:
    job_id = submit(hook, duration_s=30)
    task = asyncio.ensure_future(bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.1)))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(hook.cancel_job, job_id)
    result = await task
    assert result.status is JobStatus.CANCELED


async def test_trigger_times_out_at_its_absolute_deadline(hook: JobsHook) -> None:
    job_id = submit(hook, duration_s=30)
    started = time.time()
    result = await bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=300, deadline=started + 0.5))
    assert result.kind == "timeout"
    assert result.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    assert "timed out" in result.message
    # The last sleep is cut to the deadline rather than a whole poll interval: a sleep of the
    # interval (300 s) would outlast bounded_outcome's liveness bound.
    hook.cancel_job(job_id)


async def test_deadline_already_passed_fires_timeout_after_one_poll(hook: JobsHook) -> None:
    job_id = submit(hook, duration_s=30)
    result = await bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, deadline=time.time() - 1))
    assert result.kind == "timeout"
    hook.cancel_job(job_id)


async def test_unknown_job_fires_an_error_event(hook: JobsHook) -> None:
    result = await bounded_outcome(JobTrigger("no-such-job", hook.jobwait_conn_id, poll_interval=0.1))
    assert result.kind == "error" and "404" in result.message


def test_serialize_round_trips_with_json_safe_kwargs_and_no_secret(service: ServiceProcess) -> None:
    trigger = JobTrigger("job-1", "modzy_default", poll_interval=2.5, deadline=1_900_000_000.0, cancel_on_kill=False)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_jobwait.triggers.jobs.JobTrigger"
    encoded = json.dumps(kwargs)
    assert service.api_key not in encoded and "password" not in encoded
    module, _, name = classpath.rpartition(".")
    clone = getattr(__import__(module, fromlist=[name]), name)(**json.loads(encoded))
    assert clone.serialize() == (classpath, kwargs)


async def test_concurrent_triggers_share_one_pooled_client(hook: JobsHook) -> None:
    job_ids = [submit(hook, duration_s=1.0) for _ in range(5)]
    seen: list[int] = []

    async def sample() -> None:
        for _ in range(10):
            seen.append(active_clients())
            await asyncio.sleep(0.1)

    results, _ = await asyncio.gather(
        asyncio.gather(*(bounded_outcome(JobTrigger(j, hook.jobwait_conn_id, poll_interval=0.2)) for j in job_ids)),
        sample(),
    )
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert max(seen) == 1, "every trigger of the loop must lease the same client"
    assert active_clients() == 0, "the shared client is closed when its last trigger ends"


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_bad_poll_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        JobTrigger("job-1", poll_interval=interval)


@pytest.mark.parametrize("job_id", ["", " ", "a/b", "../x", "x" * 10_000])
def test_bad_job_id_is_refused(job_id: str) -> None:
    with pytest.raises(ValueError, match="job_id"):
        JobTrigger(job_id)


@pytest.mark.parametrize("status_mode", ["per_job", "batch", "auto"])
async def test_transient_faults_do_not_end_the_wait(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch, status_mode: str
) -> None:
    job_id = submit(hook, duration_s=1.5)
    use_mode(monkeypatch, service, status_mode)
    prefix = status_prefix(status_mode, job_id)
    rules = [
        {"kind": "status", "status": 503, "retry_after": 0, "path_prefix": prefix, "count": 4},
        {"kind": "drop", "path_prefix": prefix, "count": 3},
        {"kind": "invalid_json", "path_prefix": prefix, "count": 2},
        {"kind": "status", "status": 429, "retry_after": 1, "path_prefix": prefix, "count": 1},
    ]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        result = await bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2))
        injected = faults.stats()["injected"]
    assert result.kind == "terminal" and result.status is JobStatus.COMPLETED
    assert injected["status"] == 5 and injected["drop"] == 3 and injected["invalid_json"] == 2


@pytest.mark.parametrize("status_mode", ["per_job", "batch", "auto"])
async def test_permanent_errors_end_the_wait_at_once(
    hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch, status_mode: str
) -> None:
    job_id = submit(hook, duration_s=30)
    use_mode(monkeypatch, service, status_mode)
    # The key is refused on every read. Where the batch endpoint is not proven yet, its 401 may
    # be how a service without it answers: the wait falls back to its own GET, which ends it.
    rules = [{"kind": "status", "status": 401, "path_prefix": status_prefix(status_mode, job_id), "methods": ["GET"]}]
    with FaultControl(service.base_url, service.api_key).injected(rules):
        result = await bounded_outcome(JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2))
    assert result.kind == "error" and "401" in result.message
    hook.cancel_job(job_id)


@pytest.mark.parametrize("status_mode", ["per_job", "batch", "auto"])
async def test_progress_lines_come_at_the_interval_and_say_time_waited(
    hook: JobsHook,
    service: ServiceProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status_mode: str,
) -> None:
    body = SubmitJobRequest(
        model=ModelRef(identifier="wordcount", version="1.0"),
        input=JobInput(sources={f"in-{i}": {"input.txt": "a b"} for i in range(4)}),
        test={"duration_s": 3.0},
    )
    job_id = hook.submit_job(body).job_identifier
    use_mode(monkeypatch, service, status_mode)
    capsys.readouterr()
    # In auto mode the wait sits in a watch that the service holds until the job changes: the
    # lines must come from the interval, not from the poller's answers (issue 15: every ~24 s).
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2, progress_interval=0.5)
    assert (await bounded_outcome(trigger)).status is JobStatus.COMPLETED
    # Airflow's structlog writes trigger logs to stdout.
    lines = [line for line in capsys.readouterr().out.splitlines() if f"inference job {job_id} is" in line]
    # ~3 s of waiting: a line per 0.5 s, give or take one poll each.
    assert 3 <= len(lines) <= 7, lines
    waited = [int(line.split(" after ", 1)[1].split("s", 1)[0]) for line in lines]
    assert waited == sorted(waited) and waited[0] <= 1, lines  # time waited so far, not time left
    assert not any("waiting" in line for line in lines), lines
    if status_mode == "per_job":
        # Alone, a wait can afford the results call that counts inputs; the shared poller does not.
        assert any("of 4 inputs" in line for line in lines), lines


class _PulledTI:
    """Stands in for the triggerer's task instance when it renders a start-from-trigger task."""

    def __init__(self, task: object, values: dict[tuple[str, str], str]) -> None:
        self.task = task
        self.task_id = "wait"
        self.map_index = -1
        self.values = values

    def xcom_pull(self, task_ids: str, key: str = "return_value", map_indexes: int | None = None) -> str:
        assert map_indexes == self.map_index, "one XCom of the same map index, not a sequence slice"
        return self.values[(task_ids, key)]


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow renders start_from_trigger kwargs from 3.3")
async def test_start_from_trigger_renders_the_job_id_in_the_trigger(hook: JobsHook) -> None:
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_jobwait.operators import SubmitJobOperator
    from airflow_jobwait.sensors import JobSensor

    with DAG("start_from_trigger_args", start_date=datetime(2026, 1, 1), schedule=None):
        submit_task = SubmitJobOperator(task_id="submit", model_id="echo", inputs={"a": {"t": "x"}})
        sensor = JobSensor(
            task_id="wait",
            job_id=submit_task.output,
            conn_id=hook.jobwait_conn_id,
            poll_interval=0.2,
            timeout=30,
            start_from_trigger=True,
        )
    args = sensor.start_trigger_args
    assert sensor.start_from_trigger and args is not None and args.next_method == "execute_complete"
    assert args.trigger_kwargs is not None
    assert args.trigger_kwargs["job_id"] == (
        "{{ ti.xcom_pull(task_ids='submit', key='return_value', map_indexes=ti.map_index) }}"
    )
    assert args.timeout is not None and args.timeout.total_seconds() == 30
    json.dumps(args.trigger_kwargs)  # stored in the metadata DB

    job_id = submit(hook, duration_s=0.5)
    trigger = JobTrigger(**args.trigger_kwargs)
    ti = _PulledTI(sensor, {("submit", "return_value"): job_id})
    # What the triggerer does: attach the task instance (which picks the sensor's template fields
    # that are trigger kwargs), then render with the task's context.
    trigger.task_instance = ti  # type: ignore[assignment]
    assert set(trigger.template_fields) == {"job_id", "job_ref"}
    trigger.render_template_fields(context={"ti": ti})  # type: ignore[arg-type]
    assert trigger.job_id == job_id
    # It ends the task itself, results in hand: the task never resumes on a worker.
    event = await end_event(trigger)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is not None
    results = JobResults.model_validate(event.xcoms["return_value"])
    assert results.job_identifier == job_id and results.finished
    json.dumps(event.xcoms)


async def end_event(trigger: JobTrigger) -> TriggerEvent:
    """The trigger's one event (bounded by the liveness bound)."""

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    events = await asyncio.wait_for(collect(), LIVENESS_S)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("outcome", "soft_fail", "expected"),
    [("FAILED", False, TaskFailedEvent), ("TIMEDOUT", False, TaskFailedEvent), ("FAILED", True, TaskSkippedEvent)],
)
async def test_end_task_ends_failed_jobs_in_the_triggerer(
    hook: JobsHook, outcome: str, soft_fail: bool, expected: type
) -> None:
    job_id = submit(hook, duration_s=0.3, outcome=outcome)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2, end_task=True, soft_fail=soft_fail)
    assert type(await end_event(trigger)) is expected


async def test_end_task_pushes_a_reference_for_results_too_large(hook: JobsHook) -> None:
    job_id = submit(hook, duration_s=0.2)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2, end_task=True, max_xcom_bytes=10)
    assert trigger.serialize()[1]["max_xcom_bytes"] == 10  # survives a move to another triggerer
    event = await end_event(trigger)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is not None
    reference = ResultsReference.model_validate(event.xcoms["return_value"])
    assert reference.too_large and reference.job_id == job_id and reference.size_bytes > 10
