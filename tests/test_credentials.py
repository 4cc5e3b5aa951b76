"""OAuth2 client-credentials token sources (RFC 6749 §4.4, as evo-sdk-common fetches Evo tokens)
against the reference service's token endpoint over real HTTP.

What the tests expect comes from the RFC and the SDK: one token request per token (lazily, on
first use), the token reused until it nears expiry, a new one on demand after a 401, refusals
(RFC 6749 §5.2) raised as ``TokenError`` and transport failures as ``TransportError``; counts
come from the service's ``/_test/oauth/stats``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess, free_port
from pytest_mock import MockerFixture

from airflow_jobwait.client import credentials
from airflow_jobwait.client.credentials import (
    AsyncStaticToken,
    OAuth2ClientCredentials,
    StaticToken,
    async_token_source,
    sync_token_source,
)
from airflow_jobwait.exceptions import TokenError, TransportError
from tests._tls import https_json

API_KEY = "compute.api-key-never-logged"
CLIENT_ID = "evo-airflow"
# '&', '=', '+', '/' must survive the form encoding of client_secret_post.
CLIENT_SECRET = "cl1ent+s3cret/with&odd=chars"
SCOPE = "evo.compute evo.workspace"
TOKEN_PATH = "/connect/token"


def start(token_ttl: float) -> ServiceProcess:
    return ServiceProcess(
        api_key=API_KEY,
        test_controls=True,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        token_ttl=token_ttl,
    ).start()


@pytest.fixture(scope="module")
def idp() -> Iterator[ServiceProcess]:
    """Tokens valid an hour, as Evo's."""
    proc = start(3600)
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def short_idp() -> Iterator[ServiceProcess]:
    """Tokens valid 3 seconds."""
    proc = start(3)
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def endless_idp() -> Iterator[ServiceProcess]:
    """Tokens that never expire: the replies carry no ``expires_in``."""
    proc = start(0)
    yield proc
    proc.close()


def settings(service: ServiceProcess, **overrides: Any) -> OAuth2ClientCredentials:
    values: dict[str, Any] = {
        "token_url": service.base_url + TOKEN_PATH,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": SCOPE,
        **overrides,
    }
    return OAuth2ClientCredentials(**values)


def stats(service: ServiceProcess, reset: bool = False) -> dict[str, Any]:
    resp = requests.request(
        "DELETE" if reset else "GET",
        f"{service.base_url}/_test/oauth/stats",
        headers={"X-Test-Key": service.api_key},
        timeout=10,
    )
    resp.raise_for_status()
    return dict(resp.json())


@pytest.fixture
def counted(request: pytest.FixtureRequest) -> Callable[[ServiceProcess], ServiceProcess]:
    """Reset a service's token stats (and fault rules) and clear the faults after the test."""
    used: list[ServiceProcess] = []

    def reset(service: ServiceProcess) -> ServiceProcess:
        stats(service, reset=True)
        FaultControl(service.base_url, service.api_key).clear()
        used.append(service)
        return service

    yield reset  # type: ignore[misc]
    for service in used:
        FaultControl(service.base_url, service.api_key).clear()


def compute_accepts(service: ServiceProcess, token: str) -> bool:
    """Whether the compute family takes ``token``: 404 for a job that does not exist, 401 if refused."""
    url = f"{service.base_url}/compute/orgs/{uuid.uuid4()}/demo/wordcount/{uuid.uuid4()}/status"
    status = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
    assert status in (401, 404)
    return status == 404


def delay_token_requests(service: ServiceProcess, seconds: float) -> None:
    """Hold every token request ``seconds``: callers arriving meanwhile overlap the fetch."""
    rule = {"kind": "delay", "path_prefix": TOKEN_PATH, "delay_s": seconds}
    FaultControl(service.base_url, service.api_key).set([rule])


# -- the static API key --


def test_without_oauth_the_api_key_is_the_token():
    sync = sync_token_source(API_KEY, None, verify=True, timeout=5)
    assert isinstance(sync, StaticToken)
    assert sync.token() == API_KEY
    assert sync.refresh() is False
    assert API_KEY not in repr(sync)


async def test_without_oauth_the_api_key_is_the_async_token():
    source = async_token_source(API_KEY, None, verify=True, timeout=5)
    assert isinstance(source, AsyncStaticToken)
    assert await source.token() == API_KEY
    assert await source.refresh() is False
    assert API_KEY not in repr(source)


