"""Bad input, table-driven: every row names the exact exception, what its message must name, and
checks that nothing was submitted or changed on the service.

Rows run against the session's reference service (``service``), or against a canned stub service
for answers the reference service never gives (schema-violating bodies). After every row:

- the exception is exactly ``raises`` (not a subclass) and its message names each of ``mentions``;
- an ``InvalidResponse`` names the offending field in ``.field`` when the row says which;
- neither the message nor the ``repr`` holds the API key;
- the service's state (job, dataset, compute and results-store rows; the stored works verbatim) is
  what it was before the row; the stub saw at most the one request of the row.

Rows that fail because of a gap in a module this suite does not own are ``xfail(strict=True)``:
the reason names the fix, and the row passes (so strict xfail fails) once it is made.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess
from pydantic import ValidationError

from airflow_jobwait.client import inference as inference_api
from airflow_jobwait.client import results_store as results_api
from airflow_jobwait.client.http import AuthScheme, Call, HttpRequest, HttpResponse, decode_json, expect
from airflow_jobwait.client.job_kinds import status_call
from airflow_jobwait.client.results_store import NotLockedError, UnknownWorksError
from airflow_jobwait.exceptions import ApiError, Conflict, InvalidResponse, NotFound, Unauthorized
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.compute import ComputeHook
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest
from airflow_jobwait.models.compute import ComputeJobRef
from airflow_jobwait.operators import SubmitJobOperator
from airflow_jobwait.operators.compute import SubmitComputeTaskOperator
from airflow_jobwait.sensors import JobSensor
from airflow_jobwait.triggers import JobTrigger
from airflow_jobwait.waiting import JobFailedError
from tests._liveness import LIVENESS_S
from tests._scripted_service import ScriptedService, scripted_service
from tests.conftest import API_KEY, CONN_ID, FAMILIES, connection_json

ORG = str(uuid.UUID(int=8))
DATASET = "demo-dataset"
UNKNOWN = "00000000-0000-4000-8000-00000000dead"  # a job id no service knows
STUB_CONN = "jobwait_stub"
TEN_KB = "j" * 10 * 1024
WRONG_KEY = "pubkey123.wrong-secret-of-the-bad-input-table"


# ---- the stub: a service that answers whatever a row needs -----------------------------------


@pytest.fixture(scope="module")
def stub() -> Iterator[ScriptedService]:
    with scripted_service() as server:
        yield server


# ---- the service's state ---------------------------------------------------------------------

# Tables only requests write to (background progress adds drafts and search results, and moves
# job statuses, so those are not compared): their ids; the results store verbatim.
_ID_TABLES = {
    "inference_jobs": "id",
    "inference_idempotency": "key",
    "tb_datasets": "dataset_id",
    "tb_jobs": "job_id",
    "cp_jobs": "job_id",
}


def service_state(db_path: Path) -> dict[str, Any]:
    """What a bad input must leave alone, read straight from the service's SQLite file."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as conn:
        state: dict[str, Any] = {
            table: sorted(str(row[0]) for row in conn.execute(f"SELECT {column} FROM {table}"))
            for table, column in _ID_TABLES.items()
        }
        state["results_store_works"] = conn.execute(
            "SELECT id, pipeline, locked, doc FROM results_store_works ORDER BY seq"
        ).fetchall()
    return state


# ---- what a row gets to work with ------------------------------------------------------------


@dataclass
class World:
    """Things a row acts on, created once per module before any row runs."""

    pipeline: str
    locked_id: str
    unlocked_id: str
    job_id: str  # a completed inference job
    compute_ref: ComputeJobRef  # an unknown compute job under a valid org


