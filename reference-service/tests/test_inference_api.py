"""Inference jobs family (Modzy API, section 1 of docs/jobs-api.md) over real HTTP."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from jobwait_reference_service.process import ServiceProcess

TERMINAL = {"COMPLETED", "TIMEDOUT", "CANCELED", "FAILED"}
PLAIN_KEY = "plainpub.plain-secret-value"


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {api_key}"}


def job_body(model: str = "sentiment", sources: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    sources = sources if sources is not None else {"s1": {"input.txt": "a good day"}}
    return {
        "model": {"identifier": model, "version": "1.0"},
        "explain": False,
        "input": {"type": "text", "sources": sources},
        **extra,
    }


def submit(svc: ServiceProcess, body: dict[str, Any], expect: int = 201, **headers: str) -> dict[str, Any]:
    resp = requests.post(f"{svc.base_url}/api/jobs", json=body, headers={**auth(svc.api_key), **headers}, timeout=10)
    assert resp.status_code == expect, resp.text
    return resp.json()


def get_job(svc: ServiceProcess, job_id: str) -> dict[str, Any]:
    resp = requests.get(f"{svc.base_url}/api/jobs/{job_id}", headers=auth(svc.api_key), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def get_results(svc: ServiceProcess, job_id: str) -> requests.Response:
    return requests.get(f"{svc.base_url}/api/results/{job_id}", headers=auth(svc.api_key), timeout=10)


def wait_for(svc: ServiceProcess, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 15) -> dict[str, Any]:
    """Poll until the job's status is in ``statuses`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(svc, job_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout}s"
        time.sleep(0.05)


def watch(svc: ServiceProcess, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{svc.base_url}/api/jobs:watch", json=body, headers=auth(svc.api_key), timeout=70)


@pytest.fixture(scope="module")
def plain_service() -> Iterator[ServiceProcess]:
    """A service of our own, without test controls; the restart test may SIGKILL it."""
    with ServiceProcess(api_key=PLAIN_KEY) as proc:
        yield proc


# ---------------------------------------------------------------- models and auth


def test_models_and_hardware(service: ServiceProcess) -> None:
    resp = requests.get(f"{service.base_url}/api/models", headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    models = {m["modelId"]: m for m in resp.json()}
    assert set(models) >= {"sentiment", "echo", "wordcount", "sleep"}
    assert models["sentiment"] == {"modelId": "sentiment", "latestVersion": "1.0", "versions": ["1.0"]}

    resp = requests.get(
        f"{service.base_url}/api/models/requirements/account", headers=auth(service.api_key), timeout=10
    )
    assert resp.status_code == 200
    assert resp.json() == [{"requirementId": 1, "status": "ACTIVE", "cpuAmount": "1000m", "memoryAmount": "2Gi"}]


def test_model_detail_and_version(service: ServiceProcess) -> None:
    base, headers = f"{service.base_url}/api/models", auth(service.api_key)
    model = requests.get(f"{base}/echo", headers=headers, timeout=10).json()
    assert model["modelId"] == "echo" and model["latestVersion"] == "1.0"
    version = requests.get(f"{base}/echo/versions/1.0", headers=headers, timeout=10).json()
    assert version["version"] == "1.0"
    assert [o["name"] for o in version["outputs"]] == ["results.json"]
    assert requests.get(f"{base}/nope", headers=headers, timeout=10).status_code == 404
    missing = requests.get(f"{base}/echo/versions/9.9", headers=headers, timeout=10)
    assert missing.status_code == 404 and "9.9" in missing.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "ApiKey wrong.key"},
        {"Authorization": "ApiKey"},
        {"Authorization": "Bearer {key}"},
        {"X-Token": "{key}"},
        {"x-access-token": "{key}"},
        {"Authorization": "{key}"},
    ],
    ids=["none", "wrong-key", "empty-key", "bearer", "x-token", "x-access-token", "no-scheme"],
)
def test_auth_required(service: ServiceProcess, headers: dict[str, str]) -> None:
    headers = {k: v.format(key=service.api_key) for k, v in headers.items()}
    for method, path in [("GET", "/api/models"), ("POST", "/api/jobs"), ("GET", "/api/jobs/history")]:
        resp = requests.request(method, f"{service.base_url}{path}", headers=headers, json=job_body(), timeout=10)
        assert resp.status_code == 401, (method, path, resp.text)
        assert "detail" in resp.json()


