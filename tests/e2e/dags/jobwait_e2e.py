"""DAGs the end-to-end tests and ``benchmarks/worker_slots.py`` run on a real deployment.

Every DAG takes its sizes from ``params`` (a run's ``conf`` overrides them), so one DAG serves
several tests. Each job's input carries the run id, so no two runs share an Idempotency-Key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG, Param, task, task_group

from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.sensors import JobSensor

FANOUT_PARAMS = {
    "n_jobs": Param(50, type="integer", minimum=1, maximum=500),
    "duration_s": Param(90, type="number", minimum=0),
}
#: Connection ``jobwait_http`` (type ``http``) points at the same service for the poke-mode variant.
HTTP_CONN_ID = "jobwait_http"
TERMINAL_FAILURES = ("TIMEDOUT", "CANCELED", "FAILED")


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    kwargs.setdefault("default_args", {"retries": 0})
    return DAG(dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, **kwargs)


@task
def plan_jobs(params: dict[str, Any] | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
    """One submit's arguments per job: distinct inputs, the run's duration."""
    assert params is not None
    return [
        {
            "inputs": {"text": {"input.txt": f"{run_id} job {i}"}},
            "extra_body": {"test": {"duration_s": float(params["duration_s"])}},
        }
        for i in range(int(params["n_jobs"]))
    ]


# Each job's wait ranks above the submits still to run (weight_rule="upstream"), as in a
# pipeline where every job is waited on as soon as it exists.
with _dag("jobwait_e2e_fanout", params=FANOUT_PARAMS, max_active_tasks=64):

    @task_group
    def one_job(inputs: dict[str, Any], extra_body: dict[str, Any]) -> None:
        submitted = SubmitJobOperator(
            task_id="submit",
            model_id="wordcount",
            inputs=inputs,
            extra_body=extra_body,
            weight_rule="upstream",
        )
        JobSensor(task_id="wait", job_id=submitted.output, poll_interval=3, timeout=900, weight_rule="upstream")

    one_job.expand_kwargs(plan_jobs())


def job_done(response: Any) -> bool:
    """``HttpSensor`` check: true once the job ``COMPLETED``; a failed job fails the sensor."""
    status = response.json()["status"]
    if status in TERMINAL_FAILURES:
        raise AirflowException(f"job ended {status}")
    return status == "COMPLETED"


# The same DAG with the poke-mode alternative: HttpSensor cannot defer, so each wait holds a slot.
with _dag("jobwait_e2e_fanout_poke", params=FANOUT_PARAMS, max_active_tasks=64):

    @task_group
    def one_job_poke(inputs: dict[str, Any], extra_body: dict[str, Any]) -> None:
        submitted = SubmitJobOperator(
            task_id="submit",
            model_id="wordcount",
            inputs=inputs,
            extra_body=extra_body,
            weight_rule="upstream",
        )
        wait = HttpSensor(
            task_id="wait",
            http_conn_id=HTTP_CONN_ID,
            method="GET",
            endpoint="api/jobs/{{ ti.xcom_pull(task_ids='one_job_poke.submit', map_indexes=ti.map_index) }}",
            response_check=job_done,
            mode="poke",
            poke_interval=3,
            timeout=3600,
            weight_rule="upstream",
        )
        submitted >> wait

    one_job_poke.expand_kwargs(plan_jobs())


# Test 4: the wait runs in the worker (deferrable=False) so the task process is alive after the
# submit; the test kills it there. The retry must find the same job (Idempotency-Key) and succeed.
with _dag(
    "jobwait_e2e_retry",
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
):
    SubmitJobOperator(
        task_id="submit_and_wait",
        model_id="wordcount",
        inputs={"text": {"input.txt": "{{ run_id }}"}},
        extra_body={"test": {"duration_s": 20.0}},
        wait_for_completion=True,
        deferrable=False,
        poll_interval=1,
        wait_timeout=600,
    )


# Test 5: the wait starts in the triggerer; the job id is rendered there from the submit's XCom.
with _dag("jobwait_e2e_start_from_trigger"):
    submitted = SubmitJobOperator(
        task_id="submit",
        model_id="wordcount",
        inputs={"text": {"input.txt": "{{ run_id }}"}},
        extra_body={"test": {"duration_s": 10.0}},
    )
    waited = JobSensor(
        task_id="wait",
        job_id=submitted.output,
        start_from_trigger=True,
        poll_interval=1,
        timeout=300,
    )
    submitted >> waited


# Test 7: several waits at once in one triggerer, per status mode, each on a connection of its own
# (``jobwait_<mode>``, see harness.py). One task submits all jobs; the waits are mapped over them.
#: The status modes the task-log test covers, and the connection of each.
LOG_MODES = {"batch": "jobwait_batch", "auto": "jobwait_watch", "per_job": "jobwait_per_job"}


class ChattyJobSensor(JobSensor):
    """A ``JobSensor`` whose trigger logs the job's progress every 2 s (not every minute)."""

    progress_interval = 2.0


for _mode, _conn_id in LOG_MODES.items():
    with _dag(f"jobwait_e2e_logs_{_mode}", params=FANOUT_PARAMS, max_active_tasks=64):

        @task
        def submit_all(conn_id: str, params: dict[str, Any] | None = None, run_id: str | None = None) -> list[str]:
            """Submit ``n_jobs`` jobs of ``duration_s`` seconds; return their ids."""
            from airflow_jobwait.hooks import JobsHook
            from airflow_jobwait.models import SubmitJobRequest

            assert params is not None
            hook = JobsHook(conn_id)
            ids = []
            for i in range(int(params["n_jobs"])):
                body = {
                    "model": {"identifier": "wordcount", "version": "1.0"},
                    "input": {"type": "text", "sources": {"text": {"input.txt": f"{run_id} job {i}"}}},
                    "test": {"duration_s": float(params["duration_s"])},
                }
                ids.append(hook.submit_job(SubmitJobRequest.model_validate(body)).job_identifier)
            return ids

        ChattyJobSensor.partial(task_id="wait", conn_id=_conn_id, poll_interval=1, timeout=600).expand(
            job_id=submit_all(_conn_id)
        )
