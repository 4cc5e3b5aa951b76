"""Calls of the inference jobs API (Modzy wire format, ``docs/jobs-api.md`` §1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.models import Job, JobResults, JobStatus, SubmitJobRequest
from airflow_jobwait.models.base import first_error
from airflow_jobwait.models.inference import HistoryEntry
from airflow_jobwait.models.native_statuses import MODZY
from airflow_jobwait.models.status import JobState

AUTH = AuthScheme("Authorization", "ApiKey ")
PREFIX = "/api"
MAX_BATCH = 500
MAX_WATCH_SECONDS = 60.0
#: Page size of the history poller's requests (the reference service's default; the Modzy SDK
#: documents no cap, so no larger one is assumed).
MAX_HISTORY_PER_PAGE = 100
#: The Modzy SDK takes any 2xx as success, an empty body as ``{}`` (modzy/http.py ``request``).
OK = tuple(range(200, 300))

M = TypeVar("M", Job, JobResults)


class _JobList(BaseModel):
    jobs: list[Job] = Field(default_factory=list)


class _JobStatusOnly(BaseModel):
    """The two fields a wait needs; everything else in a Job is skipped while parsing."""

    model_config = ConfigDict(populate_by_name=True)

    job_identifier: str = Field(alias="jobIdentifier", min_length=1)
    # Native, mapped by ``state``; absent is SUBMITTED (modzy/jobs.py Job.__init__).
    status: str = JobStatus.SUBMITTED.value

    @property
    def state(self) -> JobState:
        status = MODZY.to_common(self.status, f"job {self.job_identifier}")
        return JobState(status=status, native_status=self.status, note=MODZY.note(self.status, status))


class _StatusList(BaseModel):
    jobs: list[_JobStatusOnly] = Field(default_factory=list)


def submit_job(body: SubmitJobRequest, idempotency_key: str | None = None) -> Call[Job]:
    """``POST /api/jobs``. Never sent again blindly (``JobsHook.submit_job`` looks a lost answer's
    job up first): Modzy itself ignores ``Idempotency-Key``, which only the reference service
    honours [ext]."""
    headers = (("Idempotency-Key", idempotency_key),) if idempotency_key else ()
    request = HttpRequest("POST", f"{PREFIX}/jobs", AUTH, json_body=body.to_wire(), headers=headers, idempotent=False)
    return json_model(request, Job, "submitted job", ok=OK)


def get_job(job_id: str) -> Call[Job]:
    """``GET /api/jobs/{id}``: any 2xx; a reply without ``jobIdentifier`` is about ``job_id``."""
    request = HttpRequest("GET", f"{PREFIX}/jobs/{path_segment(job_id, 'job_id')}", AUTH)
    return _about(request, Job, job_id, f"job {job_id}")


def cancel_job(job_id: str) -> Call[Job]:
    """``DELETE /api/jobs/{id}``: 2xx with the canceled job (an empty body too, as the Modzy SDK
    takes it: then only the id is known); 409 if it is already terminal."""
    request = HttpRequest("DELETE", f"{PREFIX}/jobs/{path_segment(job_id, 'job_id')}", AUTH)
    return _about(request, Job, job_id, f"canceled job {job_id}")


def get_results(job_id: str) -> Call[JobResults]:
    """``GET /api/results/{id}``: 404 until the job has started producing results."""
    request = HttpRequest("GET", f"{PREFIX}/results/{path_segment(job_id, 'job_id')}", AUTH)
    return _about(request, JobResults, job_id, f"results of job {job_id}")


def _about(request: HttpRequest, model: type[M], job_id: str, what: str) -> Call[M]:
    """A 2xx reply about one job. The Modzy SDK reads an empty body as ``{}`` and never needs the
    reply to repeat the id it asked for; ours fills ``jobIdentifier`` in from the request then."""

    def parse(response: HttpResponse) -> M:
        expect(request, response, OK)
        data: Any = decode_json(response, what) if response.body.strip() else {}
        if isinstance(data, dict) and "jobIdentifier" not in data and "job_identifier" not in data:
            data = {"jobIdentifier": job_id, **data}
        return validate(model, data, what)

    return Call(request, parse)


def list_models() -> Call[list[dict[str, object]]]:
    """``GET /api/models`` (used to test a connection)."""
    request = HttpRequest("GET", f"{PREFIX}/models", AUTH)

    def parse(response: HttpResponse) -> list[dict[str, object]]:
        expect(request, response, OK)
        data = decode_json(response)
        if not isinstance(data, list):
            raise InvalidResponse(f"model list must be a JSON array, got {type(data).__name__}")
        return data

    return Call(request, parse)


def history(
    status: str = "all",
    per_page: int = 20,
    page: int = 1,
    model: str | None = None,
    access_key: str | None = None,
    start_date: datetime | None = None,
) -> Call[list[Job]]:
    """``GET /api/jobs/history``: the newest jobs first (a bare JSON array), filtered as the
    Modzy SDK's ``get_history`` filters.

    :param model: A model identifier (or name).
    :param access_key: The public identifier of the submitting key (the part before the dot).
    :param start_date: Only jobs submitted from then on (sent as ISO-8601 with milliseconds).
    """
    if status not in ("all", "pending", "terminated"):
        raise ValueError(f"status must be 'all', 'pending' or 'terminated', got {status!r}")
    params: tuple[tuple[str, str], ...] = (("status", status), ("page", str(page)), ("per-page", str(per_page)))
    if model is not None:
        params += (("model", model),)
    if access_key is not None:
        params += (("accessKey", access_key),)
    if start_date is not None:
        params += (("startDate", start_date.astimezone(UTC).isoformat(timespec="milliseconds")),)
    request = HttpRequest("GET", f"{PREFIX}/jobs/history", AUTH, params=params)

    def parse(response: HttpResponse) -> list[Job]:
        expect(request, response, OK)
        return validate(_JobList, {"jobs": decode_json(response)}, "job history").jobs

    return Call(request, parse)


class _HistoryList(BaseModel):
    entries: list[HistoryEntry]


def history_entries(
    status: str, start_date: datetime, page: int = 1, per_page: int = MAX_HISTORY_PER_PAGE
) -> Call[list[HistoryEntry]]:
    """``GET /api/jobs/history`` for the shared history poller (``client/coalesce_history.py``):
    jobs of ``status`` (``all``/``pending``/``terminated``) submitted from ``start_date`` on,
    newest first (``direction=desc``, sent explicitly), one page; each entry parsed as far as a
    wait needs (``HistoryEntry``).

    :param start_date: An aware time on the service's clock (sent as ISO-8601 UTC, milliseconds).
    :param page: 1-based page number.
    :param per_page: Entries per page (1..``MAX_HISTORY_PER_PAGE``); a shorter page is the last.
    """
    if status not in ("all", "pending", "terminated"):
        raise ValueError(f"status must be 'all', 'pending' or 'terminated', got {status!r}")
    if not 1 <= per_page <= MAX_HISTORY_PER_PAGE:
        raise ValueError(f"per_page must be in 1..{MAX_HISTORY_PER_PAGE}, got {per_page!r}")
    if page < 1:
        raise ValueError(f"page must be >= 1, got {page!r}")
    params = (
        ("status", status),
        ("startDate", start_date.astimezone(UTC).isoformat(timespec="milliseconds")),
        ("direction", "desc"),
        ("page", str(page)),
        ("per-page", str(per_page)),
    )
    request = HttpRequest("GET", f"{PREFIX}/jobs/history", AUTH, params=params)

    def parse(response: HttpResponse) -> list[HistoryEntry]:
        expect(request, response, OK)
        # A bare JSON array, as the Modzy SDK reads it (modzy/jobs.py get_history).
        return validate(_HistoryList, {"entries": decode_json(response, "job history")}, "job history").entries

    return Call(request, parse)


def batch_status(job_ids: Sequence[str]) -> Call[list[Job]]:
    """``GET /api/jobs?identifiers=...`` [ext]: up to 500 jobs in one request; unknown ids omitted."""
    return _job_list_call(_batch_request(job_ids))


def watch(job_ids: Sequence[str], known: Mapping[str, JobStatus | str], timeout: float) -> Call[list[Job]]:
    """``POST /api/jobs:watch`` [ext]: long-poll until a listed job's status differs from ``known``."""
    return _job_list_call(_watch_request(job_ids, known, timeout))


