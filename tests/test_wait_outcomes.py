"""How a finished wait maps onto the task: exception types, messages, soft_fail, XCom content."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobInput, JobStatus, ModelRef, ResultsReference, SubmitJobRequest, WaitOutcome
from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.sensors import JobSensor
from airflow_jobwait.triggers import JobTrigger
from airflow_jobwait.waiting import JobFailedError


def sensor(**kwargs: object) -> JobSensor:
    return JobSensor(task_id="wait", job_id="job-42", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [JobStatus.TIMEDOUT, JobStatus.CANCELED, JobStatus.FAILED])
def test_terminal_failures_raise_naming_job_and_status(status: JobStatus) -> None:
    event = WaitOutcome(kind="terminal", job_id="job-42", status=status, message=f"job job-42 ended {status}")
    with pytest.raises(JobFailedError, match=f"job-42 ended {status.value}"):
        sensor().execute_complete({}, event.to_payload())  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        sensor(soft_fail=True).execute_complete({}, event.to_payload())  # type: ignore[arg-type]


def test_deadline_is_a_sensor_timeout_for_the_sensor_and_a_failure_for_the_operator() -> None:
    event = WaitOutcome(kind="timeout", job_id="job-42", status=JobStatus.IN_PROGRESS, message="timed out on job-42")
    with pytest.raises(AirflowSensorTimeout, match="job-42"):
        sensor().execute_complete({}, event.to_payload())  # type: ignore[arg-type]
    operator = SubmitJobOperator(task_id="submit", model_id="echo", inputs={"a": {"t": "x"}})
    with pytest.raises(JobFailedError, match="job-42"):
        operator.execute_complete({}, event.to_payload())  # type: ignore[arg-type]


def test_polling_error_fails_with_its_message() -> None:
    event = WaitOutcome(kind="error", job_id="job-42", message="polling job job-42 failed: 401 bad key")
    with pytest.raises(JobFailedError, match="401 bad key"):
        sensor().execute_complete({}, event.to_payload())  # type: ignore[arg-type]


def test_completed_returns_json_results(jobwait_conn: str) -> None:
    hook = JobsHook(jobwait_conn)
    model = ModelRef(identifier="echo", version="1.0")
    body = SubmitJobRequest(model=model, input=JobInput(sources={"a": {"t": "hi"}}))
    job = hook.submit_job(body)
    outcome = hook.wait_for_job(job.job_identifier, 0.1, 30)
    xcom = sensor(conn_id=jobwait_conn).execute_complete({}, outcome.to_payload())  # type: ignore[arg-type]
    assert xcom["jobIdentifier"] == job.job_identifier and xcom["finished"] is True
    assert xcom["results"]["a"]["results.json"] == {"text": "hi"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"inputs": {}}, "input.sources"),
        ({"inputs": {"a": {"t": object()}}}, "inputs"),
        ({"model_id": ""}, "model.identifier"),
        ({"extra_body": {"model": {"identifier": "other"}}}, "extra_body may not replace .*: model"),
        ({"extra_body": {"test": {"duration_s": float("nan")}}}, "extra_body field 'test.duration_s'"),
        ({"extra_body": ["test"]}, "extra_body must be a mapping"),
    ],
)
def test_bad_operator_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"model_id": "echo", "inputs": {"a": {"t": "x"}}, **kwargs}
    operator = SubmitJobOperator(task_id="submit", **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        operator.build_request()


def test_results_over_the_xcom_limit_become_a_reference(jobwait_conn: str) -> None:
    hook = JobsHook(jobwait_conn)
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"),
        input=JobInput(sources={"a": {"t": "x" * 500}, "b": {"t": "y" * 500}}),
    )
    job = hook.submit_job(body)
    outcome = hook.wait_for_job(job.job_identifier, 0.1, 30)
    xcom = sensor(conn_id=jobwait_conn, max_xcom_bytes=300).execute_complete({}, outcome.to_payload())  # type: ignore[arg-type]
    reference = ResultsReference.model_validate(xcom)
    assert reference.too_large and reference.job_id == job.job_identifier
    assert reference.result_keys == ["a", "b"] and reference.size_bytes > 300
    # The reference says how to get the results: they are all there.
    assert set(hook.get_results(reference.job_id).outputs_by_source) == {"a", "b"}


def test_execution_timeout_bounds_the_deferred_wait() -> None:
    bounded = sensor(timeout=3600, execution_timeout=timedelta(seconds=5))
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        bounded.defer_until_done("job-42", bounded.timeout)
    after = time.time()
    trigger = info.value.trigger
    assert isinstance(trigger, JobTrigger) and trigger.deadline is not None
    # Five seconds from the moment of deferral, however long deferring took.
    assert before + 5 <= trigger.deadline <= after + 5
    assert info.value.timeout is not None and info.value.timeout.total_seconds() <= 5 + 60
