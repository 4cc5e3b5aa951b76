"""The DAG the browser test (``tests/e2e/test_browser.py``) triggers from the Airflow UI.

``dags_examples/inference_job.py`` (submit a sentiment job, wait for it in the triggerer, use its
per-input outputs), with what a UI test needs: the waits use the connection the test creates
through the connection form (``modzy_browser``, with a ``job_url_template``, so each wait has a
"Job" link), the jobs last ``DURATION_S`` (long enough to look at a deferred task, and ended by
the test), progress lines come every few seconds, and there are two waits: one to look at, one
to mark failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_jobwait.models import JobResults
from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.sensors import JobSensor

#: Created by the browser test through the UI's connection form before it triggers the DAG.
CONN_ID = "modzy_browser"
#: Long enough to look at the deferred waits on a loaded machine; the test ends both jobs itself.
DURATION_S = 600.0
#: A progress line this often, so the task log shows one within seconds (default 60 s).
PROGRESS_INTERVAL_S = 5.0

REVIEWS = {
    "review-1": {"input.txt": "I love this product, it is great and works perfectly"},
    "review-2": {"input.txt": "Terrible experience, the package arrived broken"},
}

with DAG(
    dag_id="jobwait_e2e_browser",
    description="Two sentiment jobs waited for in the triggerer, through a connection made in the UI.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    default_args={"retries": 0},
    tags=["jobwait", "e2e"],
) as dag:

    @task(multiple_outputs=False)
    def summarize(results: dict[str, Any]) -> dict[str, str]:
        """Each input's label, read from the results the sensor pushed to XCom."""
        parsed = JobResults.model_validate(results)
        return {key: parsed.get_source_outputs(key)["results.json"]["label"] for key in REVIEWS}

    for name in ("first", "second"):
        submit = SubmitJobOperator(
            task_id=f"submit_{name}",
            conn_id=CONN_ID,
            model_id="sentiment",
            model_version="1.0",
            # The run id keeps the two runs' jobs (and Idempotency-Keys) apart.
            inputs={
                key: {"input.txt": f"{value['input.txt']} ({name}, {{{{ run_id }}}})"} for key, value in REVIEWS.items()
            },
            extra_body={"test": {"duration_s": DURATION_S}},
        )
        wait = JobSensor(task_id=f"wait_{name}", conn_id=CONN_ID, job_id=submit.output, poll_interval=2, timeout=900)
        # Not a constructor argument of the sensor: the trigger takes it from the task.
        wait.progress_interval = PROGRESS_INTERVAL_S
        summarize.override(task_id=f"summarize_{name}")(wait.output)
