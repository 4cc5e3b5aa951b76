"""Cancel-on-kill through Airflow's own ``TriggerRunner.run_trigger``: the remote job is cancelled
only when the triggerer cancels the trigger for a user action, never on shutdown or timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
from airflow.jobs import triggerer_job_runner
from airflow.jobs.triggerer_job_runner import TriggerRunner
from jobwait_reference_service.process import ServiceProcess
from pytest_mock import MockerFixture

from airflow_jobwait import version_compat
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobInput, JobStatus, ModelRef, SubmitJobRequest
from airflow_jobwait.triggers import JobTrigger
from tests._compat import AIRFLOW_V_3_3_PLUS
from tests._liveness import LIVENESS_S

# Airflow < 3.3 cancels a trigger the same way for every reason (no user-action message, no on_kill).
_USER_ACTION_CANCEL_MSG = getattr(triggerer_job_runner, "_USER_ACTION_CANCEL_MSG", "user action (before 3.3)")


def long_job(hook: JobsHook) -> str:
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"),
        input=JobInput(sources={"a": {"input.txt": "hi"}}),
        test={"duration_s": 60},
    )
    return hook.submit_job(body).job_identifier


#: Liveness bound of every wait on the service in this file; no assertion is about time.


def requests_served(service: ServiceProcess) -> int:
    """Requests the inference family has answered so far (``GET /api/_test/stats``, test controls)."""
    resp = requests.get(
        f"{service.base_url}/api/_test/stats", headers={"Authorization": f"ApiKey {service.api_key}"}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["total_requests"])


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``LIVENESS_S`` seconds (liveness)."""
    give_up = time.monotonic() + LIVENESS_S
    while not await condition():
        assert time.monotonic() < give_up, f"not within {LIVENESS_S}s: {what}"
        await asyncio.sleep(0.05)


async def cancel_inside_runner(
    service: ServiceProcess, trigger: JobTrigger, reason: str | None, timeout_after: datetime | None = None
) -> None:
    """Run the trigger as the triggerer does, then cancel its task the way the triggerer would."""
    runner = TriggerRunner()
    runner.triggers[1] = {"name": "job-trigger", "events": 0}
    before = await asyncio.to_thread(requests_served, service)
    task = asyncio.ensure_future(runner.run_trigger(1, trigger, timeout_after=timeout_after))
    runner.triggers[1]["task"] = task

    async def polled() -> bool:  # the trigger is the service's only client meanwhile
        return task.done() or await asyncio.to_thread(requests_served, service) > before

    await until(polled, "the trigger polls the service")
    assert not task.done()
    if reason is None:
        task.cancel()
    else:
        task.cancel(reason)
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def hook(jobwait_conn: str) -> JobsHook:
    return JobsHook(jobwait_conn)


async def test_user_action_cancels_the_remote_job(
    hook: JobsHook, service: ServiceProcess, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(version_compat, "_logged", set())  # this process has not warned yet
    job_id = long_job(hook)
    await cancel_inside_runner(
        service, JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2), _USER_ACTION_CANCEL_MSG
    )
    status = (await hook.aget_job(job_id)).status
    if AIRFLOW_V_3_3_PLUS:
        assert status is JobStatus.CANCELED
    else:  # BaseTrigger.on_kill arrived in 3.3: before, the job lives on, and the log says so once
        assert status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
        assert caplog.text.count("does not cancel its remote job") == 1
        hook.cancel_job(job_id)


async def test_triggerer_shutdown_or_redistribution_leaves_the_job_running(
    hook: JobsHook, service: ServiceProcess
) -> None:
    job_id = long_job(hook)
    await cancel_inside_runner(service, JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2), None)
    await cancel_inside_runner(
        service, JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2), "EOF - shutting down"
    )
    assert (await hook.aget_job(job_id)).status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    hook.cancel_job(job_id)


async def test_deferral_timeout_leaves_the_job_running(hook: JobsHook, service: ServiceProcess) -> None:
    job_id = long_job(hook)
    passed = datetime.now(UTC) - timedelta(seconds=1)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2)
    await cancel_inside_runner(service, trigger, _USER_ACTION_CANCEL_MSG, timeout_after=passed)
    assert (await hook.aget_job(job_id)).status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    hook.cancel_job(job_id)


