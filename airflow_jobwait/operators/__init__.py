"""Operators: submit and manage remote jobs."""

from airflow_jobwait.operators.jobs import SubmitJobOperator

__all__ = ["SubmitJobOperator"]
