"""Dataset jobs (TensorBay Open API), section 2 of ``docs/jobs-api.md``.

Prefix ``/gatewayv2/tensorbay-open-api/v1/datasets/{datasetId}``, key in ``X-Token``. Every error
of this family (401, unknown paths and methods, validation) is ``{"code", "message"}`` because the
public client picks its exception class from ``code``. Jobs move ``QUEUING → PROCESSING →
SUCCESS | FAILED | ABORTED`` at absolute due times kept in SQLite (default 0.3 s queuing,
0.5 s processing); the merge or search runs when processing ends, against the branches as they are
then, so a ``retry`` after fixing a branch can succeed.

Job arguments: squashAndMerge ``{"title", "sourceBranchName", "targetBranchName", "strategy"?,
"description"?}`` (``strategy`` defaults to ``abort``); basicSearch as the public client sends it,
``{"commit", "conjunction": "and" | "or", "filters": [{"key", "operator", "value"}], "unit"}``, or
with ``conjunction``/``filters`` inside a ``conditions`` object (see ``datasets_repo.parse_search``;
``commit`` is a branch or commit id, default ``main``).

Beyond the contract, for compatibility with the public ``tensorbay`` client: a create answers the
whole DatasetJob (a superset of ``{"jobId", "createdAt"}``), and a DatasetJob carries ``results``
as a copy of ``result`` (``Job.update()`` in the client reads that key).

Test controls (only with ``--test-controls``; otherwise these paths are 404):

- a create body may hold a top-level ``"test": {"queuing_s": float, "processing_s": float,
  "outcome": "FAILED", "error_message": str}`` (durations 0..600 s; ``outcome`` forces a failure);
- ``POST /gatewayv2/tensorbay-open-api/v1/_test/datasets`` body ``{"datasetId"?: str, "from"?:
  str}`` clones ``from`` (default ``demo-dataset``: commits and branches) → ``{"datasetId"}``;
- ``POST …/_test/datasets/{datasetId}/commits`` body ``{"branchName", "files": {path: str | null},
  "title"?}`` commits onto a branch (``null`` deletes a path) → ``{"commitId", "branchName"}``;
- ``POST …/_test/datasets/{datasetId}/branches`` body ``{"name", "revision"}`` (branch or commit)
  creates a branch → ``{"name", "commitId"}``;
- ``GET …/_test/datasets/{datasetId}/branches/{name}`` → ``{"name", "commitId", "files"}``;
- ``GET …/_test/datasets/{datasetId}/drafts/{number}`` → the Draft plus its ``files``;
- ``POST …/_test/datasets/{datasetId}/drafts/{number}/commit`` commits an OPEN draft onto its
  branch → ``{"commitId"}``;
- ``GET …/_test/datasets/{datasetId}/search-results/{id}`` → ``{"searchResultId", "commitId",
  "paths"}``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jobwait_reference_service import datasets_repo as repo
from jobwait_reference_service import datasets_wire as wire
from jobwait_reference_service import openapi
from jobwait_reference_service.auth import key_header_scheme
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.db import Database
from jobwait_reference_service.due_loop import DueLoop
from jobwait_reference_service.json_body import JsonBodyError, parse_json
from jobwait_reference_service.routing import allowed_methods

logger = logging.getLogger(__name__)

API_ROOT = "/gatewayv2/tensorbay-open-api/v1"
PREFIX = f"{API_ROOT}/datasets/{{dataset_id}}"
TEST_PREFIX = f"{API_ROOT}/_test/datasets"

JOB_TYPES = ("squashAndMerge", "basicSearch")
JOB_STATUSES = ("QUEUING", "PROCESSING", "SUCCESS", "FAILED", "ABORTED")
RUNNING = ("QUEUING", "PROCESSING")
QUEUING_S = 0.3
PROCESSING_S = 0.5
MAX_TEST_DURATION_S = 600.0
MAX_PAGE = wire.MAX_PAGE
# Read as text and checked by the routes (``_choice_param``, ``_int_param``), so each answers
# TensorBay's own 400; the document describes them from ``datasets_wire`` instead (``_QUERY``).
JobTypeQuery = Annotated[str | None, Query(alias="jobType", include_in_schema=False)]
BranchQuery = Annotated[str | None, Query(alias="branchName", include_in_schema=False)]
TextQuery = Annotated[str | None, Query(include_in_schema=False)]
_INTEGER = re.compile(r"-?[0-9]+")


def _query(name: str, annotation: Any, description: str) -> dict[str, Any]:
    return openapi.parameter(name, "query", annotation, description)


_QUERY = {
    "jobType": _query("jobType", wire.JobTypeParam, "The job's type (every call about a job sends it)."),
    "status": _query("status", wire.JobStatus | Literal[""], "Only jobs in this status."),
    "offset": _query("offset", wire.Offset, "Skip this many (default 0)."),
    "limit": _query("limit", wire.Limit, f"At most this many (default {MAX_PAGE})."),
    "draftStatus": _query("status", Literal["", "OPEN", "CLOSED", "COMMITTED", "ALL"], "Default OPEN."),
    "branchName": _query("branchName", str, "Only drafts onto this branch."),
}
_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

DDL = """
CREATE TABLE IF NOT EXISTS tb_jobs (
    job_id TEXT NOT NULL UNIQUE,
    dataset_id TEXT NOT NULL,
    job_type TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at REAL,
    error_message TEXT NOT NULL DEFAULT '',
    result TEXT,
    due_at REAL,
    queuing_s REAL NOT NULL,
    processing_s REAL NOT NULL,
    forced_error TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS tb_jobs_list ON tb_jobs (dataset_id, job_type, status);
CREATE INDEX IF NOT EXISTS tb_jobs_due ON tb_jobs (due_at) WHERE due_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tb_jobs_request ON tb_jobs (dataset_id, request_id) WHERE request_id IS NOT NULL;
"""


class TensorBayError(Exception):
    """An error answered as ``{"code", "message"}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=self.status, content={"code": self.code, "message": self.message})


