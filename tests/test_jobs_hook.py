"""JobsHook against the live reference service: every call, error mapping, blocking wait."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import inference as api
from airflow_jobwait.exceptions import Conflict, InvalidResponse, NotFound, Unauthorized
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.jobs import _may_have_created
from airflow_jobwait.models import Job, JobInput, JobStatus, ModelRef, SubmitJobRequest
from tests._liveness import LIVENESS_S
from tests.conftest import CONN_ID, connection_json


def request(model: str = "echo", sources: dict | None = None, **test: object) -> SubmitJobRequest:
    return SubmitJobRequest(
        model=ModelRef(identifier=model, version="1.0"),
        input=JobInput(sources=sources or {"a": {"input.txt": "hello world"}}),
        test=test or None,
    )


@pytest.fixture
def hook(jobwait_conn: str) -> JobsHook:
    return JobsHook(jobwait_conn)


def test_submit_get_results(hook: JobsHook) -> None:
    job = hook.submit_job(request("wordcount", {"a": {"input.txt": "one two three"}, "b": {"input.txt": "x"}}))
    assert job.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    assert job.total_inputs == 2
    assert hook.get_job(job.job_identifier).job_identifier == job.job_identifier
    outcome = hook.wait_for_job(job.job_identifier, poll_interval=0.2, timeout=LIVENESS_S)
    assert outcome.kind == "terminal" and outcome.status is JobStatus.COMPLETED
    results = hook.get_results(job.job_identifier)
    assert results.finished and results.completed == 2
    assert results.get_source_outputs("a")["results.json"] == {"words": 3}
    assert results.get_source_outputs("b")["results.json"] == {"words": 1}


def test_cancel_then_conflict(hook: JobsHook) -> None:
    job = hook.submit_job(request(duration_s=30))
    canceled = hook.cancel_job(job.job_identifier)
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(Conflict) as info:
        hook.cancel_job(job.job_identifier)
    assert info.value.status == 409


def test_unknown_job_is_not_found(hook: JobsHook) -> None:
    with pytest.raises(NotFound) as info:
        hook.get_job("00000000-0000-0000-0000-000000000000")
    assert info.value.status == 404


def test_wrong_key_is_unauthorized(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = ServiceProcess.__new__(ServiceProcess)
    wrong.__dict__.update(service.__dict__, api_key="wrong-key")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(wrong))
    with pytest.raises(Unauthorized) as info:
        JobsHook(CONN_ID).get_job("anything")
    assert info.value.status == 401
    assert "wrong-key" not in str(info.value)


def test_bad_json_from_the_service_is_invalid_response(hook: JobsHook, service: ServiceProcess) -> None:
    job = hook.submit_job(request())
    with (
        FaultControl(service.base_url, service.api_key).injected(
            [{"kind": "invalid_json", "path_prefix": f"/api/jobs/{job.job_identifier}", "count": 1}]
        ),
        pytest.raises(InvalidResponse, match="not JSON"),
    ):
        hook.get_job(job.job_identifier)


def test_transient_faults_are_retried(hook: JobsHook, service: ServiceProcess) -> None:
    job = hook.submit_job(request())
    rules = [{"kind": "status", "status": 503, "retry_after": 1, "path_prefix": "/api/jobs/", "count": 2}]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        started = time.monotonic()
        assert hook.get_job(job.job_identifier).job_identifier == job.job_identifier
        # Two retries, each after the Retry-After the service asked for (a lower bound, not a timing goal).
        assert time.monotonic() - started >= 2.0
        assert faults.stats()["injected"]["status"] == 2


def test_failed_and_timed_out_jobs_end_the_wait_with_their_status(hook: JobsHook) -> None:
    failed = hook.submit_job(request(duration_s=0.3, outcome="FAILED"))
    timedout = hook.submit_job(request(duration_s=0.3, outcome="TIMEDOUT"))
    assert hook.wait_for_job(failed.job_identifier, 0.1, 30).status is JobStatus.FAILED
    assert hook.wait_for_job(timedout.job_identifier, 0.1, 30).status is JobStatus.TIMEDOUT


def test_wait_for_job_times_out(hook: JobsHook) -> None:
    job = hook.submit_job(request(duration_s=30))
    outcome = hook.wait_for_job(job.job_identifier, poll_interval=0.1, timeout=0.5)
    assert outcome.kind == "timeout" and outcome.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    hook.cancel_job(job.job_identifier)


@pytest.mark.ext
def test_idempotency_key_returns_the_same_job(hook: JobsHook) -> None:
    first = hook.submit_job(request(), idempotency_key="hook-test-key-1")
    again = hook.submit_job(request(), idempotency_key="hook-test-key-1")
    assert again.job_identifier == first.job_identifier
    with pytest.raises(Conflict):
        hook.submit_job(request(sources={"z": {"input.txt": "other"}}), idempotency_key="hook-test-key-1")


def test_test_connection(hook: JobsHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook.test_connection()
    assert ok and service.base_url in message
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service).replace(service.api_key, "nope"))
    ok, message = JobsHook(CONN_ID).test_connection()
    assert not ok and "401" in message


def test_results_validate_against_the_model(hook: JobsHook) -> None:
    job = hook.submit_job(request("sentiment", {"p": {"input.txt": "great love"}, "n": {"input.txt": "terrible"}}))
    hook.wait_for_job(job.job_identifier, 0.1, 30)
    results = hook.get_results(job.job_identifier)
    assert results.get_source_outputs("p")["results.json"]["label"] == "positive"
    assert results.get_source_outputs("n")["results.json"]["label"] == "negative"
    assert results.get_first_outputs() in (results.get_source_outputs("p"), results.get_source_outputs("n"))


def test_oversized_responses_are_refused(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service, max_response_bytes=64))
    with pytest.raises(InvalidResponse, match="64-byte limit"):
        JobsHook(CONN_ID).get_job("00000000-0000-0000-0000-000000000000")


def test_blocking_wait_survives_transient_faults_and_stops_on_permanent_ones(
    hook: JobsHook, service: ServiceProcess
) -> None:
    job = hook.submit_job(request(duration_s=1.5))
    path = f"/api/jobs/{job.job_identifier}"
    rules = [
        {"kind": "status", "status": 503, "retry_after": 0, "path_prefix": path, "count": 3},
        {"kind": "drop", "path_prefix": path, "count": 2},
        {"kind": "invalid_json", "path_prefix": path, "count": 2},
        {"kind": "status", "status": 429, "retry_after": 1, "path_prefix": path, "count": 1},
    ]
    with FaultControl(service.base_url, service.api_key).injected(rules) as faults:
        outcome = hook.wait_for_job(job.job_identifier, poll_interval=0.2, timeout=LIVENESS_S)
        injected = faults.stats()["injected"]
    assert outcome.kind == "terminal" and outcome.status is JobStatus.COMPLETED
    assert injected["status"] == 4 and injected["drop"] == 2 and injected["invalid_json"] == 2

    slow = hook.submit_job(request(duration_s=30))
    denied = [{"kind": "status", "status": 403, "path_prefix": f"/api/jobs/{slow.job_identifier}", "count": 1}]
    with FaultControl(service.base_url, service.api_key).injected(denied):
        outcome = hook.wait_for_job(slow.job_identifier, poll_interval=0.2, timeout=LIVENESS_S)
    assert outcome.kind == "error" and "403" in outcome.message
    hook.cancel_job(slow.job_identifier)


async def test_async_results_and_cancel(hook: JobsHook) -> None:
    """``aget_results`` and ``acancel_job``: the triggerer's side of the same calls (Modzy §1)."""
    done = await asyncio.to_thread(hook.submit_job, request("wordcount", {"a": {"input.txt": "one two"}}))
    outcome = await asyncio.to_thread(hook.wait_for_job, done.job_identifier, 0.2, 30)
    assert outcome.status is JobStatus.COMPLETED
    results = await hook.aget_results(done.job_identifier)
    assert results.finished and results.get_source_outputs("a")["results.json"] == {"words": 2}
    running = await asyncio.to_thread(hook.submit_job, request(duration_s=30))
    canceled = await hook.acancel_job(running.job_identifier)
    assert canceled.job_identifier == running.job_identifier and canceled.status is JobStatus.CANCELED
    with pytest.raises(Conflict):
        await hook.acancel_job(running.job_identifier)


