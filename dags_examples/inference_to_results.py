"""Run an inference job, keep its per-input results in the results store, and lock them.

submit → wait (in the triggerer) → deposit one work per input → lock them → read the locked works
back → print a summary. Work ids are ``"<job id>:<source key>"``, so every run deposits new works
(no 409 on re-runs), and a retried deposit recognises its own earlier works.

Needs two connections: ``modzy_default`` (type ``modzy``) for the inference jobs and
``chime_results_default`` (type ``chime_results``: Host = the results base URL) for the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_jobwait.models.results_store import Work
from airflow_jobwait.operators.jobs import SubmitJobOperator
from airflow_jobwait.operators.results import (
    DepositResultsOperator,
    LockResultsOperator,
    QueryResultsOperator,
)
from airflow_jobwait.sensors import JobSensor

PIPELINE = "jobwait-sentiment-reviews"
REVIEWS = {
    "review-1": {"input.txt": "I love this product, it is great and works perfectly"},
    "review-2": {"input.txt": "Terrible experience, the package arrived broken"},
    "review-3": {"input.txt": "It is a box"},
}

with DAG(
    dag_id="jobwait_inference_to_results",
    description="Sentiment job → results store: deposit one work per review, lock them, read them back.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["jobwait", "example", "results-store"],
) as dag:
    submit = SubmitJobOperator(
        task_id="submit_sentiment_job",
        model_id="sentiment",
        model_version="1.0",
        inputs=REVIEWS,
    )

    wait = JobSensor(task_id="wait_for_job", job_id=submit.output, poll_interval=1, timeout=600)

    deposit = DepositResultsOperator(
        task_id="deposit_results",
        job_results=wait.output,
        pipeline=PIPELINE,
        function="sentiment:1.0",
        tags=["reviews"],
    )

    lock = LockResultsOperator(task_id="lock_results", pipeline=PIPELINE, ids=deposit.output["work_ids"])

    # The works of this run's job that are locked (projection: keep what the summary reads).
    locked = QueryResultsOperator(
        task_id="query_locked",
        pipeline=PIPELINE,
        query={"parameters.job_id": submit.output, "results.locked": True},
        projection={"parameters": True, "results": True, "status": True},
        limit=0,
    )
    lock >> locked

    # One XCom, the whole summary: a dict return annotation alone would turn on
    # multiple_outputs and push each entry as an XCom of its own.
    @task(multiple_outputs=False)
    def summarize(works: list[dict[str, Any]]) -> dict[str, str]:
        """Print each review's label from the locked works the query returned."""
        summary = {}
        for work in (Work.model_validate(w) for w in works):
            assert work.locked, f"work {work.id} should be locked"
            results = work.results or {}
            output = results.get("results.json") or {}
            source = (work.parameters or {}).get("source_key", work.id)
            summary[source] = f"{work.status}: {output.get('label')} ({output.get('score', 0.0):.2f})"
            print(f"{work.id}: {summary[source]}")
        print(f"{len(summary)} locked works in pipeline {PIPELINE!r}")
        return summary

    summarize(locked.output)