def _missing(name: str) -> TensorBayError:
    return TensorBayError(400, "RequestParamsMissing", f"{name} is required")


def _invalid(message: str) -> TensorBayError:
    return TensorBayError(400, "InvalidParamsValue", message)


def _not_found(message: str) -> TensorBayError:
    return TensorBayError(404, "ResourceNotExist", message)


class TensorBayRoute(APIRoute):
    """Answers every failure inside this family's routes (dependencies included) in TensorBay's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except TensorBayError as error:
                return error.response()
            except RequestValidationError as error:
                return _invalid(f"invalid request: {error.errors()}").response()
            except Exception:
                logger.exception("dataset-job request failed: %s %s", request.method, request.url.path)
                return TensorBayError(500, "InternalServerError", "internal server error").response()

        return route_handler


# --- request parsing ----------------------------------------------------------------------------


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise _missing("request body")
    try:
        body = parse_json(raw)
    except JsonBodyError as error:
        raise _invalid(str(error)) from None
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    return body


def _int_param(name: str, raw: str | None, default: int, low: int, high: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    # Digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
    if not _INTEGER.fullmatch(raw):
        raise _invalid(f"{name} must be an integer, got {raw!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _invalid(f"{name} must be {bound}, got {value}")
    return value


def _choice_param(name: str, raw: str | None, choices: tuple[str, ...]) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise _invalid(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _string_field(body: Mapping[str, Any], key: str, name: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    return value


def _validate_squash(conn: sqlite3.Connection, dataset_id: str, arguments: dict[str, Any]) -> None:
    _string_field(arguments, "title", "arguments.title")
    source = _string_field(arguments, "sourceBranchName", "arguments.sourceBranchName")
    target = _string_field(arguments, "targetBranchName", "arguments.targetBranchName")
    strategy = _string_field(arguments, "strategy", "arguments.strategy", required=False) or "abort"
    _string_field(arguments, "description", "arguments.description", required=False)
    if strategy not in repo.STRATEGIES:
        raise _invalid(f"arguments.strategy must be one of {', '.join(repo.STRATEGIES)}, got {strategy!r}")
    for name, branch in (("sourceBranchName", source), ("targetBranchName", target)):
        if repo.branch_head(conn, dataset_id, str(branch)) is None:
            raise _invalid(f"arguments.{name}: branch {branch!r} does not exist in dataset {dataset_id!r}")
    if source == target:
        raise _invalid("arguments.sourceBranchName and arguments.targetBranchName must differ")


def _validate_search(conn: sqlite3.Connection, dataset_id: str, arguments: dict[str, Any]) -> None:
    revision = _string_field(arguments, "commit", "arguments.commit", required=False) or "main"
    if repo.resolve_revision(conn, dataset_id, revision) is None:
        raise _invalid(f"arguments.commit: no branch or commit {revision!r} in dataset {dataset_id!r}")
    try:
        repo.parse_search(arguments)
    except ValueError as error:
        raise _invalid(str(error)) from None


def _test_overrides(body: Mapping[str, Any]) -> tuple[float | None, float | None, str | None]:
    """``(queuing_s, processing_s, forced_error)`` from a create body's ``test`` member."""
    test = body.get("test")
    if test is None:
        return None, None, None
    if not isinstance(test, dict):
        raise _invalid("test must be an object")
    durations: list[float | None] = []
    for key in ("queuing_s", "processing_s"):
        value = test.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TEST_DURATION_S
        ):
            raise _invalid(f"test.{key} must be a number of seconds between 0 and {MAX_TEST_DURATION_S:g}")
        durations.append(None if value is None else float(value))
    forced = None
    if test.get("outcome") is not None:
        if test["outcome"] != "FAILED":
            raise _invalid("test.outcome must be 'FAILED'")
        forced = str(test.get("error_message") or "failed by test control")
    return durations[0], durations[1], forced


