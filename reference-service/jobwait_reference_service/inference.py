"""Inference jobs and results (Modzy API), section 1 of ``docs/jobs-api.md``: prefix ``/api``.

HTTP layer only: request validation, response bodies and routes. Storage and the background
progression of jobs live in ``inference_runner``; the built-in models in ``inference_models``.

Our extensions beyond the spec's table, each marked [ext]:

- ``GET /api/jobs/{id}/done``: 200 Job once the job is terminal, 404 while it runs (and for an
  unknown id). For generic "poll until not 404" waiters such as ``HttpSensorTrigger``, which the
  triggerer benchmark measures against.
- ``POST /api/_test/finish`` ``{"identifiers": [...], "status": "COMPLETED"}`` (only with
  ``--test-controls``): end up to 500 running jobs now, in one transaction; benchmarks use it to
  decide when jobs end after submitting them.
- ``GET /api/_test/stats`` / ``DELETE /api/_test/stats`` (only with ``--test-controls``): requests
  of this family per route name, and how many distinct client ``(host, port)`` pairs sent them,
  i.e. TCP connections opened since the last reset (an ephemeral port reused after its TIME_WAIT
  within one measurement would be counted once).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from jobwait_reference_service import inference_runner as store
from jobwait_reference_service import inference_wire as wire
from jobwait_reference_service import openapi
from jobwait_reference_service.auth import key_header_scheme, require_api_key
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.db import Database
from jobwait_reference_service.detail_route import DetailRoute
from jobwait_reference_service.inference_models import (
    HARDWARE_REQUIREMENTS,
    MODELS,
    OUTPUT_NAME,
    VERSION,
    ModelSpec,
    decode_input,
    model_detail,
    model_summary,
    version_detail,
)
from jobwait_reference_service.inference_runner import (
    RUNNING,
    SUBMITTED,
    SUCCESSFUL,
    TERMINAL,
    TEST_OUTCOMES,
    JobRunner,
    NewJob,
    StatusHub,
    TestControls,
)
from jobwait_reference_service.inference_wire import (
    MAX_BATCH_IDS,
    MAX_IDEMPOTENCY_KEY,
    MAX_SOURCES,
    MAX_WATCH_TIMEOUT_S,
)
from jobwait_reference_service.json_body import JsonBodyError, parse_json
from jobwait_reference_service.openapi import Detail, answers, error_answers, parameter

logger = logging.getLogger(__name__)

MAX_TEST_DURATION_S = 86_400.0
DEFAULT_WATCH_TIMEOUT_S = 30.0
DEFAULT_PER_PAGE, MAX_PER_PAGE = 100, wire.MAX_PER_PAGE
INPUT_TYPES = ("text", "embedded")
HISTORY_STATUSES = {"all": None, "pending": RUNNING, "terminated": TERMINAL}
# All that ``job_json`` and watch need; bulk replies read no more.
JOB_COLUMNS = "id, status, updated_at, doc"
_INTEGER = re.compile(r"-?[0-9]+")


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


# ---------------------------------------------------------------- OpenAPI


def _query(name: str, annotation: Any, description: str, required: bool = False) -> dict[str, Any]:
    return parameter(name, "query", annotation, description, required=required)


# An empty value reads as absent (the default), as the public client sometimes sends them.
_Empty = Literal[""]
_DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
_HISTORY_PARAMETERS = [
    _query("status", Literal["", "all", "pending", "terminated"], "Which jobs (default all)."),
    _query("model", str, "A model identifier or name."),
    _query("accessKey", str, "Only jobs submitted with this key (its public identifier)."),
    _query("startDate", _DateTime | _Empty, "Submitted at or after (ISO-8601; naive means UTC)."),
    _query("endDate", _DateTime | _Empty, "Submitted at or before (ISO-8601; naive means UTC)."),
    _query("direction", Literal["", "asc", "desc"], "Order by submit time (default desc)."),
    _query("page", Annotated[int, Field(ge=1, le=wire.MAX_PAGE)] | _Empty, "Page number (default 1)."),
    _query(
        "per-page", Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] | _Empty, f"Page size (default {DEFAULT_PER_PAGE})."
    ),
]


def _answers(config: ServiceConfig, body: bool = False, **statuses: str) -> dict[int | str, dict[str, Any]]:
    """The ``{"detail"}`` errors a route answers: ``statuses`` (``e400="why"``) plus every route's own."""
    own = {int(code[1:]): why for code, why in statuses.items()}
    own[401] = "Missing or wrong `Authorization: ApiKey <key>`."
    return error_answers(Detail, own, body=body, rate_limited=config.rate_limit is not None)


