"""Compute tasks (Seequent Evo Compute wire format, ``docs/jobs-api.md`` §3)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.models.base import WireModel

#: Native statuses of our contract: ``requested``, ``in progress``, ``cancelling`` run; the others
#: are terminal. ``docs/jobs-api.md`` §5 has every status the SDK knows.
COMPUTE_STATUSES = ("requested", "in progress", "cancelling", "succeeded", "failed", "cancelled")

_SEGMENT = r"[^/?#]+"
# The evo-compute SDK's RE_STATUS_URL (evo/compute/client.py), anchored: it strips one leading "/"
# before matching, so "compute/orgs/..." is as good as "/compute/orgs/...".
_STATUS_PATH = re.compile(
    rf"^/?compute/orgs/(?P<org_id>{_SEGMENT})/(?P<topic>{_SEGMENT})/(?P<task>{_SEGMENT})/(?P<job_id>{_SEGMENT})/status$"
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
        """Parse a submit's ``Location``: relative (with or without the leading ``/``) or absolute
        (only its path is used; the SDK also wants its host to be the connector's, which a parser
        without the connection cannot check). The ids are UUIDs in any form ``uuid.UUID`` reads,
        as the SDK converts them (``JobClient.from_url``), and are kept in canonical form.

        :raises InvalidResponse: Missing, or not ``/compute/orgs/{uuid}/{topic}/{task}/{uuid}/status``.
        """
        if not location:
            raise InvalidResponse("compute submit answered 303 without a Location header", field="Location")
        try:
            parts = urlsplit(location.strip())
        except ValueError:  # e.g. an unbalanced "[" in the host part
            parts = None
        match = None if parts is None else _STATUS_PATH.match(parts.path)
        ids = None if match is None else _uuids(match["org_id"], match["job_id"])
        if parts is None or match is None or ids is None or parts.query or parts.fragment:
            raise InvalidResponse(
                "Location of the compute submit must be /compute/orgs/{orgId}/{topic}/{task}/{jobId}/status "
                f"with UUID ids, got {location[:300]!r}",
                field="Location",
            )
        org_id, job_id = ids
        return cls(org_id=org_id, topic=match["topic"], task=match["task"], job_id=job_id)

    @property
    def job_ref(self) -> dict[str, str]:
        """The JSON-safe ``job_ref`` a wait (``job_kind="compute"``) needs next to ``job_id``."""
        return {"org_id": self.org_id, "topic": self.topic, "task": self.task}


def _uuids(*values: str) -> list[str] | None:
    """Canonical forms of UUIDs, or ``None`` if one is not a UUID."""
    try:
        return [str(uuid.UUID(value)) for value in values]
    except ValueError:
        return None