async def test_cancel_on_kill_false_keeps_the_job(hook: JobsHook, service: ServiceProcess) -> None:
    job_id = long_job(hook)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2, cancel_on_kill=False)
    await cancel_inside_runner(service, trigger, _USER_ACTION_CANCEL_MSG)
    assert (await hook.aget_job(job_id)).status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    hook.cancel_job(job_id)


async def test_on_kill_of_a_finished_job_is_harmless(
    hook: JobsHook, service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = long_job(hook)
    finished = requests.post(
        f"{service.base_url}/api/_test/finish",
        json={"identifiers": [job_id], "status": "COMPLETED"},
        headers={"Authorization": f"ApiKey {service.api_key}"},
        timeout=10,
    )
    assert finished.json() == {"finished": [job_id]}
    # Already terminal: the service refuses the cancel (409, docs/jobs-api.md §1); on_kill logs
    # it instead of raising, and the job keeps the status it ended with.
    await JobTrigger(job_id, hook.jobwait_conn_id).on_kill()
    assert (await hook.aget_job(job_id)).status is JobStatus.COMPLETED
    assert f"job {job_id} was already terminal" in capsys.readouterr().out  # Airflow's structlog


class _DeferredTI:
    """The triggerer's task instance of the trigger (identity only)."""

    dag_id, task_id, run_id, map_index = "d", "wait", "manual__1", 3


@pytest.mark.parametrize(
    ("state", "canceled"),
    [("deferred", False), ("failed", True), ("success", True), (None, True), ("scheduled", True)],
)
async def test_user_action_cancels_only_if_the_task_no_longer_waits(
    hook: JobsHook, mocker: MockerFixture, state: str | None, canceled: bool
) -> None:
    # Airflow 3.3 sends the user-action cancel also to a triggerer that lost the trigger to another
    # one; the task is then still deferred. The triggerer's comms channel is stubbed here (the
    # e2e test on a real deployment covers it for real).
    states = mocker.patch(
        "airflow_jobwait.triggers.jobs.RuntimeTaskInstance.get_task_states",
        return_value={"manual__1": {"wait_3": state}},
    )
    job_id = long_job(hook)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2)
    trigger.task_instance = _DeferredTI()  # type: ignore[assignment]
    await trigger.on_kill()  # what run_trigger calls on a user-action cancel
    states.assert_called_once_with(dag_id="d", task_ids=["wait"], run_ids=["manual__1"], map_index=3)
    status = (await hook.aget_job(job_id)).status
    assert (status is JobStatus.CANCELED) is canceled, status
    if not canceled:
        hook.cancel_job(job_id)


async def test_user_action_cancels_when_the_state_cannot_be_read(hook: JobsHook, mocker: MockerFixture) -> None:
    mocker.patch(
        "airflow_jobwait.triggers.jobs.RuntimeTaskInstance.get_task_states", side_effect=RuntimeError("no comms")
    )
    job_id = long_job(hook)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2)
    trigger.task_instance = _DeferredTI()  # type: ignore[assignment]
    await trigger.on_kill()
    assert (await hook.aget_job(job_id)).status is JobStatus.CANCELED


async def test_a_repeated_cancel_does_not_cut_the_kill_short(hook: JobsHook, mocker: MockerFixture) -> None:
    # The triggerer repeats its cancel about every second until the trigger is gone, and the first
    # state request of a triggerer can take seconds: the kill must finish anyway.
    def slow_states(**_: object) -> dict[str, dict[str, str]]:
        time.sleep(1.0)
        return {"manual__1": {"wait_3": "failed"}}

    mocker.patch("airflow_jobwait.triggers.jobs.RuntimeTaskInstance.get_task_states", side_effect=slow_states)
    job_id = long_job(hook)
    trigger = JobTrigger(job_id, hook.jobwait_conn_id, poll_interval=0.2)
    trigger.task_instance = _DeferredTI()  # type: ignore[assignment]
    kill = asyncio.ensure_future(trigger.on_kill())
    await asyncio.sleep(0.2)
    kill.cancel()  # the triggerer's next cancel, while the state request is in flight
    with pytest.raises(asyncio.CancelledError):
        await kill

    async def canceled() -> bool:
        return (await hook.aget_job(job_id)).status is JobStatus.CANCELED

    await until(canceled, f"job {job_id} is CANCELED on the service")
