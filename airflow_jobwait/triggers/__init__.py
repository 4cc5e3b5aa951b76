"""Triggers: async waits that run in the triggerer, and event triggers for ``AssetWatcher``."""

from airflow_jobwait.triggers.events import DatasetJobsTrigger, InferenceJobsTrigger, NewWorksTrigger
from airflow_jobwait.triggers.jobs import JobTrigger

__all__ = ["DatasetJobsTrigger", "InferenceJobsTrigger", "JobTrigger", "NewWorksTrigger"]
