"""DAGs for the lineage tests: writing operators that declare what they wrote on their outlets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset

from airflow_jobwait.operators.datasets import SquashAndMergeOperator

FAST = {"queuing_s": 0.05, "processing_s": 0.1}
MERGED = Asset("jobwait-test-merged-drafts")

with DAG(
    "jobwait_test_lineage_merge",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    default_args={"retries": 0},
):
    merge: Any = SquashAndMergeOperator(
        task_id="merge",
        dataset_id="{{ dag_run.conf['dataset_id'] }}",
        title="add a bird",
        source_branch="feature",
        target_branch="main",
        poll_interval=0.1,
        extra_body={"test": FAST},
        outlets=[MERGED],
    )