def access_key_id(api_key: str) -> str:
    """Public identifier of an API key: Modzy keys are ``public.private``; never expose the secret."""
    public, dot, _secret = api_key.partition(".")
    if dot and public:
        return public
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


def iso(epoch: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and ``Z``, as Modzy writes times."""
    if epoch is None:
        return None
    # time.gmtime + strftime: several times faster than datetime, and bulk replies format one per job.
    seconds, millis = divmod(round(epoch * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


@functools.lru_cache(maxsize=64)
def identity(access_key: str) -> dict[str, Any]:
    """Account, team and user a key belongs to: stable made-up ids derived from the key's public part."""

    def uid(kind: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-jobwait:{kind}:{access_key}"))

    return {
        "accountIdentifier": uid("account"),
        "team": {"identifier": uid("team")},
        "user": {
            "identifier": uid("user"),
            "firstName": "Jobwait",
            "lastName": "Service",
            "email": "jobwait@example.invalid",
        },
    }


# ---------------------------------------------------------------- bodies


def job_doc(job: NewJob, now: float) -> str:
    """The Job fields that never change, as compact JSON, stored with the job at submit."""
    who = identity(job.access_key)
    doc = {
        "jobIdentifier": job.job_id,
        "model": {"identifier": job.model.identifier, "name": job.model.name, "version": job.version},
        "totalInputs": len(job.sources),
        "explain": job.explain,
        "jobType": "batch",
        "accountIdentifier": who["accountIdentifier"],
        "team": who["team"],
        "user": who["user"],
        "jobInputs": {"identifier": [key for key, _text in job.sources]},
        "submittedAt": iso(now),
        "imageClassificationModel": False,
        "accessKey": job.access_key,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def job_json(row: sqlite3.Row) -> str:
    """The Job object of the spec as JSON text: the stored fixed part plus status and update time.

    Splicing text instead of building dicts keeps 500-job batch and watch replies cheap.
    """
    return f'{row["doc"][:-1]},"status":"{row["status"]}","updatedAt":"{iso(row["updated_at"])}"}}'


def json_reply(text: str, status_code: int = 200) -> Response:
    return Response(content=text, status_code=status_code, media_type="application/json")


def jobs_reply(rows: Sequence[sqlite3.Row]) -> Response:
    """``{"jobs": [Job...]}``, the batch status and watch reply."""
    return json_reply('{"jobs":[' + ",".join(job_json(row) for row in rows) + "]}")


def _input_entry(job: sqlite3.Row, row: sqlite3.Row) -> dict[str, Any]:
    end = row["end_at"]
    start = min(row["start_at"], end)  # an input cut short may have been planned to start later
    entry: dict[str, Any] = {
        "status": row["status"],
        "engine": f"jobwait-{job['model_id']}-{job['model_version']}-engine-0",
        "startTime": iso(start),
        "updateTime": iso(end),
        "endTime": iso(end),
        "elapsedTime": round((end - start) * 1000),
        "voting": {"up": 0, "down": 0},
    }
    if row["status"] == SUCCESSFUL:
        entry["modelLatency"] = round((end - start) * 1000, 3)
        entry[OUTPUT_NAME] = json.loads(row["output"])
    else:
        entry["error"] = row["error"]
    return entry


def results_body(job: sqlite3.Row, inputs: Sequence[sqlite3.Row]) -> dict[str, Any]:
    """The Results object of the spec: finished inputs under ``results`` or ``failures``."""
    who = identity(job["access_key"])
    results: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    latencies: list[float] = []
    for row in inputs:
        if row["status"] == SUCCESSFUL:
            entry = results[row["source_key"]] = _input_entry(job, row)
            latencies.append(entry["modelLatency"])
        elif row["status"] == store.FAILED:
            failures[row["source_key"]] = _input_entry(job, row)
    finished = job["status"] in TERMINAL
    return {
        "jobIdentifier": job["id"],
        "accountIdentifier": who["accountIdentifier"],
        "submittedByKey": job["access_key"],
        "total": job["total_inputs"],
        "completed": len(results),
        "failed": len(failures),
        "finished": finished,
        "explained": bool(job["explain"]),
        "submittedAt": iso(job["submitted_at"]),
        "startingResultSummarizing": iso(job["finished_at"]) if finished else None,
        "resultSummarizing": iso(job["finished_at"]) if finished else None,
        "averageModelLatency": round(sum(latencies) / len(latencies), 3) if latencies else 0.0,
        "totalModelLatency": round(sum(latencies), 3),
        "team": who["team"],
        "results": results,
        "failures": failures,
    }


# ---------------------------------------------------------------- request validation


def _field_object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        raise bad_request(f"field {name!r} is required")
    if not isinstance(value, dict):
        raise bad_request(f"field {name!r} must be an object")
    return value


def _field_string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"field {name!r} must be a non-empty string")
    return value


def parse_model(body: dict[str, Any]) -> tuple[ModelSpec, str]:
    model = _field_object(body.get("model"), "model")
    identifier = _field_string(model.get("identifier"), "model.identifier")
    version = model.get("version")
    version = str(version) if isinstance(version, (int, float)) and not isinstance(version, bool) else version
    version = _field_string(version, "model.version")
    spec = MODELS.get(identifier)
    if spec is None:
        raise bad_request(
            f"unknown model {identifier!r} (field 'model.identifier'); known: {', '.join(sorted(MODELS))}"
        )
    if version != VERSION:
        raise bad_request(
            f"model {identifier!r} has no version {version!r} (field 'model.version'); versions: {VERSION}"
        )
    return spec, version


def parse_sources(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """Validate ``input``: return its type and ``(source key, text of the first input)`` per source."""
    data = _field_object(body.get("input"), "input")
    input_type = _field_string(data.get("type"), "input.type")
    if input_type not in INPUT_TYPES:
        raise bad_request(
            f"input type {input_type!r} is not supported by this service (field 'input.type'); use 'text' or 'embedded'"
        )
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise bad_request("field 'input.sources' is required and must be a non-empty object")
    if len(sources) > MAX_SOURCES:
        raise bad_request(f"field 'input.sources' has {len(sources)} sources; at most {MAX_SOURCES} are allowed")
    parsed = []
    for key, inputs in sources.items():
        if not key:
            raise bad_request("field 'input.sources' has an empty source key")
        if not isinstance(inputs, dict) or not inputs:
            raise bad_request(f"field 'input.sources.{key}' must be a non-empty object of {{input name: value}}")
        texts = []
        for name, value in inputs.items():
            if not isinstance(value, str):
                raise bad_request(f"field 'input.sources.{key}.{name}' must be a string")
            try:
                texts.append(decode_input(value, input_type))
            except ValueError as exc:
                raise bad_request(f"field 'input.sources.{key}.{name}': {exc}") from None
        parsed.append((key, texts[0]))
    return input_type, parsed


def parse_test(value: Any, source_keys: set[str]) -> TestControls:
    """Validate the ``test`` field [ext]."""
    if not isinstance(value, dict):
        raise bad_request("field 'test' must be an object")
    unknown = sorted(set(value) - {"duration_s", "outcome", "fail_inputs"})
    if unknown:
        raise bad_request(f"unknown field 'test.{unknown[0]}'; known: duration_s, outcome, fail_inputs")
    duration = value.get("duration_s")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= MAX_TEST_DURATION_S
    ):
        raise bad_request(
            f"field 'test.duration_s' must be a number of seconds in 0..{MAX_TEST_DURATION_S:g}, got {duration!r}"
        )
    outcome = value.get("outcome", store.COMPLETED)
    if outcome not in TEST_OUTCOMES:
        raise bad_request(f"field 'test.outcome' must be one of {', '.join(TEST_OUTCOMES)}, got {outcome!r}")
    fail_inputs = value.get("fail_inputs", [])
    if not isinstance(fail_inputs, list) or not all(isinstance(k, str) for k in fail_inputs):
        raise bad_request("field 'test.fail_inputs' must be a list of source keys")
    for key in fail_inputs:
        if key not in source_keys:
            raise bad_request(f"field 'test.fail_inputs' names {key!r}, which is not a key of 'input.sources'")
    return TestControls(
        duration_s=None if duration is None else float(duration), outcome=outcome, fail_inputs=frozenset(fail_inputs)
    )


def parse_submit(body: Any, test_controls: bool, access_key: str) -> NewJob:
    """Validate a submit body into a ``NewJob``; 400 naming the offending field otherwise."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    if "test" in body and not test_controls:
        raise bad_request("test controls are disabled on this service (field 'test')")
    spec, version = parse_model(body)
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise bad_request("field 'explain' must be a boolean")
    input_type, sources = parse_sources(body)
    test = parse_test(body["test"], {key for key, _ in sources}) if "test" in body else None
    return NewJob(str(uuid.uuid4()), spec, version, explain, input_type, access_key, sources, test)


def parse_watch(body: Any) -> tuple[list[str], float, dict[str, str]]:
    """Validate a watch body: ``(identifiers, timeout seconds, known statuses)``."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    ids = body.get("identifiers")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise bad_request("field 'identifiers' must be a non-empty list of job identifiers")
    if len(ids) > MAX_BATCH_IDS:
        raise bad_request(f"field 'identifiers' lists {len(ids)} jobs; at most {MAX_BATCH_IDS} are allowed")
    timeout = body.get("timeout", DEFAULT_WATCH_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_WATCH_TIMEOUT_S:
        raise bad_request(
            f"field 'timeout' must be seconds with 0 < timeout <= {MAX_WATCH_TIMEOUT_S:g}, got {timeout!r}"
        )
    known = body.get("known", {})
    if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
        raise bad_request("field 'known' must be an object of {job identifier: status}")
    return list(dict.fromkeys(ids)), float(timeout), known


def _query_date(raw: str, name: str) -> float:
    """A history date filter as epoch seconds (naive means UTC)."""
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be an ISO-8601 date-time, got {raw!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    # Digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
    if not _INTEGER.fullmatch(raw):
        raise bad_request(f"query parameter {name!r} must be an integer, got {raw!r}")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise bad_request(f"query parameter {name!r} must be in 1..{maximum}, got {value}")
    return value


def canonical_hash(body: Any) -> str:
    """Hash of a JSON body that ignores key order and whitespace (for ``Idempotency-Key``)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def json_body(request: Request) -> Any:
    """The request body as JSON, strictly parsed; 400 ``{"detail"}`` naming the problem otherwise."""
    try:
        return parse_json(await request.body())
    except JsonBodyError as exc:
        raise bad_request(str(exc)) from None


# ---------------------------------------------------------------- test controls


class RequestStats:
    """[ext, test controls] Requests per route and distinct client connections, for tests and benchmarks.

    Counted in an async router dependency, so always on the event loop: no lock needed.
    """

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.clients: set[tuple[str, int]] = set()
        self.since = time.time()

    async def count(self, request: Request) -> None:
        route = request.scope.get("route")
        name = getattr(route, "name", None) or request.url.path
        if name in ("get_stats", "reset_stats", "finish"):
            return
        self.requests[name] = self.requests.get(name, 0) + 1
        if request.client is not None:
            self.clients.add((request.client.host, request.client.port))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "connections": len(self.clients),
            "since": self.since,
        }

    def reset(self) -> dict[str, Any]:
        snapshot = self.snapshot()
        self.requests, self.clients, self.since = {}, set(), time.time()
        return snapshot


# ---------------------------------------------------------------- family


class InferenceFamily:
    """Routes, storage and background runner of the inference jobs family.

    :param config: Service settings (API key, test controls).
    :param db: The service database; the family's tables are created here.
    """

    def __init__(self, config: ServiceConfig, db: Database) -> None:
        self.config = config
        self.db = db
        self.access_key = access_key_id(config.api_key)
        self.hub = StatusHub()
        self.runner = JobRunner(db, self.hub)
        self.stats = RequestStats()
        db.migrate(store.DDL)
        dependencies: list[DependsParam] = [
            key_header_scheme("ModzyApiKey", "Authorization", "The API key as `ApiKey <key>`."),
            Depends(require_api_key(config.api_key, "Authorization", "ApiKey")),
        ]
        if config.test_controls:
            dependencies.append(Depends(self.stats.count))
        self.router = APIRouter(prefix="/api", tags=["inference"], dependencies=dependencies, route_class=DetailRoute)
        self._add_model_routes()
        self._add_job_routes()
        if config.test_controls:
            self._add_stats_routes()

    async def start(self) -> None:
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    # -- storage helpers (run in worker threads)

    def _job_row(self, job_id: str) -> sqlite3.Row:
        row = self.db.connection().execute("SELECT * FROM inference_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
        return row

    def _job_rows(self, job_ids: Sequence[str]) -> list[sqlite3.Row]:
        """Rows of the known ids among ``job_ids``, in request order (primary-key lookups)."""
        if not job_ids:
            return []
        marks = ",".join("?" * len(job_ids))
        rows = self.db.connection().execute(f"SELECT {JOB_COLUMNS} FROM inference_jobs WHERE id IN ({marks})", job_ids)
        by_id = {row["id"]: row for row in rows}
        return [by_id[i] for i in job_ids if i in by_id]

    # -- routes

    def _errors(self, body: bool = False, **statuses: str) -> dict[int | str, dict[str, Any]]:
        return _answers(self.config, body, **statuses)

    def _add_model_routes(self) -> None:
        router = self.router
        unknown = "Unknown model (or version)."

        @router.get(
            "/models",
            response_model=None,
            responses={**answers(wire.ModelSummaries, {200: "The models."}), **self._errors()},
            openapi_extra={
                "parameters": [_query("modelId", str, "Only this model."), _query("name", str, "Name contains.")]
            },
        )
        def list_models(request: Request) -> JSONResponse:
            wanted_id = request.query_params.get("modelId")
            wanted_name = (request.query_params.get("name") or "").lower()
            models = [
                model_summary(spec)
                for spec in MODELS.values()
                if (not wanted_id or spec.identifier == wanted_id) and wanted_name in spec.name.lower()
            ]
            return JSONResponse(models)

        @router.get(
            "/models/requirements/account",
            response_model=None,
            responses={**answers(wire.Requirements, {200: "The account's hardware."}), **self._errors()},
        )
        def hardware_requirements() -> JSONResponse:
            return JSONResponse(HARDWARE_REQUIREMENTS)

        def known_model(model_id: str) -> ModelSpec:
            spec = MODELS.get(model_id)
            if spec is None:
                raise HTTPException(status_code=404, detail=f"model {model_id!r} not found")
            return spec

        @router.get(
            "/models/{model_id}",
            response_model=None,
            responses={**answers(wire.ModelDetail, {200: "The model."}), **self._errors(e404=unknown)},
        )
        def get_model(model_id: str) -> JSONResponse:
            return JSONResponse(model_detail(known_model(model_id)))

        @router.get(
            "/models/{model_id}/versions",
            response_model=None,
            responses={**answers(wire.VersionDetails, {200: "Its versions."}), **self._errors(e404=unknown)},
        )
        def get_versions(model_id: str) -> JSONResponse:
            return JSONResponse([version_detail(known_model(model_id))])

        @router.get(
            "/models/{model_id}/versions/{version}",
            response_model=None,
            responses={**answers(wire.VersionDetail, {200: "The version."}), **self._errors(e404=unknown)},
        )
        def get_version(model_id: str, version: str) -> JSONResponse:
            spec = known_model(model_id)
            if version != VERSION:
                raise HTTPException(status_code=404, detail=f"model {model_id!r} has no version {version!r}")
            return JSONResponse(version_detail(spec))

    def _add_job_routes(self) -> None:
        router = self.router
        no_job = "Unknown job."
        submit_extra = openapi.json_body(wire.SubmitJob, "The job: a model, its inputs, `explain`.")
        submit_answers = {201: "A new job.", 200: "The job this `Idempotency-Key` made before."}
        if self.config.extensions:
            key = Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)]
            why = "[ext] The same key with the same body answers the first job again (200)."
            submit_extra["parameters"] = [parameter("Idempotency-Key", "header", key, why)]
        else:
            submit_answers = {201: "A new job."}

        @router.post(
            "/jobs",
            status_code=201,
            response_model=None,
            responses={
                **answers(wire.Job, submit_answers),
                **self._errors(
                    body=True,
                    e400="A body that is not strict JSON, or a field the service refuses (named).",
                    **(
                        {"e409": "[ext] `Idempotency-Key` used before with another body."}
                        if self.config.extensions
                        else {}
                    ),
                ),
            },
            openapi_extra=submit_extra,
        )
        async def submit(request: Request) -> Response:
            body = await json_body(request)
            job = parse_submit(body, self.config.test_controls, self.access_key)
            idempotency = None
            # [ext] Modzy ignores the header: the real profile creates a job per POST.
            key = request.headers.get("idempotency-key") if self.config.extensions else None
            if key is not None:
                if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
                    raise bad_request(f"header 'Idempotency-Key' must be 1..{MAX_IDEMPOTENCY_KEY} characters")
                idempotency = (key, canonical_hash(body))
            now = time.time()
            try:
                row, created = await run_in_threadpool(
                    store.insert_job, self.db, job, job_doc(job, now), now, idempotency
                )
            except store.KeyConflict:
                raise HTTPException(
                    status_code=409,
                    detail=f"Idempotency-Key {key!r} was already used with a different request body",
                ) from None
            if created:
                self.runner.wake_threadsafe()
            return json_reply(job_json(row), status_code=201 if created else 200)

        # Registered before /jobs/{job_id} so "history" is not taken for a job id.
        @router.get(
            "/jobs/history",
            response_model=None,
            responses={
                **answers(wire.JobList, {200: "Jobs, newest first unless told otherwise."}),
                **self._errors(e400="A query parameter out of range (named)."),
            },
            openapi_extra={"parameters": _HISTORY_PARAMETERS},
        )
        def history(request: Request) -> Response:
            return json_reply("[" + ",".join(job_json(row) for row in self._history_rows(request)) + "]")

        if self.config.extensions:
            self._add_extension_routes()

        @router.get(
            "/jobs/{job_id}",
            response_model=None,
            responses={**answers(wire.Job, {200: "The job."}), **self._errors(e404=no_job)},
        )
        def get_job(job_id: str) -> Response:
            return json_reply(job_json(self._job_row(job_id)))

        @router.delete(
            "/jobs/{job_id}",
            response_model=None,
            responses={
                **answers(wire.Job, {200: "The job, now CANCELED."}),
                **self._errors(e404=no_job, e409="The job is already terminal."),
            },
        )
        def cancel(job_id: str) -> Response:
            try:
                row = store.cancel_job(self.db, job_id, time.time())
            except store.AlreadyTerminal as exc:
                raise HTTPException(
                    status_code=409, detail=f"job {job_id!r} is already {exc.status} and cannot be canceled"
                ) from None
            if row is None:
                raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
            self.hub.publish_threadsafe([job_id])
            return json_reply(job_json(row))

        @router.get(
            "/results/{job_id}",
            response_model=None,
            responses={
                **answers(wire.Results, {200: "The job's results so far."}),
                **self._errors(e404="Unknown job, or no result yet (still SUBMITTED)."),
            },
        )
        def results(job_id: str) -> JSONResponse:
            job = self._job_row(job_id)
            if job["status"] == SUBMITTED:
                raise HTTPException(
                    status_code=404, detail=f"no results yet for job {job_id!r}: it is still {SUBMITTED}"
                )
            # Read after the job row, so a job seen terminal comes with every one of its inputs.
            inputs = self.db.connection().execute(
                "SELECT * FROM inference_inputs WHERE job_id = ? ORDER BY position", (job_id,)
            )
            return JSONResponse(results_body(job, list(inputs)))

    def _add_extension_routes(self) -> None:
        """[ext] Batch status, watch and ``/done``: the real profile has none (a gateway's 404/405)."""
        router = self.router

        @router.get(
            "/jobs",
            response_model=None,
            responses={
                **answers(wire.Jobs, {200: "The known jobs among those asked for."}),
                **self._errors(e400="No `identifiers`, or more than 500."),
            },
            openapi_extra={
                "parameters": [
                    _query("identifiers", str, f"Comma-separated job identifiers (at most {MAX_BATCH_IDS}).", True)
                ]
            },
        )
        def batch_status(request: Request) -> Response:
            raw = request.query_params.get("identifiers")
            if raw is None:
                raise bad_request("query parameter 'identifiers' is required (comma-separated job identifiers)")
            ids = list(dict.fromkeys(i.strip() for i in raw.split(",") if i.strip()))
            if len(ids) > MAX_BATCH_IDS:
                raise bad_request(f"query parameter 'identifiers' lists {len(ids)} jobs; at most {MAX_BATCH_IDS}")
            return jobs_reply(self._job_rows(ids))

        @router.post(
            "/jobs:watch",
            response_model=None,
            responses={
                **answers(wire.Jobs, {200: "The jobs that changed, or none once `timeout` passed."}),
                **self._errors(body=True, e400="A body that is not strict JSON, or a field out of range (named)."),
            },
            openapi_extra=openapi.json_body(wire.WatchJobs, "The jobs to watch and what the caller knows of them."),
        )
        async def watch(request: Request) -> Response:
            ids, timeout, known = parse_watch(await json_body(request))
            return jobs_reply(await self._watch(ids, timeout, known))

        @router.get(
            "/jobs/{job_id}/done",
            response_model=None,
            responses={
                **answers(wire.Job, {200: "The job, terminal."}),
                **self._errors(e404="Unknown job, or still running."),
            },
        )
        def job_done(job_id: str) -> Response:
            """[ext] 200 Job once terminal, 404 while running: for generic not-404 pollers."""
            rows = self._job_rows([job_id])
            if not rows or rows[0]["status"] not in TERMINAL:
                status = rows[0]["status"] if rows else "unknown"
                raise HTTPException(status_code=404, detail=f"job {job_id!r} is not done ({status})")
            return json_reply(job_json(rows[0]))

    def _add_stats_routes(self) -> None:
        @self.router.post("/_test/finish", include_in_schema=False)
        async def finish(request: Request) -> dict[str, Any]:
            """End running jobs now: ``{"identifiers": [...], "status": "COMPLETED"}`` -> ``{"finished": [...]}``."""
            body = await json_body(request)
            ids = body.get("identifiers") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_BATCH_IDS:
                raise bad_request(f"field 'identifiers' must be a list of at most {MAX_BATCH_IDS} job identifiers")
            status = body.get("status", store.COMPLETED)
            if status not in TERMINAL:
                raise bad_request(f"field 'status' must be one of {', '.join(sorted(TERMINAL))}, got {status!r}")
            ended = await run_in_threadpool(store.finish_jobs, self.db, ids, status, time.time())
            self.hub.publish(ended)
            return {"finished": ended}

        @self.router.get("/_test/stats", include_in_schema=False)
        def get_stats() -> dict[str, Any]:
            return self.stats.snapshot()

        @self.router.delete("/_test/stats", include_in_schema=False)
        def reset_stats() -> dict[str, Any]:
            return self.stats.reset()

    def _history_rows(self, request: Request) -> list[sqlite3.Row]:
        params = request.query_params
        status = (params.get("status") or "all").lower()
        if status not in HISTORY_STATUSES:
            raise bad_request(f"query parameter 'status' must be all, pending or terminated, got {status!r}")
        direction = (params.get("direction") or "desc").lower()
        if direction not in ("asc", "desc"):
            raise bad_request(f"query parameter 'direction' must be asc or desc, got {direction!r}")
        page = _query_int(request, "page", 1, 1_000_000)
        per_page = _query_int(request, "per-page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        where: list[str] = []
        args: list[Any] = []
        statuses = HISTORY_STATUSES[status]
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(sorted(statuses))
        model = params.get("model")
        if model:
            # The public client documents ``model`` as a model name or identifier.
            ids = [s.identifier for s in MODELS.values() if model in (s.identifier, s.name)] or [model]
            where.append(f"model_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if params.get("accessKey"):
            where.append("access_key = ?")
            args.append(params["accessKey"])
        # The public client sends dates as ISO-8601 (``datetime.isoformat``), naive or with an offset.
        for name, op in (("startDate", ">="), ("endDate", "<=")):
            if params.get(name):
                where.append(f"submitted_at {op} ?")
                args.append(_query_date(params[name], name))
        sql = f"SELECT {JOB_COLUMNS} FROM inference_jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if direction == "desc" else "ASC"
        sql += f" ORDER BY submitted_at {order}, rowid {order} LIMIT ? OFFSET ?"
        args += [per_page, (page - 1) * per_page]
        return list(self.db.connection().execute(sql, args))

    async def _watch(self, ids: list[str], timeout: float, known: dict[str, str]) -> list[sqlite3.Row]:
        """Wait until a listed job's status differs from ``known`` (or is terminal), at most ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Subscribed before the first read: a change between read and wait still sets the event.
        event = self.hub.subscribe(ids)
        try:
            while True:
                event.clear()
                rows = await run_in_threadpool(self._job_rows, ids)
                changed = [r for r in rows if r["status"] in TERMINAL or known.get(r["id"]) != r["status"]]
                remaining = deadline - loop.time()
                if changed or remaining <= 0:
                    return changed
                try:
                    await asyncio.wait_for(event.wait(), timeout=remaining)
                except TimeoutError:
                    return []
        finally:
            self.hub.unsubscribe(ids, event)


def create(config: ServiceConfig, db: Database) -> InferenceFamily:
    """Build the inference family (runs its DDL)."""
    return InferenceFamily(config, db)
