"""Hooks: one per API family and connection type, siblings on ``JobWaitHook``.

The hook classes are imported on first use, not with this package: ``get_provider_info`` reads
``hooks.connection`` while Airflow itself may still be importing (it loads every provider's info
from its configuration), and importing a hook here would import Airflow in the middle of that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_jobwait.hooks.base import JobWaitHook
    from airflow_jobwait.hooks.compute import ComputeHook
    from airflow_jobwait.hooks.datasets import DatasetJobsHook
    from airflow_jobwait.hooks.jobs import JobsHook
    from airflow_jobwait.hooks.results import ResultsHook

_MODULE_OF = {
    "ComputeHook": "compute",
    "DatasetJobsHook": "datasets",
    "JobWaitHook": "base",
    "JobsHook": "jobs",
    "ResultsHook": "results",
}
__all__ = ["ComputeHook", "DatasetJobsHook", "JobWaitHook", "JobsHook", "ResultsHook"]


#: The hook that reads a job kind's statuses and results.
HOOK_OF_KIND = {"inference": "JobsHook", "dataset": "DatasetJobsHook", "compute": "ComputeHook"}


def hook_class(job_kind: str) -> type[JobWaitHook]:
    """The hook class of a job kind, whose connection type the wait's connection is.

    :raises ValueError: Not a known job kind.
    """
    name = HOOK_OF_KIND.get(job_kind)
    if name is None:
        raise ValueError(f"job_kind must be one of {sorted(HOOK_OF_KIND)}, got {job_kind!r}")
    hook: type[JobWaitHook] = __getattr__(name)
    return hook


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
