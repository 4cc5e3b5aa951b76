"""Evo connections with OAuth2 client credentials: tokens fetched from the token URL, refreshed
before they expire and once on a 401, in workers and in the triggerer, for waits longer than a
token lives; the secret and the tokens never reach trigger kwargs or messages.

As the Evo SDK (evo-sdk-common 0.5.29, ``oauth/authorizer.py`` ``ClientCredentialsAuthorizer``,
``common/connector.py`` ``retry_on_auth_error``): ``grant_type=client_credentials`` with the
client's id and secret, a Bearer token on every request, a new token and one more try on a 401.
The reference service issues tokens that live ``token_ttl`` seconds and signs them with a key
derived from its API key: a restart with another API key makes every earlier token invalid (401).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import requests
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.hooks import ComputeHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S

CLIENT_ID = "airflow-jobwait-test"
SECRET = "cl1ent-s3cret-never-logged"
KEY = "pubkey-oauth.s3cr3t-oauth-key"
ORG = str(uuid.UUID(int=0x0A))
CONN_ID = "evo_oauth"
TTL = 3.0  # seconds a token lives: the waits below outlive several


@pytest.fixture(scope="module")
def evo() -> Iterator[ServiceProcess]:
    with ServiceProcess(
        api_key=KEY, test_controls=True, oauth_client_id=CLIENT_ID, oauth_client_secret=SECRET, token_ttl=TTL
    ) as proc:
        yield proc


def stats(evo: ServiceProcess) -> dict[str, int]:
    resp = requests.get(evo.base_url + "/_test/oauth/stats", headers={"X-Test-Key": evo.api_key}, timeout=10)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


@pytest.fixture
def hook(evo: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> ComputeHook:
    conn = {
        "conn_type": "evo",
        "host": evo.base_url,
        "login": CLIENT_ID,
        "password": SECRET,
        "extra": {"org_id": ORG, "token_url": evo.base_url + "/connect/token", "scopes": "evo.compute"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return ComputeHook(CONN_ID)


def test_a_blocking_wait_outlives_its_tokens(hook: ComputeHook, evo: ServiceProcess) -> None:
    before = stats(evo)["issued"]
    ref = hook.submit(None, "demo", "wordcount", {"text": "a b a"}, extra_body={"test": {"run_s": 3 * TTL}})
    outcome = hook.wait_for_job(
        ref.job_id, poll_interval=0.5, timeout=LIVENESS_S, job_kind="compute", job_ref=ref.job_ref
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.message
    # One token per lifetime at least, fetched before the old one expired: never a 401-ended wait.
    assert stats(evo)["issued"] - before >= 3


def test_a_trigger_wait_outlives_its_tokens_and_keeps_no_secret(hook: ComputeHook, evo: ServiceProcess) -> None:
    ref = hook.submit(None, "demo", "wordcount", {"text": "x"}, extra_body={"test": {"run_s": 3 * TTL}})
    trigger = JobTrigger(ref.job_id, CONN_ID, poll_interval=0.5, job_kind="compute", job_ref=ref.job_ref)
    kwargs = json.dumps(trigger.serialize())
    assert SECRET not in kwargs and CLIENT_ID not in kwargs  # only the connection id travels
    before = stats(evo)["issued"]
    outcome = asyncio.run(asyncio.wait_for(trigger.wait(), LIVENESS_S))
    assert outcome.status is JobStatus.COMPLETED, outcome.message
    assert stats(evo)["issued"] - before >= 3


def test_a_token_refused_early_is_replaced_once(hook: ComputeHook, evo: ServiceProcess) -> None:
    ref = hook.submit(None, "demo", "wordcount", {"text": "y"})
    # A new signing key: the token the hook holds (still valid by its own clock) now gets 401.
    evo.stop()
    evo.api_key = KEY + "-rotated"
    evo.start()
    before = stats(evo)["issued"]
    assert hook.get_status(ref).status in ("requested", "in progress", "succeeded")
    assert stats(evo)["issued"] - before == 1  # one new token, one more try


def test_a_wrong_secret_fails_the_test_button_naming_what_to_check(
    evo: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "evo",
        "host": evo.base_url,
        "login": CLIENT_ID,
        "password": "not-the-secret",
        "extra": {"org_id": ORG, "token_url": evo.base_url + "/connect/token"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_EVO_WRONG", json.dumps(conn))
    ok, message = ComputeHook("evo_wrong").test_connection()
    assert not ok
    assert "/connect/token" in message and "401" in message and "client ID (Login)" in message
    assert "not-the-secret" not in message


def test_the_test_button_fetches_a_token_and_reads_the_hub(hook: ComputeHook, evo: ServiceProcess) -> None:
    ok, message = hook.test_connection()
    assert ok and ORG in message, message


def test_a_token_endpoint_briefly_down_is_retried(evo: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503 from the token endpoint is transient (RFC 9110 §15.6.4): the request that needed the
    token is retried, as any transient failure; the request itself was never sent."""
    conn = {
        "conn_type": "evo",
        "host": evo.base_url,
        "login": CLIENT_ID,
        "password": SECRET,
        "extra": {"org_id": ORG, "token_url": evo.base_url + "/connect/token"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_EVO_FRESH", json.dumps(conn))
    rules = [{"kind": "status", "status": 503, "count": 2, "path_prefix": "/connect/token"}]
    with FaultControl(evo.base_url, evo.api_key).injected(rules) as faults:
        ok, message = ComputeHook("evo_fresh").test_connection()
        assert faults.stats()["injected"]["status"] == 2
    assert ok, message
