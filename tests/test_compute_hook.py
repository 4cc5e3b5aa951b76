"""ComputeHook and compute-kind waits against the live reference service."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from jobwait_reference_service.process import ServiceProcess
from pydantic import BaseModel

from airflow_jobwait.client import compute as api
from airflow_jobwait.client.http import HttpResponse
from airflow_jobwait.client.job_kinds import results_call, status_call
from airflow_jobwait.exceptions import (
    ApiError,
    InvalidResponse,
    JobError,
    JobPendingError,
    NotFound,
    Unauthorized,
    UnknownJobStatus,
)
from airflow_jobwait.hooks.compute import ComputeHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.models.compute import ComputeJobRef
from airflow_jobwait.triggers import JobTrigger
from tests._pollers import bounded_outcome
from tests.conftest import EVO_CONN, connection_json

ORG = str(uuid.UUID(int=42))


class WordCount(BaseModel):
    words: int


class Wrong(BaseModel):
    sentences: int


@pytest.fixture
def hook(jobwait_conn: str) -> ComputeHook:
    return ComputeHook(EVO_CONN)


def wait(hook: ComputeHook, ref: ComputeJobRef) -> JobStatus | None:
    return hook.wait_for_job(ref.job_id, 0.05, 30, job_kind="compute", job_ref=ref.job_ref).status


def test_submit_status_typed_results(hook: ComputeHook) -> None:
    ref = hook.submit(ORG, "demo", "wordcount", {"text": "one two three"}, {"queue_s": 0.05, "run_s": 0.2})
    assert (ref.org_id, ref.topic, ref.task) == (ORG, "demo", "wordcount")
    assert hook.get_status(ref).status in ("requested", "in progress")
    with pytest.raises(JobPendingError, match="still"):
        hook.get_results(ref)
    assert wait(hook, ref) is JobStatus.COMPLETED
    status = hook.get_status(ref)
    assert status.status == "succeeded" and status.progress == 100
    assert hook.get_results(ref) == {"words": 3}
    assert hook.get_results(ref, WordCount) == WordCount(words=3)
    with pytest.raises(
        InvalidResponse, match=f"results of compute job {ref.job_id} do not fit Wrong: field 'sentences'"
    ) as info:
        hook.get_results(ref, Wrong)
    assert info.value.field == "sentences"
    assert hook.call(results_call("compute", ref.job_id, ref.job_ref)) == {"words": 3}


def test_failed_task_names_the_error(hook: ComputeHook) -> None:
    ref = hook.submit(ORG, "demo", "fail", {"message": "disk on fire"})
    assert wait(hook, ref) is JobStatus.FAILED
    state = hook.call(status_call("compute", ref.job_id, ref.job_ref))
    assert state.native_status == "failed" and "disk on fire" in str(state.message)
    with pytest.raises(JobError, match="Task failed: disk on fire") as info:
        hook.get_results(ref)
    assert info.value.title == "Task failed" and info.value.status == "failed"


def test_cancel(hook: ComputeHook) -> None:
    ref = hook.submit(ORG, "demo", "sleep", {"seconds": "30"}, {"queue_s": 0, "cancel_s": 0.1})
    hook.cancel(ref)
    assert hook.get_status(ref).status in ("cancelling", "cancelled")
    assert wait(hook, ref) is JobStatus.CANCELED
    hook.cancel(ref)  # idempotent on a terminal job
    with pytest.raises(JobError, match="cancelled"):
        hook.get_results(ref)


def test_documented_errors(hook: ComputeHook, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ApiError, match=r"parameters\.text: is required") as info:
        hook.submit(ORG, "demo", "wordcount", {})
    assert info.value.status == 400
    with pytest.raises(NotFound, match="no task 'nope'"):
        hook.submit(ORG, "demo", "nope", {})
    with pytest.raises(NotFound):
        hook.get_status(ComputeJobRef(org_id=ORG, topic="demo", task="sleep", job_id=str(uuid.UUID(int=7))))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{EVO_CONN.upper()}", connection_json(service, "evo").replace(service.api_key, "bad")
    )
    with pytest.raises(Unauthorized):
        ComputeHook(EVO_CONN).submit(ORG, "demo", "wordcount", {"text": "x"})


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        (f"/compute/orgs/{ORG}/demo/wordcount/{uuid.UUID(int=1)}/status", True),
        (f"http://elsewhere/compute/orgs/{ORG}/demo/wordcount/{uuid.UUID(int=1)}/status", True),
        (None, False),
        (f"/compute/orgs/{ORG}/demo/wordcount/not-a-uuid/status", False),
        (f"/compute/orgs/{ORG}/demo/wordcount/{uuid.UUID(int=1)}", False),
        (f"/compute/orgs/{ORG}/demo/wordcount/{uuid.UUID(int=1)}/status?x=1", False),
    ],
)
def test_submit_reads_location_itself(location: str | None, ok: bool) -> None:
    call = api.submit(ORG, "demo", "wordcount", {"text": "x"})
    headers = {} if location is None else {"location": location}
    response = HttpResponse(303, headers, b"")
    if ok:
        assert call.parse(response).job_id == str(uuid.UUID(int=1))
    else:
        with pytest.raises(InvalidResponse, match="Location") as info:
            call.parse(response)
        assert info.value.field == "Location"
    with pytest.raises(ApiError):  # a followed redirect's 200 is not a submit answer
        call.parse(HttpResponse(200, {}, b"{}"))


def test_kind_mapping_rejects_unknown_status_and_missing_ref() -> None:
    ref = {"org_id": ORG, "topic": "demo", "task": "wordcount"}
    call = status_call("compute", str(uuid.UUID(int=1)), ref)
    # evo/compute/client.py get_status validates JobStatusResponse (status: JobStatusEnum): the SDK
    # rejects any other status, and wait_for_results does not retry that.
    with pytest.raises(UnknownJobStatus, match="status 'exploded', unknown to the Evo compute SDK") as info:
        call.parse(HttpResponse(200, {}, json.dumps({"status": "exploded"}).encode()))
    assert info.value.field == "status"
    with pytest.raises(ValueError, match="'task'"):
        status_call("compute", "j", {"org_id": ORG, "topic": "demo"})


@pytest.mark.parametrize(
    ("task", "parameters", "expected"),
    [
        ("wordcount", {"text": "a b"}, JobStatus.COMPLETED),
        ("fail", {}, JobStatus.FAILED),
        ("sleep", {"seconds": "30"}, JobStatus.CANCELED),
    ],
)
async def test_trigger_runs_a_compute_job_to_each_terminal_status(
    hook: ComputeHook, task: str, parameters: dict, expected: JobStatus
) -> None:
    ref = await asyncio.to_thread(hook.submit, ORG, "demo", task, parameters, {"queue_s": 0.05, "cancel_s": 0.1})
    trigger = JobTrigger(ref.job_id, hook.jobwait_conn_id, poll_interval=0.05, job_kind="compute", job_ref=ref.job_ref)
    pending = asyncio.ensure_future(bounded_outcome(trigger))
    if expected is JobStatus.CANCELED:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(hook.cancel, ref)
    outcome = await pending
    assert outcome.kind == "terminal" and outcome.status is expected


async def test_async_status_twin(hook: ComputeHook) -> None:
    ref = hook.submit(ORG, "demo", "wordcount", {"text": "a b"}, {"queue_s": 0.05, "run_s": 0.2})
    assert (await hook.aget_status(ref)).status in ("requested", "in progress")
    assert wait(hook, ref) is JobStatus.COMPLETED
    status = await hook.aget_status(ref)
    assert status.status == "succeeded" and status.progress == 100