def test_job_fields_and_access_key(service: ServiceProcess) -> None:
    job = submit(service, job_body(sources={"x": {"input.txt": "hi"}, "y": {"input.txt": "ho"}}))
    assert job["status"] == "SUBMITTED"
    assert job["model"] == {"identifier": "sentiment", "name": "Sentiment Analysis", "version": "1.0"}
    assert job["totalInputs"] == 2
    assert job["jobInputs"] == {"identifier": ["x", "y"]}
    assert job["jobType"] == "batch" and job["explain"] is False and job["imageClassificationModel"] is False
    assert set(job["user"]) == {"identifier", "firstName", "lastName", "email"}
    assert job["team"]["identifier"] and job["accountIdentifier"]
    assert job["submittedAt"].endswith("Z")
    assert job["accessKey"] == service.api_key.split(".")[0]
    secret = service.api_key.split(".", 1)[1]
    wait_for(service, job["jobIdentifier"])
    for text in (get_results(service, job["jobIdentifier"]).text, str(get_job(service, job["jobIdentifier"]))):
        assert secret not in text


# ---------------------------------------------------------------- models run


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        ("sentiment", "What a great and wonderful day", {"label": "positive", "score": 1.0}),
        ("sentiment", "this is not good, it is awful", {"label": "negative", "score": -1.0}),
        ("sentiment", "the sky is blue", {"label": "neutral", "score": 0.0}),
        ("echo", "hello there", {"text": "hello there"}),
        ("wordcount", "one two  three\nfour", {"words": 4}),
        ("sleep", "0.2", {"slept": 0.2}),
    ],
)
def test_model_completes_with_output(service: ServiceProcess, model: str, text: str, expected: Any) -> None:
    job = submit(service, job_body(model, {"only": {"input.txt": text}}))
    done = wait_for(service, job["jobIdentifier"])
    assert done["status"] == "COMPLETED"
    result = get_results(service, job["jobIdentifier"]).json()
    assert result["finished"] is True and result["completed"] == 1 and result["failed"] == 0 and result["total"] == 1
    entry = result["results"]["only"]
    assert entry["status"] == "SUCCESSFUL"
    assert entry["results.json"] == expected
    assert isinstance(entry["elapsedTime"], int)
    assert set(entry) >= {"engine", "startTime", "updateTime", "endTime", "voting"}


def test_sleep_model_takes_its_seconds(service: ServiceProcess) -> None:
    job = submit(service, job_body("sleep", {"nap": {"input.txt": "1.0"}}))
    started = time.monotonic()
    wait_for(service, job["jobIdentifier"])
    assert time.monotonic() - started >= 0.9
    assert get_results(service, job["jobIdentifier"]).json()["results"]["nap"]["elapsedTime"] == 1000


def test_sleep_model_bad_input_fails_that_input(service: ServiceProcess) -> None:
    job = submit(service, job_body("sleep", {"bad": {"input.txt": "soon"}, "ok": {"input.txt": "0"}}))
    assert wait_for(service, job["jobIdentifier"])["status"] == "COMPLETED"
    result = get_results(service, job["jobIdentifier"]).json()
    assert result["failures"]["bad"]["status"] == "FAILED"
    assert "not a number" in result["failures"]["bad"]["error"]
    assert result["results"]["ok"]["results.json"] == {"slept": 0.0}


