"""DAGs for the results store operator tests. Pipelines and ids carry the run id, so every
``dag.test()`` works on fresh works; the checks run inside the DAGs themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models.results_store import Work
from airflow_jobwait.operators.jobs import SubmitJobOperator
from airflow_jobwait.operators.results import (
    DeleteResultsOperator,
    DepositResultsOperator,
    LockResultsOperator,
    QueryResultsOperator,
    UnlockResultsOperator,
)
from airflow_jobwait.sensors import JobSensor

DEFAULTS: dict[str, Any] = {"retries": 0}
RUN = "{{ run_id }}"


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, default_args=DEFAULTS)


def pipeline_of(name: str) -> str:
    return f"ops-{name}-{RUN}"


def works(pipeline: str, n: int = 3, status: str = "success") -> list[dict[str, Any]]:
    return [
        {"id": f"{pipeline}-{i}", "pipeline": pipeline, "status": status, "results": {"n": i}, "event": [i]}
        for i in range(n)
    ]


# Deposit (twice: the second recognises the first), lock, query, unlock with force, delete.
with dag("jobwait_test_results_cycle"):
    PIPELINE = pipeline_of("cycle")
    deposit = DepositResultsOperator(task_id="deposit", works=works(PIPELINE))
    deposit_again = DepositResultsOperator(task_id="deposit_again", works=works(PIPELINE))
    lock = LockResultsOperator(task_id="lock", pipeline=PIPELINE, ids=deposit.output["work_ids"])
    query = QueryResultsOperator(
        task_id="query_locked",
        pipeline=PIPELINE,
        query={"results.locked": True, "event": {"$gte": 1}},
        projection={"results": True},
        skip="{{ 0 }}",
        limit="{{ 10 }}",
    )

    @task
    def check_locked(found: list[dict[str, Any]], deposited: dict[str, bool], run_id: str | None = None) -> None:
        pipeline = f"ops-cycle-{run_id}"
        assert deposited == {pipeline: True}, deposited
        assert found == [{"id": f"{pipeline}-{i}", "results": {"n": i, "locked": True}} for i in (1, 2)], found
        assert all(Work.model_validate(w).locked for w in found)
        assert ResultsHook().get_locked_count(pipeline) == 3

    unlock = UnlockResultsOperator(task_id="unlock", pipeline=PIPELINE, ids=lock.output, force=True)
    delete = DeleteResultsOperator(task_id="delete", pipeline=PIPELINE, ids=unlock.output)

    @task
    def check_gone(run_id: str | None = None) -> None:
        assert ResultsHook().count(f"ops-cycle-{run_id}", {}) == 0

    checked = check_locked(query.output, deposit.output)
    deposit >> deposit_again >> lock >> query
    checked >> unlock
    delete >> check_gone()

# Unlock without force fails the task, and the works stay locked.
with dag("jobwait_test_results_unlock_without_force"):
    PIPELINE = pipeline_of("noforce")
    deposit = DepositResultsOperator(task_id="deposit", works=works(PIPELINE, 1))
    lock = LockResultsOperator(task_id="lock", pipeline=PIPELINE, ids=deposit.output["work_ids"])
    UnlockResultsOperator(task_id="unlock", pipeline=PIPELINE, ids=lock.output)

# A locked work cannot be deleted.
with dag("jobwait_test_results_delete_locked"):
    PIPELINE = pipeline_of("dellocked")
    deposit = DepositResultsOperator(task_id="deposit", works=works(PIPELINE, 1))
    lock = LockResultsOperator(task_id="lock", pipeline=PIPELINE, ids=deposit.output["work_ids"])
    DeleteResultsOperator(task_id="delete", pipeline=PIPELINE, ids=lock.output)

# The same id with other content is a 409: the second deposit fails, the first work stays.
with dag("jobwait_test_results_conflict"):
    PIPELINE = pipeline_of("conflict")
    first = DepositResultsOperator(task_id="deposit", works=works(PIPELINE, 1))
    clash = [{**works(PIPELINE, 1)[0], "results": {"n": 99}}]
    first >> DepositResultsOperator(task_id="deposit_clash", works=clash)

# Works with a status other than success/failure are refused before any request.
with dag("jobwait_test_results_bad_status"):
    DepositResultsOperator(task_id="deposit", works=works(pipeline_of("badstatus"), 2, status="running"))

# An inference job with one failed input → one success and one failure work.
with dag("jobwait_test_results_from_job"):
    PIPELINE = pipeline_of("fromjob")
    submit = SubmitJobOperator(
        task_id="submit",
        model_id="wordcount",
        inputs={"first": {"input.txt": "one two three"}, "second": {"input.txt": "four five"}},
        extra_body={"test": {"duration_s": 0.5, "fail_inputs": ["second"]}},
        poll_interval=0.3,
    )
    wait = JobSensor(task_id="wait", job_id=submit.output, poll_interval=0.3, timeout=60)
    deposit = DepositResultsOperator(
        task_id="deposit", job_results=wait.output, pipeline=PIPELINE, site="test", tags=["{{ dag.dag_id }}"]
    )
    query = QueryResultsOperator(task_id="query", pipeline=PIPELINE, query={"parameters.job_id": submit.output})
    deposit >> query

    @task
    def check_works(found: list[dict[str, Any]], job_id: str, work_ids: list[str]) -> None:
        by_id = {w["id"]: Work.model_validate(w) for w in found}
        assert sorted(by_id) == sorted(work_ids) == [f"{job_id}:first", f"{job_id}:second"], by_id
        ok, failed = by_id[f"{job_id}:first"], by_id[f"{job_id}:second"]
        assert ok.status == "success" and ok.results is not None
        assert ok.results["results.json"] == {"words": 3}
        assert failed.status == "failure" and failed.results is not None and failed.results["error"]
        assert ok.site == "test" and ok.tags == ["jobwait_test_results_from_job"]
        assert ok.start is not None and ok.stop is not None and ok.creation is not None

    check_works(query.output, submit.output, deposit.output["work_ids"])
