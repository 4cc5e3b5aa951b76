"""Calls of the dataset jobs API (TensorBay Open API wire format, ``jobs-api.md`` §2)."""

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
    json_object,
    path_segment,
    validate,
)
from airflow_jobwait.exceptions import ApiError, InvalidResponse
from airflow_jobwait.models.datasets import DATASET_JOB_STATUSES, DatasetJob, DatasetJobList, DraftList

AUTH = AuthScheme("X-Token")
API_ROOT = "/gatewayv2/tensorbay-open-api/v1"
PREFIX = f"{API_ROOT}/datasets"
TEST_PREFIX = f"{API_ROOT}/_test/datasets"
JOB_TYPES = ("squashAndMerge", "basicSearch")
DRAFT_STATUSES = ("OPEN", "CLOSED", "COMMITTED", "ALL")
MAX_PAGE = 128
OK = (200, 201)


def _dataset(dataset_id: str) -> str:
    return f"{PREFIX}/{path_segment(dataset_id, 'dataset_id')}"


def _job_path(dataset_id: str, job_id: str, suffix: str = "") -> str:
    return f"{_dataset(dataset_id)}/jobs/{path_segment(job_id, 'job_id')}{suffix}"


def _type_param(job_type: str | None) -> tuple[tuple[str, str], ...]:
    if job_type is None:
        return ()
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}")
    return (("jobType", job_type),)


def _page(offset: int, limit: int) -> tuple[tuple[str, str], ...]:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"offset must be >= 0 and limit in 1..{MAX_PAGE}, got offset={offset}, limit={limit}")
    return (("offset", str(offset)), ("limit", str(limit)))


def expect_ok(request: HttpRequest, response: HttpResponse, ok: tuple[int, ...] = OK) -> None:
    """``expect``, with TensorBay's ``{"code", "message"}`` in the raised error's message.

    The raised ``ApiError`` (subclass picked from the HTTP status) gets a ``code`` attribute.
    """
    try:
        expect(request, response, ok)
    except ApiError as err:
        body = err.body if isinstance(err.body, dict) else {}
        err.code = body.get("code")  # type: ignore[attr-defined]
        if err.code is not None:
            err.args = (
                f"{request.method} {request.path} answered {err.status}: {err.code}: {body.get('message', '')}".strip(),
            )
        raise


def _model(request: HttpRequest, model: Any, what: str) -> Call[Any]:
    def parse(response: HttpResponse) -> Any:
        expect_ok(request, response)
        return validate(model, decode_json(response, what), what)

    return Call(request, parse)


def _empty(request: HttpRequest) -> Call[None]:
    def parse(response: HttpResponse) -> None:
        expect_ok(request, response)

    return Call(request, parse)


def create_job(
    dataset_id: str,
    title: str,
    job_type: str,
    arguments: Mapping[str, Any],
    request_id: str,
    description: str | None = None,
    test: Mapping[str, Any] | None = None,
) -> Call[DatasetJob]:
    """``POST /datasets/{id}/jobs`` with ``X-Request-Id``: a repeat of the id returns the same job,
    so the call is safe to retry.

    :param request_id: Chosen by the caller (a uuid4 or a key derived from the task instance) so
        every retry of this create reuses it.
    :param test: Reference service only: ``{"queuing_s", "processing_s", "outcome", "error_message"}``.
    """
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError(f"request_id must be a non-empty string, got {request_id!r}")
    _type_param(job_type)
    body: dict[str, Any] = {"title": title, "jobType": job_type, "arguments": dict(arguments)}
    if description is not None:
        body["description"] = description
    if test is not None:
        body["test"] = dict(test)
    request = HttpRequest(
        "POST", f"{_dataset(dataset_id)}/jobs", AUTH, json_body=body, headers=(("X-Request-Id", request_id),),
        idempotent=True,
    )
    return _model(request, DatasetJob, f"created {job_type} job")


def get_job(dataset_id: str, job_id: str, job_type: str | None = None) -> Call[DatasetJob]:
    """``GET /datasets/{id}/jobs/{jobId}?jobType=``."""
    request = HttpRequest("GET", _job_path(dataset_id, job_id), AUTH, params=_type_param(job_type))
    return _model(request, DatasetJob, f"dataset job {job_id}")


