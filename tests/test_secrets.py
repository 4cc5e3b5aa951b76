"""Security: the API key stays secret; the reference service authenticates, bounds and sandboxes.

- The key comes only from the Airflow connection and never shows up in trigger kwargs, XCom, logs
  (Airflow's secret masker has it), exception messages or ``repr``s: a full example DAG run is
  captured (stdout/stderr, every log record at DEBUG, serialized triggers, XCom) and searched.
- The reference service answers 401 without a valid key, comparing keys in constant time;
  evaluates results-store queries with a whitelist interpreter (nothing is executed as code);
  keeps SQL parameterised (no request value ever becomes SQL text); answers 413 to bodies over
  its size limit, declared or streamed.
- TLS verification is on by default; only an explicit ``verify: false`` extra turns it off, with
  one warning per connection and process.
"""

from __future__ import annotations

import ast
import asyncio
import hmac
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import jobwait_reference_service as server_package
import pytest
import requests
import structlog
from jobwait_reference_service.mongo_query import SUPPORTED_OPERATORS, QueryError, compile_query
from jobwait_reference_service.process import ServiceProcess
from pytest_mock import MockerFixture

from airflow_jobwait.client.http import ClientConfig, HttpRequest
from airflow_jobwait.client.inference import AUTH as INFERENCE_AUTH
from airflow_jobwait.client.retry import RetryPolicy
from airflow_jobwait.exceptions import ApiError, NotFound, TransportError, Unauthorized
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.sensors import JobSensor
from airflow_jobwait.triggers import JobTrigger
from tests._compat import DagBag
from tests._tls import https_json
from tests.conftest import API_KEY, CONN_ID, connection_json

REPO = Path(__file__).resolve().parents[1]
SECRET = API_KEY.partition(".")[2]  # the part after the public access key id
ORG = str(uuid.UUID(int=3))
DATASETS = "/gatewayv2/tensorbay-open-api/v1/datasets"


def leaks(text: str) -> list[str]:
    """The lines of ``text`` that hold the key's secret part."""
    return [line for line in text.splitlines() if SECRET in line]


def harness_line(line: str) -> bool:
    """Airflow's own ``dag.test()`` harness logs, at DEBUG, the message that registers a secret with the
    masker: ``InProcessSupervisorComms.send`` -> "Sending request ... msg=MaskSecret(value=...)". The real
    supervisor omits that body ("Received message from task runner (body omitted)"), so only test runs
    at DEBUG show it; it is Airflow's, not the provider's."""
    return "Sending request" in line and "msg=MaskSecret(value=" in line


# ---- the key never leaks from a full DAG run ----------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
@pytest.mark.filterwarnings("ignore:Using `httpx`")  # Airflow's in-process execution API, not ours
def test_full_example_dag_run_never_shows_the_key(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, mocker: MockerFixture
) -> None:
    from airflow.models.xcom import XComModel

    from tests._compat import secrets_masker

    _secrets_masker, redact = secrets_masker._secrets_masker, secrets_masker.redact
    reset_secrets_masker = secrets_masker.reset_secrets_masker
    from airflow.utils.session import create_session

    reset_secrets_masker()
    serialize = mocker.spy(JobTrigger, "serialize")
    # The sensor looks once before deferring; make that look see a running job, so the wait always
    # goes through the trigger (serialized, run inline by dag.test()) however fast the job is.
    mocker.patch.object(JobSensor, "poke", return_value=False)
    caplog.set_level(logging.DEBUG)  # stdlib loggers (ours, urllib3, aiohttp) at DEBUG
    bag = DagBag(dag_folder=str(REPO / "dags_examples"))
    dag = bag.dags["jobwait_inference_example"]

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # Airflow's own logs too
    try:
        dag_run = dag.test()
    finally:
        structlog.configure(**saved)

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {"submit_sentiment_job": "success", "wait_for_job": "success", "summarize": "success"}
    out, err = capfd.readouterr()
    records = "\n".join(
        f"{record.name} {record.levelname} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    triggers = [json.dumps(result, default=str) for result in serialize.spy_return_list]
    with create_session() as session:
        xcoms = [
            json.dumps(row.value, default=str)
            for row in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id)
        ]
    job_id = json.loads(next(x for x in xcoms if x.startswith('"'))).strip('"')

    # The captures hold what the run did: the job, its trigger, its results.
    assert triggers and all(job_id in t and CONN_ID in t for t in triggers)
    assert len(xcoms) >= 3 and any("results.json" in x for x in xcoms)
    assert f"job {job_id}: 3/3 inputs completed" in out + err  # the summarize task's own print
    assert "[debug" in out + err, "DEBUG lines were captured"
    assert caplog.records, "log records were captured"
    # ... and never the key.
    for name, text in {
        "stdout": out,
        "stderr": err,
        "log records": records,
        "triggers": "\n".join(triggers),
        "xcom": "\n".join(xcoms),
    }.items():
        found = [line for line in leaks(text) if not harness_line(line)]
        assert not found, f"the API key's secret part is in the {name}: {found[:3]}"
    for trigger in triggers:
        assert "password" not in trigger.lower() and "api_key" not in trigger.lower()

    # Airflow's secret masker learnt the key when the run read the connection.
    assert re.escape(API_KEY) in _secrets_masker().patterns
    assert redact(f"Authorization: ApiKey {API_KEY}") == "Authorization: ApiKey ***"


