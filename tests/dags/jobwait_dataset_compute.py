"""DAGs for the dataset-job and compute-task operator tests (run through ``dag.test()``).

The dataset DAG runs against the dataset named in ``dag_run.conf["dataset_id"]`` (each test clones
one), so tests do not interfere. Task failures are appended to the file named by the
``JOBWAIT_TEST_FAILURES`` environment variable, for the test to check the error message.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task
from pydantic import BaseModel

from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.operators.compute import SubmitComputeTaskOperator
from airflow_jobwait.operators.datasets import RetryDatasetJobOperator, SquashAndMergeOperator
from tests import reference_datasets as reference

DATASET = "{{ dag_run.conf['dataset_id'] }}"
FAST = {"queuing_s": 0.05, "processing_s": 0.1}
ORG = str(uuid.UUID(int=7))


def record_failure(context: dict[str, Any]) -> None:
    path = os.environ.get("JOBWAIT_TEST_FAILURES")
    if path:
        with open(path, "a") as out:
            out.write(f"{context['ti'].task_id}: {context.get('exception')}\n")


DEFAULTS: dict[str, Any] = {"retries": 0, "on_failure_callback": record_failure}


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, default_args=DEFAULTS)


class WordCount(BaseModel):
    words: int


class Sentences(BaseModel):
    sentences: int


with dag("jobwait_test_dataset_conflict_fix_retry"):
    merge = SquashAndMergeOperator(
        task_id="merge",
        dataset_id=DATASET,
        title="add a fish",
        source_branch="conflicting",
        target_branch="main",
        strategy="abort",
        poll_interval=0.1,
        extra_body={"test": FAST},
    )

    @task(trigger_rule="all_failed")
    def fix(dag_run: Any = None) -> None:
        """Resolve the conflict on the source branch: take main's README."""
        dataset_id = dag_run.conf["dataset_id"]
        hook = DatasetJobsHook()
        readme = hook.call(reference.branch(dataset_id, "main"))["files"]["README.md"]
        hook.call(reference.commit(dataset_id, "conflicting", {"README.md": readme}))

    retry = RetryDatasetJobOperator(
        task_id="retry",
        dataset_id=DATASET,
        job_id="{{ ti.xcom_pull(task_ids='merge', key='job_id') }}",
        job_type="squashAndMerge",
        poll_interval=0.1,
    )

    @task
    def check_draft(draft: dict[str, Any]) -> None:
        assert draft["status"] == "OPEN" and draft["branchName"] == "main", draft
        assert draft["title"] == "add a fish", draft

    merge >> fix() >> retry
    check_draft(retry.output)

with dag("jobwait_test_dataset_clean_merge_blocking"):
    clean = SquashAndMergeOperator(
        task_id="merge",
        dataset_id=DATASET,
        title="add a bird",
        source_branch="feature",
        target_branch="main",
        deferrable=False,
        poll_interval=0.1,
        extra_body={"test": FAST},
    )

    @task
    def check_clean(draft: dict[str, Any]) -> None:
        assert draft["status"] == "OPEN" and isinstance(draft["number"], int), draft

    check_clean(clean.output)

with dag("jobwait_test_compute_typed_result"):
    counted = SubmitComputeTaskOperator(
        task_id="count",
        org_id=ORG,
        topic="demo",
        task="wordcount",
        parameters={"text": "one two three"},
        result_model=WordCount,
        poll_interval=0.1,
    )

    @task
    def check_count(result: dict[str, Any]) -> None:
        assert WordCount.model_validate(result).words == 3, result

    check_count(counted.output)

with dag("jobwait_test_compute_failures"):
    SubmitComputeTaskOperator(
        task_id="failing",
        org_id=ORG,
        topic="demo",
        task="fail",
        parameters={"message": "disk on fire"},
        poll_interval=0.1,
    )
    SubmitComputeTaskOperator(
        task_id="mismatch",
        org_id=ORG,
        topic="demo",
        task="wordcount",
        parameters={"text": "a"},
        result_model=Sentences,
        poll_interval=0.1,
    )