def batch_statuses(job_ids: Sequence[str]) -> Call[dict[str, JobState]]:
    """``batch_status`` reduced to ``{job id: state}`` (unknown ids absent).

    Parses only ``jobIdentifier`` and ``status`` of each Job: a 500-job reply costs about a tenth
    of validating whole ``Job`` models, which matters to a triggerer polling for thousands of waits.
    """
    return _status_list_call(_batch_request(job_ids))


def watch_statuses(
    job_ids: Sequence[str], known: Mapping[str, JobStatus | str], timeout: float
) -> Call[dict[str, JobState]]:
    """``watch`` reduced to ``{job id: state}`` of the jobs that changed (empty on timeout).

    :param known: The status each job had, as the service spelled it (native).
    """
    return _status_list_call(_watch_request(job_ids, known, timeout))


def _batch_request(job_ids: Sequence[str]) -> HttpRequest:
    if not job_ids or len(job_ids) > MAX_BATCH:
        raise ValueError(f"batch_status takes 1 to {MAX_BATCH} job ids, got {len(job_ids)}")
    ids = ",".join(path_segment(job_id, "job_id") for job_id in job_ids)
    return HttpRequest("GET", f"{PREFIX}/jobs", AUTH, params=(("identifiers", ids),))


def _watch_request(job_ids: Sequence[str], known: Mapping[str, JobStatus | str], timeout: float) -> HttpRequest:
    if not job_ids or len(job_ids) > MAX_BATCH:
        raise ValueError(f"watch takes 1 to {MAX_BATCH} job ids, got {len(job_ids)}")
    if not 0 < timeout <= MAX_WATCH_SECONDS:
        raise ValueError(f"watch timeout must be in (0, {MAX_WATCH_SECONDS}] seconds, got {timeout!r}")
    body = {
        "identifiers": list(job_ids),
        "timeout": timeout,
        "known": {job_id: str(status) for job_id, status in known.items()},
    }
    # A long-poll is a read: safe to send again.
    return HttpRequest("POST", f"{PREFIX}/jobs:watch", AUTH, json_body=body, idempotent=True)


def _status_list_call(request: HttpRequest) -> Call[dict[str, JobState]]:
    def parse(response: HttpResponse) -> dict[str, JobState]:
        expect(request, response, (200,))
        try:
            listed = _StatusList.model_validate_json(response.body)
        except ValidationError as err:
            where, why = first_error(err)
            raise InvalidResponse(f"job status list is invalid at field {where!r}: {why}", field=where) from err
        return {job.job_identifier: job.state for job in listed.jobs}

    return Call(request, parse)


def _job_list_call(request: HttpRequest) -> Call[list[Job]]:
    def parse(response: HttpResponse) -> list[Job]:
        expect(request, response, (200,))
        return validate(_JobList, decode_json(response), "job list").jobs

    return Call(request, parse)
