"""Compute tasks (Seequent Evo Compute wire format, ``docs/jobs-api.md`` §3)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.models.base import WireModel

#: Native statuses: ``requested``, ``in progress``, ``cancelling`` run; the others are terminal.
COMPUTE_STATUSES = ("requested", "in progress", "cancelling", "succeeded", "failed", "cancelled")

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SEGMENT = r"[^/?#]+"
_STATUS_PATH = re.compile(
    rf"^/compute/orgs/(?P<org_id>{_UUID})/(?P<topic>{_SEGMENT})/(?P<task>{_SEGMENT})/(?P<job_id>{_UUID})/status$"
)


class ComputeError(WireModel):
    """The Error body of a failed or cancelled job (and of failed requests)."""

    status: int | None = None
    type: str | None = None
    title: str | None = None
    detail: str | None = None

    def describe(self) -> str:
        """``title: detail``, for messages."""
        return ": ".join(part for part in (self.title, self.detail) if part) or "unknown error"


class ComputeStatus(WireModel):
    """``GET …/{jobId}/status``.

    :param status: Native status (see ``COMPUTE_STATUSES``); mapped onto ``JobStatus`` by ``job_kinds``.
    :param progress: Percent done (0-100), when known.
    """

    status: str
    progress: float | None = None
    message: str | None = None
    error: ComputeError | None = None


class ComputeResults(WireModel):
    """``GET …/{jobId}`` once terminal: ``results`` on success, ``error`` otherwise."""

    status: str
    results: dict[str, Any] | None = None
    error: ComputeError | None = None


class ComputeJobRef(BaseModel):
    """Where a submitted compute job lives: everything its status, results and cancel paths need."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    topic: str
    task: str
    job_id: str

    @classmethod
    def from_location(cls, location: str | None) -> ComputeJobRef:
        """Parse a submit's ``Location`` (relative, or absolute: only its path is used).

        :raises InvalidResponse: Missing, or not ``/compute/orgs/{uuid}/{topic}/{task}/{uuid}/status``.
        """
        if not location:
            raise InvalidResponse("compute submit answered 303 without a Location header", field="Location")
        try:
            parts = urlsplit(location.strip())
        except ValueError:  # e.g. an unbalanced "[" in the host part
            parts = None
        match = None if parts is None else _STATUS_PATH.match(parts.path)
        if parts is None or match is None or parts.query or parts.fragment:
            raise InvalidResponse(
                "Location of the compute submit must be /compute/orgs/{orgId}/{topic}/{task}/{jobId}/status "
                f"with UUID ids, got {location[:300]!r}",
                field="Location",
            )
        ids = {key: str(uuid.UUID(match[key])) for key in ("org_id", "job_id")}
        return cls(topic=match["topic"], task=match["task"], **ids)

    @property
    def job_ref(self) -> dict[str, str]:
        """The JSON-safe ``job_ref`` a wait (``job_kind="compute"``) needs next to ``job_id``."""
        return {"org_id": self.org_id, "topic": self.topic, "task": self.task}