def test_embedded_input_is_decoded(service: ServiceProcess) -> None:
    data = "data:text/plain;charset=utf-8;base64," + base64.b64encode("héllo wörld".encode()).decode()
    body = job_body("echo", {"e": {"input.txt": data}})
    body["input"]["type"] = "embedded"
    job = submit(service, body)
    wait_for(service, job["jobIdentifier"])
    assert get_results(service, job["jobIdentifier"]).json()["results"]["e"]["results.json"] == {"text": "héllo wörld"}


def test_results_404_until_running_then_partial(service: ServiceProcess) -> None:
    sources = {f"s{i}": {"input.txt": f"text {i}"} for i in range(3)}
    job = submit(service, job_body("wordcount", sources, test={"duration_s": 2.1}))
    job_id = job["jobIdentifier"]
    early = get_results(service, job_id)
    assert early.status_code == 404 and "detail" in early.json()
    assert wait_for(service, job_id, {"IN_PROGRESS"})["status"] == "IN_PROGRESS"
    running = get_results(service, job_id)
    assert running.status_code == 200
    assert running.json()["finished"] is False and running.json()["total"] == 3
    assert wait_for(service, job_id)["status"] == "COMPLETED"
    final = get_results(service, job_id).json()
    assert final["finished"] is True and final["completed"] == 3
    assert final["results"]["s2"]["results.json"] == {"words": 2}


def test_results_and_job_unknown_404(service: ServiceProcess) -> None:
    for path in ("/api/jobs/no-such-job", "/api/results/no-such-job"):
        resp = requests.get(f"{service.base_url}{path}", headers=auth(service.api_key), timeout=10)
        assert resp.status_code == 404 and "no-such-job" in resp.json()["detail"]
    resp = requests.delete(f"{service.base_url}/api/jobs/no-such-job", headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 404


# ---------------------------------------------------------------- test controls


def test_outcome_timedout(service: ServiceProcess) -> None:
    sources = {"a": {"input.txt": "one"}, "b": {"input.txt": "two"}}
    job = submit(service, job_body("echo", sources, test={"duration_s": 0.6, "outcome": "TIMEDOUT"}))
    assert wait_for(service, job["jobIdentifier"])["status"] == "TIMEDOUT"
    result = get_results(service, job["jobIdentifier"]).json()
    assert result["finished"] is True and result["completed"] == 1 and result["failed"] == 1
    assert result["results"]["a"]["results.json"] == {"text": "one"}
    assert "timed out" in result["failures"]["b"]["error"] and result["failures"]["b"]["status"] == "FAILED"


def test_outcome_failed(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 0.4, "outcome": "FAILED"}))
    assert wait_for(service, job["jobIdentifier"])["status"] == "FAILED"
    result = get_results(service, job["jobIdentifier"]).json()
    assert result["finished"] is True and result["completed"] == 0 and result["failed"] == 1
    assert "crashed" in result["failures"]["s1"]["error"]


def test_fail_inputs_job_still_completes(service: ServiceProcess) -> None:
    sources = {"good": {"input.txt": "fine"}, "bad": {"input.txt": "fine"}}
    job = submit(service, job_body(sources=sources, test={"duration_s": 0.4, "fail_inputs": ["bad"]}))
    assert wait_for(service, job["jobIdentifier"])["status"] == "COMPLETED"
    result = get_results(service, job["jobIdentifier"]).json()
    assert set(result["results"]) == {"good"} and set(result["failures"]) == {"bad"}
    assert result["failures"]["bad"]["error"]


def test_duration_is_honoured(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 1.0}))
    started = time.monotonic()
    wait_for(service, job["jobIdentifier"])
    assert time.monotonic() - started >= 0.8  # a lower bound: a slow machine only adds to it


def test_test_controls_disabled(plain_service: ServiceProcess) -> None:
    resp = requests.post(
        f"{plain_service.base_url}/api/jobs", json=job_body(test={"duration_s": 1}), headers=auth(PLAIN_KEY), timeout=10
    )
    assert resp.status_code == 400
    assert resp.json() == {"detail": "test controls are disabled on this service (field 'test')"}


