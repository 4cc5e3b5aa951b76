"""The submit key: same task instance and body → same job; a failed job is replaced, not reused."""

from __future__ import annotations

import pytest

from airflow_jobwait.models import JobStatus
from airflow_jobwait.operators import SubmitJobOperator


def operator(conn_id: str, outcome: str) -> SubmitJobOperator:
    return SubmitJobOperator(
        task_id="submit",
        conn_id=conn_id,
        model_id="echo",
        inputs={"a": {"input.txt": "idempotency"}},
        extra_body={"test": {"duration_s": 0.3, "outcome": outcome}},
    )


@pytest.mark.parametrize("outcome", ["FAILED", "TIMEDOUT"])
def test_a_failed_job_is_resubmitted_once_and_the_new_one_reused(jobwait_conn: str, outcome: str) -> None:
    op = operator(jobwait_conn, outcome)
    request, key = op.build_request(), f"idempotency-test-{outcome}"
    first = op.submit_once(request, key)
    assert op.hook.wait_for_job(first.job_identifier, 0.1, 30).status is JobStatus(outcome)
    second = op.submit_once(request, key)
    assert second.job_identifier != first.job_identifier, "a retry after a terminal failure must resubmit"
    third = op.submit_once(request, key)
    assert third.job_identifier == second.job_identifier, "the replacement job is found again, not duplicated"


def test_a_completed_job_is_returned_not_resubmitted(jobwait_conn: str) -> None:
    op = operator(jobwait_conn, "COMPLETED")
    request, key = op.build_request(), "idempotency-test-completed"
    first = op.submit_once(request, key)
    op.hook.wait_for_job(first.job_identifier, 0.1, 30)
    again = op.submit_once(request, key)
    assert again.job_identifier == first.job_identifier and again.status is JobStatus.COMPLETED
