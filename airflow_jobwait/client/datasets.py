"""Calls of the dataset jobs API (TensorBay Open API wire format, ``docs/jobs-api.md`` §2)."""

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
    path_segment,
    validate,
    validate_json,
)
from airflow_jobwait.exceptions import ApiError, InvalidResponse
from airflow_jobwait.models.base import with_extra_fields
from airflow_jobwait.models.datasets import (
    DATASET_JOB_STATUSES,
    DatasetJob,
    DatasetJobList,
    DatasetJobSummaryList,
    DraftList,
)

AUTH = AuthScheme("X-Token")
API_ROOT = "/gatewayv2/tensorbay-open-api/v1"
PREFIX = f"{API_ROOT}/datasets"
JOB_TYPES = ("squashAndMerge", "basicSearch")
DRAFT_STATUSES = ("OPEN", "CLOSED", "COMMITTED", "ALL")
MAX_PAGE = 128
OK = (200, 201)


def _dataset(dataset_id: str) -> str:
    return f"{PREFIX}/{path_segment(dataset_id, 'dataset_id')}"


def _job_path(dataset_id: str, job_id: str, suffix: str = "") -> str:
    return f"{_dataset(dataset_id)}/jobs/{path_segment(job_id, 'job_id')}{suffix}"


def _type_param(job_type: str) -> tuple[tuple[str, str], ...]:
    """``jobType``, which the tensorbay SDK sends on every job call (client/version.py JobMixin,
    client/job.py abort/retry): each of its job classes has one, so there is no default.

    :raises ValueError: Missing or unknown (names ``job_type``).
    """
    if job_type is None:
        raise ValueError(
            f"job_type is required for TensorBay job calls (one of {', '.join(JOB_TYPES)}); "
            "a dataset job_ref needs 'job_type' too"
        )
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}")
    return (("jobType", job_type),)


def _with_type(reply: Any, job_type: str) -> Any:
    """A job reply lacking ``jobType`` is of the type asked for, as the SDK fills it in
    (client/version.py ``_get_job``: ``response.update(jobType=...)``)."""
    if isinstance(reply, dict) and "jobType" not in reply and "job_type" not in reply:
        return {**reply, "jobType": job_type}
    return reply


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
        err.code = body.get("code")
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
    extra_body: Mapping[str, Any] | None = None,
) -> Call[DatasetJob]:
    """``POST /datasets/{id}/jobs`` with ``X-Request-Id``. Never sent again blindly
    (``DatasetJobsHook.create_job`` looks a lost answer's job up first): the reference service
    returns the same job for a repeated id [ext]; TensorBay takes the header for tracing only.

    :param request_id: Chosen by the caller (a uuid4 or a key derived from the task instance) so
        every retry of this create reuses it.
    :param extra_body: More top-level body fields, for options this provider does not model.
    """
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError(f"request_id must be a non-empty string, got {request_id!r}")
    _type_param(job_type)
    body: dict[str, Any] = {"title": title, "jobType": job_type, "arguments": dict(arguments)}
    if description is not None:
        body["description"] = description
    request = HttpRequest(
        "POST",
        f"{_dataset(dataset_id)}/jobs",
        AUTH,
        json_body=with_extra_fields(body, extra_body),
        headers=(("X-Request-Id", request_id),),
        idempotent=False,
    )
    what = f"created {job_type} job"
    # TensorBay answers a create with {"jobId", "createdAt"} only; its SDK fills in the rest from
    # the request, a new job being QUEUING. What the reply does carry wins.
    known = {**body, "status": "QUEUING"}

    def parse(response: HttpResponse) -> DatasetJob:
        expect_ok(request, response)
        reply = decode_json(response, what)
        return validate(DatasetJob, {**known, **reply} if isinstance(reply, dict) else reply, what)

    return Call(request, parse)


