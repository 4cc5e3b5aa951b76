"""Waits against a stalling reference service end by their deadline plus one request timeout;
the hook's retry policy governs the async path; dot-segment ids never reach the wire.

The service's ``delay`` fault holds every status read for 5 s, past the connection's 2 s
request timeout. A wait of 2 s must then end by 2 + 2 s; the hooks here retry up to 10 times
(``SLOW_RETRY``), so a wait that let its poll's retries run on would take 20 s or more. The
bounds are generous (8 s) for a loaded machine; timing goals live in ``benchmarks/``.
"""

from __future__ import annotations

import time

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.retry import NO_RETRY, RetryPolicy
from airflow_jobwait.exceptions import ServerError
from airflow_jobwait.hooks import DatasetJobsHook, JobsHook
from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest
from airflow_jobwait.triggers import JobTrigger
from tests._pollers import bounded_outcome
from tests.conftest import set_connection

REQUEST_TIMEOUT = 2.0
WAIT = 2.0
BOUND = 8.0
SLOW_RETRY = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=0.2)
STALL = {"kind": "delay", "delay_s": 5, "methods": ["GET"]}


def submit(hook: JobsHook) -> str:
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"),
        input=JobInput(sources={"a": {"input.txt": "hi"}}),
        test={"duration_s": 60},
    )
    return hook.submit_job(body).job_identifier


@pytest.fixture
def slow_conn(jobwait_conn: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """``modzy_default`` with a 2 s request timeout, polling each job alone."""
    return set_connection(monkeypatch, service, "modzy", timeout=REQUEST_TIMEOUT, status_mode="per_job")


def test_blocking_wait_ends_by_its_deadline_plus_one_request_timeout(slow_conn: str, service: ServiceProcess) -> None:
    hook = JobsHook(slow_conn, retry=SLOW_RETRY)
    job_id = submit(hook)
    with FaultControl(service.base_url, service.api_key).injected([{**STALL, "path_prefix": f"/api/jobs/{job_id}"}]):
        started = time.monotonic()
        outcome = hook.wait_for_job(job_id, poll_interval=0.2, timeout=WAIT)
        elapsed = time.monotonic() - started
    assert outcome.kind == "timeout", outcome.message
    assert elapsed < BOUND, f"wait_for_job(timeout={WAIT}), request timeout {REQUEST_TIMEOUT}s: took {elapsed:.1f}s"
    hook.cancel_job(job_id)


@pytest.mark.parametrize("status_mode", ["per_job", "batch"])
async def test_trigger_ends_by_its_deadline_plus_one_request_timeout(
    slow_conn: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch, status_mode: str
) -> None:
    hook = JobsHook(slow_conn)
    job_id = submit(hook)
    set_connection(monkeypatch, service, "modzy", timeout=REQUEST_TIMEOUT, status_mode=status_mode)
    # The trigger's hook is built from the connection: give every hook of the test the slow policy.
    monkeypatch.setattr(JobsHook, "__init__", _with_retry(JobsHook.__init__, SLOW_RETRY))
    with FaultControl(service.base_url, service.api_key).injected([{**STALL, "path_prefix": "/api/jobs"}]):
        started = time.monotonic()
        outcome = await bounded_outcome(JobTrigger(job_id, slow_conn, poll_interval=0.2, deadline=time.time() + WAIT))
        elapsed = time.monotonic() - started
    assert outcome.kind == "timeout", outcome.message
    assert elapsed < BOUND, f"{status_mode} trigger with a {WAIT}s deadline took {elapsed:.1f}s"
    hook.cancel_job(job_id)


def _with_retry(init: object, retry: RetryPolicy) -> object:
    def patched(self: JobsHook, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("retry", retry)
        init(self, *args, **kwargs)  # type: ignore[operator]

    return patched


async def test_each_hooks_retry_policy_governs_its_async_calls(jobwait_conn: str, service: ServiceProcess) -> None:
    once, thrice = JobsHook(jobwait_conn, retry=NO_RETRY), JobsHook(jobwait_conn, retry=SLOW_RETRY)
    job_id = submit(once)
    control = FaultControl(service.base_url, service.api_key)
    rule = {"kind": "status", "status": 503, "path_prefix": f"/api/jobs/{job_id}", "count": 3}
    # Both hooks on one pooled client, leased for the whole test: the policy is per call.
    async with once.async_client():
        with control.injected([rule]) as faults:
            with pytest.raises(ServerError):
                await once.aget_job(job_id)
            assert faults.stats()["injected"]["status"] == 1, "NO_RETRY: one attempt"
        with control.injected([rule]) as faults:
            assert (await thrice.aget_job(job_id)).job_identifier == job_id
            assert faults.stats()["injected"]["status"] == 3, "three 503s retried, the fourth attempt answered"
    once.cancel_job(job_id)


@pytest.mark.parametrize("job_id", [".", "..", "%2e", "%2E%2e", ".%2e", "%252e", "a\x00b", "a\nb", "a\\b", "%2F"])
def test_dot_segment_and_control_ids_are_refused_before_any_request(
    jobwait_conn: str, service: ServiceProcess, job_id: str
) -> None:
    hook, datasets = JobsHook(jobwait_conn), DatasetJobsHook()
    with FaultControl(service.base_url, service.api_key).injected([]) as faults:
        with pytest.raises(ValueError, match="job_id"):
            hook.get_job(job_id)
        with pytest.raises(ValueError, match="job_id"):
            datasets.abort("dataset-1", job_id, "squashAndMerge")
        assert faults.stats()["requests"] == 0, "nothing may be sent for a refused id"
