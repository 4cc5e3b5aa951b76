"""Socket-level faults over real sockets: both transports raise the same error for each, retry it
the same way, and end a dripping answer at the connection's total deadline.

The expected classes come from the contract, not from the code under test: a request that got
no complete HTTP response (RFC 9112 §6.3: a message cut before its framing says it ends) is a
``TransportError``, worth sending again when idempotent; bytes that are not HTTP/1.1 (a status
line or chunk size outside RFC 9112's grammar) are an ``InvalidResponse``: the peer answered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import AuthScheme, Call, ClientConfig, HttpRequest, HttpResponse
from airflow_jobwait.client.retry import NO_RETRY, RetryPolicy
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.exceptions import InvalidResponse, JobWaitError, TransportError
from tests._hostile_server import HostileServer, refused_url
from tests._tls import https_json

REQUEST = HttpRequest("GET", "/api/jobs/job-1", AuthScheme("Authorization", "ApiKey "))
CALL: Call[HttpResponse] = Call(REQUEST, lambda response: response)
# Two quick attempts: enough to see whether a fault is retried.
TWO_ATTEMPTS = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)

# behaviour of the server -> (error class per the contract, fault named in the error)
CASES: dict[str, tuple[type[JobWaitError], str]] = {
    "reset": (TransportError, "RESET"),
    "close": (TransportError, "RESET"),
    "stall": (TransportError, "TIMEOUT"),
    "truncated_status": (TransportError, "TRUNCATED_HEADERS"),
    "truncated_headers": (TransportError, "TRUNCATED_HEADERS"),
    "truncated_body": (TransportError, "TRUNCATED_BODY"),
    "truncated_chunked": (TransportError, "TRUNCATED_BODY"),
    "not_tls": (TransportError, "TLS"),
    "bad_chunked": (InvalidResponse, "BAD_FRAMING"),
    "invalid_http": (InvalidResponse, "INVALID_HTTP"),
}


def sync_call(url: str, retry: RetryPolicy, timeout: float = 1.0) -> JobWaitError:
    client = SyncClient(ClientConfig(url, "k", timeout=timeout))
    try:
        client.call(CALL, retry=retry)
    except JobWaitError as err:
        return err
    finally:
        client.close()
    raise AssertionError("the call succeeded against a misbehaving server")


def async_call(url: str, retry: RetryPolicy, timeout: float = 1.0) -> JobWaitError:
    async def run() -> JobWaitError:
        client = AsyncClient(ClientConfig(url, "k", timeout=timeout))
        try:
            await client.call(CALL, retry=retry)
        except JobWaitError as err:
            return err
        finally:
            await client.close()
        raise AssertionError("the call succeeded against a misbehaving server")

    return asyncio.run(run())


TRANSPORTS = {"sync": sync_call, "async": async_call}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("behaviour", CASES)
def test_each_fault_is_classified_and_retried_alike(behaviour: str, transport: str) -> None:
    expected, fault = CASES[behaviour]
    with HostileServer(behaviour) as server:
        url = server.url.replace("http://", "https://") if behaviour == "not_tls" else server.url
        err = TRANSPORTS[transport](url, TWO_ATTEMPTS)
        connections = server.connections
    assert type(err) is expected, f"{transport}: {err!r}"
    assert err.fault == fault, f"{transport}: {err}"
    assert "GET /api/jobs/job-1" in str(err)
    # A TransportError of an idempotent GET is sent again; an answer that is not HTTP is not.
    assert connections == (2 if expected is TransportError else 1), f"{transport}: {connections} connections"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connection_is_a_transport_error(transport: str) -> None:
    err = TRANSPORTS[transport](refused_url(), NO_RETRY)
    assert type(err) is TransportError and err.fault == "REFUSED"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_untrusted_certificate_is_a_tls_transport_error(transport: str, tmp_path: Path) -> None:
    with https_json(tmp_path, b"{}") as url:
        err = TRANSPORTS[transport](url, NO_RETRY)
    assert type(err) is TransportError and err.fault == "TLS"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("behaviour", ["drip_head", "drip_body"])
def test_a_dripping_answer_ends_at_the_total_deadline(behaviour: str, transport: str) -> None:
    # One byte a second: each read is quick, so a per-read timeout never trips; the whole
    # answer takes over a minute. A 2 s total deadline must end it (bound generous for load).
    with HostileServer(behaviour, drip_interval=1.0) as server:
        started = time.monotonic()
        err = TRANSPORTS[transport](server.url, NO_RETRY, timeout=2.0)
        elapsed = time.monotonic() - started
    assert type(err) is TransportError and err.fault == "TIMEOUT", repr(err)
    assert "2s total deadline" in str(err)
    assert elapsed < 10, f"{transport} {behaviour}: ended after {elapsed:.1f}s"


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_whole_answer_over_tls_is_read_under_the_deadline(transport: str, tmp_path: Path) -> None:
    async def read_async(config: ClientConfig) -> HttpResponse:
        client = AsyncClient(config)
        try:
            return await client.call(CALL)
        finally:
            await client.close()

    with https_json(tmp_path, b'{"a": 1}') as url:
        config = ClientConfig(url, "k", timeout=5.0, verify=False)
        response = SyncClient(config).call(CALL) if transport == "sync" else asyncio.run(read_async(config))
    assert response.status == 200 and response.body == b'{"a": 1}'
