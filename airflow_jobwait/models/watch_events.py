"""What the event triggers fire: the payload a downstream task reads from its triggering asset event.

Airflow stores a watcher's event on every asset the watcher feeds, as the asset event's ``extra``
``{"from_trigger": true, "payload": <this>}``. A task of the DAG it scheduled reads it back with
``WatchEvent.from_asset_event(context["triggering_asset_events"][asset][-1])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_jobwait.models.datasets import DatasetJob
from airflow_jobwait.models.inference import Job
from airflow_jobwait.models.native_statuses import TENSORBAY
from airflow_jobwait.models.results_store import Work
from airflow_jobwait.models.status import JobStatus

WatchKind = Literal["results_store.works", "dataset.jobs", "inference.jobs"]


class WatchedItem(BaseModel):
    """One item an event reports.

    :param id: The work's id, or the job's id.
    :param time: The time the watch orders the item by (seconds since the epoch): a work's time
        field, a dataset job's ``createdAt``, an inference job's ``submittedAt``.
    :param status: As the service spells it (a work's ``status``, a job's native status).
    :param job_status: A job's status in the common vocabulary (``docs/jobs-api.md`` §5).
    :param details: What else the kind tells (dataset jobs: ``jobType``, ``title``, ``finishedAt``,
        ``draftNumber``, ``errorMessage``; inference jobs: ``model``, ``version``).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    time: float | None = None
    status: str | None = None
    job_status: JobStatus | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class WatchEvent(BaseModel):
    """The payload of one event of an event trigger: new works, or jobs that reached a terminal status.

    :param kind: ``results_store.works``, ``dataset.jobs`` or ``inference.jobs``.
    :param conn_id: The Airflow connection the source was read with.
    :param source: What was watched: ``{"pipeline"}``, ``{"dataset_id", "job_type"}`` or
        ``{"model", "version"}`` (``version`` only when the watch names one).
    :param ids: The ids of ``items``, in the order the source listed them.
    :param items: One item (per-item events) or every new item of one poll (``batch=True``).
    """

    model_config = ConfigDict(frozen=True)

    kind: WatchKind
    conn_id: str
    source: dict[str, str]
    ids: list[str]
    items: list[WatchedItem]

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe payload for a ``TriggerEvent``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_asset_event(cls, event: Any) -> WatchEvent:
        """The payload of an asset event a watcher produced (from ``triggering_asset_events``).

        :param event: An ``AssetEventDagRunReference`` (or anything with ``extra``), or its ``extra``.
        :raises ValueError: The event did not come from one of these triggers.
        """
        extra = event if isinstance(event, Mapping) else getattr(event, "extra", None)
        payload = extra.get("payload") if isinstance(extra, Mapping) else None
        if not isinstance(payload, Mapping) or payload.get("kind") not in (
            "results_store.works",
            "dataset.jobs",
            "inference.jobs",
        ):
            raise ValueError("the asset event carries no airflow-jobwait watch payload (was it fired by a watcher?)")
        return cls.model_validate(payload)


# ---- one item per kind: what the triggers report and what the writing operators declare ----------


def work_item(work: Work, time_field: str = "creation") -> WatchedItem:
    """A work as events name it (``time``: its ``time_field``)."""
    when = getattr(work, time_field, None)
    return WatchedItem(id=work.id, time=None if when is None else float(when), status=work.status)


def dataset_job_item(job: DatasetJob, job_type: str) -> WatchedItem:
    """A dataset job as events name it (``time``: ``createdAt``; status mapped as §5 says)."""
    status = TENSORBAY.to_common(job.status, f"dataset job {job.job_id}") if job.status else None
    details: dict[str, Any] = {"jobType": job.job_type or job_type, "title": job.title, "finishedAt": job.finished_at}
    if job.draft_number is not None:
        details["draftNumber"] = job.draft_number
    if job.error_message:
        details["errorMessage"] = job.error_message
    return WatchedItem(
        id=job.job_id,
        time=None if job.created_at is None else float(job.created_at),
        status=job.status,
        job_status=status,
        details=details,
    )


def inference_job_item(job: Job, model: str) -> WatchedItem:
    """An inference job as events name it (``time``: ``submittedAt``).

    :param model: The model watched, for a job reply without one.
    """
    submitted = job.submitted_at
    if submitted is not None and submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    return WatchedItem(
        id=job.job_identifier,
        time=None if submitted is None else submitted.timestamp(),
        status=job.native_status or job.status.value,
        job_status=job.status,
        details={
            "model": job.model.identifier if job.model else model,
            "version": job.model.version if job.model else None,
        },
    )