def get_job(dataset_id: str, job_id: str, job_type: str) -> Call[DatasetJob]:
    """``GET /datasets/{id}/jobs/{jobId}?jobType=``."""
    request = HttpRequest("GET", _job_path(dataset_id, job_id), AUTH, params=_type_param(job_type))
    what = f"dataset job {job_id}"

    def parse(response: HttpResponse) -> DatasetJob:
        expect_ok(request, response)
        return validate(DatasetJob, _with_type(decode_json(response, what), job_type), what)

    return Call(request, parse)


def get_user() -> Call[str]:
    """``GET /users``: the key's user (TensorBay SDK ``GAS.get_user``); answers its ``nickname``."""
    request = HttpRequest("GET", f"{API_ROOT}/users", AUTH)

    def parse(response: HttpResponse) -> str:
        expect_ok(request, response)
        body = decode_json(response, "user info")
        name = body.get("nickname") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise InvalidResponse("user info has no 'nickname' string", field="nickname")
        return name

    return Call(request, parse)


def _list_request(dataset_id: str, job_type: str, status: str | None, offset: int, limit: int) -> HttpRequest:
    params = _type_param(job_type)
    if status is not None:
        if status not in DATASET_JOB_STATUSES:
            raise ValueError(f"status must be one of {', '.join(DATASET_JOB_STATUSES)}, got {status!r}")
        params += (("status", status),)
    return HttpRequest("GET", f"{_dataset(dataset_id)}/jobs", AUTH, params=params + _page(offset, limit))


def list_jobs(
    dataset_id: str, job_type: str, status: str | None = None, offset: int = 0, limit: int = MAX_PAGE
) -> Call[DatasetJobList]:
    """``GET /datasets/{id}/jobs``: newest first, filtered by type and native status."""
    request = _list_request(dataset_id, job_type, status, offset, limit)
    what = f"job list of dataset {dataset_id}"

    def parse(response: HttpResponse) -> DatasetJobList:
        expect_ok(request, response)
        reply = decode_json(response, what)
        if isinstance(reply, dict) and isinstance(reply.get("jobs"), list):
            reply = {**reply, "jobs": [_with_type(job, job_type) for job in reply["jobs"]]}
        return validate(DatasetJobList, reply, what)

    return Call(request, parse)


def list_job_summaries(
    dataset_id: str, job_type: str, offset: int = 0, limit: int = MAX_PAGE
) -> Call[DatasetJobSummaryList]:
    """``GET /datasets/{id}/jobs``, every status, newest first: ``list_jobs`` with each entry read
    for what a wait needs only (``DatasetJobSummary``), straight from the body's bytes.

    The job-list poller's page (``client/coalesce_datasets.py``), which re-lists every waited job
    each round: whole ``DatasetJob``s (every field decoded, then validated) were most of its CPU.
    """
    request = _list_request(dataset_id, job_type, None, offset, limit)
    what = f"job list of dataset {dataset_id}"

    def parse(response: HttpResponse) -> DatasetJobSummaryList:
        expect_ok(request, response)
        return validate_json(DatasetJobSummaryList, response, what)

    return Call(request, parse)


def retry_job(dataset_id: str, job_id: str, job_type: str) -> Call[None]:
    """``POST …/jobs/{jobId}/retry``: only from ``FAILED``/``ABORTED`` (else 400)."""
    request = HttpRequest(
        "POST", _job_path(dataset_id, job_id, "/retry"), AUTH, params=_type_param(job_type), idempotent=False
    )
    return _empty(request)


def abort_job(dataset_id: str, job_id: str, job_type: str) -> Call[None]:
    """``POST …/jobs/{jobId}/abort``: only from ``QUEUING``/``PROCESSING`` (else 400)."""
    request = HttpRequest(
        "POST", _job_path(dataset_id, job_id, "/abort"), AUTH, params=_type_param(job_type), idempotent=False
    )
    return _empty(request)


def delete_job(dataset_id: str, job_id: str, job_type: str) -> Call[None]:
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