async def test_acall_dated_gives_the_services_date(hook: JobsHook) -> None:
    """The answer and the service's ``Date`` (RFC 9110 §6.6.1, whole seconds) of one response."""
    submitted = await asyncio.to_thread(hook.submit_job, request())
    before = datetime.now(UTC).replace(microsecond=0)
    job, date = await hook.acall_dated(api.get_job(submitted.job_identifier))
    after = datetime.now(UTC)
    assert job.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)
    assert date is not None and date.tzinfo is not None
    # One-second resolution, and servers round either way: the service's clock within a second of ours.
    assert before - timedelta(seconds=1) <= date <= after + timedelta(seconds=1)


def test_a_hook_without_a_connection_check_says_so(hook: JobsHook) -> None:
    with pytest.raises(NotImplementedError, match="JobWaitHook has no connection check"):
        JobWaitHook.check_connection(JobWaitHook.__new__(JobWaitHook))


# ---- which history entries a lost submit may have made (find_submitted's filter) ---------------

LOST = SubmitJobRequest(
    model=ModelRef(identifier="ed542963de", version="1.0.1"),
    input=JobInput(sources={"a": {"input.txt": "x"}, "b": {"input.txt": "y"}}),
)
SINCE = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def history_entry(**fields: object) -> Job:
    """A Modzy history entry (the Job schema of modzy-js's ``blockUntilComplete`` seed: every field
    required there, ``submittedAt`` an RFC 3339 date-time)."""
    entry: dict[str, object] = {
        "jobIdentifier": "0b5f2a3e-1c53-4a6a-9a7e-2c1f3f0d7d10",
        "status": "SUBMITTED",
        "model": {"identifier": "ed542963de", "version": "1.0.1"},
        "totalInputs": 2,
        "accessKey": "pubkey",
        "explain": False,
        "jobType": "batch",
        "accountIdentifier": "acct",
        "jobInputs": {"identifier": ["b", "a"]},
        "submittedAt": "2026-01-01T11:00:05.000+0000",
        "imageClassificationModel": False,
    }
    entry.update(fields)
    return Job.model_validate({k: v for k, v in entry.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "may"),
    [
        ({}, True),  # everything as sent, source keys in another order
        ({"model": {"identifier": "ed542963de", "version": "2.0.0"}}, False),
        ({"model": {"identifier": "other", "version": "1.0.1"}}, False),
        ({"model": None}, True),  # a field the entry leaves out rules nothing out
        ({"accessKey": "another"}, False),
        ({"accessKey": None}, True),
        ({"explain": True}, False),
        ({"explain": None}, True),
        ({"jobInputs": {"identifier": ["a"]}}, False),
        ({"jobInputs": None}, True),
        ({"submittedAt": "2026-01-01T10:59:59.999+0000"}, False),  # before the window
        ({"submittedAt": "2026-01-01T11:00:00.000Z"}, True),  # at its start: in it
        ({"submittedAt": "2026-01-01T12:30:00.000+0200"}, False),  # 10:30 UTC
        ({"submittedAt": "2026-01-01T06:30:00.000-0500"}, True),  # 11:30 UTC
        ({"submittedAt": None}, True),
        # Without an offset, UTC (docs/jobs-api.md §1, history: "naive = UTC").
        ({"submittedAt": "2026-01-01T10:59:59.000"}, False),
        ({"submittedAt": "2026-01-01T11:00:01.000"}, True),
    ],
)
def test_what_a_lost_submit_may_have_created(fields: dict[str, object], may: bool) -> None:
    assert _may_have_created(LOST, history_entry(**fields), SINCE, "pubkey") is may


def test_without_a_key_id_any_access_key_may_be_the_submits() -> None:
    """A key without ``<public id>.`` has no id the history shows: the access key cannot rule out."""
    assert _may_have_created(LOST, history_entry(accessKey="another"), SINCE, None) is True


def test_the_service_time_of_a_request_is_its_date_less_its_age_and_a_second(hook: JobsHook) -> None:
    """What the lost-create lookups compare ``submittedAt``/``createdAt`` against: the service's
    last ``Date`` (RFC 9110, whole seconds), less the request's age and one second for the
    header's resolution; without any answer yet, nothing."""
    fresh = JobsHook(hook.jobwait_conn_id)
    assert fresh.service_time_of(3.0) is None
    fresh.client.call(api.list_models())
    last = fresh.client.last_server_time
    assert last is not None and fresh.service_time_of(3.0) == last - timedelta(seconds=4)
