"""Hooks: one per API family, all on the ``jobwait`` connection type, siblings on ``JobWaitHook``."""

from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.compute import ComputeHook
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.hooks.jobs import JobsHook
from airflow_jobwait.hooks.results import ResultsHook

__all__ = ["ComputeHook", "DatasetJobsHook", "JobWaitHook", "JobsHook", "ResultsHook"]