# ---------------------------------------------------------------- cancel


def test_cancel_then_conflict(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 30}))
    url = f"{service.base_url}/api/jobs/{job['jobIdentifier']}"
    first = requests.delete(url, headers=auth(service.api_key), timeout=10)
    assert first.status_code == 200 and first.json()["status"] == "CANCELED"
    assert get_job(service, job["jobIdentifier"])["status"] == "CANCELED"
    second = requests.delete(url, headers=auth(service.api_key), timeout=10)
    assert second.status_code == 409 and "CANCELED" in second.json()["detail"]
    result = get_results(service, job["jobIdentifier"]).json()
    assert result["finished"] is True and result["results"] == {}


def test_cancel_completed_job_conflicts(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 0}))
    wait_for(service, job["jobIdentifier"])
    resp = requests.delete(
        f"{service.base_url}/api/jobs/{job['jobIdentifier']}", headers=auth(service.api_key), timeout=10
    )
    assert resp.status_code == 409 and "COMPLETED" in resp.json()["detail"]


# ---------------------------------------------------------------- idempotency


def test_idempotency_same_body_same_job(service: ServiceProcess) -> None:
    body = job_body(sources={"k": {"input.txt": "same"}})
    first = submit(service, body, 201, **{"Idempotency-Key": "idem-same"})
    # Key order must not matter: the body is compared in canonical form.
    reordered = {"input": body["input"], "explain": False, "model": {"version": "1.0", "identifier": "sentiment"}}
    again = submit(service, reordered, 200, **{"Idempotency-Key": "idem-same"})
    assert again["jobIdentifier"] == first["jobIdentifier"]
    other = submit(
        service, job_body(sources={"k": {"input.txt": "different"}}), 409, **{"Idempotency-Key": "idem-same"}
    )
    assert "idem-same" in other["detail"]
    assert submit(service, body)["jobIdentifier"] != first["jobIdentifier"]  # no key: a new job


def test_idempotency_concurrent_submits_make_one_job(service: ServiceProcess) -> None:
    body = job_body(sources={"k": {"input.txt": "race"}})
    barrier = threading.Barrier(12)

    def send(_: int) -> tuple[int, str]:
        barrier.wait()
        resp = requests.post(
            f"{service.base_url}/api/jobs",
            json=body,
            headers={**auth(service.api_key), "Idempotency-Key": "idem-race"},
            timeout=10,
        )
        return resp.status_code, resp.json()["jobIdentifier"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(send, range(12)))
    assert len({job_id for _, job_id in outcomes}) == 1
    assert sorted(code for code, _ in outcomes) == [200] * 11 + [201]


# ---------------------------------------------------------------- batch status, watch, history


def test_batch_status(service: ServiceProcess) -> None:
    ids = [submit(service, job_body(test={"duration_s": 0}))["jobIdentifier"] for _ in range(2)]
    url = f"{service.base_url}/api/jobs"
    resp = requests.get(
        url, params={"identifiers": ",".join([ids[0], "unknown-id", ids[1]])}, headers=auth(service.api_key), timeout=10
    )
    assert resp.status_code == 200
    assert [j["jobIdentifier"] for j in resp.json()["jobs"]] == ids
    too_many = ",".join(f"id-{i}" for i in range(501))
    resp = requests.get(url, params={"identifiers": too_many}, headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 400 and "identifiers" in resp.json()["detail"]
    resp = requests.get(url, headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 400 and "identifiers" in resp.json()["detail"]


def test_watch_returns_on_change(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 1.0}))
    job_id = job["jobIdentifier"]
    started = time.monotonic()
    resp = watch(service, {"identifiers": [job_id], "timeout": 60, "known": {job_id: "SUBMITTED"}})
    assert resp.status_code == 200
    assert [j["status"] for j in resp.json()["jobs"]] == ["IN_PROGRESS"]
    # Liveness: it answered on the change, not at the end of its 60 s timeout.
    assert time.monotonic() - started < 40
    resp = watch(service, {"identifiers": [job_id], "timeout": 20, "known": {job_id: "IN_PROGRESS"}})
    assert [j["status"] for j in resp.json()["jobs"]] == ["COMPLETED"]
    # Terminal jobs answer at once, even when the caller already knows the status.
    resp = watch(service, {"identifiers": [job_id], "timeout": 20, "known": {job_id: "COMPLETED"}})
    assert [j["status"] for j in resp.json()["jobs"]] == ["COMPLETED"]