@pytest.mark.usefixtures("jobwait_conn")
def test_exceptions_and_reprs_never_show_the_key(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = JobsHook(CONN_ID)
    texts = [repr(hook.client_config), str(hook.client_config), repr(hook), repr(hook.client)]
    texts.append(repr(HttpRequest("GET", "/api/jobs/x", INFERENCE_AUTH)))
    texts.append(repr(JobTrigger("job-1", CONN_ID)))
    texts.append(json.dumps(JobTrigger("job-1", CONN_ID).serialize()))
    failures: list[BaseException] = []
    # Each failure is the one the contract names: 404 unknown job (docs/jobs-api.md §1), an id with
    # '/' refused before any request (ValueError naming job_id), a 400 for an unsupported query (§4).
    with pytest.raises(NotFound) as not_found:
        hook.get_job(str(uuid.uuid4()))
    assert not_found.value.status == 404
    with pytest.raises(ValueError, match="job_id") as refused:
        hook.get_job("a/b")
    with pytest.raises(ApiError) as bad_query:
        ResultsHook().view("p", {"$where": "1"})
    assert bad_query.value.status == 400
    failures += [not_found.value, refused.value, bad_query.value]
    # The service answers 401 to a wrong key: the message names the header, not the key sent.
    wrong = f"pubkey123.{SECRET}-but-wrong"
    monkeypatch.setenv("AIRFLOW_CONN_JW_WRONG", json.dumps({**json.loads(connection_json(service)), "password": wrong}))
    with pytest.raises(Unauthorized) as info:
        JobsHook("jw_wrong").get_job(str(uuid.uuid4()))
    failures.append(info.value)
    # A transport failure names the URL, never the headers.
    monkeypatch.setenv(
        "AIRFLOW_CONN_JW_DOWN",
        json.dumps({"conn_type": "modzy", "host": "http://127.0.0.1:9", "password": API_KEY, "extra": {"timeout": 2}}),
    )
    with pytest.raises(TransportError) as info:
        JobsHook("jw_down", retry=RetryPolicy(max_attempts=1)).get_job("x")
    failures.append(info.value)

    for failure in failures:
        texts += [str(failure), repr(failure), repr(getattr(failure, "body", None))]
    for text in texts:
        assert not leaks(text) and wrong not in text, text


def test_client_config_repr_hides_the_key() -> None:
    config = ClientConfig("https://jobs.example.com", API_KEY)
    assert SECRET not in repr(config) and "api_key" not in repr(config)


# ---- the reference service: authentication ----------------------------------------------------------


def _family_requests(service: ServiceProcess) -> list[tuple[str, str, str, str | None]]:
    """(method, url, key header, key scheme) of one guarded request of each family."""
    base = service.base_url
    return [
        ("GET", f"{base}/api/jobs/{uuid.uuid4()}", "Authorization", "ApiKey"),
        ("GET", f"{base}{DATASETS}/demo-dataset/jobs", "X-Token", None),
        ("GET", f"{base}/compute/orgs/{ORG}/demo/wordcount/{uuid.uuid4()}/status", "Authorization", "Bearer"),
        ("POST", f"{base}/workflow/view/count", "x-access-token", None),
    ]


@pytest.mark.parametrize("family", ["inference", "datasets", "compute", "results"])
@pytest.mark.parametrize("key", ["missing", "empty", "wrong", "prefix", "longer", "other-scheme"])
def test_service_refuses_requests_without_a_valid_key(service: ServiceProcess, family: str, key: str) -> None:
    index = ["inference", "datasets", "compute", "results"].index(family)
    method, url, header, scheme = _family_requests(service)[index]
    value = {
        "missing": None,
        "empty": "",
        "wrong": "pubkey123.nope",
        "prefix": API_KEY[:-1],
        "longer": API_KEY + "x",
        "other-scheme": API_KEY,
    }[key]
    headers = {}
    if value is not None:
        word = "Basic" if key == "other-scheme" and scheme else scheme
        headers[header] = f"{word} {value}" if word else value
    if key == "other-scheme" and not scheme:
        headers = {"Authorization": f"Bearer {API_KEY}"}  # the right key in another family's header
    body = {"query": {}} if method == "POST" else None
    resp = requests.request(method, url, headers=headers, json=body, timeout=10)
    assert resp.status_code == 401, resp.text
    assert not leaks(resp.text)
    good = {header: f"{scheme} {API_KEY}" if scheme else API_KEY}
    assert requests.request(method, url, headers=good, json=body, timeout=10).status_code != 401


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_service_compares_keys_in_constant_time(tmp_path: Path, mocker: MockerFixture) -> None:
    """Every family's key check goes through ``hmac.compare_digest`` (no ``==`` on secrets)."""
    from fastapi.testclient import TestClient
    from jobwait_reference_service.app import create_app
    from jobwait_reference_service.config import ServiceConfig

    compare = mocker.spy(hmac, "compare_digest")
    app = create_app(ServiceConfig(db_path=str(tmp_path / "s.sqlite"), api_key=API_KEY, test_controls=True))
    with TestClient(app) as client:
        for method, url, header, scheme in _family_requests(_FakeService()):
            sent = f"pubkey123.guess-{header}"
            headers = {header: f"{scheme} {sent}" if scheme else sent}
            assert client.request(method, url, headers=headers, json={"query": {}}).status_code == 401
            assert any(sent.encode() in call.args for call in compare.call_args_list), f"{header}: not compared"
        assert client.get("/_test/faults", headers={"X-Test-Key": "guess-test-key"}).status_code == 401
        assert any(b"guess-test-key" in call.args for call in compare.call_args_list)


class _FakeService:
    base_url = ""


# ---- the reference service: queries are interpreted, never executed -----------------------------


#: MongoDB operators that run code or reach outside a document, and others outside the subset.
FORBIDDEN_OPERATORS = [
    "$where",
    "$function",
    "$accumulator",
    "$expr",
    "$jsonSchema",
    "$text",
    "$regex",
    "$mod",
    "$lookup",
    "$eval",
    "$type",
    "$near",
    "$comment",
    "$rand",
]


@pytest.mark.parametrize("op", FORBIDDEN_OPERATORS)
def test_query_operators_outside_the_whitelist_are_refused(op: str) -> None:
    assert op not in SUPPORTED_OPERATORS
    for query in (
        {op: "return true"},
        {"results": {op: "1"}},
        {"$or": [{"id": "a"}, {op: {"body": "1"}}]},
        {"$and": [{"$nor": [{"x": {"$not": {op: 1}}}]}]},
    ):
        with pytest.raises(QueryError, match=re.escape(repr(op))):
            compile_query(query)


def test_no_code_execution_engine_in_the_service() -> None:
    """No ``eval``/``exec``/``compile``/dynamic import, nor a JS or Mongo engine, in the service's query path."""
    banned_calls = {"eval", "exec", "compile", "__import__", "execfile"}
    banned_modules = {"pymongo", "mongomock", "js2py", "execjs", "py_mini_racer", "pickle", "marshal", "subprocess"}
    for path in sorted(Path(server_package.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in banned_calls, f"{path.name}:{node.lineno} calls {node.func.id}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    top = name.split(".")[0]
                    if path.name in ("process.py", "cli.py"):
                        continue  # starts the service as a child process: not on any request path
                    assert top not in banned_modules, f"{path.name}:{node.lineno} imports {name}"
            if isinstance(node, ast.Attribute) and node.attr in (
                "create_function",
                "create_aggregate",
                "enable_load_extension",
            ):
                pytest.fail(f"{path.name}:{node.lineno} registers code with SQLite ({node.attr})")


# ---- the reference service: SQL is parameterised --------------------------------------------------

CANARY = "c4nary'\"); DROP TABLE results_store_works; --"


class _RecordingConnection:
    """A sqlite3 connection that records the SQL text of every statement."""

    def __init__(self, conn: sqlite3.Connection, log: list[str]) -> None:
        self._conn = conn
        self._log = log

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._log.append(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._log.append(sql)
        return self._conn.executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self._log.append(sql)
        return self._conn.executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_sql_is_parameterised(tmp_path: Path, mocker: MockerFixture) -> None:
    """Values from requests (ids, names, queries, bodies, headers) travel as SQL parameters only."""
    from fastapi.testclient import TestClient
    from jobwait_reference_service.app import create_app
    from jobwait_reference_service.config import ServiceConfig
    from jobwait_reference_service.db import Database

    statements: list[str] = []
    real = Database.connection
    mocker.patch.object(Database, "connection", lambda self: _RecordingConnection(real(self), statements))
    db_path = tmp_path / "s.sqlite"
    app = create_app(ServiceConfig(db_path=str(db_path), api_key=API_KEY, test_controls=True))
    inference = {"Authorization": f"ApiKey {API_KEY}"}
    results = {"x-access-token": API_KEY}
    datasets = {"X-Token": API_KEY}
    compute = {"Authorization": f"Bearer {API_KEY}"}
    work = {"id": CANARY, "pipeline": CANARY, "status": "success", "results": {CANARY: CANARY}, "tags": [CANARY]}
    with TestClient(app) as client:
        answers = [
            client.post(
                "/api/jobs",
                headers={**inference, "Idempotency-Key": CANARY},
                json={
                    "model": {"identifier": "echo", "version": "1.0"},
                    "explain": False,
                    "input": {"type": "text", "sources": {CANARY: {"input.txt": CANARY}}},
                },
            ),
            client.post(
                "/api/jobs",
                headers=inference,
                json={"model": {"identifier": CANARY, "version": CANARY}, "input": {"sources": {}}},
            ),
            client.get(f"/api/jobs/{CANARY}", headers=inference),
            client.get(f"/api/results/{CANARY}", headers=inference),
            client.get("/api/jobs/history", headers=inference, params={"model": CANARY, "status": "all"}),
            client.get("/api/jobs", headers=inference, params={"identifiers": f"{CANARY},x"}),
            client.post("/workflow/results", headers=results, json=[work]),
            client.post(
                "/workflow/view",
                headers=results,
                json={
                    "query": {"id": {"$in": [CANARY]}, "pipeline": CANARY, CANARY: {"$ne": CANARY}},
                    "projection": {"results": True},
                },
            ),
            client.post("/workflow/view/count", headers=results, json={"query": {"id": CANARY, "tags": CANARY}}),
            client.put("/workflow/results", headers=results, json=[{"id": CANARY, "user": CANARY}]),
            client.get(f"{DATASETS}/{CANARY}/jobs", headers=datasets),
            client.post(
                f"{DATASETS}/demo-dataset/jobs",
                headers={**datasets, "X-Request-Id": CANARY},
                json={
                    "title": CANARY,
                    "jobType": "basicSearch",
                    "arguments": {"filters": [CANARY]},
                    "description": CANARY,
                },
            ),
            client.get(f"{DATASETS}/demo-dataset/jobs/{CANARY}", headers=datasets, params={"jobType": "basicSearch"}),
            client.get(f"{DATASETS}/demo-dataset/drafts", headers=datasets, params={"branchName": CANARY}),
            client.post(
                f"/compute/orgs/{ORG}/demo/wordcount",
                headers=compute,
                json={"parameters": {"text": CANARY}},
                follow_redirects=False,
            ),
            client.get(f"/compute/orgs/{ORG}/demo/{CANARY}/{uuid.uuid4()}/status", headers=compute),
            client.delete("/workflow/results", headers=results, params=[(CANARY, CANARY)]),
        ]
    assert all(a.status_code < 500 for a in answers), [(a.request.url, a.status_code, a.text) for a in answers]
    assert answers[6].status_code == 200 and answers[7].json()[0]["results"] == {CANARY: CANARY}
    assert len(statements) > 20
    injected = [sql for sql in statements if "c4nary" in sql]
    assert not injected, f"request values became SQL text: {injected[:3]}"
    with closing(sqlite3.connect(db_path)) as conn:  # the table survived and the row is gone as asked
        assert conn.execute("SELECT COUNT(*) FROM results_store_works").fetchone() == (0,)


# ---- the reference service: request size limit -------------------------------------------------------


def _service_rows(service: ServiceProcess) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{service.db_path}?mode=ro", uri=True)) as conn:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("inference_jobs", "tb_jobs", "cp_jobs", "results_store_works")
        }


def _streamed(total: int) -> Iterator[bytes]:
    yield b'{"x": "'
    for _ in range(total // 65536 + 1):
        yield b"a" * 65536
    yield b'"}'


@pytest.mark.parametrize("how", ["declared", "chunked"])
@pytest.mark.parametrize(
    "path,headers",
    [
        ("/api/jobs", {"Authorization": f"ApiKey {API_KEY}"}),
        (f"{DATASETS}/demo-dataset/jobs", {"X-Token": API_KEY}),
        (f"/compute/orgs/{ORG}/demo/wordcount", {"Authorization": f"Bearer {API_KEY}"}),
        ("/workflow/results", {"x-access-token": API_KEY}),
    ],
    ids=["inference", "datasets", "compute", "results"],
)
def test_bodies_over_the_limit_get_413(service: ServiceProcess, path: str, headers: dict[str, str], how: str) -> None:
    before = _service_rows(service)
    size = 2 * 1024 * 1024
    data: Any = b"[" + b" " * size + b"]" if how == "declared" else _streamed(size)
    resp = requests.post(
        service.base_url + path,
        data=data,
        headers={**headers, "content-type": "application/json"},
        timeout=30,
        allow_redirects=False,
    )
    assert resp.status_code == 413, resp.text
    # In the family's own error shape (docs/jobs-api.md §1-§4): TensorBay says it in "message".
    body = resp.json()
    assert "exceeds 1048576 bytes" in (body["message"] if path.startswith(DATASETS) else body["detail"])
    assert _service_rows(service) == before


def test_streamed_body_under_the_limit_still_works(service: ServiceProcess) -> None:
    work = {"id": f"chunked-{uuid.uuid4().hex}", "pipeline": "chunked", "status": "success", "results": {}}
    resp = requests.post(
        service.base_url + "/workflow/results",
        data=iter([json.dumps([work]).encode()]),
        headers={"x-access-token": API_KEY, "content-type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert (
        requests.delete(
            service.base_url + "/workflow/results",
            params={"chunked": work["id"]},
            headers={"x-access-token": API_KEY},
            timeout=10,
        ).json()
        is True
    )


# ---- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS service with a self-signed certificate, answering every GET with one job."""
    folder = tmp_path_factory.mktemp("tls")
    body = json.dumps({"jobIdentifier": "tls-job", "status": "COMPLETED"}).encode()
    with https_json(folder, body) as url:
        yield f"{url}"


def _tls_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: str, **extra: Any) -> str:
    """A connection to ``url`` that gives up quickly (one attempt, 5 s)."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "modzy", "host": url, "password": API_KEY, "extra": {"timeout": 5, **extra}}),
    )
    return conn_id


def test_tls_is_verified_by_default(https_stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = JobsHook(_tls_conn(monkeypatch, "jw_tls_default", https_stub), retry=RetryPolicy(max_attempts=1))
    assert hook.client_config.verify is True and hook.client._session.verify is True
    with pytest.raises(TransportError, match=r"SSL|certificate"):
        hook.get_job("tls-job")
    with pytest.raises(TransportError, match=r"SSL|certificate"):
        asyncio.run(hook.aget_job("tls-job"))


@pytest.mark.parametrize("value", ["false", 0, "no", "off"])
def test_turning_verification_off_needs_an_explicit_boolean(
    https_stub: str, monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    conn_id = _tls_conn(monkeypatch, "jw_tls_vague", https_stub, verify=value)
    with pytest.raises(ValueError, match="'verify' must be true or false"):
        JobsHook(conn_id).get_job("tls-job")


def test_verification_off_warns_once_per_connection(
    https_stub: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = _tls_conn(monkeypatch, f"jw_tls_off_{uuid.uuid4().hex[:6]}", https_stub, verify=False)
    caplog.set_level(logging.WARNING, logger="airflow_jobwait.hooks.connection")
    for _ in range(3):
        hook = JobsHook(conn_id)
        assert hook.client_config.verify is False and hook.client._session.verify is False
        assert asyncio.run(hook.aclient_config()).verify is False
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1 and conn_id in warnings[0].getMessage()
    assert not leaks(caplog.text)


def test_verification_off_reaches_a_self_signed_service_async(https_stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = _tls_conn(monkeypatch, "jw_tls_off_async", https_stub, verify=False)
    assert asyncio.run(JobsHook(conn_id).aget_job("tls-job")).job_identifier == "tls-job"


def test_verification_off_reaches_a_self_signed_service_sync(https_stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # common in corporate setups
    conn_id = _tls_conn(monkeypatch, "jw_tls_off_sync", https_stub, verify=False)
    hook = JobsHook(conn_id, retry=RetryPolicy(max_attempts=1))
    assert hook.get_job("tls-job").job_identifier == "tls-job"
