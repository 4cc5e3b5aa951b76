"""Hooks: one per API family, all on the ``jobwait`` connection type."""

from airflow_jobwait.hooks.jobs import JobsHook

__all__ = ["JobsHook"]