def test_watch_missing_from_known_counts_as_changed(service: ServiceProcess) -> None:
    job = submit(service, job_body(test={"duration_s": 30}))
    resp = watch(service, {"identifiers": [job["jobIdentifier"]], "timeout": 5})
    assert [j["jobIdentifier"] for j in resp.json()["jobs"]] == [job["jobIdentifier"]]
    requests.delete(f"{service.base_url}/api/jobs/{job['jobIdentifier']}", headers=auth(service.api_key), timeout=10)


def test_watch_times_out_empty_and_wakes_on_cancel(service: ServiceProcess) -> None:
    job_id = submit(service, job_body(test={"duration_s": 30}))["jobIdentifier"]
    wait_for(service, job_id, {"IN_PROGRESS"})
    started = time.monotonic()
    resp = watch(service, {"identifiers": [job_id, "unknown-id"], "timeout": 0.5, "known": {job_id: "IN_PROGRESS"}})
    assert resp.status_code == 200 and resp.json() == {"jobs": []}
    assert time.monotonic() - started >= 0.4  # held to its timeout (a lower bound: load only adds)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            watch, service, {"identifiers": [job_id], "timeout": 60, "known": {job_id: "IN_PROGRESS"}}
        )
        time.sleep(0.3)  # let the watch start waiting; the assertion below holds either way
        started = time.monotonic()
        requests.delete(f"{service.base_url}/api/jobs/{job_id}", headers=auth(service.api_key), timeout=10)
        resp = pending.result(timeout=90)
    assert [j["status"] for j in resp.json()["jobs"]] == ["CANCELED"]
    # Liveness: woken by the cancel, not at the end of its 60 s timeout.
    assert time.monotonic() - started < 40