def list_jobs(
    dataset_id: str, job_type: str | None = None, status: str | None = None, offset: int = 0, limit: int = MAX_PAGE
) -> Call[DatasetJobList]:
    """``GET /datasets/{id}/jobs``: newest first, filtered by type and native status."""
    params = _type_param(job_type)
    if status is not None:
        if status not in DATASET_JOB_STATUSES:
            raise ValueError(f"status must be one of {', '.join(DATASET_JOB_STATUSES)}, got {status!r}")
        params += (("status", status),)
    request = HttpRequest("GET", f"{_dataset(dataset_id)}/jobs", AUTH, params=params + _page(offset, limit))
    return _model(request, DatasetJobList, f"job list of dataset {dataset_id}")


def retry_job(dataset_id: str, job_id: str, job_type: str | None = None) -> Call[None]:
    """``POST …/jobs/{jobId}/retry``: only from ``FAILED``/``ABORTED`` (else 400)."""
    request = HttpRequest(
        "POST", _job_path(dataset_id, job_id, "/retry"), AUTH, params=_type_param(job_type), idempotent=False
    )
    return _empty(request)


def abort_job(dataset_id: str, job_id: str, job_type: str | None = None) -> Call[None]:
    """``POST …/jobs/{jobId}/abort``: only from ``QUEUING``/``PROCESSING`` (else 400)."""
    request = HttpRequest(
        "POST", _job_path(dataset_id, job_id, "/abort"), AUTH, params=_type_param(job_type), idempotent=False
    )
    return _empty(request)


def delete_job(dataset_id: str, job_id: str, job_type: str | None = None) -> Call[None]:
    """``DELETE …/jobs/{jobId}``."""
    request = HttpRequest("DELETE", _job_path(dataset_id, job_id), AUTH, params=_type_param(job_type), idempotent=False)
    return _empty(request)


def list_drafts(
    dataset_id: str, status: str = "OPEN", branch_name: str | None = None, offset: int = 0, limit: int = MAX_PAGE
) -> Call[DraftList]:
    """``GET /datasets/{id}/drafts`` (``status="ALL"`` lists every status)."""
    if status not in DRAFT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(DRAFT_STATUSES)}, got {status!r}")
    params: tuple[tuple[str, str], ...] = (("status", status),)
    if branch_name is not None:
        params += (("branchName", branch_name),)
    request = HttpRequest("GET", f"{_dataset(dataset_id)}/drafts", AUTH, params=params + _page(offset, limit))
    return _model(request, DraftList, f"draft list of dataset {dataset_id}")


# ---- reference service test controls (``--test-controls`` only) -------------------------------


def clone_dataset_for_test(source: str = "demo-dataset", dataset_id: str | None = None) -> Call[str]:
    """Reference service only: clone ``source`` (commits and branches); answers the new dataset id."""
    body: dict[str, Any] = {"from": source}
    if dataset_id is not None:
        body["datasetId"] = dataset_id
    request = HttpRequest("POST", TEST_PREFIX, AUTH, json_body=body, idempotent=False)

    def parse(response: HttpResponse) -> str:
        expect_ok(request, response)
        dataset_id = json_object(response, "cloned dataset").get("datasetId")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise InvalidResponse(f"cloned dataset has no string 'datasetId', got {dataset_id!r}"[:300], "datasetId")
        return dataset_id

    return Call(request, parse)


def commit_for_test(dataset_id: str, branch_name: str, files: Mapping[str, str | None]) -> Call[dict[str, Any]]:
    """Reference service only: commit ``files`` (``None`` deletes a path) onto a branch."""
    body = {"branchName": branch_name, "files": dict(files)}
    path = f"{TEST_PREFIX}/{path_segment(dataset_id, 'dataset_id')}/commits"
    request = HttpRequest("POST", path, AUTH, json_body=body, idempotent=False)

    def parse(response: HttpResponse) -> dict[str, Any]:
        expect_ok(request, response)
        return json_object(response, f"commit on branch {branch_name!r}")

    return Call(request, parse)


def branch_for_test(dataset_id: str, name: str) -> Call[dict[str, Any]]:
    """Reference service only: a branch's head commit and files ``{"name", "commitId", "files"}``."""
    path = f"{TEST_PREFIX}/{path_segment(dataset_id, 'dataset_id')}/branches/{path_segment(name, 'name')}"
    request = HttpRequest("GET", path, AUTH)

    def parse(response: HttpResponse) -> dict[str, Any]:
        expect_ok(request, response)
        return json_object(response, f"branch {name!r}")

    return Call(request, parse)

