"""Payloads of the compute family (Seequent Evo Compute API, ``docs/jobs-api.md`` §3) as pydantic models.

For the OpenAPI document (``openapi.py``); ``compute.py`` parses and checks bodies itself. What a
task takes in ``parameters`` depends on the task (``compute_tasks.py``): a submit whose
parameters the task refuses gets 400 ``Invalid parameters``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["requested", "in progress", "cancelling", "succeeded", "failed", "cancelled"]
RunningStatus = Literal["requested", "in progress", "cancelling"]
ORG_ID = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


class Problem(BaseModel):
    """Evo's Error: an RFC 9457 problem details body (``application/problem+json``)."""

    status: int
    type: str
    title: str
    detail: str


class Submit(BaseModel):
    """``POST …/{topic}/{task}``; the task reads ``parameters`` (``demo``: wordcount ``{"text"}``,
    sleep ``{"seconds"}``, fail ``{"message"?}``)."""

    model_config = ConfigDict(extra="allow")

    parameters: dict[str, Any]


class JobStatusBody(BaseModel):
    status: JobStatus
    progress: Annotated[int, Field(ge=0, le=100)] | None
    message: str | None
    error: Problem | None


class JobResults(BaseModel):
    """A finished job: ``results`` when it succeeded, ``error`` when it failed or was cancelled."""

    status: Literal["succeeded", "failed", "cancelled"]
    results: dict[str, Any] | None
    error: Problem | None


class JobRunning(BaseModel):
    status: RunningStatus


class Links(BaseModel):
    count: int
    total: int
    first: str
    last: str
    next: str | None
    previous: str | None


class Workspaces(BaseModel):
    """Evo's ``ListWorkspacesResponse``: this service holds none."""

    results: list[dict[str, Any]]
    links: Links