def test_done_is_404_until_terminal(service: ServiceProcess) -> None:
    job_id = submit(service, job_body(test={"duration_s": 0.5}))["jobIdentifier"]
    url = f"{service.base_url}/api/jobs/{job_id}/done"
    resp = requests.get(url, headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 404 and "not done" in resp.json()["detail"]
    wait_for(service, job_id)
    resp = requests.get(url, headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 200 and resp.json()["status"] == "COMPLETED"
    resp = requests.get(f"{service.base_url}/api/jobs/unknown-id/done", headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 404


def test_finish_control_ends_jobs_and_wakes_watches(service: ServiceProcess) -> None:
    ids = [submit(service, job_body(test={"duration_s": 600}))["jobIdentifier"] for _ in range(2)]
    for job_id in ids:
        wait_for(service, job_id, {"IN_PROGRESS"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            watch, service, {"identifiers": ids, "timeout": 30, "known": dict.fromkeys(ids, "IN_PROGRESS")}
        )
        time.sleep(0.3)  # let the watch start waiting; the assertion below holds either way
        resp = requests.post(
            f"{service.base_url}/api/_test/finish",
            json={"identifiers": [ids[0], "unknown-id"], "status": "FAILED"},
            headers=auth(service.api_key),
            timeout=10,
        )
        assert resp.status_code == 200 and resp.json() == {"finished": [ids[0]]}
        woke = pending.result(timeout=30)
    assert [(j["jobIdentifier"], j["status"]) for j in woke.json()["jobs"]] == [(ids[0], "FAILED")]
    assert get_job(service, ids[1])["status"] == "IN_PROGRESS"
    requests.delete(f"{service.base_url}/api/jobs/{ids[1]}", headers=auth(service.api_key), timeout=10)


def test_request_stats_count_routes_and_connections(service: ServiceProcess) -> None:
    job_id = submit(service, job_body(test={"duration_s": 0}))["jobIdentifier"]
    url = f"{service.base_url}/api/_test/stats"
    # Start from a reset: connections are distinct (host, port) pairs, and after hundreds of
    # connections this session the new one's ephemeral port may be one already counted.
    requests.delete(url, headers=auth(service.api_key), timeout=10).raise_for_status()
    with requests.Session() as session:  # one keep-alive connection for three requests
        for _ in range(3):
            session.get(f"{service.base_url}/api/jobs/{job_id}", headers=auth(service.api_key), timeout=10)
    after = requests.get(url, headers=auth(service.api_key), timeout=10).json()
    assert after["requests"] == {"get_job": 3}  # the stats calls themselves are not counted
    assert after["connections"] == 1


def test_test_controls_off_hide_the_stats_and_finish(plain_service: ServiceProcess) -> None:
    headers = auth(plain_service.api_key)
    assert requests.get(f"{plain_service.base_url}/api/_test/stats", headers=headers, timeout=10).status_code == 404
    resp = requests.post(f"{plain_service.base_url}/api/_test/finish", json={}, headers=headers, timeout=10)
    assert resp.status_code in (404, 405)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identifiers": [], "timeout": 1}, "identifiers"),
        ({"identifiers": "abc", "timeout": 1}, "identifiers"),
        ({"identifiers": ["a"], "timeout": 0}, "timeout"),
        ({"identifiers": ["a"], "timeout": 61}, "timeout"),
        ({"identifiers": ["a"], "timeout": 1, "known": []}, "known"),
        ({"identifiers": [f"id-{i}" for i in range(501)], "timeout": 1}, "identifiers"),
    ],
)
def test_watch_validation(service: ServiceProcess, body: dict[str, Any], field: str) -> None:
    resp = watch(service, body)
    assert resp.status_code == 400 and field in resp.json()["detail"]


def test_history(service: ServiceProcess) -> None:
    first = submit(service, job_body("echo", test={"duration_s": 30}))["jobIdentifier"]
    second = submit(service, job_body("echo", test={"duration_s": 0}))["jobIdentifier"]
    wait_for(service, second)
    url, headers = f"{service.base_url}/api/jobs/history", auth(service.api_key)
    resp = requests.get(url, params={"model": "echo", "per-page": 2}, headers=headers, timeout=10)
    assert resp.status_code == 200 and isinstance(resp.json(), list)
    assert [j["jobIdentifier"] for j in resp.json()] == [second, first]  # newest first
    pending = requests.get(url, params={"status": "pending", "per-page": 1000}, headers=headers, timeout=10).json()
    assert first in {j["jobIdentifier"] for j in pending} and second not in {j["jobIdentifier"] for j in pending}
    assert all(j["status"] in {"SUBMITTED", "IN_PROGRESS"} for j in pending)
    done = requests.get(url, params={"status": "terminated", "per-page": 1000}, headers=headers, timeout=10).json()
    assert second in {j["jobIdentifier"] for j in done}
    page2 = requests.get(url, params={"model": "echo", "per-page": 1, "page": 2}, headers=headers, timeout=10).json()
    assert [j["jobIdentifier"] for j in page2] == [first]
    for params, name in [({"status": "bogus"}, "status"), ({"page": "0"}, "page"), ({"per-page": "x"}, "per-page")]:
        bad = requests.get(url, params=params, headers=headers, timeout=10)
        assert bad.status_code == 400 and name in bad.json()["detail"]
    requests.delete(f"{service.base_url}/api/jobs/{first}", headers=headers, timeout=10)


# ---------------------------------------------------------------- validation


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_without(job_body(), "model"), "'model'"),
        (job_body("nope"), "nope"),
        ({**job_body(), "model": {"identifier": "echo", "version": "2.0"}}, "model.version"),
        ({**job_body(), "model": {"identifier": "echo"}}, "model.version"),
        ({**job_body(), "explain": "yes"}, "explain"),
        (_without(job_body(), "input"), "'input'"),
        (job_body(sources={}), "input.sources"),
        (_without(job_body(), "input", "sources"), "input.sources"),
        ({**job_body(), "input": {"type": "aws-s3", "sources": {"a": {"i": "x"}}}}, "aws-s3"),
        ({**job_body(), "input": {"sources": {"a": {"i": "x"}}}}, "input.type"),
        (job_body(sources={"a": "not an object"}), "input.sources.a"),
        (job_body(sources={"a": {"input.txt": 5}}), "input.sources.a.input.txt"),
        ({**job_body(), "input": {"type": "embedded", "sources": {"a": {"i": "plain"}}}}, "input.sources.a.i"),
        (job_body(test={"duration_s": -1}), "test.duration_s"),
        (job_body(test={"duration_s": "1"}), "test.duration_s"),
        (job_body(test={"outcome": "EXPLODED"}), "EXPLODED"),
        (job_body(test={"fail_inputs": ["ghost"]}), "ghost"),
        (job_body(test={"fail_inputs": "s1"}), "test.fail_inputs"),
        (job_body(test={"speed": 3}), "test.speed"),
        (job_body(test=[1]), "'test'"),
        ([1, 2], "JSON object"),
    ],
)
def test_submit_validation(service: ServiceProcess, body: Any, needle: str) -> None:
    resp = requests.post(f"{service.base_url}/api/jobs", json=body, headers=auth(service.api_key), timeout=10)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["detail"]