# --- the family -----------------------------------------------------------------------------------


def _job_body(row: sqlite3.Row) -> dict[str, Any]:
    result = None if row["result"] is None else json.loads(row["result"])
    return {
        "jobId": row["job_id"],
        "jobType": row["job_type"],
        "title": row["title"],
        "arguments": json.loads(row["arguments"]),
        "createdAt": row["created_at"],
        "startedAt": row["started_at"],
        # Kept to the microsecond (a benchmark times detection from it), sent in whole seconds.
        "finishedAt": None if row["finished_at"] is None else int(row["finished_at"]),
        "status": row["status"],
        "errorMessage": row["error_message"],
        "result": result,
        "results": result,
        "description": row["description"],
    }


class DatasetJobs:
    """The dataset-job family: routes, the tiny repository and the background progression."""

    def __init__(self, config: ServiceConfig, db: Database) -> None:
        self.config = config
        self.db = db
        self._expected_key = config.api_key.encode()
        steps = {"QUEUING": self._start_processing, "PROCESSING": self._process}
        self.loop = DueLoop.for_table("dataset-jobs", db, "tb_jobs", steps, self._fail_internal)
        scheme = key_header_scheme("TensorBayToken", "X-Token", "The API key (an AccessKey) as it is.")
        self.router = APIRouter(route_class=TensorBayRoute, dependencies=[scheme, Depends(self._require_token)])
        self._add_routes()

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    # -- auth and lookups --

    def _require_token(self, request: Request) -> None:
        token = request.headers.get("X-Token", "").strip()
        # compare_digest keeps the comparison time independent of where keys differ.
        if not token or not hmac.compare_digest(token.encode(), self._expected_key):
            raise TensorBayError(401, "Unauthorized", "missing or invalid access key in header 'X-Token'")

    def _require_dataset(self, conn: sqlite3.Connection, dataset_id: str) -> None:
        if not repo.dataset_exists(conn, dataset_id):
            raise _not_found(f"dataset {dataset_id!r} does not exist")

    def _job_row(self, conn: sqlite3.Connection, dataset_id: str, job_id: str, job_type: str | None) -> sqlite3.Row:
        self._require_dataset(conn, dataset_id)
        row = conn.execute("SELECT * FROM tb_jobs WHERE job_id = ? AND dataset_id = ?", (job_id, dataset_id)).fetchone()
        if row is None or (job_type is not None and row["job_type"] != job_type):
            kind = f"{job_type} job" if job_type else "job"
            raise _not_found(f"{kind} {job_id!r} does not exist in dataset {dataset_id!r}")
        return row  # type: ignore[no-any-return]

    # -- routes --

    def _errors(self, body: bool = False, **statuses: str) -> dict[int | str, dict[str, Any]]:
        own = {int(code[1:]): why for code, why in statuses.items()}
        own[401] = "Missing or wrong `X-Token` (code `Unauthorized`)."
        own[500] = "The service failed (code `InternalServerError`)."
        return openapi.error_answers(
            wire.TensorBayError, own, body=body, rate_limited=self.config.rate_limit is not None
        )

    def _route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        method: str,
        answer: type[BaseModel],
        why: str,
        errors: dict[int | str, dict[str, Any]],
        query: tuple[str, ...] = (),
        **extra: Any,
    ) -> None:
        openapi_extra = extra.pop("openapi_extra", {})
        if query:
            openapi_extra["parameters"] = [_QUERY[name] for name in query]
        self.router.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=None,
            responses={**openapi.answers(answer, {200: why}), **errors},
            openapi_extra=openapi_extra or None,
            **extra,
        )

    def _add_routes(self) -> None:
        r = self.router
        e = self._errors
        no_job = "No such dataset, or no such job of that type in it (code `ResourceNotExist`)."
        bad_type = "A query parameter out of range (code `InvalidParamsValue`)."
        create_body = openapi.json_body(
            wire.CreateJob,
            "The job. A branch or commit the dataset lacks, or a source branch equal to the target, gets 400.",
        )
        if self.config.extensions:
            why = "[ext] A create repeating an `X-Request-Id` answers the job the first one made."
            create_body["parameters"] = [openapi.parameter("X-Request-Id", "header", str, why)]
        self._route(
            f"{PREFIX}/jobs",
            self.create_job,
            "POST",
            wire.DatasetJob,
            "The job (the contract's `{jobId, createdAt}`, and the rest of it).",
            e(
                True,
                e400="Not strict JSON, a field missing (`RequestParamsMissing`) or refused (`InvalidParamsValue`).",
                e404="No such dataset (code `ResourceNotExist`).",
            ),
            openapi_extra=create_body,
        )
        self._route(
            f"{PREFIX}/jobs",
            self.list_jobs,
            "GET",
            wire.DatasetJobs,
            "The dataset's jobs, newest first.",
            e(e400=bad_type, e404="No such dataset (code `ResourceNotExist`)."),
            ("jobType", "status", "offset", "limit"),
        )
        self._route(
            f"{PREFIX}/jobs/{{job_id}}",
            self.get_job,
            "GET",
            wire.DatasetJob,
            "The job.",
            e(e400=bad_type, e404=no_job),
            ("jobType",),
        )
        self._route(
            f"{PREFIX}/jobs/{{job_id}}",
            self.delete_job,
            "DELETE",
            wire.Empty,
            "Deleted.",
            e(e400=bad_type, e404=no_job),
            ("jobType",),
        )
        self._route(
            f"{PREFIX}/jobs/{{job_id}}/retry",
            self.retry_job,
            "POST",
            wire.Empty,
            "Queued again.",
            e(e400="Not FAILED or ABORTED, or a query parameter out of range.", e404=no_job),
            ("jobType",),
        )
        self._route(
            f"{PREFIX}/jobs/{{job_id}}/abort",
            self.abort_job,
            "POST",
            wire.Empty,
            "Aborted.",
            e(e400="Not QUEUING or PROCESSING, or a query parameter out of range.", e404=no_job),
            ("jobType",),
        )
        self._route(
            f"{PREFIX}/drafts",
            self.list_drafts,
            "GET",
            wire.Drafts,
            "The dataset's drafts.",
            e(e400=bad_type, e404="No such dataset (code `ResourceNotExist`)."),
            ("draftStatus", "branchName", "offset", "limit"),
        )
        self._route(f"{API_ROOT}/users", self.get_user, "GET", wire.UserInfo, "The key's user.", e())
        if self.config.test_controls:
            # Test set-up, not TensorBay's API: out of the document.
            tests: list[tuple[str, Callable[..., Any], str]] = [
                ("", self.test_clone, "POST"),
                ("/{dataset_id}/commits", self.test_commit, "POST"),
                ("/{dataset_id}/branches", self.test_branch, "POST"),
                ("/{dataset_id}/branches/{name}", self.test_get_branch, "GET"),
                ("/{dataset_id}/drafts/{number}", self.test_get_draft, "GET"),
                ("/{dataset_id}/drafts/{number}/commit", self.test_commit_draft, "POST"),
                ("/{dataset_id}/search-results/{result_id}", self.test_search_result, "GET"),
            ]
            for path, endpoint, method in tests:
                r.add_api_route(TEST_PREFIX + path, endpoint, methods=[method], include_in_schema=False)
        # Last: anything else under the API root gets TensorBay's error shape rather than FastAPI's.
        r.add_api_route(
            f"{API_ROOT}/{{rest:path}}",
            self.unknown_path,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            include_in_schema=False,
        )

    async def get_user(self) -> dict[str, Any]:
        """``GET /users``: the key's user, as the TensorBay SDK's ``GAS.get_user`` reads it."""
        return {"nickname": "reference-user", "email": None, "mobile": None, "description": "", "team": None}

    async def create_job(self, dataset_id: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        # SQLite calls block: keep them off the event loop.
        # [ext] A repeated X-Request-Id returns the same job; TensorBay only traces it (real profile).
        request_id = (request.headers.get("X-Request-Id") or None) if self.config.extensions else None
        return await run_in_threadpool(self._create_job, dataset_id, body, request_id)

    def _create_job(self, dataset_id: str, body: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        title = _string_field(body, "title", "title")
        job_type = _string_field(body, "jobType", "jobType")
        if "arguments" not in body or body["arguments"] is None:
            raise _missing("arguments")
        arguments = body["arguments"]
        description = _string_field(body, "description", "description", required=False) or ""
        if job_type not in JOB_TYPES:
            raise _invalid(f"jobType must be one of {', '.join(JOB_TYPES)}, got {job_type!r}")
        if not isinstance(arguments, dict):
            raise _invalid("arguments must be an object")
        if not str(title).strip():
            raise _invalid("title must not be empty")
        queuing_s, processing_s, forced = _test_overrides(body) if self.config.test_controls else (None, None, None)
        with self.db.transaction() as tx:
            if request_id is not None:
                existing = tx.execute(
                    "SELECT * FROM tb_jobs WHERE dataset_id = ? AND request_id = ?", (dataset_id, request_id)
                ).fetchone()
                if existing is not None:
                    return _job_body(existing)
            (_validate_squash if job_type == "squashAndMerge" else _validate_search)(tx, dataset_id, arguments)
            now = time.time()
            queuing_s = QUEUING_S if queuing_s is None else queuing_s
            job_id = repo.new_id()
            tx.execute(
                "INSERT INTO tb_jobs (job_id, dataset_id, job_type, title, description, arguments, status, "
                "created_at, due_at, queuing_s, processing_s, forced_error, request_id) "
                "VALUES (?, ?, ?, ?, ?, ?, 'QUEUING', ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    dataset_id,
                    job_type,
                    title,
                    description,
                    json.dumps(arguments),
                    int(now),
                    now + queuing_s,
                    queuing_s,
                    PROCESSING_S if processing_s is None else processing_s,
                    forced,
                    request_id,
                ),
            )
            row = tx.execute("SELECT * FROM tb_jobs WHERE job_id = ?", (job_id,)).fetchone()
        self.loop.wake()
        return _job_body(row)

    def get_job(self, dataset_id: str, job_id: str, job_type: JobTypeQuery = None) -> dict[str, Any]:
        wanted_type = _choice_param("jobType", job_type, JOB_TYPES)
        return _job_body(self._job_row(self.db.connection(), dataset_id, job_id, wanted_type))

    def list_jobs(
        self,
        dataset_id: str,
        job_type: JobTypeQuery = None,
        status: TextQuery = None,
        offset: TextQuery = None,
        limit: TextQuery = None,
    ) -> dict[str, Any]:
        wanted_type = _choice_param("jobType", job_type, JOB_TYPES)
        wanted_status = _choice_param("status", status, JOB_STATUSES)
        first = _int_param("offset", offset, 0, 0)
        size = _int_param("limit", limit, MAX_PAGE, 1, MAX_PAGE)
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        filters = {"dataset_id": dataset_id, "job_type": wanted_type, "status": wanted_status}
        rows, total = repo.page_of(conn, "tb_jobs", filters, "rowid DESC", first, size)
        return {"jobs": [_job_body(row) for row in rows], "offset": first, "recordSize": len(rows), "totalCount": total}

    def retry_job(self, dataset_id: str, job_id: str, job_type: JobTypeQuery = None) -> dict[str, Any]:
        wanted_type = _choice_param("jobType", job_type, JOB_TYPES)
        with self.db.transaction() as tx:
            row = self._job_row(tx, dataset_id, job_id, wanted_type)
            if row["status"] not in ("FAILED", "ABORTED"):
                raise _invalid(f"job {job_id!r} is {row['status']}; only FAILED or ABORTED jobs can be retried")
            tx.execute(
                "UPDATE tb_jobs SET status = 'QUEUING', started_at = NULL, finished_at = NULL, error_message = '', "
                "result = NULL, due_at = ?, forced_error = NULL WHERE job_id = ?",
                (time.time() + row["queuing_s"], job_id),
            )
        self.loop.wake()
        return {}

    def abort_job(self, dataset_id: str, job_id: str, job_type: JobTypeQuery = None) -> dict[str, Any]:
        wanted_type = _choice_param("jobType", job_type, JOB_TYPES)
        with self.db.transaction() as tx:
            row = self._job_row(tx, dataset_id, job_id, wanted_type)
            if row["status"] not in RUNNING:
                raise _invalid(f"job {job_id!r} is {row['status']}; only QUEUING or PROCESSING jobs can be aborted")
            tx.execute(
                "UPDATE tb_jobs SET status = 'ABORTED', finished_at = ?, due_at = NULL WHERE job_id = ?",
                (time.time(), job_id),
            )
        return {}

    def delete_job(self, dataset_id: str, job_id: str, job_type: JobTypeQuery = None) -> dict[str, Any]:
        wanted_type = _choice_param("jobType", job_type, JOB_TYPES)
        with self.db.transaction() as tx:
            self._job_row(tx, dataset_id, job_id, wanted_type)
            tx.execute("DELETE FROM tb_jobs WHERE job_id = ?", (job_id,))
        return {}

    def list_drafts(
        self,
        dataset_id: str,
        status: TextQuery = None,
        branch_name: BranchQuery = None,
        offset: TextQuery = None,
        limit: TextQuery = None,
    ) -> dict[str, Any]:
        # TensorBay lists OPEN drafts unless asked otherwise; "ALL" lists every status.
        wanted = _choice_param("status", status, (*repo.DRAFT_STATUSES, "ALL")) or "OPEN"
        first = _int_param("offset", offset, 0, 0)
        size = _int_param("limit", limit, MAX_PAGE, 1, MAX_PAGE)
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        rows, total = repo.list_drafts(
            conn, dataset_id, None if wanted == "ALL" else wanted, branch_name or None, first, size
        )
        return {
            "drafts": [repo.draft_body(row) for row in rows],
            "offset": first,
            "recordSize": len(rows),
            "totalCount": total,
        }

    def unknown_path(self, request: Request) -> Response:
        allowed = allowed_methods(request, self.unknown_path)
        if allowed:  # the path exists, the method does not
            response = TensorBayError(405, "Forbidden", f"method {request.method} is not allowed here").response()
            response.headers["Allow"] = ", ".join(allowed)  # RFC 9110 §15.5.6
            return response
        return _not_found(f"no such resource: {request.method} {request.url.path}").response()

    # -- background progression (steps of ``DueLoop.for_table``) --

    @staticmethod
    def _start_processing(tx: sqlite3.Connection, job: sqlite3.Row, now: float) -> None:
        tx.execute(
            "UPDATE tb_jobs SET status = 'PROCESSING', started_at = ?, due_at = ? WHERE job_id = ?",
            (int(now), now + job["processing_s"], job["job_id"]),
        )

    def _process(self, tx: sqlite3.Connection, job: sqlite3.Row, now: float) -> None:
        try:
            result = self._execute(tx, job)
        except (repo.RepoError, ValueError) as error:
            self._finish(tx, job["job_id"], "FAILED", now, error_message=str(error))
        else:
            self._finish(tx, job["job_id"], "SUCCESS", now, result=result)

    def _execute(self, tx: sqlite3.Connection, job: sqlite3.Row) -> dict[str, Any]:
        if job["forced_error"]:
            raise repo.RepoError(job["forced_error"])
        arguments = json.loads(job["arguments"])
        dataset_id = job["dataset_id"]
        if job["job_type"] == "basicSearch":
            revision = arguments.get("commit") or "main"
            commit_id = repo.resolve_revision(tx, dataset_id, revision)
            if commit_id is None:
                raise repo.RepoError(f"no branch or commit {revision!r} in dataset {dataset_id!r}")
            result_id = repo.basic_search(tx, dataset_id, commit_id, repo.parse_search(arguments))
            return {"searchResultId": result_id, "searchResultCommitId": commit_id}
        source, target = arguments["sourceBranchName"], arguments["targetBranchName"]
        strategy = arguments.get("strategy") or "abort"
        merge = repo.squash_merge(tx, dataset_id, source, target, strategy)
        if merge.conflicts and strategy == "abort":
            raise repo.RepoError(
                f"squash and merge of branch {source!r} into {target!r} conflicts on "
                f"{', '.join(merge.conflicts)}; resolve the conflict and retry, or use strategy 'override' or 'skip'"
            )
        number = repo.create_draft(
            tx,
            dataset_id,
            title=arguments["title"],
            branch_name=target,
            parent_commit_id=merge.target_commit_id,
            files=merge.files,
            description=arguments.get("description") or "",
        )
        return {"draftNumber": number}

    @staticmethod
    def _finish(
        tx: sqlite3.Connection,
        job_id: str,
        status: str,
        now: float,
        result: dict[str, Any] | None = None,
        error_message: str = "",
    ) -> None:
        tx.execute(
            "UPDATE tb_jobs SET status = ?, finished_at = ?, due_at = NULL, result = ?, error_message = ? "
            "WHERE job_id = ?",
            (status, now, None if result is None else json.dumps(result), error_message, job_id),
        )

    @staticmethod
    def _fail_internal(tx: sqlite3.Connection, job_id: str, now: float) -> None:
        DatasetJobs._finish(tx, job_id, "FAILED", now, error_message="internal error while running the job")

    # -- test controls --

    async def test_clone(self, request: Request) -> dict[str, Any]:
        body = await _json_object(request) if (await request.body()).strip() else {}
        target = _string_field(body, "datasetId", "datasetId", required=False) or f"ds-{repo.new_id()[:12]}"
        source = _string_field(body, "from", "from", required=False) or repo.DEMO_DATASET
        if not _DATASET_ID.match(target):
            raise _invalid("datasetId must be 1-128 letters, digits, '.', '_' or '-'")
        with self.db.transaction() as tx:
            if repo.dataset_exists(tx, target):
                raise TensorBayError(409, "NameConflict", f"dataset {target!r} already exists")
            self._require_dataset(tx, source)
            repo.clone_dataset(tx, source, target)
        return {"datasetId": target}

    async def test_commit(self, dataset_id: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        branch = str(_string_field(body, "branchName", "branchName"))
        title = _string_field(body, "title", "title", required=False) or "test commit"
        files = body.get("files")
        if files is None:
            raise _missing("files")
        if not isinstance(files, dict) or not all(v is None or isinstance(v, str) for v in files.values()):
            raise _invalid("files must map paths to strings (or null to delete)")
        with self.db.transaction() as tx:
            self._require_dataset(tx, dataset_id)
            if repo.branch_head(tx, dataset_id, branch) is None:
                raise _invalid(f"branchName: branch {branch!r} does not exist in dataset {dataset_id!r}")
            commit_id = repo.commit_files_to_branch(tx, dataset_id, branch, files, title)
        return {"commitId": commit_id, "branchName": branch}

    async def test_branch(self, dataset_id: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        name = str(_string_field(body, "name", "name"))
        revision = str(_string_field(body, "revision", "revision"))
        with self.db.transaction() as tx:
            self._require_dataset(tx, dataset_id)
            if repo.branch_head(tx, dataset_id, name) is not None:
                raise TensorBayError(409, "NameConflict", f"branch {name!r} already exists")
            commit_id = repo.resolve_revision(tx, dataset_id, revision)
            if commit_id is None:
                raise _invalid(f"revision: no branch or commit {revision!r} in dataset {dataset_id!r}")
            repo.set_branch(tx, dataset_id, name, commit_id)
        return {"name": name, "commitId": commit_id}

    def test_get_branch(self, dataset_id: str, name: str) -> dict[str, Any]:
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        head = repo.branch_head(conn, dataset_id, name)
        if head is None:
            raise _not_found(f"branch {name!r} does not exist in dataset {dataset_id!r}")
        return {"name": name, "commitId": head, "files": repo.commit_files(conn, dataset_id, head)}

    def test_get_draft(self, dataset_id: str, number: str) -> dict[str, Any]:
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        row = repo.get_draft(conn, dataset_id, _int_param("number", number, 0, 1))
        if row is None:
            raise _not_found(f"draft {number} does not exist in dataset {dataset_id!r}")
        return repo.draft_body(row, with_files=True)

    def test_commit_draft(self, dataset_id: str, number: str) -> dict[str, Any]:
        draft_number = _int_param("number", number, 0, 1)
        with self.db.transaction() as tx:
            self._require_dataset(tx, dataset_id)
            if repo.get_draft(tx, dataset_id, draft_number) is None:
                raise _not_found(f"draft {number} does not exist in dataset {dataset_id!r}")
            try:
                commit_id = repo.commit_draft(tx, dataset_id, draft_number, f"commit draft {draft_number}")
            except repo.RepoError as error:
                raise TensorBayError(403, "Forbidden", str(error)) from None
        return {"commitId": commit_id}

    def test_search_result(self, dataset_id: str, result_id: str) -> dict[str, Any]:
        conn = self.db.connection()
        self._require_dataset(conn, dataset_id)
        found = repo.search_result(conn, dataset_id, result_id)
        if found is None:
            raise _not_found(f"search result {result_id!r} does not exist in dataset {dataset_id!r}")
        return found


def create(config: ServiceConfig, db: Database) -> DatasetJobs:
    """Build the dataset-job family: run its DDL and seed ``demo-dataset`` on first use."""
    db.migrate(repo.DDL + DDL)
    with db.transaction() as tx:
        repo.seed(tx)
    return DatasetJobs(config, db)
