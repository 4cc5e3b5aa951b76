"""DAGs for the behaviour tests: each submits a job whose outcome the reference service is told
to produce (test controls), waits for it, and checks the result inside the DAG itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobResults
from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.sensors import JobSensor

INPUTS = {"first": {"input.txt": "one two three"}, "second": {"input.txt": "four five"}}
EXPECTED_WORDS = {"first": 3, "second": 2}


def dag(dag_id: str, retries: int = 0) -> DAG:
    """A manually run DAG; ``retries``: tries after the first, at once (no retry delay)."""
    default_args = {"retries": retries, "retry_delay": 0}
    return DAG(dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, default_args=default_args)


@task
def check_results(results: dict[str, Any]) -> None:
    parsed = JobResults.model_validate(results)
    assert parsed.finished and parsed.completed == 2, parsed
    for key, words in EXPECTED_WORDS.items():
        assert parsed.get_source_outputs(key)["results.json"] == {"words": words}


def submit(outcome: str = "COMPLETED", duration_s: float = 1.0, **kwargs: Any) -> SubmitJobOperator:
    return SubmitJobOperator(
        task_id="submit",
        model_id="wordcount",
        inputs=INPUTS,
        extra_body={"test": {"duration_s": duration_s, "outcome": outcome}},
        poll_interval=0.3,
        **kwargs,
    )


# Deferrable sensor, one DAG per outcome.
for outcome in ("COMPLETED", "TIMEDOUT", "FAILED"):
    with dag(f"jobwait_test_sensor_{outcome.lower()}"):
        submitted = submit(outcome)
        waited = JobSensor(task_id="wait", job_id=submitted.output, poll_interval=0.3, timeout=60)
        if outcome == "COMPLETED":
            check_results(waited.output)

for mode in ("poke", "reschedule"):
    with dag(f"jobwait_test_sensor_{mode}"):
        submitted = submit()
        waited = JobSensor(
            task_id="wait", job_id=submitted.output, deferrable=False, mode=mode, poll_interval=0.3, timeout=60
        )
        check_results(waited.output)

with dag("jobwait_test_sensor_soft_fail"):
    submitted = submit("FAILED")
    JobSensor(task_id="wait", job_id=submitted.output, poll_interval=0.3, timeout=60, soft_fail=True)

with dag("jobwait_test_sensor_timeout"):
    submitted = submit(duration_s=120)
    JobSensor(task_id="wait", job_id=submitted.output, poll_interval=0.3, timeout=2)

with dag("jobwait_test_sensor_canceled"):
    submitted = submit(duration_s=120)

    @task
    def cancel(job_id: str) -> str:
        JobsHook().cancel_job(job_id)
        return job_id

    JobSensor(task_id="wait", job_id=cancel(submitted.output), poll_interval=0.3, timeout=60)

for deferrable in (True, False):
    with dag(f"jobwait_test_operator_wait_{'deferred' if deferrable else 'blocking'}"):
        check_results(submit(wait_for_completion=True, deferrable=deferrable, wait_timeout=60).output)

with dag("jobwait_test_operator_failed"):
    submit("FAILED", wait_for_completion=True)

with dag("jobwait_test_operator_soft_fail"):
    submit("TIMEDOUT", wait_for_completion=True, soft_fail=True)

# A worker "crash" between submit and storing the job id: the retry must find the same job.
with dag("jobwait_test_crash_after_submit", retries=1):
    check_results(
        SubmitJobOperator(
            task_id="submit",
            model_id="wordcount",
            inputs=INPUTS,
            extra_body={"test": {"duration_s": 1.0}},
            wait_for_completion=True,
            poll_interval=0.3,
        ).output
    )

# Dynamic task mapping: one job per input set, one deferred wait per job.
with dag("jobwait_test_mapped"):
    mapped_submit = SubmitJobOperator.partial(
        task_id="submit", model_id="wordcount", extra_body={"test": {"duration_s": 1.0}}
    ).expand(inputs=[{"a": {"input.txt": "one"}}, {"a": {"input.txt": "one two"}}, {"a": {"input.txt": "a b c"}}])
    mapped_wait = JobSensor.partial(task_id="wait", poll_interval=0.3, timeout=60).expand(job_id=mapped_submit.output)

    @task
    def collect(all_results: list[dict[str, Any]]) -> None:
        outputs = [JobResults.model_validate(r).get_source_outputs("a")["results.json"] for r in all_results]
        words = sorted(output["words"] for output in outputs)
        assert words == [1, 2, 3], words

    collect(mapped_wait.output)

# Mapped and start_from_trigger: Airflow <= 3.3.2 starts mapped tasks on a worker all the same.
with dag("jobwait_test_mapped_start_from_trigger"):
    JobSensor.partial(task_id="wait", poll_interval=0.3, timeout=60, start_from_trigger=True).expand(
        job_id=SubmitJobOperator.partial(
            task_id="submit", model_id="wordcount", extra_body={"test": {"duration_s": 1.0}}
        )
        .expand(inputs=[{"a": {"input.txt": "one"}}])
        .output
    )


# A job that fails on every try: each retry replaces the failed job with a new one.
with dag("jobwait_test_failed_job_is_resubmitted", retries=1):
    submit("FAILED", wait_for_completion=True)


# Source keys no other submit of the session shares: with nothing like it around, the retry's
# lookup (docs/jobs-api.md §6) can only find this task's own job, and takes it.
ALONE_KEY = f"alone-{uuid.uuid4().hex[:8]}"


@task
def check_alone(results: dict[str, Any]) -> None:
    parsed = JobResults.model_validate(results)
    assert parsed.get_source_outputs(ALONE_KEY)["results.json"] == {"words": 3}, parsed


with dag("jobwait_test_crash_alone", retries=1):
    check_alone(
        SubmitJobOperator(
            task_id="submit",
            model_id="wordcount",
            inputs={ALONE_KEY: {"input.txt": "one two three"}},
            extra_body={"test": {"duration_s": 1.0}},
            wait_for_completion=True,
            poll_interval=0.3,
        ).output
    )
