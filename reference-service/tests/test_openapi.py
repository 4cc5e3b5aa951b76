"""The service's ``/openapi.json`` describes it: schemathesis, every check, finds nothing.

Each profile's service (``ext``, ``real``; no test controls, as clients meet it) is run against
its own document twice: with each family's credentials in the header its scheme names
(``schemathesis.toml``), and with none at all, where every protected operation must answer its
documented 401. Bounded: a fixed seed, examples per operation and phases, one worker (this
runs next to the rest of the suite on small machines); about a minute per profile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jobwait_reference_service.app import create_app
from jobwait_reference_service.config import REAL_RATE_LIMITS, ServiceConfig
from jobwait_reference_service.process import ServiceProcess

from tests.conftest import API_KEY

HERE = Path(__file__).parent
CONFIG = HERE / "schemathesis.toml"
SEED = 20261129
#: Examples per operation and phase; the coverage phase adds its own boundary cases.
MAX_EXAMPLES = {"authenticated": 50, "unauthenticated": 10}
PHASES = "examples,coverage,fuzzing,stateful"
# The [auth.openapi.*] tables of the configuration: dropped for the run without credentials.
_AUTH_TABLE = re.compile(r"^\[auth\.[^\n]*\n(?:[^\[\n][^\n]*\n)*", re.MULTILINE)


def _document(profile: str, tmp_path: Path, **config: Any) -> dict[str, Any]:
    # As the command line starts it: the profile's own rate limit (none for ext).
    config.setdefault("rate_limit", REAL_RATE_LIMITS[profile])
    settings = ServiceConfig(db_path=str(tmp_path / f"{profile}.sqlite"), api_key=API_KEY, profile=profile, **config)  # type: ignore[arg-type]
    return create_app(settings).openapi()


def _schemathesis(
    service: ServiceProcess, config: Path, examples: int, workdir: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JOBWAIT_TEST_API_KEY": API_KEY,
        # schemathesis_hooks.py: short watch timeouts, so the run takes minutes, not hours.
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run"]
    args += [f"{service.base_url}/openapi.json", "--checks", "all", "--seed", str(SEED)]
    args += ["--max-examples", str(examples), "--phases", PHASES, "--workers", "1"]
    if service.profile == "real":
        # Stay under the profile's rate limit (200/s a key, and a bucket for all requests without
        # one), as its clients do: a 429 there is the gateway's answer to any request, before
        # authentication, and would stand in for the 401 a request without a key must get.
        args += ["--rate-limit", "150/s"]
    # No example database: every run starts from the seed alone, on any machine.
    args += ["--generation-database", "none", "--report-dir", str(workdir / "report")]
    return subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("profile", ["ext", "real"])
def test_schemathesis_finds_nothing(profile: str, tmp_path: Path) -> None:
    unauthenticated = tmp_path / "schemathesis.toml"
    unauthenticated.write_text(_AUTH_TABLE.sub("", CONFIG.read_text()))
    assert "[auth." not in unauthenticated.read_text()
    with ServiceProcess(api_key=API_KEY, profile=profile) as service:
        for name, config in (("authenticated", CONFIG), ("unauthenticated", unauthenticated)):
            run = _schemathesis(service, config, MAX_EXAMPLES[name], tmp_path)
            report = f"schemathesis, {name}, profile {profile}:\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}"
            assert run.returncode == 0, report


@pytest.mark.parametrize("profile", ["ext", "real"])
def test_document_names_each_family_scheme(profile: str, tmp_path: Path) -> None:
    doc = _document(profile, tmp_path)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ModzyApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The API key as `ApiKey <key>`.",
    }
    assert schemes["TensorBayToken"]["name"] == "X-Token"
    assert schemes["ChimeAccessToken"]["name"] == "x-access-token"
    assert {key: schemes["EvoBearer"][key] for key in ("type", "scheme")} == {"type": "http", "scheme": "bearer"}
    mount = "/workflow" if profile == "ext" else "/workflow/results"
    paths = doc["paths"]
    assert paths["/api/jobs/{job_id}"]["get"]["security"] == [{"ModzyApiKey": []}]
    assert paths[f"{mount}/results"]["post"]["security"] == [{"ChimeAccessToken": []}]
    assert "security" not in paths[f"{mount}/version"]["get"]  # probed before authenticating
    # No test control, readiness probe or token endpoint is part of a family's API.
    assert not [path for path in paths if "/_test" in path or path in ("/healthz", "/connect/token")]


def test_document_of_each_profile_has_only_its_routes(tmp_path: Path) -> None:
    ext, real = _document("ext", tmp_path), _document("real", tmp_path)
    assert {"/api/jobs:watch", "/api/jobs/{job_id}/done", "/workflow/results"} <= set(ext["paths"])
    assert "get" in ext["paths"]["/api/jobs"]
    assert not {"/api/jobs:watch", "/api/jobs/{job_id}/done"} & set(real["paths"])
    assert "get" not in real["paths"]["/api/jobs"]
    assert "/workflow/results/results" in real["paths"] and "/workflow/view" not in real["paths"]
    # [ext] headers are parameters only where they do something.
    ext_submit, real_submit = ext["paths"]["/api/jobs"]["post"], real["paths"]["/api/jobs"]["post"]
    assert [p["name"] for p in ext_submit["parameters"]] == ["Idempotency-Key"]
    assert "parameters" not in real_submit
    # Only the real profile limits requests: 429 with Retry-After.
    assert "429" not in ext_submit["responses"]
    assert set(real_submit["responses"]["429"]["headers"]) == {"Retry-After"}


def test_every_error_answer_is_in_its_family_shape(tmp_path: Path) -> None:
    doc = _document("real", tmp_path)
    shapes = {"/api": "Detail", "/workflow": "Detail", "/gatewayv2": "TensorBayError", "/compute": "Problem"}
    for path, operations in doc["paths"].items():
        # /compute and /workspace: Evo's.
        family = next((shape for prefix, shape in shapes.items() if path.startswith(prefix)), "Problem")
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                (media_type,) = answer["content"]
                ref = answer["content"][media_type]["schema"]["$ref"].rsplit("/", 1)[-1]
                # 401 is {"detail"} in every family but TensorBay (docs/jobs-api.md).
                expected = "Detail" if status == "401" and family == "Problem" else family
                assert ref == expected, (method, path, status)
                if family == "Problem" and status != "401":
                    assert media_type == "application/problem+json"


def test_oauth2_scheme_only_with_a_client(tmp_path: Path) -> None:
    doc = _document("ext", tmp_path, oauth_client_id="client", oauth_client_secret="secret")
    oauth = doc["components"]["securitySchemes"]["EvoOAuth2"]
    assert oauth["flows"] == {"clientCredentials": {"tokenUrl": "/connect/token", "scopes": {}}}
    status = doc["paths"]["/compute/orgs/{org_id}/{topic}/{task}/{job_id}/status"]["get"]
    assert status["security"] == [{"EvoBearer": []}, {"EvoOAuth2": []}]  # either will do
    assert "EvoOAuth2" not in _document("ext", tmp_path)["components"]["securitySchemes"]
