"""Squash a feature branch onto ``main`` as a draft; on failure (e.g. a conflict fixed meanwhile)
the task's retry retries the same dataset job on the service rather than creating another.

Needs a connection ``tensorbay_default`` (type ``tensorbay``: Password = the AccessKey; Host =
the site URL, empty for gas.graviti.com/.cn). The dataset is the ``dataset_id`` param.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_jobwait.operators.datasets import SquashAndMergeOperator

with DAG(
    dag_id="jobwait_dataset_merge_example",
    description="Squash-and-merge a branch into main, wait in the triggerer, report the draft.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"dataset_id": Param("demo-dataset", type="string"), "source_branch": Param("feature", type="string")},
    tags=["jobwait", "example"],
) as dag:
    merge = SquashAndMergeOperator(
        task_id="squash_and_merge",
        dataset_id="{{ params.dataset_id }}",
        title="merge {{ params.source_branch }} ({{ ds }})",
        source_branch="{{ params.source_branch }}",
        target_branch="main",
        strategy="abort",
        poll_interval=1.0,
        retries=2,
        retry_delay=timedelta(minutes=5),
    )

    @task
    def report(draft: dict[str, Any]) -> str:
        summary = f"draft #{draft['number']} on {draft['branchName']}: {draft['title']} ({draft['status']})"
        print(summary)
        return summary

    report(merge.output)
