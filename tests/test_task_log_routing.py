"""Each wait's lines carry its own trigger's routing key (issue 15, item 1), in-process.

Airflow 3's triggerer runs every trigger in ``TriggerRunner.run_trigger``, which binds
``trigger_id`` (and the task's ids) as structlog context variables in that trigger's asyncio
task; its logging processors (``merge_contextvars``) add them to every line logged from that task
or from tasks it creates; the supervisor sends a line to the log of the task whose trigger has
that ``trigger_id``. Here three ``JobTrigger``s run through Airflow's own ``run_trigger`` in one
loop and the lines Airflow's logging writes are read back: each line naming a job must carry
the ``trigger_id`` of that job's trigger. The same on a real deployment, task logs read through
the API: ``tests/e2e/test_user_views.py``.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from airflow.jobs.triggerer_job_runner import TriggerRunner
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S
from tests.test_job_trigger import status_prefix, submit, use_mode

WAITS = 3


@pytest.fixture
def hook(jobwait_conn: str) -> JobsHook:
    return JobsHook(jobwait_conn)


@pytest.mark.parametrize("status_mode", ["batch", "auto", "per_job"])
async def test_each_waits_lines_carry_its_own_trigger_id(
    hook: JobsHook,
    service: ServiceProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status_mode: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")  # run_trigger's sync bridge: not used here
    conn_id = use_mode(monkeypatch, service, status_mode)
    jobs = {n: submit(hook, duration_s=2.5) for n in range(1, WAITS + 1)}  # trigger id -> its job
    runner = TriggerRunner()
    capsys.readouterr()
    # Every status read fails at first: each wait must be told of the retries, in its own log.
    rules = [
        {"kind": "status", "status": 503, "path_prefix": status_prefix(status_mode, job), "count": 2}
        for job in jobs.values()
    ]
    with FaultControl(service.base_url, service.api_key).injected(rules[:1] if status_mode != "per_job" else rules):
        tasks = []
        for n, job_id in jobs.items():
            trigger = JobTrigger(job_id, conn_id, poll_interval=0.2, progress_interval=0.5)
            runner.triggers[n] = {"task": None, "is_watcher": False, "name": f"wait {n}", "events": 0}
            tasks.append(asyncio.create_task(runner.run_trigger(n, trigger), name=f"wait {n}"))
        await asyncio.wait_for(asyncio.gather(*tasks), LIVENESS_S)
    # 3.3 queues TriggerEventEntry(trigger_id, event, ...), 3.1 a (trigger_id, event) tuple.
    fired = [entry[0] if isinstance(entry, tuple) else entry.trigger_id for entry in runner.events]
    assert sorted(fired) == sorted(jobs)

    out = capsys.readouterr().out.splitlines()
    for n, job_id in jobs.items():
        about = [line for line in out if job_id in line]
        keys = {match.group(1) for line in about if (match := re.search(r"\btrigger_id=(\d+)", line))}
        assert keys == {str(n)}, (job_id, about)  # every line about it, and only its trigger's key
        assert all(re.search(r"\btrigger_id=", line) for line in about), about
        assert any(f"inference job {job_id} is" in line and " after " in line for line in about), about
        assert any(re.search(rf"job {job_id}: GET .* failed .*retrying", line) for line in about), about
        assert any(f"job {job_id} ended COMPLETED" in line for line in about), about
