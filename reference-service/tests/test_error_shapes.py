"""Every error answer comes in its family's shape, those of middleware and the catch-all 500 too."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from jobwait_reference_service.app import create_app
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.process import ServiceProcess

from tests.conftest import API_KEY

TB = "/gatewayv2/tensorbay-open-api/v1"
ORG = str(uuid.uuid4())
HEADERS = {
    "modzy": {"Authorization": f"ApiKey {API_KEY}"},
    "tensorbay": {"X-Token": API_KEY},
    "evo": {"Authorization": f"Bearer {API_KEY}"},
    "chime": {"x-access-token": API_KEY},
}


def _shape(family: str, response: requests.Response) -> None:
    body = response.json()
    if family == "tensorbay":
        assert set(body) == {"code", "message"}
    elif family == "evo":
        assert response.headers["content-type"] == "application/problem+json"
        assert set(body) == {"status", "type", "title", "detail"} and body["status"] == response.status_code
    else:
        assert set(body) == {"detail"} and isinstance(body["detail"], str)


@pytest.mark.parametrize(
    ("family", "path"),
    [
        ("modzy", "/api/jobs"),
        ("tensorbay", f"{TB}/datasets/demo-dataset/jobs"),
        ("evo", f"/compute/orgs/{ORG}/demo/wordcount"),
        ("chime", "/workflow/results"),
    ],
)
def test_oversized_body_gets_413_in_family_shape(service: ServiceProcess, family: str, path: str) -> None:
    body = b"[" + b"0," * 600_000 + b"0]"
    response = requests.post(service.base_url + path, data=body, headers=HEADERS[family], timeout=30)
    assert response.status_code == 413
    _shape(family, response)


def test_rate_limit_answers_429_in_family_shape() -> None:
    with ServiceProcess(api_key=API_KEY, profile="real", rate_limit=1.0) as service:
        for family, path in (("tensorbay", f"{TB}/users"), ("evo", f"/workspace/orgs/{ORG}/workspaces")):
            # A bucket of 2 (twice the rate): the third request within a second is refused.
            limited = [requests.get(service.base_url + path, headers=HEADERS[family], timeout=10) for _ in range(5)]
            refused = [r for r in limited if r.status_code == 429]
            assert refused, [r.status_code for r in limited]
            _shape(family, refused[0])
            assert int(refused[0].headers["Retry-After"]) >= 1


def test_compute_validation_error_is_a_problem(service: ServiceProcess) -> None:
    url = f"{service.base_url}/workspace/orgs/{ORG}/workspaces"
    response = requests.get(url, params={"limit": "many"}, headers=HEADERS["evo"], timeout=10)
    assert response.status_code == 422
    _shape("evo", response)
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(
    ("family", "method", "path", "allowed"),
    [
        ("modzy", "PUT", "/api/jobs", {"GET", "POST"}),
        ("modzy", "OPTIONS", "/api/jobs/history", {"GET"}),
        ("chime", "PATCH", "/workflow/results", {"POST", "PUT", "DELETE"}),
        ("tensorbay", "PUT", f"{TB}/datasets/demo-dataset/jobs", {"GET", "POST"}),
        ("evo", "PATCH", f"/compute/orgs/{ORG}/demo/wordcount/{uuid.uuid4()}", {"GET", "DELETE"}),
    ],
)
def test_wrong_method_gets_405_with_every_method_of_the_path(
    service: ServiceProcess, family: str, method: str, path: str, allowed: set[str]
) -> None:
    response = requests.request(method, service.base_url + path, headers=HEADERS[family], timeout=10)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    _shape(family, response)


@pytest.mark.parametrize(
    ("family", "path"),
    [("modzy", "/api/models/requirements/account"), ("chime", "/workflow/status")],
)
def test_unexpected_failure_is_a_500_in_family_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str, path: str
) -> None:
    from jobwait_reference_service import inference, results_store

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(inference, "JSONResponse", broken)  # the hardware route builds one
    monkeypatch.setattr(results_store.WorkStore, "status", broken)
    app = create_app(ServiceConfig(db_path=str(tmp_path / "db.sqlite"), api_key=API_KEY))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(path, headers=HEADERS[family])
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
