"""Calls of the compute tasks API (Seequent Evo Compute wire format, ``docs/jobs-api.md`` §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_jobwait.client.http import (
    AuthScheme,
    Call,
    HttpRequest,
    HttpResponse,
    decode_json,
    expect,
    json_model,
    path_segment,
    validate,
)
from airflow_jobwait.exceptions import InvalidResponse, JobError, JobPendingError
from airflow_jobwait.models.base import with_extra_fields
from airflow_jobwait.models.compute import ComputeJobRef, ComputeResults, ComputeStatus

AUTH = AuthScheme("Authorization", "Bearer ")
PREFIX = "/compute/orgs"


def _task_path(org_id: str, topic: str, task: str) -> str:
    return f"{PREFIX}/{path_segment(org_id, 'org_id')}/{path_segment(topic, 'topic')}/{path_segment(task, 'task')}"


def _job_path(ref: ComputeJobRef) -> str:
    return f"{_task_path(ref.org_id, ref.topic, ref.task)}/{path_segment(ref.job_id, 'job_id')}"


def submit(
    org_id: str, topic: str, task: str, parameters: Mapping[str, Any], extra_body: Mapping[str, Any] | None = None
) -> Call[ComputeJobRef]:
    """``POST /compute/orgs/{orgId}/{topic}/{task}``: exactly 303; the job is read from ``Location``
    (never followed). Not retried after a failure that may have reached the service.

    :param extra_body: More top-level body fields, for options this provider does not model.
    """
    body = with_extra_fields({"parameters": dict(parameters)}, extra_body)
    request = HttpRequest("POST", _task_path(org_id, topic, task), AUTH, json_body=body, idempotent=False)

    def parse(response: HttpResponse) -> ComputeJobRef:
        expect(request, response, (303,))
        return ComputeJobRef.from_location(response.header("location"))

    return Call(request, parse)


def get_status(ref: ComputeJobRef) -> Call[ComputeStatus]:
    """``GET …/{jobId}/status`` (200, or 202 while running)."""
    request = HttpRequest("GET", f"{_job_path(ref)}/status", AUTH)
    return json_model(request, ComputeStatus, f"status of compute job {ref.job_id}", ok=(200, 202))


def get_results(ref: ComputeJobRef) -> Call[dict[str, Any]]:
    """``GET …/{jobId}``: the results of a succeeded job.

    :raises JobPendingError: 202, the job is still running.
    :raises JobError: The job failed or was cancelled (names the Error's title and detail).
    :raises InvalidResponse: 200 with neither results nor an error.
    """
    request = HttpRequest("GET", _job_path(ref), AUTH)

    def parse(response: HttpResponse) -> dict[str, Any]:
        expect(request, response, (200, 202))
        body = decode_json(response, f"results of compute job {ref.job_id}")
        native = body.get("status") if isinstance(body, dict) else None
        if response.status == 202:
            raise JobPendingError(f"compute job {ref.job_id} is still {native or 'running'}: no results yet", native)
        answer = validate(ComputeResults, body, f"results of compute job {ref.job_id}")
        if answer.error is not None:
            raise JobError(
                f"compute job {ref.job_id} ended {answer.status}: {answer.error.describe()}",
                status=answer.status,
                title=answer.error.title,
                detail=answer.error.detail,
            )
        if answer.results is None:
            raise InvalidResponse(
                f"results of compute job {ref.job_id} ({answer.status}) have neither results nor error",
                field="results",
            )
        return answer.results

    return Call(request, parse)


def list_workspaces(org_id: str, limit: int = 1) -> Call[int]:
    """``GET /workspace/orgs/{orgId}/workspaces?limit=N`` (Evo Workspaces API): the cheapest
    authenticated read of the hub, for the connection test; answers how many workspaces came back."""
    request = HttpRequest(
        "GET", f"/workspace/orgs/{path_segment(org_id, 'org_id')}/workspaces", AUTH, params=(("limit", str(limit)),)
    )

    def parse(response: HttpResponse) -> int:
        expect(request, response, (200,))
        body = decode_json(response, "workspace list")
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise InvalidResponse("workspace list has no 'results' list", field="results")
        return len(results)

    return Call(request, parse)


def cancel(ref: ComputeJobRef) -> Call[None]:
    """``DELETE …/{jobId}``: exactly 204; cancelling a terminal or cancelling job changes nothing."""
    request = HttpRequest("DELETE", _job_path(ref), AUTH)

    def parse(response: HttpResponse) -> None:
        expect(request, response, (204,))

    return Call(request, parse)
