"""Run a compute task, wait in the triggerer, use its typed result downstream.

Needs a connection ``evo_default`` (type ``evo``: Host = the Evo hub URL; Login = an OAuth2
client ID and Password = its secret, or Password = an access token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task
from pydantic import BaseModel

from airflow_jobwait.operators.compute import SubmitComputeTaskOperator

ORG_ID = "00000000-0000-4000-8000-000000000001"


class WordCount(BaseModel):
    """What the ``demo/wordcount`` task returns."""

    words: int


with DAG(
    dag_id="jobwait_compute_example",
    description="Count words with a compute task; the result is validated against a pydantic model.",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["jobwait", "example"],
) as dag:
    count = SubmitComputeTaskOperator(
        task_id="count_words",
        org_id=ORG_ID,
        topic="demo",
        task="wordcount",
        parameters={"text": "the quick brown fox jumps over the lazy dog"},
        result_model=WordCount,
        poll_interval=1.0,
    )

    @task
    def use_count(result: dict[str, Any]) -> int:
        words = WordCount.model_validate(result).words
        print(f"{words} words")
        return words

    use_count(count.output)