# -- fetching and reusing --


def test_first_token_fetched_lazily_with_client_secret_post(idp, counted):
    counted(idp)
    source = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    assert stats(idp)["requests"] == 0  # nothing fetched before the first token() call
    token = source.token()
    assert token not in (API_KEY, CLIENT_SECRET)
    assert compute_accepts(idp, token)
    # evo-sdk-common's form: credentials in the body, the scope asked for.
    assert stats(idp) == {
        "requests": 1,
        "issued": 1,
        "auth_methods": {"client_secret_post": 1},
        "last_scope": SCOPE,
    }


def test_no_scope_sends_none(idp, counted):
    counted(idp)
    source = sync_token_source(API_KEY, settings(idp, scope=None), verify=True, timeout=10)
    assert compute_accepts(idp, source.token())
    assert stats(idp)["last_scope"] is None


def test_token_reused_while_valid(idp, counted):
    counted(idp)
    source = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    assert len({source.token() for _ in range(5)}) == 1
    assert stats(idp)["requests"] == 1


async def test_async_token_fetched_once_and_reused(idp, counted):
    counted(idp)
    source = async_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    assert stats(idp)["requests"] == 0
    tokens = {await source.token() for _ in range(5)}
    assert len(tokens) == 1
    assert compute_accepts(idp, tokens.pop())
    assert stats(idp)["requests"] == 1


def test_token_refreshed_within_the_leeway_before_expiry(short_idp, counted):
    counted(short_idp)
    # 3 s tokens, refreshed once they expire within 1 s: a token is handed out for 2 s.
    source = sync_token_source(API_KEY, settings(short_idp, leeway=1.0), verify=True, timeout=10)
    first = source.token()
    fetched = time.monotonic()
    assert source.token() == first
    time.sleep(max(0.0, fetched + 2.1 - time.monotonic()))
    second = source.token()
    assert second != first
    assert source.token() == second
    assert compute_accepts(short_idp, second)
    assert stats(short_idp)["requests"] == 2


async def test_async_token_refreshed_within_the_leeway_before_expiry(short_idp, counted):
    counted(short_idp)
    source = async_token_source(API_KEY, settings(short_idp, leeway=1.0), verify=True, timeout=10)
    first = await source.token()
    fetched = time.monotonic()
    await asyncio.sleep(max(0.0, fetched + 2.1 - time.monotonic()))
    second = await source.token()
    assert second != first
    assert stats(short_idp)["requests"] == 2


def future_clock(mocker: MockerFixture, seconds_ahead: float) -> None:
    """Make the token sources' monotonic clock read ``seconds_ahead`` from now."""
    ahead = time.monotonic() + seconds_ahead
    mocker.patch.object(credentials, "time", SimpleNamespace(monotonic=lambda: ahead))


def test_token_without_expires_in_is_kept_until_a_401(endless_idp, idp, counted, mocker: MockerFixture):
    counted(endless_idp)
    counted(idp)
    endless = sync_token_source(API_KEY, settings(endless_idp), verify=True, timeout=10)
    hourly = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    first_endless, first_hourly = endless.token(), hourly.token()
    future_clock(mocker, 10 * 365 * 86400)
    assert endless.token() == first_endless
    assert stats(endless_idp)["requests"] == 1
    # The same ten years on, the hour-long token is replaced: the clock did move for the sources.
    assert hourly.token() != first_hourly
    # Only a 401 (refresh) replaces a token that does not expire.
    assert endless.refresh() is True
    assert endless.token() != first_endless
    assert stats(endless_idp)["requests"] == 2


# -- forced refresh (after a 401) --


def test_refresh_fetches_a_new_token(idp, counted):
    counted(idp)
    source = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    first = source.token()
    assert source.refresh() is True
    second = source.token()
    assert second != first
    assert source.token() == second
    assert compute_accepts(idp, second)
    assert stats(idp)["requests"] == 2


async def test_async_refresh_fetches_a_new_token(idp, counted):
    counted(idp)
    source = async_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    first = await source.token()
    assert await source.refresh() is True
    second = await source.token()
    assert second != first
    assert stats(idp)["requests"] == 2


# -- concurrent callers share one fetch --