@dataclass
class Ctx:
    service: ServiceProcess
    stub: ScriptedService
    world: World
    monkeypatch: pytest.MonkeyPatch
    jobs: JobsHook = field(init=False)
    results: ResultsHook = field(init=False)
    datasets: DatasetJobsHook = field(init=False)
    compute: ComputeHook = field(init=False)

    def __post_init__(self) -> None:
        # Each family on its default connection (of its own type) to the service.
        self.jobs, self.results = JobsHook(), ResultsHook()
        self.datasets, self.compute = DatasetJobsHook(), ComputeHook()

    def conn(self, conn_id: str, conn_type: str = "modzy", **fields: Any) -> str:
        """Define connection ``conn_id`` of ``conn_type``: the service's, with ``fields`` (``extra``
        merged) overriding."""
        base = json.loads(connection_json(self.service, conn_type))
        extra = {**base["extra"], **fields.pop("extra", {})}
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**base, **fields, "extra": extra}))
        return conn_id

    def stub_hook(self, cls: type[JobsHook] = JobsHook) -> Any:
        # The stub answers at the paths the service has: the family's base path is kept.
        return cls(self.conn(STUB_CONN, cls.conn_type, host=self.stub.base_url + FAMILIES[cls.conn_type][1]))

    def raw(self, method: str, path: str, auth: AuthScheme, body: Any = None, params: tuple = ()) -> Any:
        """A request the provider's own helpers would refuse, sent through its core: 2xx JSON or raise."""
        request = HttpRequest(method, path, auth, params=params, json_body=body, idempotent=False)

        def parse(response: HttpResponse) -> Any:
            expect(request, response)
            return decode_json(response)

        return self.jobs.call(Call(request, parse))

    def raw_bytes(self, path: str, data: Any, auth: AuthScheme) -> Any:
        """POST bytes no JSON encoder would produce (or a chunked stream), mapped by the core's ``expect``."""
        request = HttpRequest("POST", path, auth)
        headers = {"content-type": "application/json", **auth.render(self.service.api_key)}
        resp = requests.post(self.service.base_url + path, data=data, headers=headers, timeout=30)
        response = HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content)
        expect(request, response)
        return decode_json(response)


