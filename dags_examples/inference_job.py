"""Submit a small inference job, wait for it in the triggerer, use its per-input outputs downstream.

Needs a connection ``modzy_default`` (type ``modzy``: Host = the API URL, e.g.
https://app.modzy.com/api; Password = the API key). ``make demo`` runs this DAG against the bundled reference service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_jobwait.models import JobResults
from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.sensors import JobSensor

REVIEWS = {
    "review-1": {"input.txt": "I love this product, it is great and works perfectly"},
    "review-2": {"input.txt": "Terrible experience, the package arrived broken"},
    "review-3": {"input.txt": "It is a box"},
}

with DAG(
    dag_id="jobwait_inference_example",
    description="Submit a sentiment job, wait without a worker slot, summarise the per-input outputs.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["jobwait", "example"],
) as dag:
    submit = SubmitJobOperator(
        task_id="submit_sentiment_job",
        model_id="sentiment",
        model_version="1.0",
        inputs=REVIEWS,
    )

    wait = JobSensor(
        task_id="wait_for_job",
        job_id=submit.output,
        poll_interval=1,
        timeout=600,
    )

    # One XCom, the whole summary: a dict return annotation alone would turn on
    # multiple_outputs and push each entry as an XCom of its own.
    @task(multiple_outputs=False)
    def summarize(results: dict[str, Any]) -> dict[str, str]:
        """Read each input's model output from the results the sensor pushed to XCom."""
        parsed = JobResults.model_validate(results)
        summary = {}
        for source_key in REVIEWS:
            output = parsed.get_source_outputs(source_key)["results.json"]
            summary[source_key] = f"{output['label']} ({output['score']:.2f})"
            print(f"{source_key}: {summary[source_key]}")
        print(f"job {parsed.job_identifier}: {parsed.completed}/{parsed.total} inputs completed")
        return summary

    summarize(wait.output)
