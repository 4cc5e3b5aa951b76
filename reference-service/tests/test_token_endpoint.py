"""The OAuth2 client-credentials token endpoint (RFC 6749 §4.4) and its tokens on the compute routes."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from jobwait_reference_service.cli import parse_args
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.oauth import TokenCheck, TokenSigner
from jobwait_reference_service.process import ServiceProcess

API_KEY = "token-tests.api-key"
CLIENT_ID = "evo-client"
# ':' '+' '%' '/' exercise the Basic encoding rules of RFC 6749 §2.3.1.
CLIENT_SECRET = "s3cr3t:with+odd/chars%"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def oauth_service() -> Iterator[ServiceProcess]:
    with ServiceProcess(
        api_key=API_KEY, test_controls=True, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET
    ) as proc:
        yield proc


def post_token(
    service: ServiceProcess, data: dict[str, str] | str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(f"{service.base_url}/connect/token", data=data, headers=headers, timeout=10)


def client_credentials(**extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **extra}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def compute_status(service: ServiceProcess, credential: str) -> requests.Response:
    """The status of a job that does not exist: 404 once authenticated, 401 before."""
    org, job = uuid.uuid4(), uuid.uuid4()
    url = f"{service.base_url}/compute/orgs/{org}/demo/wordcount/{job}/status"
    return requests.get(url, headers={"Authorization": f"Bearer {credential}"}, timeout=10)


def assert_oauth_error(resp: requests.Response, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert resp.headers["Cache-Control"] == "no-store"
    assert CLIENT_SECRET not in resp.text
    return dict(body)


def test_token_issued_for_client_secret_post(oauth_service: ServiceProcess):
    resp = post_token(oauth_service, client_credentials(scope="evo.discovery evo.workspace"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "evo.discovery evo.workspace"
    assert isinstance(body["access_token"], str) and body["access_token"] not in (API_KEY, CLIENT_SECRET)
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    assert CLIENT_SECRET not in resp.text


def test_every_token_request_gets_a_new_token(oauth_service: ServiceProcess):
    tokens = {post_token(oauth_service, client_credentials()).json()["access_token"] for _ in range(3)}
    assert len(tokens) == 3


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "form-encoded"])
def test_token_issued_for_client_secret_basic(oauth_service: ServiceProcess, encode: bool):
    client_id, secret = (
        (quote(CLIENT_ID, safe=""), quote(CLIENT_SECRET, safe="")) if encode else (CLIENT_ID, CLIENT_SECRET)
    )
    resp = post_token(oauth_service, {"grant_type": "client_credentials"}, basic(client_id, secret))
    assert resp.status_code == 200, resp.text
    assert compute_status(oauth_service, resp.json()["access_token"]).status_code == 404


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        (client_credentials(client_secret="wrong"), None),
        (client_credentials(client_id="someone-else"), None),
        ({"grant_type": "client_credentials"}, basic(CLIENT_ID, "wrong")),
        ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!not-base64!!"}),
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID}, None),  # no secret at all
    ],
    ids=["post-wrong-secret", "post-unknown-client", "basic-wrong-secret", "basic-garbled", "no-secret"],
)
def test_token_wrong_client_is_invalid_client(
    oauth_service: ServiceProcess, data: dict[str, str], headers: dict[str, str] | None
):
    resp = post_token(oauth_service, data, headers)
    assert_oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_token_unsupported_grant_type(oauth_service: ServiceProcess):
    assert_oauth_error(
        post_token(oauth_service, client_credentials(grant_type="password")), 400, "unsupported_grant_type"
    )


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, None),  # no grant_type
        (client_credentials(), basic(CLIENT_ID, CLIENT_SECRET)),  # two client authentication methods
        ("grant_type=client_credentials&grant_type=client_credentials", basic(CLIENT_ID, CLIENT_SECRET)),
        (
            '{"grant_type": "client_credentials"}',
            {**basic(CLIENT_ID, CLIENT_SECRET), "Content-Type": "application/json"},
        ),
    ],
    ids=["missing-grant", "two-auth-methods", "repeated-parameter", "json-body"],
)
def test_token_malformed_request_is_invalid_request(
    oauth_service: ServiceProcess, data: dict[str, str] | str, headers: dict[str, str] | None
):
    if isinstance(data, str) and headers is not None and "Content-Type" not in headers:
        headers = {**headers, **FORM}
    assert_oauth_error(post_token(oauth_service, data, headers), 400, "invalid_request")


def test_token_scope_with_forbidden_characters_is_invalid_scope(oauth_service: ServiceProcess):
    assert_oauth_error(post_token(oauth_service, client_credentials(scope='evo "quoted"')), 400, "invalid_scope")


def test_token_accepted_by_compute_routes_next_to_the_api_key(oauth_service: ServiceProcess):
    token = post_token(oauth_service, client_credentials()).json()["access_token"]
    org = uuid.uuid4()
    headers = {"Authorization": f"Bearer {token}"}
    submit = requests.post(
        f"{oauth_service.base_url}/compute/orgs/{org}/demo/wordcount",
        json={"parameters": {"text": "a b"}},
        headers=headers,
        timeout=10,
        allow_redirects=False,
    )
    assert submit.status_code == 303, submit.text
    status = requests.get(oauth_service.base_url + submit.headers["Location"], headers=headers, timeout=10)
    assert status.status_code == 200 and status.json()["status"] in {"requested", "in progress", "succeeded"}
    assert compute_status(oauth_service, API_KEY).status_code == 404


def test_token_altered_or_foreign_is_refused_by_compute(oauth_service: ServiceProcess):
    token = post_token(oauth_service, client_credentials()).json()["access_token"]
    prefix, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    foreign = TokenSigner(API_KEY, CLIENT_ID, "another-secret").issue("compute", 3600, time.time())
    for bad in (f"{prefix}.{payload}.{flipped}", foreign, token + "x", "jw1.", CLIENT_SECRET):
        resp = compute_status(oauth_service, bad)
        assert resp.status_code == 401, bad
        assert set(resp.json()) == {"detail"}
    # Not a token of the inference family: only compute speaks OAuth2.
    inference = requests.get(
        f"{oauth_service.base_url}/api/jobs/history", headers={"Authorization": f"ApiKey {token}"}, timeout=10
    )
    assert inference.status_code == 401


def test_token_expiry_gives_compute_401():
    with ServiceProcess(
        api_key=API_KEY, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, token_ttl=2
    ) as proc:
        issued = post_token(proc, client_credentials()).json()
        answered = time.time()
        assert issued["expires_in"] == 2
        assert compute_status(proc, issued["access_token"]).status_code == 404
        # The token expires at most 2 s after the answer came back.
        time.sleep(max(0.0, answered + 2.1 - time.time()))
        resp = compute_status(proc, issued["access_token"])
        assert resp.status_code == 401
        assert set(resp.json()) == {"detail"} and "expired" in resp.json()["detail"]


def test_token_survives_restart():
    with ServiceProcess(api_key=API_KEY, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET) as proc:
        token = post_token(proc, client_credentials()).json()["access_token"]
        proc.restart(kill=True)
        assert compute_status(proc, token).status_code == 404


def test_token_ttl_zero_never_expires():
    with ServiceProcess(
        api_key=API_KEY, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, token_ttl=0
    ) as proc:
        body = post_token(proc, client_credentials()).json()
        assert "expires_in" not in body
        assert TokenSigner(API_KEY, CLIENT_ID, CLIENT_SECRET).check(body["access_token"], time.time() + 10**9) is (
            TokenCheck.VALID
        )


def test_token_endpoint_absent_without_a_client(service: ServiceProcess):
    assert post_token(service, {"grant_type": "client_credentials"}).status_code == 404


def test_token_stats_count_requests_and_need_the_test_key(oauth_service: ServiceProcess):
    url = f"{oauth_service.base_url}/_test/oauth/stats"
    assert requests.get(url, timeout=10).status_code == 401
    key = {"X-Test-Key": API_KEY}
    assert requests.delete(url, headers=key, timeout=10).json()["requests"] == 0
    post_token(oauth_service, client_credentials(scope="a b"))
    post_token(oauth_service, {"grant_type": "client_credentials"}, basic(CLIENT_ID, CLIENT_SECRET))
    post_token(oauth_service, client_credentials(client_secret="wrong"))
    stats = requests.get(url, headers=key, timeout=10).json()
    assert stats == {
        "requests": 3,
        "issued": 2,
        "auth_methods": {"client_secret_post": 1, "client_secret_basic": 1},
        "last_scope": None,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--oauth-client-id", "c"],
        ["--oauth-client-secret", "s"],
        ["--oauth-client-id", "c", "--oauth-client-secret", "s", "--token-ttl", "0.5"],
    ],
)
def test_token_cli_refuses_half_a_client_or_a_sub_second_ttl(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv("JOBWAIT_OAUTH_CLIENT_ID", raising=False)
    monkeypatch.delenv("JOBWAIT_OAUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(SystemExit):
        parse_args(["--db", "x.sqlite", "--api-key", "k", *argv])
    assert "s3cr3t" not in capsys.readouterr().err


def test_token_cli_reads_the_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JOBWAIT_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
    args = parse_args(["--db", "x.sqlite", "--api-key", "k", "--oauth-client-id", CLIENT_ID, "--token-ttl", "60"])
    assert (args.oauth_client_id, args.oauth_client_secret, args.token_ttl) == (CLIENT_ID, CLIENT_SECRET, 60.0)


def test_token_config_keeps_the_secret_out_of_repr():
    config = ServiceConfig(db_path="x", api_key="k", oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET)
    assert CLIENT_SECRET not in repr(config)
    with pytest.raises(ValueError):
        ServiceConfig(db_path="x", api_key="k", oauth_client_id=CLIENT_ID)
