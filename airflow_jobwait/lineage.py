"""Lineage from the writing side: operators that write (deposit works, squash-and-merge) declare
what they wrote on the asset events of their ``outlets``.

The payload is the same ``WatchEvent`` a watcher fires for the same writes
(``triggers/events.py``), so a DAG scheduled on the asset reads it the same way whichever
produced it: ``WatchEvent.from_asset_event(context["triggering_asset_events"][asset][-1])``.
Airflow emits one asset event per outlet when the task succeeds, carrying ``extra`` as set here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import get_current_context
from airflow.sdk import Asset

from airflow_jobwait.models.datasets import DatasetJob
from airflow_jobwait.models.results_store import Work
from airflow_jobwait.models.watch_events import WatchEvent, dataset_job_item, work_item


def asset_outlets(operator: Any) -> list[Asset]:
    """The operator's outlets that are assets (aliases and other outlets carry no event of ours)."""
    return [outlet for outlet in getattr(operator, "outlets", None) or () if isinstance(outlet, Asset)]


def declare_on_outlets(operator: Any, event: WatchEvent) -> list[Asset]:
    """Put ``event`` in the ``extra`` of this run's asset event of each asset outlet.

    :param operator: The running operator (its ``outlets``); called from ``execute`` or
        ``execute_complete``, where Airflow keeps the task's context.
    :return: The assets the event was declared on (none without asset outlets).
    """
    assets = asset_outlets(operator)
    if not assets:
        return []
    outlet_events = get_current_context()["outlet_events"]
    for asset in assets:
        outlet_events[asset].extra = {"payload": event.to_payload()}
    operator.log.info("declared %s on outlet asset(s) %s", ", ".join(event.ids[:5]), ", ".join(a.name for a in assets))
    return assets


def works_event(conn_id: str, works: Sequence[Work]) -> WatchEvent:
    """The event of deposited works (``source``: their pipeline, or pipelines comma-separated)."""
    pipelines = sorted({work.pipeline or "" for work in works})
    return WatchEvent(
        kind="results_store.works",
        conn_id=conn_id,
        source={"pipeline": ",".join(pipelines)},
        ids=[work.id for work in works],
        items=[work_item(work) for work in works],
    )


def dataset_job_event(conn_id: str, dataset_id: str, job_type: str, job: DatasetJob) -> WatchEvent:
    """The event of a finished dataset job."""
    return WatchEvent(
        kind="dataset.jobs",
        conn_id=conn_id,
        source={"dataset_id": dataset_id, "job_type": job_type},
        ids=[job.job_id],
        items=[dataset_job_item(job, job_type)],
    )
