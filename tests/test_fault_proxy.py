"""The soak's TCP fault proxy (``tests/_fault_proxy.py``) does what each kind says, to both
transports: the client raises the error the fault table (``client/faults.py``) gives that fault,
and an exchange without a fault goes through whole, on a kept-alive connection.

The upstream is a plain ``http.server`` answering JSON, so a failure here is the proxy's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import AuthScheme, Call, ClientConfig, HttpRequest, decode_json
from airflow_jobwait.client.retry import NO_RETRY
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.exceptions import InvalidResponse, JobWaitError, TransportError
from tests._fault_proxy import KINDS, FaultProxy, _corrupt
from tests._hostile_server import refused_url

BODY = json.dumps({"jobIdentifier": "job-1", "status": "IN_PROGRESS", "padding": "x" * 40}).encode()
CALL: Call[Any] = Call(HttpRequest("GET", "/api/jobs/job-1", AuthScheme("Authorization")), decode_json)

# kind -> (error class per the contract, the faults it may be named): a reset may land before or
# inside the answer, so it is named for where it landed; all of them are "no complete answer".
EXPECTED: dict[str, tuple[type[JobWaitError], set[str]]] = {
    "reset": (TransportError, {"RESET", "TRUNCATED_HEADERS", "TRUNCATED_BODY"}),
    "stall": (TransportError, {"TIMEOUT"}),
    "drip_head": (TransportError, {"TIMEOUT"}),
    "drip_body": (TransportError, {"TIMEOUT"}),
    "truncated_headers": (TransportError, {"TRUNCATED_HEADERS"}),
    "truncated_body": (TransportError, {"TRUNCATED_BODY"}),
    "corrupt": (InvalidResponse, {"", "None"}),  # the body is not JSON: no socket fault named
}


class _Json(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length framing, as uvicorn answers

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Json)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def sync_calls(url: str, times: int = 1, timeout: float = 1.0) -> list[Any]:
    """Results (or the error) of ``times`` calls on one sync client (one kept-alive connection)."""
    client = SyncClient(ClientConfig(url, "k", timeout=timeout))
    results: list[Any] = []
    try:
        for _ in range(times):
            try:
                results.append(client.call(CALL, retry=NO_RETRY))
            except JobWaitError as err:
                results.append(err)
    finally:
        client.close()
    return results


def async_calls(url: str, times: int = 1, timeout: float = 1.0) -> list[Any]:
    async def run() -> list[Any]:
        client = AsyncClient(ClientConfig(url, "k", timeout=timeout))
        results: list[Any] = []
        try:
            for _ in range(times):
                try:
                    results.append(await client.call(CALL, retry=NO_RETRY))
                except JobWaitError as err:
                    results.append(err)
        finally:
            await client.close()
        return results

    return asyncio.run(run())


TRANSPORTS = {"sync": sync_calls, "async": async_calls}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_breaks_the_answer_as_named(kind: str, transport: str, upstream: int) -> None:
    # Three calls, each faulted (share 1): three cut points, all classified alike.
    with FaultProxy("127.0.0.1", upstream, {kind: 1.0}, seed=3, drip_interval=0.05) as proxy:
        results = TRANSPORTS[transport](proxy.url, times=3, timeout=1.0)
        # The proxy notices a client gone at its next drip step: give it a few of them.
        for _ in range(100):
            if not kind.startswith("drip") or proxy.stats()["drips abandoned"] == 3:
                break
            time.sleep(0.02)
        stats = proxy.stats()
    error_class, faults = EXPECTED[kind]
    for result in results:
        assert type(result) is error_class, f"{kind}/{transport}: {result!r}"
        assert str(result.fault) in faults, f"{kind}/{transport}: {result}"
    assert stats["fired"][kind] == 3 and sum(stats["fired"].values()) == 3, stats
    if kind.startswith("drip"):
        # 1 s client deadline against a drip of over 5 s: the client gave up each time.
        assert stats["drips abandoned"] == 3, stats


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_fault_passes_the_answer_whole_on_one_connection(transport: str, upstream: int) -> None:
    with FaultProxy("127.0.0.1", upstream, {}) as proxy:
        results = TRANSPORTS[transport](proxy.url, times=3)
        stats = proxy.stats()
    assert results == [json.loads(BODY)] * 3
    assert stats["exchanges"] == 3 and stats["connections"] == 1, stats
    assert sum(stats["fired"].values()) == 0


def test_a_fault_per_exchange_on_a_kept_alive_connection(upstream: int) -> None:
    # corrupt keeps the framing whole: the connection stays, the next exchanges are drawn anew.
    with FaultProxy("127.0.0.1", upstream, {"corrupt": 0.5}, seed=1) as proxy:
        results = sync_calls(proxy.url, times=20)
        stats = proxy.stats()
    corrupted = [r for r in results if isinstance(r, InvalidResponse)]
    assert stats["connections"] == 1 and stats["exchanges"] == 20, stats
    assert len(corrupted) == stats["fired"]["corrupt"] and 0 < len(corrupted) < 20, stats
    assert all(r == json.loads(BODY) for r in results if not isinstance(r, JobWaitError))


def test_the_draws_follow_the_seed(upstream: int) -> None:
    def sequence(seed: int) -> list[str]:
        with FaultProxy("127.0.0.1", upstream, {"corrupt": 0.5}, seed=seed) as proxy:
            return ["bad" if isinstance(r, JobWaitError) else "ok" for r in sync_calls(proxy.url, times=16)]

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def test_service_down_is_a_reset(upstream: int) -> None:
    port = int(refused_url().rsplit(":", 1)[1])
    with FaultProxy("127.0.0.1", port, {}) as proxy:
        [err] = sync_calls(proxy.url)
        stats = proxy.stats()
    assert type(err) is TransportError and err.fault in ("RESET", "TRUNCATED_HEADERS"), repr(err)
    assert stats["upstream refused"] == 1


def test_corruption_never_leaves_valid_utf8() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    for where in (0.0, 0.3, 0.99):
        broken = _corrupt(head, b'{"a":"\xc3\xa9"}', where)[len(head) :]
        with pytest.raises(UnicodeDecodeError):
            broken.decode("utf-8")
    assert _corrupt(head, b"", 0.5)[0] == ord("H") | 0x80  # no body: the status line


def test_unknown_kind_or_too_much_is_refused() -> None:
    proxy = FaultProxy("127.0.0.1", 1)
    try:
        with pytest.raises(ValueError, match="unknown fault kinds"):
            proxy.set_mix({"bogus": 0.1})
        with pytest.raises(ValueError, match="add up to at most 1"):
            proxy.set_mix({"reset": 0.7, "stall": 0.7})
    finally:
        proxy.close()