def run_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_threads_fetch_one_token(idp, counted):
    counted(idp)
    delay_token_requests(idp, 0.5)
    source = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    tokens = run_threads(12, source.token)
    assert len(set(tokens)) == 1 and tokens[0] is not None
    assert stats(idp)["requests"] == 1


def test_concurrent_refreshes_after_one_401_fetch_one_token(idp, counted):
    counted(idp)
    source = sync_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    first = source.token()
    delay_token_requests(idp, 0.5)
    assert run_threads(12, source.refresh) == [True] * 12
    assert source.token() != first
    assert stats(idp)["requests"] == 2


async def test_concurrent_tasks_fetch_one_token(idp, counted):
    counted(idp)
    delay_token_requests(idp, 0.5)
    source = async_token_source(API_KEY, settings(idp), verify=True, timeout=10)
    tokens = await asyncio.gather(*(source.token() for _ in range(20)))
    assert len(set(tokens)) == 1
    assert stats(idp)["requests"] == 1
    first = tokens[0]
    assert await asyncio.gather(*(source.refresh() for _ in range(20))) == [True] * 20
    assert await source.token() != first
    assert stats(idp)["requests"] == 2


# -- refusals and failures --


def assert_no_secrets(text: str, *tokens: str) -> None:
    assert CLIENT_SECRET not in text
    for token in tokens:
        assert token not in text


def test_wrong_secret_is_a_token_error_naming_the_url(idp, counted, caplog: pytest.LogCaptureFixture):
    counted(idp)
    caplog.set_level(logging.DEBUG)
    oauth = settings(idp, client_secret="wrong-" + CLIENT_SECRET)
    source = sync_token_source(API_KEY, oauth, verify=True, timeout=10)
    with pytest.raises(TokenError) as info:
        source.token()
    err = info.value
    assert (err.status, err.error, err.token_url) == (401, "invalid_client", oauth.token_url)
    assert oauth.token_url in str(err) and "401" in str(err) and "invalid_client" in str(err)
    assert_no_secrets(str(err) + repr(err) + caplog.text + repr(source))
    assert oauth.client_secret not in str(err) + repr(err) + caplog.text


async def test_async_wrong_client_is_a_token_error(idp, counted):
    counted(idp)
    oauth = settings(idp, client_id="not-" + CLIENT_ID)
    with pytest.raises(TokenError) as info:
        await async_token_source(API_KEY, oauth, verify=True, timeout=10).token()
    assert (info.value.status, info.value.error) == (401, "invalid_client")
    assert oauth.token_url in str(info.value)
    assert_no_secrets(str(info.value))


def test_token_endpoint_error_status_is_a_token_error(idp, counted):
    counted(idp)
    rule = {"kind": "status", "status": 503, "path_prefix": TOKEN_PATH}
    FaultControl(idp.base_url, idp.api_key).set([rule])
    with pytest.raises(TokenError) as info:
        sync_token_source(API_KEY, settings(idp), verify=True, timeout=10).token()
    assert info.value.status == 503 and info.value.error is None
    assert "503" in str(info.value)


