"""Compute tasks (Seequent Evo Compute API), section 3 of ``docs/jobs-api.md``.

Prefix ``/compute/orgs/{orgId}``, key as ``Authorization: Bearer <key>``, or instead of the key an
unexpired access token from the service's OAuth2 token endpoint (``oauth.py``). A submit answers exactly
303 with an empty body and ``Location: /compute/orgs/{orgId}/{topic}/{task}/{jobId}/status``; a
cancel answers exactly 204 with an empty body. Failures other than 401 carry an Error body
``{"status", "type", "title", "detail"}``. Jobs move ``requested → in progress → succeeded |
failed`` (or ``cancelling → cancelled`` after a DELETE) at absolute due times stored in SQLite,
so a restarted service resumes them; progress is derived from the run's start and length, so it
advances between polls. Tasks (topic ``demo``) are defined in ``compute_tasks.py``.

Test controls (only with ``--test-controls``; ignored otherwise): a submit body may hold, next to
``parameters``, ``"test": {"queue_s": float, "run_s": float, "cancel_s": float}`` (0..600 s) to
set how long a job stays ``requested``, runs, and takes to finish cancelling.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from jobwait_reference_service import compute_wire as wire
from jobwait_reference_service import openapi
from jobwait_reference_service.compute_tasks import ParameterError, TaskFailure, find_task
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.db import Database
from jobwait_reference_service.due_loop import DueLoop
from jobwait_reference_service.json_body import JsonBodyError, parse_json
from jobwait_reference_service.oauth import TokenSigner, bearer_schemes, require_bearer_key_or_token
from jobwait_reference_service.routing import allowed_methods

logger = logging.getLogger(__name__)

ROOT = "/compute"
JOB_PATH = f"{ROOT}/orgs/{{org_id}}/{{topic}}/{{task}}/{{job_id}}"
ERROR_TYPE = "https://seequent.com/error-codes/compute/"
RUNNING = ("requested", "in progress", "cancelling")
# Checked by the routes (``_org``: 400 otherwise); the format tells clients what to send.
OrgId = Annotated[str, Path(description="The organisation (a UUID).", json_schema_extra={"format": "uuid"})]
QUEUE_S = 0.2
CANCEL_S = 0.2
MAX_TEST_DURATION_S = 600.0

DDL = """
CREATE TABLE IF NOT EXISTS cp_jobs (
    job_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    task TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_s REAL NOT NULL,
    cancel_s REAL NOT NULL,
    due_at REAL,
    progress INTEGER,
    results TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS cp_jobs_due ON cp_jobs (due_at) WHERE due_at IS NOT NULL;
"""


class ComputeError(Exception):
    """An error answered with an Evo Error body."""

    def __init__(self, status: int, title: str, detail: str, slug: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"status": status, "type": ERROR_TYPE + slug, "title": title, "detail": detail}

    def response(self) -> JSONResponse:
        # Evo answers errors as RFC 9457 problem details (the SDK reads ``type``, ``title``, ``detail``).
        return JSONResponse(status_code=self.status, content=self.body, media_type="application/problem+json")


def _bad_request(detail: str) -> ComputeError:
    return ComputeError(400, "Bad Request", detail, "bad-request")


def _not_found(detail: str) -> ComputeError:
    return ComputeError(404, "Not Found", detail, "not-found")


class ComputeRoute(APIRoute):
    """Answers this family's failures (not the 401 from ``oauth.py``) with an Error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ComputeError as error:
                return error.response()
            except RequestValidationError as error:
                # A query parameter of the wrong type (e.g. ``limit``): Evo answers it as a problem too.
                detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                return ComputeError(422, "Unprocessable Entity", detail, "validation-error").response()
            except HTTPException:
                raise  # the 401 from auth keeps its handler and its {"detail"} body (docs/jobs-api.md §3)
            except Exception:
                # Never Starlette's plain-text 500: an Evo client reads the Error body of any failure.
                logger.exception("compute request failed: %s %s", request.method, request.url.path)
                return ComputeError(500, "Internal Server Error", "internal server error", "internal-error").response()

        return route_handler


def _uuid(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _org(raw: str) -> str:
    org_id = _uuid(raw)
    if org_id is None:
        raise _bad_request(f"orgId must be a UUID, got {raw!r}")
    return org_id


def _test_durations(body: Mapping[str, Any]) -> dict[str, float]:
    test = body.get("test")
    if test is None:
        return {}
    if not isinstance(test, dict):
        raise _bad_request("test must be an object")
    durations: dict[str, float] = {}
    for key in ("queue_s", "run_s", "cancel_s"):
        value = test.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TEST_DURATION_S:
            raise _bad_request(f"test.{key} must be a number of seconds between 0 and {MAX_TEST_DURATION_S:g}")
        durations[key] = float(value)
    return durations


def _cancelled_error() -> dict[str, Any]:
    return ComputeError(409, "Job cancelled", "the job was cancelled on request", "job-cancelled").body


class ComputeTasks:
    """The compute-task family: routes, SQLite persistence and the background progression."""

    def __init__(self, config: ServiceConfig, db: Database) -> None:
        self.config = config
        self.db = db
        steps = {"requested": self._start_run, "in progress": self._run, "cancelling": self._finish_cancel}
        self.loop = DueLoop.for_table("compute-tasks", db, "cp_jobs", steps, self._fail_internal)
        auth = Depends(require_bearer_key_or_token(config.api_key, TokenSigner.from_config(config)))
        self.router = APIRouter(route_class=ComputeRoute, dependencies=[*bearer_schemes(config), auth])
        no_job = "No such job of this task in this organisation."
        self._route(
            f"{ROOT}/orgs/{{org_id}}/{{topic}}/{{task}}",
            self.submit,
            "POST",
            {
                303: {
                    "description": "Submitted: no body; `Location` is the job's status URL.",
                    "headers": {
                        "Location": {
                            "description": "`/compute/orgs/{orgId}/{topic}/{task}/{jobId}/status`.",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    },
                }
            },
            self._errors(
                body=True,
                e400="orgId not a UUID, a body that is not strict JSON or not `{parameters: {...}}`, or "
                "parameters the task refuses.",
                e404="No such task in this topic.",
            ),
            status_code=303,
            response_class=Response,  # no body: nothing to describe under a media type
            openapi_extra=openapi.json_body(wire.Submit, "The task's parameters."),
        )
        running = "Running: only the status."
        self._route(
            f"{JOB_PATH}/status",
            self.get_status,
            "GET",
            openapi.answers(wire.JobStatusBody, {200: "The job's status."}),
            self._errors(e400="orgId not a UUID.", e404=no_job),
        )
        self._route(
            JOB_PATH,
            self.get_results,
            "GET",
            {
                **openapi.answers(wire.JobResults, {200: "Finished: its results or its error."}),
                **openapi.answers(wire.JobRunning, {202: running}),
            },
            self._errors(e400="orgId not a UUID.", e404=no_job),
        )
        self._route(
            JOB_PATH,
            self.cancel,
            "DELETE",
            {204: {"description": "Cancelling (or already finished): no body."}},
            self._errors(e400="orgId not a UUID.", e404=no_job),
            status_code=204,
        )
        # Evo's Workspaces API on the same hub: clients read it to check a hub, org and token.
        self._route(
            "/workspace/orgs/{org_id}/workspaces",
            self.list_workspaces,
            "GET",
            openapi.answers(wire.Workspaces, {200: "An empty page."}),
            self._errors(e400="orgId not a UUID.", e422="`limit` or `offset` not an integer."),
        )
        # Last: anything else under /compute gets an Error body rather than FastAPI's default.
        self.router.add_api_route(
            f"{ROOT}/{{rest:path}}",
            self.unknown_path,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            include_in_schema=False,
        )

    def _errors(self, body: bool = False, **statuses: str) -> dict[int | str, dict[str, Any]]:
        """A route's problem answers (``statuses``: ``e400="why"``), and the 401 every route has."""
        own = {int(code[1:]): why for code, why in statuses.items()}
        problems = openapi.error_answers(
            wire.Problem,
            own,
            body=body,
            rate_limited=self.config.rate_limit is not None,
            media_type="application/problem+json",
        )
        # The one answer not in Evo's shape: a client reads any 401 as "fetch a new token".
        why = "Missing, wrong or expired `Authorization: Bearer <key or access token>`."
        return {**openapi.answers(openapi.Detail, {401: why}), **problems}

    def _route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        method: str,
        success: dict[int | str, dict[str, Any]],
        errors: dict[int | str, dict[str, Any]],
        **extra: Any,
    ) -> None:
        self.router.add_api_route(
            path, endpoint, methods=[method], response_model=None, responses={**success, **errors}, **extra
        )

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    # -- routes --

    async def list_workspaces(
        self, org_id: OrgId, request: Request, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """``GET /workspace/orgs/{orgId}/workspaces``: this service holds no workspaces, so an
        empty page in the shape of Evo's ``ListWorkspacesResponse``."""
        _org(org_id)
        url = str(request.url.remove_query_params(["offset"]))
        return {
            "results": [],
            "links": {"count": 0, "total": 0, "first": url, "last": url, "next": None, "previous": None},
        }

    async def submit(self, org_id: OrgId, topic: str, task: str, request: Request) -> Response:
        org = _org(org_id)
        spec = find_task(topic, task)
        if spec is None:
            raise _not_found(f"no task {task!r} in topic {topic!r}")
        raw = await request.body()
        try:
            body = parse_json(raw) if raw.strip() else None
        except JsonBodyError as error:
            raise _bad_request(str(error)) from None
        if not isinstance(body, dict):
            raise _bad_request('request body must be an object {"parameters": {...}}')
        if not isinstance(body.get("parameters"), dict):
            raise _bad_request("parameters is required and must be an object")
        try:
            parameters = spec.validate(body["parameters"])
        except ParameterError as error:
            raise ComputeError(400, "Invalid parameters", str(error), "invalid-parameters") from None
        durations = _test_durations(body) if self.config.test_controls else {}
        run_s = durations.get("run_s", spec.duration_s(parameters))
        job_id = await run_in_threadpool(self._insert, org, topic, task, parameters, run_s, durations)
        self.loop.wake()
        # Relative Location, exactly as the service sends it; the client resolves it itself.
        return Response(status_code=303, headers={"Location": f"{ROOT}/orgs/{org}/{topic}/{task}/{job_id}/status"})

    def _insert(
        self, org: str, topic: str, task: str, parameters: dict[str, Any], run_s: float, durations: dict[str, float]
    ) -> str:
        job_id = str(uuid.uuid4())
        now = time.time()
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO cp_jobs (job_id, org_id, topic, task, parameters, status, created_at, run_s, cancel_s, "
                "due_at, progress) VALUES (?, ?, ?, ?, ?, 'requested', ?, ?, ?, ?, 0)",
                (
                    job_id,
                    org,
                    topic,
                    task,
                    json.dumps(parameters),
                    now,
                    run_s,
                    durations.get("cancel_s", CANCEL_S),
                    now + durations.get("queue_s", QUEUE_S),
                ),
            )
        return job_id

    def _job(self, conn: sqlite3.Connection, org_id: str, topic: str, task: str, job_id: str) -> sqlite3.Row:
        org = _org(org_id)
        canonical = _uuid(job_id)
        row = None
        if canonical is not None:
            row = conn.execute(
                "SELECT * FROM cp_jobs WHERE job_id = ? AND org_id = ? AND topic = ? AND task = ?",
                (canonical, org, topic, task),
            ).fetchone()
        if row is None:
            raise _not_found(f"no job {job_id!r} for task {topic}/{task} in organisation {org}")
        return row  # type: ignore[no-any-return]

    def get_status(self, org_id: OrgId, topic: str, task: str, job_id: str) -> dict[str, Any]:
        row = self._job(self.db.connection(), org_id, topic, task, job_id)
        return {
            "status": row["status"],
            "progress": self._progress(row),
            "message": self._message(row),
            "error": None if row["error"] is None else json.loads(row["error"]),
        }

    def get_results(self, org_id: OrgId, topic: str, task: str, job_id: str) -> Response:
        row = self._job(self.db.connection(), org_id, topic, task, job_id)
        status = row["status"]
        if status in RUNNING:
            return JSONResponse(status_code=202, content={"status": status})
        results = None if row["results"] is None else json.loads(row["results"])
        error = None if row["error"] is None else json.loads(row["error"])
        return JSONResponse(status_code=200, content={"status": status, "results": results, "error": error})

    def cancel(self, org_id: OrgId, topic: str, task: str, job_id: str) -> Response:
        with self.db.transaction() as tx:
            row = self._job(tx, org_id, topic, task, job_id)
            # A terminal or already-cancelling job stays as it is: cancelling is idempotent.
            if row["status"] in ("requested", "in progress"):
                tx.execute(
                    "UPDATE cp_jobs SET status = 'cancelling', progress = ?, due_at = ? WHERE job_id = ?",
                    (self._progress(row), time.time() + row["cancel_s"], row["job_id"]),
                )
        self.loop.wake()
        return Response(status_code=204)

    def unknown_path(self, request: Request) -> Response:
        allowed = allowed_methods(request, self.unknown_path)
        if allowed:  # the path exists, the method does not
            detail = f"method {request.method} is not allowed on {request.url.path}"
            response = ComputeError(405, "Method Not Allowed", detail, "method-not-allowed").response()
            response.headers["Allow"] = ", ".join(allowed)  # RFC 9110 §15.5.6
            return response
        return _not_found(f"no such resource: {request.method} {request.url.path}").response()

    # -- progress --

    @staticmethod
    def _progress(row: sqlite3.Row) -> int:
        if row["status"] == "in progress":
            run_s = row["run_s"]
            fraction = 1.0 if run_s <= 0 else (time.time() - row["started_at"]) / run_s
            return max(0, min(99, int(fraction * 100)))
        if row["status"] == "succeeded":
            return 100
        return int(row["progress"] or 0)

    @staticmethod
    def _message(row: sqlite3.Row) -> str:
        status = row["status"]
        if status == "in progress":
            spec = find_task(row["topic"], row["task"])
            fraction = ComputeTasks._progress(row) / 100
            return spec.progress_message(json.loads(row["parameters"]), fraction) if spec else "running"
        if status == "failed" and row["error"]:
            return str(json.loads(row["error"]).get("detail") or "failed")
        return {
            "requested": "waiting for a worker",
            "cancelling": "cancelling",
            "succeeded": "done",
            "cancelled": "cancelled",
        }.get(status, status)

    # -- background progression (steps of ``DueLoop.for_table``) --

    @staticmethod
    def _start_run(tx: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        tx.execute(
            "UPDATE cp_jobs SET status = 'in progress', started_at = ?, due_at = ? WHERE job_id = ?",
            (now, now + row["run_s"], row["job_id"]),
        )

    @staticmethod
    def _run(tx: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        spec = find_task(row["topic"], row["task"])
        try:
            if spec is None:
                raise TaskFailure("Unknown task", f"task {row['topic']}/{row['task']} no longer exists", 404)
            results = spec.execute(json.loads(row["parameters"]))
        except TaskFailure as failure:
            error = ComputeError(failure.status, failure.title, failure.detail, failure.slug).body
            tx.execute(
                "UPDATE cp_jobs SET status = 'failed', finished_at = ?, due_at = NULL, progress = ?, error = ? "
                "WHERE job_id = ?",
                (now, ComputeTasks._progress(row), json.dumps(error), row["job_id"]),
            )
            return
        tx.execute(
            "UPDATE cp_jobs SET status = 'succeeded', finished_at = ?, due_at = NULL, progress = 100, results = ? "
            "WHERE job_id = ?",
            (now, json.dumps(results), row["job_id"]),
        )

    @staticmethod
    def _finish_cancel(tx: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        tx.execute(
            "UPDATE cp_jobs SET status = 'cancelled', finished_at = ?, due_at = NULL, error = ? WHERE job_id = ?",
            (now, json.dumps(_cancelled_error()), row["job_id"]),
        )

    @staticmethod
    def _fail_internal(tx: sqlite3.Connection, job_id: str, now: float) -> None:
        error = ComputeError(500, "Internal error", "the service failed running the job", "internal").body
        tx.execute(
            "UPDATE cp_jobs SET status = 'failed', finished_at = ?, due_at = NULL, error = ? WHERE job_id = ?",
            (now, json.dumps(error), job_id),
        )


def create(config: ServiceConfig, db: Database) -> ComputeTasks:
    """Build the compute-task family and run its DDL."""
    db.migrate(DDL)
    return ComputeTasks(config, db)