def test_submit_invalid_json(service: ServiceProcess) -> None:
    resp = requests.post(
        f"{service.base_url}/api/jobs",
        data=b"{not json",
        headers={**auth(service.api_key), "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400 and "JSON" in resp.json()["detail"]


# ---------------------------------------------------------------- restart


def test_sigkill_restart_loses_no_job(plain_service: ServiceProcess) -> None:
    svc = plain_service
    quick = submit(svc, job_body("sleep", {"n": {"input.txt": "0.2"}}), **{"Idempotency-Key": "restart-key"})
    slow = submit(svc, job_body("sleep", {"a": {"input.txt": "1.5"}, "b": {"input.txt": "0.1"}}))
    svc.restart(kill=True)
    assert wait_for(svc, quick["jobIdentifier"], timeout=10)["status"] == "COMPLETED"
    assert get_results(svc, quick["jobIdentifier"]).json()["results"]["n"]["results.json"] == {"slept": 0.2}
    again = submit(svc, job_body("sleep", {"n": {"input.txt": "0.2"}}), 200, **{"Idempotency-Key": "restart-key"})
    assert again["jobIdentifier"] == quick["jobIdentifier"]
    assert wait_for(svc, slow["jobIdentifier"], timeout=15)["status"] == "COMPLETED"
    result = get_results(svc, slow["jobIdentifier"]).json()
    assert result["completed"] == 2 and result["results"]["a"]["results.json"] == {"slept": 1.5}


def test_jobs_due_while_down_complete_at_once(plain_service: ServiceProcess) -> None:
    svc = plain_service
    job = submit(svc, job_body("wordcount", {"w": {"input.txt": "a b c"}}))
    svc.stop(kill=True)
    time.sleep(1.0)  # the job's whole plan (~0.6 s) passes while the service is down
    svc.start()
    done = wait_for(svc, job["jobIdentifier"], timeout=2)
    assert done["status"] == "COMPLETED"
    assert get_results(svc, job["jobIdentifier"]).json()["results"]["w"]["results.json"] == {"words": 3}