def test_unreachable_token_url_is_a_transport_error():
    oauth = OAuth2ClientCredentials(f"http://127.0.0.1:{free_port()}{TOKEN_PATH}", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(TransportError) as info:
        sync_token_source(API_KEY, oauth, verify=True, timeout=5).token()
    assert oauth.token_url in str(info.value)
    assert_no_secrets(str(info.value))


async def test_async_unreachable_token_url_is_a_transport_error():
    oauth = OAuth2ClientCredentials(f"http://127.0.0.1:{free_port()}{TOKEN_PATH}", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(TransportError) as info:
        await async_token_source(API_KEY, oauth, verify=True, timeout=5).token()
    assert oauth.token_url in str(info.value)
    assert_no_secrets(str(info.value))


def test_dropped_token_request_is_a_transport_error(idp, counted):
    counted(idp)
    FaultControl(idp.base_url, idp.api_key).set([{"kind": "drop", "path_prefix": TOKEN_PATH}])
    with pytest.raises(TransportError):
        sync_token_source(API_KEY, settings(idp), verify=True, timeout=10).token()


def test_slow_token_endpoint_times_out_as_a_transport_error(idp, counted):
    counted(idp)
    delay_token_requests(idp, 60)
    began = time.monotonic()
    with pytest.raises(TransportError):
        sync_token_source(API_KEY, settings(idp), verify=True, timeout=0.5).token()
    # Liveness, not speed: the 0.5 s timeout ended it, not the 60 s the endpoint held it.
    assert time.monotonic() - began < 30


async def test_async_slow_token_endpoint_times_out_as_a_transport_error(idp, counted):
    counted(idp)
    delay_token_requests(idp, 60)
    began = time.monotonic()
    with pytest.raises(TransportError):
        await async_token_source(API_KEY, settings(idp), verify=True, timeout=0.5).token()
    # Liveness, not speed: the 0.5 s timeout ended it, not the 60 s the endpoint held it.
    assert time.monotonic() - began < 30


@pytest.fixture(scope="module")
def https_token_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token endpoint over HTTPS with a self-signed certificate, issuing ``tls-token`` to anyone."""
    folder = tmp_path_factory.mktemp("tls-token")
    body = json.dumps({"access_token": "tls-token", "token_type": "Bearer", "expires_in": 3600}).encode()
    with https_json(folder, body) as url:
        yield f"{url}{TOKEN_PATH}"


async def test_tls_verification_is_honoured(https_token_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    import certifi

    # requests lets REQUESTS_CA_BUNDLE override verify=False unless it is given per request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    oauth = OAuth2ClientCredentials(https_token_endpoint, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(TransportError, match=r"SSL|certificate"):
        sync_token_source(API_KEY, oauth, verify=True, timeout=5).token()
    with pytest.raises(TransportError, match=r"SSL|certificate"):
        await async_token_source(API_KEY, oauth, verify=True, timeout=5).token()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: expected here
        assert sync_token_source(API_KEY, oauth, verify=False, timeout=5).token() == "tls-token"
    assert await async_token_source(API_KEY, oauth, verify=False, timeout=5).token() == "tls-token"


# -- secrets stay secret --


async def test_secrets_and_tokens_absent_from_reprs_and_logs(idp, counted, caplog: pytest.LogCaptureFixture):
    counted(idp)
    caplog.set_level(logging.DEBUG)
    oauth = settings(idp)
    sync = sync_token_source(API_KEY, oauth, verify=True, timeout=10)
    async_ = async_token_source(API_KEY, oauth, verify=True, timeout=10)
    tokens = (sync.token(), await async_.token())
    assert "Fetched an access token" in caplog.text  # the fetch is logged, the token is not
    assert_no_secrets(repr(oauth) + repr(sync) + repr(async_) + caplog.text, *tokens)
    assert CLIENT_ID in repr(oauth) and oauth.token_url in repr(oauth)


@pytest.mark.parametrize(
    "overrides",
    [{"token_url": "ftp://host/token"}, {"token_url": "not a url"}, {"client_id": ""}, {"leeway": -1}],
)
def test_invalid_settings_are_refused(idp, overrides: dict[str, Any]):
    with pytest.raises(ValueError) as info:
        settings(idp, **overrides)
    assert CLIENT_SECRET not in str(info.value)


def test_a_refusal_echoing_the_secret_is_redacted(idp):
    # A server may repeat what it was sent; the reference service does not, so this reads a reply.
    oauth = settings(idp)
    reply = b'{"error": "invalid_client", "error_description": "secret cl1ent+s3cret/with&odd=chars is wrong"}'
    with pytest.raises(TokenError) as info:
        credentials._parse_reply(oauth, 401, reply)
    assert "invalid_client" in str(info.value) and "is wrong" in str(info.value)
    assert_no_secrets(str(info.value))


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b'{"token_type": "Bearer", "expires_in": 60}', "without an access_token"),
        (b'{"access_token": "t", "token_type": "mac", "expires_in": 60}', "not Bearer"),
        (b'{"access_token": "t", "token_type": "Bearer", "expires_in": "soon"}', "expires_in"),
        (b"<html>ok</html>", "not a JSON object"),
    ],
)
def test_a_success_without_a_usable_bearer_token_is_a_token_error(idp, reply: bytes, problem: str):
    # RFC 6749 §5.1: access_token and token_type are required; the client only speaks Bearer.
    with pytest.raises(TokenError) as info:
        credentials._parse_reply(settings(idp), 200, reply)
    assert problem in str(info.value) and info.value.status == 200