def _work(pipeline: str, work_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": work_id, "pipeline": pipeline, "status": "success", "results": {"snr": 1.5}, **fields}


@pytest.fixture(scope="module")
def world(service: ServiceProcess) -> World:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in service.connection_env().items():
            patch.setenv(name, value)
        results, jobs = ResultsHook(), JobsHook()
        pipeline = f"bad-input-{uuid.uuid4().hex[:8]}"
        locked_id, unlocked_id = f"{pipeline}-locked", f"{pipeline}-unlocked"
        results.deposit([_work(pipeline, locked_id), _work(pipeline, unlocked_id)])
        results.lock(pipeline, [locked_id])
        request = SubmitJobRequest(
            model=ModelRef(identifier="echo", version="1.0"), input=JobInput(sources={"a": {"input.txt": "hi"}})
        )
        job_id = jobs.submit_job(request).job_identifier
        assert jobs.wait_for_job(job_id, poll_interval=0.1, timeout=LIVENESS_S).succeeded
    ref = ComputeJobRef(org_id=ORG, topic="demo", task="wordcount", job_id=UNKNOWN)
    return World(pipeline, locked_id, unlocked_id, job_id, ref)


@pytest.fixture
def ctx(
    service: ServiceProcess, stub: ScriptedService, world: World, jobwait_conn: str, monkeypatch: pytest.MonkeyPatch
) -> Ctx:
    return Ctx(service, stub, world, monkeypatch)


# ---- helpers for rows --------------------------------------------------------------------------


def deep_query(levels: int) -> dict[str, Any]:
    """``{"$and": [{"$and": [... {"id": "x"} ...]}]}``: two levels of nesting per ``$and``."""
    query: dict[str, Any] = {"id": "x"}
    for _ in range(levels // 2):
        query = {"$and": [query]}
    return query


def run_trigger_then_resume(c: Ctx, job_id: str) -> Any:
    """Wait in the trigger, then resume the sensor with the event, as the triggerer would."""
    trigger = JobTrigger(job_id, CONN_ID, poll_interval=0.1)
    outcome = asyncio.run(asyncio.wait_for(trigger.wait(), LIVENESS_S))
    sensor = JobSensor(task_id="wait", job_id=job_id, conn_id=CONN_ID)
    return sensor.execute_complete({}, outcome.to_payload())  # type: ignore[arg-type]


def submit_op(**kwargs: Any) -> SubmitJobOperator:
    args: dict[str, Any] = {"task_id": "submit", "model_id": "echo", "inputs": {"a": {"input.txt": "hi"}}}
    return SubmitJobOperator(**{**args, **kwargs})


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of ``total`` bytes sent chunked (no Content-Length): ``[{"x": "aaaa..."}]``."""
    yield b'[{"x": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}]'


def answer(c: Ctx, method: str, path: str, body: Any, status: int = 200, **headers: str) -> Ctx:
    c.stub.play(method, path, body, status=status, **headers)
    return c


R = results_api.AUTH


@dataclass(frozen=True)
class Case:
    id: str
    target: str  # hooks, operators, sensor, trigger or service
    act: Callable[[Ctx], object]
    raises: type[BaseException]
    mentions: tuple[str, ...]
    field: str | None = None  # InvalidResponse.field
    xfail: str | None = None


CASES: list[Case] = [
    # -- the connection ---------------------------------------------------------------------------
    Case(
        "conn-unknown-id",
        "hooks",
        lambda c: JobsHook("jobwait_no_such_conn").get_job(UNKNOWN),
        AirflowNotFoundException,
        ("jobwait_no_such_conn",),
    ),
    Case(
        "conn-without-host",
        "hooks",
        lambda c: JobsHook(c.conn("jw_nohost", host=None)).get_job(UNKNOWN),
        ValueError,
        ("jw_nohost", "no host"),
    ),
    Case(
        "conn-url-bad-scheme",
        "hooks",
        lambda c: JobsHook(c.conn("jw_ftp", host="ftp://jobs.example.com")).get_job(UNKNOWN),
        ValueError,
        ("jw_ftp", "ftp://jobs.example.com"),
    ),
    Case(
        "conn-url-bad-port",
        "hooks",
        lambda c: JobsHook(c.conn("jw_port", host="http://127.0.0.1:99999")).get_job(UNKNOWN),
        ValueError,
        ("jw_port", "port", "99999"),
    ),
    Case(
        "conn-url-with-query",
        "hooks",
        lambda c: JobsHook(c.conn("jw_query", host="http://127.0.0.1:1/api?x=1")).get_job(UNKNOWN),
        ValueError,
        ("jw_query", "query", "?x=1"),
    ),
    Case(
        "conn-without-key",
        "hooks",
        lambda c: JobsHook(c.conn("jw_nokey", password=None)).get_job(UNKNOWN),
        ValueError,
        ("jw_nokey", "API key", "Password"),
    ),
    Case(
        "conn-verify-not-bool",
        "hooks",
        lambda c: JobsHook(c.conn("jw_verify", extra={"verify": "no"})).get_job(UNKNOWN),
        ValueError,
        ("jw_verify", "verify", "'no'"),
    ),
    Case(
        "conn-timeout-negative",
        "hooks",
        lambda c: JobsHook(c.conn("jw_timeout", extra={"timeout": -1})).get_job(UNKNOWN),
        ValueError,
        ("jw_timeout", "timeout"),
    ),
    Case(
        "conn-max-response-bytes-zero",
        "hooks",
        lambda c: JobsHook(c.conn("jw_cap", extra={"max_response_bytes": 0})).get_job(UNKNOWN),
        ValueError,
        ("jw_cap", "max_response_bytes"),
    ),
    # -- job ids ----------------------------------------------------------------------------------
    Case("job-id-empty", "hooks", lambda c: c.jobs.get_job(""), ValueError, ("job_id", "empty")),
    Case("job-id-none", "hooks", lambda c: c.jobs.get_job(None), ValueError, ("job_id", "None")),  # type: ignore[arg-type]
    Case("job-id-whitespace", "hooks", lambda c: c.jobs.get_job(" \t "), ValueError, ("job_id", "whitespace")),
    Case("job-id-slash", "hooks", lambda c: c.jobs.get_job("a/b"), ValueError, ("job_id", "'a/b'")),
    Case("job-id-dotdot", "hooks", lambda c: c.jobs.get_results(".."), ValueError, ("job_id", "'..'")),
    Case("job-id-traversal", "hooks", lambda c: c.jobs.cancel_job("../models"), ValueError, ("job_id", "../models")),
    Case("job-id-10kb", "hooks", lambda c: c.jobs.get_job(TEN_KB), ValueError, ("job_id", "10240")),
    Case(
        "job-id-10kb-batch",
        "hooks",
        lambda c: c.jobs.call(inference_api.batch_status(["ok", TEN_KB])),
        ValueError,
        ("job_id", "10240"),
    ),
    Case(
        "dataset-job-id-slash",
        "hooks",
        lambda c: c.datasets.get_job(DATASET, "a/b", "squashAndMerge"),
        ValueError,
        ("job_id", "'a/b'"),
    ),
    Case(
        "dataset-id-dotdot",
        "hooks",
        lambda c: c.datasets.get_job("..", UNKNOWN, "squashAndMerge"),
        ValueError,
        ("dataset_id", "'..'"),
    ),
    Case(
        "compute-job-id-slash",
        "hooks",
        lambda c: c.compute.get_status(c.world.compute_ref.model_copy(update={"job_id": "x/../y"})),
        ValueError,
        ("job_id", "x/../y"),
    ),
    Case(
        "results-ids-empty",
        "hooks",
        lambda c: c.results.delete_ids(c.world.pipeline, []),
        ValueError,
        ("ids", "at least one"),
    ),
    Case("results-pipeline-blank", "hooks", lambda c: c.results.view("  ", {}), ValueError, ("pipeline", "'  '")),
    # -- unknown jobs (404) -----------------------------------------------------------------------
    Case("unknown-job-get", "hooks", lambda c: c.jobs.get_job(UNKNOWN), NotFound, (UNKNOWN, "404")),
    Case("unknown-job-cancel", "hooks", lambda c: c.jobs.cancel_job(UNKNOWN), NotFound, (UNKNOWN, "404")),
    Case("unknown-job-results", "hooks", lambda c: c.jobs.get_results(UNKNOWN), NotFound, (UNKNOWN, "404")),
    Case(
        "unknown-dataset-job",
        "hooks",
        lambda c: c.datasets.get_job(DATASET, UNKNOWN, "squashAndMerge"),
        NotFound,
        (UNKNOWN, "404"),
    ),
    Case(
        "unknown-dataset",
        "hooks",
        lambda c: c.datasets.list_jobs("no-such-dataset", "squashAndMerge"),
        NotFound,
        ("no-such-dataset", "404"),
    ),
    Case(
        "unknown-compute-job", "hooks", lambda c: c.compute.get_status(c.world.compute_ref), NotFound, (UNKNOWN, "404")
    ),
    Case(
        "unknown-compute-cancel", "hooks", lambda c: c.compute.cancel(c.world.compute_ref), NotFound, (UNKNOWN, "404")
    ),
    # -- status filters ---------------------------------------------------------------------------
    Case(
        "history-status-invalid",
        "hooks",
        lambda c: c.jobs.call(inference_api.history(status="bogus")),
        ValueError,
        ("status", "'bogus'"),
    ),
    Case(
        "dataset-status-invalid",
        "hooks",
        lambda c: c.datasets.list_jobs(DATASET, "squashAndMerge", status="DONE"),
        ValueError,
        ("status", "'DONE'"),
    ),
    Case(
        "draft-status-invalid",
        "hooks",
        lambda c: c.datasets.list_drafts(DATASET, status="MERGED"),
        ValueError,
        ("status", "'MERGED'"),
    ),
    Case(
        "dataset-job-type-invalid",
        "hooks",
        lambda c: c.datasets.get_job(DATASET, UNKNOWN, job_type="merge"),
        ValueError,
        ("job_type", "'merge'"),
    ),
    Case(
        "dataset-limit-huge",
        "hooks",
        lambda c: c.datasets.list_jobs(DATASET, "squashAndMerge", limit=10**6),
        ValueError,
        ("limit", "1000000"),
    ),
    Case(
        "service-history-status-invalid",
        "service",
        lambda c: c.raw("GET", "/api/jobs/history", inference_api.AUTH, params=(("status", "bogus"),)),
        ApiError,
        ("400", "status", "'bogus'"),
    ),
    # -- poll interval and timeout ----------------------------------------------------------------
    Case(
        "hook-poll-interval-zero",
        "hooks",
        lambda c: c.jobs.wait_for_job(c.world.job_id, poll_interval=0),
        ValueError,
        ("poll_interval", "0"),
    ),
    Case(
        "hook-poll-interval-negative",
        "hooks",
        lambda c: c.jobs.wait_for_job(c.world.job_id, poll_interval=-1),
        ValueError,
        ("poll_interval", "-1"),
    ),
    Case(
        "hook-poll-interval-nan",
        "hooks",
        lambda c: c.jobs.wait_for_job(c.world.job_id, poll_interval=math.nan),
        ValueError,
        ("poll_interval", "nan"),
    ),
    Case(
        "hook-timeout-negative",
        "hooks",
        lambda c: c.jobs.wait_for_job(c.world.job_id, timeout=-5),
        ValueError,
        ("timeout", "-5"),
    ),
    Case(
        "hook-timeout-nan",
        "hooks",
        lambda c: c.jobs.wait_for_job(c.world.job_id, timeout=math.nan),
        ValueError,
        ("timeout", "nan"),
    ),
    Case(
        "trigger-poll-interval-zero",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, poll_interval=0),
        ValueError,
        ("poll_interval", "0"),
    ),
    Case(
        "trigger-poll-interval-nan",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, poll_interval=math.nan),
        ValueError,
        ("poll_interval", "nan"),
    ),
    Case(
        "trigger-progress-interval-negative",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, progress_interval=-1),
        ValueError,
        ("progress_interval", "-1"),
    ),
    Case(
        "trigger-deadline-nan",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, deadline=math.nan),
        ValueError,
        ("deadline", "nan"),
    ),
    Case("trigger-job-id-slash", "trigger", lambda c: JobTrigger("a/b", CONN_ID), ValueError, ("job_id", "'a/b'")),
    Case("trigger-job-id-empty", "trigger", lambda c: JobTrigger("", CONN_ID), ValueError, ("job_id", "empty")),
    Case(
        "trigger-job-kind-unknown",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, job_kind="batch"),
        ValueError,
        ("job_kind", "'batch'"),
    ),
    Case(
        "trigger-dataset-ref-missing",
        "trigger",
        lambda c: JobTrigger(UNKNOWN, CONN_ID, job_kind="dataset"),
        ValueError,
        ("job_ref", "dataset_id"),
    ),
    Case(
        "trigger-unknown-job",
        "trigger",
        lambda c: run_trigger_then_resume(c, UNKNOWN),
        JobFailedError,
        (UNKNOWN, "404"),
    ),
    Case(
        "sensor-poll-interval-zero",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN, poll_interval=0),
        ValueError,
        ("poll_interval", "0"),
    ),
    Case(
        "sensor-poll-interval-negative",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN, poll_interval=-1),
        ValueError,
        ("poll_interval", "-1"),
    ),
    Case(
        "sensor-poll-interval-nan",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN, poll_interval=math.nan),
        ValueError,
        ("poll_interval", "nan"),
    ),
    Case(
        "sensor-timeout-negative",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN, timeout=-1),
        ValueError,
        ("timeout",),
    ),
    Case(
        "sensor-job-kind-unknown",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN, job_kind="batch"),
        ValueError,
        ("job_kind", "'batch'"),
    ),
    Case(
        "sensor-unknown-job",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id=UNKNOWN).poke({}),  # type: ignore[arg-type]
        NotFound,
        (UNKNOWN, "404"),
    ),
    Case(
        "sensor-job-id-slash",
        "sensor",
        lambda c: JobSensor(task_id="w", job_id="a/b").poke({}),  # type: ignore[arg-type]
        ValueError,
        ("job_id", "'a/b'"),
    ),
    Case(
        "operator-poll-interval-zero",
        "operators",
        lambda c: submit_op(wait_for_completion=True, poll_interval=0),
        ValueError,
        ("poll_interval", "0"),
    ),
    Case(
        "operator-wait-timeout-negative",
        "operators",
        lambda c: submit_op(wait_for_completion=True, wait_timeout=-1),
        ValueError,
        ("wait_timeout", "-1"),
    ),
    Case(
        "compute-operator-poll-interval-nan",
        "operators",
        lambda c: SubmitComputeTaskOperator(
            task_id="c", org_id=ORG, topic="demo", task="wordcount", parameters={}, poll_interval=math.nan
        ),
        ValueError,
        ("poll_interval", "nan"),
    ),
    # -- inputs that are not JSON -----------------------------------------------------------------
    Case(
        "operator-inputs-not-json",
        "operators",
        lambda c: submit_op(inputs={"a": {"input.txt": object()}}).execute({}),  # type: ignore[arg-type]
        ValueError,
        ("inputs", "JSON", "object"),
    ),
    Case(
        "operator-inputs-nan",
        "operators",
        lambda c: submit_op(inputs={"a": {"input.txt": math.nan}}).execute({}),  # type: ignore[arg-type]
        ValueError,
        ("inputs", "a.input.txt", "nan"),
    ),
    Case(
        "operator-model-id-empty",
        "operators",
        lambda c: submit_op(model_id="").execute({}),  # type: ignore[arg-type]
        ValueError,
        ("model.identifier", "model_id"),
    ),
    Case(
        "operator-inputs-empty",
        "operators",
        lambda c: submit_op(inputs={}).execute({}),  # type: ignore[arg-type]
        ValueError,
        ("input.sources", "inputs"),
    ),
    Case(
        "hook-submit-inputs-not-json",
        "hooks",
        lambda c: c.jobs.submit_job(
            SubmitJobRequest(
                model=ModelRef(identifier="echo", version="1.0"), input=JobInput(sources={"a": {"when": {1, 2}}})
            )
        ),
        ValidationError,
        ("sources", "a.when", "set"),
    ),
    Case(
        "compute-parameters-not-json",
        "hooks",
        lambda c: c.compute.submit(ORG, "demo", "wordcount", {"text": b"bytes"}),
        ValueError,
        ("parameters.text", "bytes"),
    ),
    Case(
        "compute-parameters-infinite",
        "hooks",
        lambda c: c.compute.submit(ORG, "demo", "sleep", {"seconds": math.inf}),
        ValueError,
        ("parameters.seconds", "inf"),
    ),
    Case(
        "dataset-arguments-not-json",
        "hooks",
        lambda c: c.datasets.basic_search(DATASET, "search", {"since": datetime(2026, 1, 1)}),
        ValueError,
        ("arguments.since", "datetime"),
    ),
    Case(
        "dataset-strategy-invalid",
        "hooks",
        lambda c: c.datasets.squash_and_merge(DATASET, "t", "feature", "main", strategy="merge"),
        ValueError,
        ("strategy", "merge"),
    ),
    Case(
        "results-work-not-json",
        "hooks",
        lambda c: c.results.deposit([_work(c.world.pipeline, "nan-work", results={"snr": math.nan})]),
        ValueError,
        ("nan-work", "results.snr", "nan"),
    ),
    # -- results store queries --------------------------------------------------------------------
    Case(
        "query-where",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, {"$where": "sleep(10000)"}),
        ApiError,
        ("400", "'$where'"),
    ),
    Case(
        "query-function",
        "hooks",
        lambda c: c.results.view(
            c.world.pipeline, {"results.snr": {"$function": {"body": "return 1", "args": [], "lang": "js"}}}
        ),
        ApiError,
        ("400", "'$function'", "results.snr"),
    ),
    Case(
        "query-accumulator",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, {"results": {"$accumulator": {"init": "function(){}"}}}),
        ApiError,
        ("400", "'$accumulator'"),
    ),
    Case(
        "query-where-inside-or",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, {"$or": [{"id": "x"}, {"$where": "1"}]}),
        ApiError,
        ("400", "'$where'"),
    ),
    Case(
        "query-expr",
        "hooks",
        lambda c: c.results.count(c.world.pipeline, {"$expr": {"$eq": ["$id", "$id"]}}),
        ApiError,
        ("400", "'$expr'"),
    ),
    Case(
        "query-deep",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, deep_query(40)),
        ApiError,
        ("400", "nested too deeply"),
    ),
    Case(
        "query-very-deep",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, deep_query(2000)),
        ValueError,
        ("query", "nested more than"),
    ),
    Case(
        "view-limit-huge",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, {}, limit=10**9),
        ValueError,
        ("limit", "1000000000"),
    ),
    Case(
        "view-skip-negative",
        "hooks",
        lambda c: c.results.view(c.world.pipeline, {}, skip=-1),
        ValueError,
        ("skip", "-1"),
    ),
    Case(
        "get-locked-count-huge",
        "hooks",
        lambda c: c.results.get_locked(c.world.pipeline, count=10**6),
        ValueError,
        ("count", "1000000"),
    ),
    Case(
        "service-view-limit-huge",
        "service",
        lambda c: c.raw("POST", "/workflow/view", R, {"query": {}, "limit": 10**9}),
        ApiError,
        ("400", "'limit'", "1000000000"),
    ),
    Case(
        "service-view-skip-negative",
        "service",
        lambda c: c.raw("POST", "/workflow/view", R, {"query": {}, "skip": -1}),
        ApiError,
        ("400", "'skip'", "-1"),
    ),
    Case(
        "service-view-query-function",
        "service",
        lambda c: c.raw("POST", "/workflow/view", R, {"query": {"$function": {"body": "1"}}}),
        ApiError,
        ("400", "'$function'"),
    ),
    Case(
        "service-body-nested-100k",
        "service",
        lambda c: c.raw_bytes("/workflow/view/count", b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", R),
        ApiError,
        ("400", "nested too deeply"),
    ),
    # -- results store deposits, updates, locks ---------------------------------------------------
    Case(
        "deposit-status-running",
        "hooks",
        lambda c: c.results.deposit([_work(c.world.pipeline, "w-running", status="running")]),
        ValueError,
        ("w-running", "'running'", "status"),
    ),
    Case(
        "deposit-status-missing",
        "hooks",
        lambda c: c.results.deposit([_work(c.world.pipeline, "w-nostatus", status=None)]),
        ValueError,
        ("w-nostatus", "status"),
    ),
    Case(
        "service-deposit-status-running",
        "service",
        lambda c: c.raw("POST", "/workflow/results", R, [_work(c.world.pipeline, "w-raw", status="running")]),
        ApiError,
        ("400", "w-raw", "'status'", "'running'"),
    ),
    Case(
        "deposit-existing-id",
        "hooks",
        lambda c: c.results.deposit([_work(c.world.pipeline, c.world.unlocked_id)]),
        Conflict,
        ("409", "-unlocked"),
    ),
    Case(
        "update-locked",
        "hooks",
        lambda c: c.results.update([{"id": c.world.locked_id, "priority": 9}]),
        Conflict,
        ("409", "-locked"),
    ),
    Case(
        "update-locked-results",
        "hooks",
        lambda c: c.results.update([{"id": c.world.locked_id, "results": {"snr": 0.0, "locked": True}}]),
        Conflict,
        ("409", "-locked"),
    ),
    Case(
        "delete-locked",
        "hooks",
        lambda c: c.results.delete_ids(c.world.pipeline, [c.world.locked_id]),
        Conflict,
        ("409", "-locked"),
    ),
    Case(
        "unlock-locked-by-nobody",
        "hooks",
        lambda c: c.results.unlock(c.world.pipeline, [c.world.unlocked_id], force=True),
        NotLockedError,
        ("-unlocked", "not locked"),
    ),
    Case(
        "unlock-without-force",
        "hooks",
        lambda c: c.results.unlock(c.world.pipeline, [c.world.locked_id]),
        ValueError,
        ("-locked", "force=True"),
    ),
    Case(
        "lock-unknown",
        "hooks",
        lambda c: c.results.lock(c.world.pipeline, ["ghost-work"]),
        UnknownWorksError,
        ("ghost-work",),
    ),
    Case(
        "update-unknown",
        "hooks",
        lambda c: c.results.update([{"id": "ghost-work", "priority": 1}]),
        NotFound,
        ("404", "ghost-work"),
    ),
    # -- what the service answers -----------------------------------------------------------------
    Case(
        "response-not-json-job",
        "hooks",
        lambda c: _faulted(c, "/api/jobs/", lambda: c.jobs.get_job(c.world.job_id)),
        InvalidResponse,
        ("not JSON", "<html>"),
    ),
    Case(
        "response-not-json-view",
        "hooks",
        lambda c: _faulted(c, "/workflow/view", lambda: c.results.view(c.world.pipeline, {})),
        InvalidResponse,
        ("view answer", "not JSON"),
    ),
    Case(
        "response-not-json-dataset",
        "hooks",
        lambda c: _faulted(c, "/gatewayv2/", lambda: c.datasets.list_jobs(DATASET, "squashAndMerge")),
        InvalidResponse,
        ("job list of dataset", "not JSON"),
    ),
    Case(
        "response-not-json-compute",
        "hooks",
        lambda c: _faulted(c, "/compute/", lambda: c.compute.get_status(c.world.compute_ref)),
        InvalidResponse,
        ("status of compute job", "not JSON"),
    ),
    Case(
        "response-job-status-unknown",
        "hooks",
        lambda c: (
            # Not a string: malformed. (A string status modzy-sdk does not know ends its wait: FAILED.)
            answer(c, "GET", f"/api/jobs/{UNKNOWN}", {"jobIdentifier": UNKNOWN, "status": 7})
            .stub_hook()
            .get_job(UNKNOWN)
        ),
        InvalidResponse,
        (UNKNOWN, "'status'"),
        field="status",
    ),
    Case(
        "response-job-without-id",
        "hooks",
        # An absent id is the one asked for (modzy-sdk never reads it back); an empty one is malformed.
        lambda c: (
            answer(c, "GET", f"/api/jobs/{UNKNOWN}", {"jobIdentifier": "", "status": "SUBMITTED"})
            .stub_hook()
            .get_job(UNKNOWN)
        ),
        InvalidResponse,
        ("'jobIdentifier'",),
        field="jobIdentifier",
    ),
    Case(
        "response-results-total-not-int",
        "hooks",
        lambda c: (
            answer(c, "GET", f"/api/results/{UNKNOWN}", {"jobIdentifier": UNKNOWN, "total": "many"})
            .stub_hook()
            .get_results(UNKNOWN)
        ),
        InvalidResponse,
        ("'total'", "integer"),
        field="total",
    ),
    Case(
        "response-dataset-created-at",
        "hooks",
        lambda c: (
            answer(
                c,
                "GET",
                f"/gatewayv2/tensorbay-open-api/v1/datasets/{DATASET}/jobs",
                {"jobs": [{"jobId": "j1", "createdAt": "yesterday"}]},
            )
            .stub_hook(DatasetJobsHook)
            .list_jobs(DATASET, "squashAndMerge")
        ),
        InvalidResponse,
        ("'jobs.0.createdAt'",),
        field="jobs.0.createdAt",
    ),
    Case(
        "response-dataset-status-unknown",
        "hooks",
        lambda c: (
            answer(
                c,
                "GET",
                f"/gatewayv2/tensorbay-open-api/v1/datasets/{DATASET}/jobs/j1",
                {"jobId": "j1", "status": 7},  # not a string (an unknown string is FAILED, as in tensorbay)
            )
            .stub_hook()
            .call(status_call("dataset", "j1", {"dataset_id": DATASET, "job_type": "squashAndMerge"}))
        ),
        InvalidResponse,
        ("j1", "'status'"),
        field="status",
    ),
    Case(
        "response-compute-progress",
        "hooks",
        lambda c: (
            answer(
                c,
                "GET",
                f"/compute/orgs/{ORG}/demo/wordcount/{UNKNOWN}/status",
                {"status": "in progress", "progress": "half"},
            )
            .stub_hook(ComputeHook)
            .get_status(c.world.compute_ref)
        ),
        InvalidResponse,
        ("'progress'",),
        field="progress",
    ),
    Case(
        "response-compute-location",
        "hooks",
        lambda c: (
            answer(c, "POST", f"/compute/orgs/{ORG}/demo/wordcount", b"", 303, location="/elsewhere")
            .stub_hook(ComputeHook)
            .submit(ORG, "demo", "wordcount", {"text": "a"})
        ),
        InvalidResponse,
        ("Location", "'/elsewhere'"),
        field="Location",
    ),
    Case(
        "response-view-not-array",
        "hooks",
        lambda c: answer(c, "POST", "/workflow/view", {"works": []}).stub_hook(ResultsHook).view("p", {}),
        InvalidResponse,
        ("view answer", "'works'"),
        field="works",
    ),
    Case(
        "response-count-negative",
        "hooks",
        lambda c: answer(c, "POST", "/workflow/view/count", -3).stub_hook(ResultsHook).count("p", {}),
        InvalidResponse,
        ("count answer", "-3"),
    ),
    Case(
        "response-over-size-cap",
        "hooks",
        lambda c: JobsHook(c.conn("jw_small", extra={"max_response_bytes": 64})).get_job(c.world.job_id),
        InvalidResponse,
        ("64-byte", "max_response_bytes"),
    ),
    Case(
        "response-over-size-cap-async",
        "trigger",
        lambda c: asyncio.run(
            JobsHook(c.conn("jw_small_async", extra={"max_response_bytes": 64})).aget_job(c.world.job_id)
        ),
        InvalidResponse,
        ("64-byte", "/api/jobs/"),
    ),
    # -- the service's own refusals ---------------------------------------------------------------
    Case(
        "service-wrong-key-inference",
        "service",
        lambda c: JobsHook(c.conn("jw_wrong", password=WRONG_KEY)).get_job(UNKNOWN),
        Unauthorized,
        ("401", "'Authorization'"),
    ),
    Case(
        "service-wrong-key-results",
        "service",
        lambda c: ResultsHook(c.conn("jw_wrong", "chime_results", password=WRONG_KEY)).count(c.world.pipeline, {}),
        Unauthorized,
        ("401", "'x-access-token'"),
    ),
    Case(
        "service-wrong-key-datasets",
        "service",
        lambda c: DatasetJobsHook(c.conn("jw_wrong", "tensorbay", password=WRONG_KEY)).list_jobs(
            DATASET, "squashAndMerge"
        ),
        Unauthorized,
        ("401", "X-Token"),
    ),
    Case(
        "service-wrong-key-compute",
        "service",
        lambda c: ComputeHook(c.conn("jw_wrong", "evo", password=WRONG_KEY)).submit(
            ORG, "demo", "wordcount", {"text": "a"}
        ),
        Unauthorized,
        ("401", "'Authorization'"),
    ),
    Case(
        "service-body-too-large",
        "service",
        lambda c: c.results.deposit([_work(c.world.pipeline, "w-huge", results={"blob": "x" * 1_100_000})]),
        ApiError,
        ("413", "exceeds 1048576 bytes"),
    ),
    Case(
        "service-body-too-large-chunked",
        "service",
        lambda c: c.raw_bytes("/workflow/results", chunks(3 * 1024 * 1024), R),
        ApiError,
        ("413", "exceeds 1048576 bytes"),
    ),
    Case(
        "service-unknown-model",
        "service",
        lambda c: c.jobs.submit_job(
            SubmitJobRequest(
                model=ModelRef(identifier="no-such-model", version="1.0"),
                input=JobInput(sources={"a": {"input.txt": "x"}}),
            )
        ),
        ApiError,
        ("no-such-model",),
    ),
]


def _faulted(c: Ctx, prefix: str, act: Callable[[], object]) -> object:
    with FaultControl(c.service.base_url, c.service.api_key).injected(
        [{"kind": "invalid_json", "path_prefix": prefix, "count": 1}]
    ):
        return act()


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=f"{case.target}:{case.id}", marks=marks)


def test_the_table_is_complete() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "row ids are unique"
    assert len(CASES) >= 40
    assert {case.target for case in CASES} == {"hooks", "operators", "sensor", "trigger", "service"}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input(case: Case, ctx: Ctx) -> None:
    before = service_state(ctx.service.db_path)
    ctx.stub.seen.clear()

    with pytest.raises(BaseException) as info:
        case.act(ctx)

    err = info.value
    assert type(err) is case.raises, f"raised {type(err).__name__}: {err}"
    message = str(err)
    for expected in case.mentions:
        assert expected in message, f"{expected!r} not named in: {message}"
    if case.field is not None:
        assert isinstance(err, InvalidResponse) and err.field == case.field
    assert API_KEY not in message and API_KEY not in repr(err)
    assert API_KEY.split(".")[1] not in message
    assert service_state(ctx.service.db_path) == before, "the service's state changed"
    assert len(ctx.stub.seen) <= 1, f"a garbled answer is not retried nor followed up: {ctx.stub.seen}"
