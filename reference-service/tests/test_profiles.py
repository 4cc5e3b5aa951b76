"""The real profile (``--profile real``) behaves as the real services do, as far as their SDKs and
docs show (docs/jobs-api.md §0): none of our [ext] endpoints or headers, the results store at the
base path CHIME's gateway gives it (workflow-core: ``https://frb.chimenet.ca/workflow/results``,
then ``{base}/results``, ``{base}/view``), Evo errors as problem details, and a rate limit with
``Retry-After``. The ``ext`` profile keeps every extension."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from jobwait_reference_service.process import ServiceProcess

from tests.conftest import API_KEY

MODZY = {"Authorization": f"ApiKey {API_KEY}"}
SUBMIT = {"model": {"identifier": "echo", "version": "1.0"}, "input": {"type": "text", "sources": {"a": {"t": "x"}}}}


@pytest.fixture(scope="module")
def real() -> Iterator[ServiceProcess]:
    with ServiceProcess(api_key=API_KEY, profile="real", rate_limit=1000) as proc:
        yield proc


def test_no_batch_status_nor_watch(real: ServiceProcess, service: ServiceProcess) -> None:
    job = requests.post(real.base_url + "/api/jobs", json=SUBMIT, headers=MODZY, timeout=10).json()["jobIdentifier"]
    batch = requests.get(real.base_url + "/api/jobs", params={"identifiers": job}, headers=MODZY, timeout=10)
    watch = requests.post(real.base_url + "/api/jobs:watch", json={"identifiers": [job]}, headers=MODZY, timeout=10)
    done = requests.get(f"{real.base_url}/api/jobs/{job}/done", headers=MODZY, timeout=10)
    # A real gateway: no such route (404), or no such method on the path (405).
    assert batch.status_code in (404, 405) and watch.status_code in (404, 405) and done.status_code == 404
    # The ext profile has them.
    assert requests.get(service.base_url + "/api/jobs", params={"identifiers": job}, headers=MODZY, timeout=10).ok


def test_keys_and_request_ids_are_not_deduplicated(real: ServiceProcess) -> None:
    key = {**MODZY, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = requests.post(real.base_url + "/api/jobs", json=SUBMIT, headers=key, timeout=10).json()
    again = requests.post(real.base_url + "/api/jobs", json=SUBMIT, headers=key, timeout=10).json()
    assert first["jobIdentifier"] != again["jobIdentifier"]  # Modzy ignores the header


def test_results_store_is_mounted_at_its_own_base_path(real: ServiceProcess) -> None:
    base = real.family_url("chime_results")
    assert base == real.base_url + "/workflow/results"
    token = {"x-access-token": API_KEY}
    assert requests.get(base + "/version", timeout=10).ok  # workflow-core probes {base}/version
    pipeline = f"profile-{uuid.uuid4().hex[:8]}"
    work = {"id": f"{pipeline}-1", "pipeline": pipeline, "status": "success", "results": {}}
    assert requests.post(base + "/results", json=[work], headers=token, timeout=10).json() == {pipeline: True}
    view = requests.post(base + "/view", json={"query": {"pipeline": pipeline}}, headers=token, timeout=10)
    assert [w["id"] for w in view.json()] == [work["id"]]
    assert (
        requests.post(real.base_url + "/workflow/view", json={"query": {}}, headers=token, timeout=10).status_code
        == 404
    )


def test_compute_errors_are_problem_details(real: ServiceProcess) -> None:
    resp = requests.post(
        f"{real.base_url}/compute/orgs/not-a-uuid/demo/wordcount",
        json={"parameters": {}},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"  # RFC 9457
    assert set(resp.json()) >= {"status", "type", "title", "detail"}


def test_rate_limit_answers_429_with_retry_after() -> None:
    with ServiceProcess(api_key=API_KEY, profile="real", rate_limit=5) as proc:
        answers = [requests.get(proc.base_url + "/api/models", headers=MODZY, timeout=10) for _ in range(30)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited, "30 requests at once against 5/s (bursts of 10) must be limited"
        assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
        time.sleep(int(limited[-1].headers["retry-after"]))
        assert requests.get(proc.base_url + "/api/models", headers=MODZY, timeout=10).ok  # after the wait it answers
        # Another key has its own allowance; the health check is never limited.
        assert requests.get(proc.base_url + "/healthz", timeout=10).ok
