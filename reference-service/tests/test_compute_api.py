"""Compute tasks (Seequent Evo Compute API, section 3 of docs/jobs-api.md) over real HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from jobwait_reference_service.process import ServiceProcess

TERMINAL = {"succeeded", "failed", "cancelled"}
RUNNING = {"requested", "in progress", "cancelling"}
ERROR_KEYS = {"status", "type", "title", "detail"}


class Compute:
    """Thin ``requests`` helper speaking section 3 for one organisation."""

    def __init__(self, service: ServiceProcess, org_id: str | None = None) -> None:
        self.service = service
        self.org_id = org_id or str(uuid.uuid4())
        self.headers = {"Authorization": f"Bearer {service.api_key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        url = f"{self.service.base_url}{path}"
        return requests.request(method, url, headers=headers, timeout=10, allow_redirects=False, **kwargs)

    def submit_raw(self, task: str, body: Any, topic: str = "demo") -> requests.Response:
        return self.call("POST", f"/compute/orgs/{self.org_id}/{topic}/{task}", json=body)

    def submit(self, task: str, parameters: dict[str, Any], **extra: Any) -> str:
        """Submit and return the status path from ``Location``."""
        resp = self.submit_raw(task, {"parameters": parameters, **extra})
        assert resp.status_code == 303, resp.text
        return resp.headers["Location"]

    def status(self, location: str) -> dict[str, Any]:
        resp = self.call("GET", location)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait(self, location: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 10) -> dict:
        until = until or (lambda st: st["status"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(location)
            if until(status):
                return status
            assert time.monotonic() < deadline, f"job {location} stuck: {status}"
            time.sleep(0.02)


def job_path(location: str) -> str:
    return location.removesuffix("/status")


def assert_error(resp: requests.Response, status: int, *mentions: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ERROR_KEYS and body["status"] == status, body
    assert isinstance(body["type"], str) and isinstance(body["title"], str)
    for word in mentions:
        assert word in body["detail"], body
    return dict(body)


@pytest.fixture
def compute(service: ServiceProcess) -> Compute:
    return Compute(service)


def test_submit_is_exactly_303_with_an_empty_body_and_a_status_location(compute: Compute):
    resp = compute.submit_raw("wordcount", {"parameters": {"text": "one two three"}})
    assert resp.status_code == 303
    assert resp.content == b""
    location = resp.headers["Location"]
    prefix = f"/compute/orgs/{compute.org_id}/demo/wordcount/"
    assert location.startswith(prefix) and location.endswith("/status") and "?" not in location
    job_id = location.removeprefix(prefix).removesuffix("/status")
    assert uuid.UUID(job_id).version == 4


def test_wordcount_succeeds_with_progress_that_advances(compute: Compute):
    location = compute.submit("wordcount", {"text": "the quick brown fox"}, test={"queue_s": 0.5, "run_s": 0.6})
    first = compute.status(location)
    assert set(first) == {"status", "progress", "message", "error"}
    assert first["status"] == "requested" and first["progress"] == 0 and first["error"] is None

    pending = compute.call("GET", job_path(location))
    assert pending.status_code == 202 and pending.json() == {"status": pending.json()["status"]}
    assert pending.json()["status"] in RUNNING

    seen: list[int] = []
    final = compute.wait(location, lambda st: seen.append(st["progress"]) or st["status"] in TERMINAL)
    running = [p for p in seen[:-1] if p is not None]
    assert running == sorted(running) and len(set(running)) >= 3, seen
    assert all(0 <= p <= 100 for p in seen)
    assert final == {"status": "succeeded", "progress": 100, "message": "done", "error": None}

    done = compute.call("GET", job_path(location))
    assert done.status_code == 200
    assert done.json() == {"status": "succeeded", "results": {"words": 4}, "error": None}


def test_sleep_runs_for_its_seconds(compute: Compute):
    started = time.monotonic()
    location = compute.submit("sleep", {"seconds": "0.5"}, test={"queue_s": 0})
    running = compute.wait(location, lambda st: st["status"] == "in progress")
    assert "of 0.5 seconds" in running["message"]
    assert compute.wait(location)["status"] == "succeeded"
    assert time.monotonic() - started >= 0.5
    assert compute.call("GET", job_path(location)).json()["results"] == {"slept": 0.5}


def test_fail_task_fails_with_an_error(compute: Compute):
    location = compute.submit("fail", {"message": "no ore here"}, test={"queue_s": 0, "run_s": 0.05})
    final = compute.wait(location)
    assert final["status"] == "failed"
    assert set(final["error"]) == ERROR_KEYS and final["error"]["detail"] == "no ore here"
    resp = compute.call("GET", job_path(location))
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "failed" and body["results"] is None and body["error"] == final["error"]


def test_cancel_is_exactly_204_and_goes_through_cancelling(compute: Compute):
    location = compute.submit("sleep", {"seconds": "30"}, test={"queue_s": 0, "cancel_s": 0.8})
    compute.wait(location, lambda st: st["status"] == "in progress")
    resp = compute.call("DELETE", job_path(location))
    assert resp.status_code == 204 and resp.content == b""
    assert compute.status(location)["status"] == "cancelling"
    assert compute.call("GET", job_path(location)).status_code == 202
    final = compute.wait(location)
    assert final["status"] == "cancelled" and set(final["error"]) == ERROR_KEYS
    body = compute.call("GET", job_path(location)).json()
    assert body["status"] == "cancelled" and body["results"] is None and set(body["error"]) == ERROR_KEYS

    # Cancelling a terminal job changes nothing and still answers 204.
    again = compute.call("DELETE", job_path(location))
    assert again.status_code == 204 and again.content == b""
    assert compute.status(location)["status"] == "cancelled"


def test_cancel_of_a_finished_job_keeps_its_outcome(compute: Compute):
    location = compute.submit("wordcount", {"text": "a"}, test={"queue_s": 0, "run_s": 0})
    assert compute.wait(location)["status"] == "succeeded"
    assert compute.call("DELETE", job_path(location)).status_code == 204
    assert compute.status(location)["status"] == "succeeded"


def test_cancel_before_it_starts(compute: Compute):
    location = compute.submit("wordcount", {"text": "a"}, test={"queue_s": 30, "cancel_s": 0})
    assert compute.call("DELETE", job_path(location)).status_code == 204
    final = compute.wait(location)
    assert final["status"] == "cancelled" and final["progress"] == 0


@pytest.mark.parametrize(
    ("task", "body", "mention"),
    [
        ("wordcount", {"parameters": {}}, "text"),
        ("wordcount", {"parameters": {"text": 3}}, "text"),
        ("sleep", {"parameters": {"seconds": "soon"}}, "seconds"),
        ("sleep", {"parameters": {"seconds": "-1"}}, "seconds"),
        ("sleep", {"parameters": {}}, "seconds"),
        ("wordcount", {}, "parameters"),
        ("wordcount", {"parameters": ["text"]}, "parameters"),
        ("wordcount", [], "parameters"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(compute: Compute, task: str, body: Any, mention: str):
    assert_error(compute.submit_raw(task, body), 400, mention)


def test_body_that_is_not_json_is_400(compute: Compute):
    resp = compute.call(
        "POST",
        f"/compute/orgs/{compute.org_id}/demo/wordcount",
        data=b"{oops",
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, 400, "JSON")


def test_unknown_topic_task_and_job_are_404(compute: Compute):
    assert_error(compute.submit_raw("wordcount", {"parameters": {"text": "x"}}, topic="geology"), 404, "geology")
    assert_error(compute.submit_raw("kriging", {"parameters": {}}), 404, "kriging")
    missing = f"/compute/orgs/{compute.org_id}/demo/wordcount/{uuid.uuid4()}"
    for method, path in [("GET", f"{missing}/status"), ("GET", missing), ("DELETE", missing)]:
        assert_error(compute.call(method, path), 404)
    assert_error(compute.call("GET", f"/compute/orgs/{compute.org_id}/demo/wordcount/not-a-uuid/status"), 404)
    assert_error(compute.call("GET", "/compute/elsewhere"), 404)
    assert_error(compute.call("PUT", f"{missing}/status"), 405)


def test_a_job_belongs_to_its_org_topic_and_task(compute: Compute, service: ServiceProcess):
    location = compute.submit("wordcount", {"text": "a"})
    job_id = location.split("/")[-2]
    other_org = Compute(service)
    assert_error(other_org.call("GET", f"/compute/orgs/{other_org.org_id}/demo/wordcount/{job_id}/status"), 404)
    assert_error(compute.call("GET", f"/compute/orgs/{compute.org_id}/demo/sleep/{job_id}/status"), 404)


def test_org_id_must_be_a_uuid(service: ServiceProcess):
    compute = Compute(service, org_id="acme")
    assert_error(compute.submit_raw("wordcount", {"parameters": {"text": "x"}}), 400, "orgId")


@pytest.mark.parametrize("header", [None, "Bearer wrong", "ApiKey {key}", "{key}"])
def test_bearer_key_is_required(service: ServiceProcess, header: str | None):
    compute = Compute(service)
    compute.headers = {} if header is None else {"Authorization": header.format(key=service.api_key)}
    resp = compute.submit_raw("wordcount", {"parameters": {"text": "x"}})
    assert resp.status_code == 401 and "detail" in resp.json()
    assert compute.call("GET", f"/compute/orgs/{compute.org_id}/demo/wordcount/{uuid.uuid4()}").status_code == 401


def test_restart_resumes_running_and_cancelling_jobs():
    """SIGKILL mid-run: after a restart every job still reaches its terminal state from SQLite."""
    with ServiceProcess(api_key="restart-key") as proc:
        compute = Compute(proc)
        sleeping = compute.submit("sleep", {"seconds": "1"})
        cancelled = compute.submit("sleep", {"seconds": "60"})
        queued = compute.submit("wordcount", {"text": "still counts after a crash"})
        compute.wait(sleeping, lambda st: st["status"] == "in progress")
        assert compute.call("DELETE", job_path(cancelled)).status_code == 204
        proc.restart(kill=True)
        assert compute.wait(sleeping)["status"] == "succeeded"
        assert compute.call("GET", job_path(sleeping)).json()["results"] == {"slept": 1.0}
        assert compute.wait(cancelled)["status"] == "cancelled"
        assert compute.wait(queued)["status"] == "succeeded"
        assert compute.call("GET", job_path(queued)).json()["results"] == {"words": 5}
