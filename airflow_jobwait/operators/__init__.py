"""Operators: submit and manage remote jobs and results."""

from airflow_jobwait.operators.compute import SubmitComputeTaskOperator
from airflow_jobwait.operators.datasets import (
    AbortDatasetJobOperator,
    RetryDatasetJobOperator,
    SquashAndMergeOperator,
)
from airflow_jobwait.operators.jobs import SubmitJobOperator
from airflow_jobwait.operators.results import (
    DeleteResultsOperator,
    DepositResultsOperator,
    LockResultsOperator,
    QueryResultsOperator,
    UnlockResultsOperator,
)

__all__ = [
    "AbortDatasetJobOperator",
    "DeleteResultsOperator",
    "DepositResultsOperator",
    "LockResultsOperator",
    "QueryResultsOperator",
    "RetryDatasetJobOperator",
    "SquashAndMergeOperator",
    "SubmitComputeTaskOperator",
    "SubmitJobOperator",
    "UnlockResultsOperator",
]
