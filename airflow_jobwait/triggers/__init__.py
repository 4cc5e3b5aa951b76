"""Triggers: async waits that run in the triggerer."""

from airflow_jobwait.triggers.jobs import JobTrigger

__all__ = ["JobTrigger"]
