"""Hostile JSON bodies over real HTTP: every family answers its own 4xx error body, keeps the connection.

Each hostile value is placed inside an otherwise plausible body of each route that parses one, so
the answer must name the problem and where it is (``docs/jobs-api.md`` "Request bodies"). The next
request goes over the same socket: a 500, a ``Connection: close`` or a dropped connection fails.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from jobwait_reference_service.process import ServiceProcess

ORG = str(uuid.uuid4())
TB_ROOT = "/gatewayv2/tensorbay-open-api/v1"


def _detail(body: Any) -> str:
    assert set(body) == {"detail"}, body
    return str(body["detail"])


def _tensorbay(body: Any) -> str:
    assert body.keys() == {"code", "message"} and body["code"] == "InvalidParamsValue", body
    return str(body["message"])


def _problem(body: Any) -> str:
    assert body.keys() == {"status", "type", "title", "detail"} and body["status"] == 400, body
    return str(body["detail"])


@dataclass(frozen=True)
class Route:
    """One route that parses a JSON body, the family's headers and how to read its error body."""

    name: str
    method: str
    path: str
    header: tuple[str, str]
    template: bytes  # "@" marks where the hostile value goes
    where: str  # its $-path
    message: Callable[[Any], str]  # checks the family's error shape and returns its message
    media_type: str = "application/json"
    probe: str = ""  # a cheap GET of the same family for the follow-up request


def _routes(key: str) -> list[Route]:
    modzy = ("Authorization", f"ApiKey {key}")
    submit = b'{"model": {"identifier": "echo", "version": "1.0"}, "input": {"type": "text", "sources": @}}'
    tensorbay = ("X-Token", key)
    store = ("x-access-token", key)
    works = b'[{"id": "h", "results": @}]'
    return [
        Route("inference-submit", "POST", "/api/jobs", modzy, submit, "$.input.sources", _detail, probe="/api/models"),
        Route(
            "inference-watch",
            "POST",
            "/api/jobs:watch",
            modzy,
            b'{"identifiers": ["x"], "timeout": 1, "known": @}',
            "$.known",
            _detail,
            probe="/api/models",
        ),
        Route(
            "dataset-create",
            "POST",
            f"{TB_ROOT}/datasets/demo-dataset/jobs",
            tensorbay,
            b'{"title": "t", "jobType": "squashAndMerge", "arguments": {"title": @}}',
            "$.arguments.title",
            _tensorbay,
            probe=f"{TB_ROOT}/datasets/demo-dataset/jobs?jobType=squashAndMerge&limit=1",
        ),
        Route(
            "compute-submit",
            "POST",
            f"/compute/orgs/{ORG}/demo/wordcount",
            ("Authorization", f"Bearer {key}"),
            b'{"parameters": {"text": @}}',
            "$.parameters.text",
            _problem,
            media_type="application/problem+json",
            probe=f"/workspace/orgs/{ORG}/workspaces",
        ),
        Route("results-deposit", "POST", "/workflow/results", store, works, "$[0].results", _detail),
        Route("results-update", "PUT", "/workflow/results", store, works, "$[0].results", _detail),
        Route("results-view", "POST", "/workflow/view", store, b'{"query": {"a": @}}', "$.query.a", _detail),
        Route("results-count", "POST", "/workflow/view/count", store, b'{"query": {"a": @}}', "$.query.a", _detail),
        Route(
            "results-projection",
            "POST",
            "/workflow/view",
            store,
            b'{"query": {}, "projection": @}',
            "$.projection",
            _detail,
        ),
    ]


Hostile = tuple[str, bytes, tuple[str, ...]]
"""(name, hostile value, what the message must say; ``{where}`` stands for the value's $-path)"""

HOSTILE: list[Hostile] = [
    ("deep-arrays", b"[" * 5000 + b"]" * 5000, ("nested too deeply", "deeper than 32 levels at {where}[0][0]")),
    ("deep-objects", b'{"a":' * 5000 + b"1" + b"}" * 5000, ("nested too deeply", "at {where}.a.a")),
    ("huge-integer", b"1" * 5000, ("integer with 5000 digits at {where}",)),
    ("huge-negative-integer", b"-" + b"9" * 4301, ("integer with 4301 digits at {where}",)),
    ("long-float", b"0." + b"1" * 500, ("number with 501 digits at {where}",)),
    ("float-overflow", b"1e999", ("number 1e999 at {where}", "out of range")),
    ("nan", b"NaN", ("NaN at {where}",)),
    ("infinity", b"[-Infinity]", ("-Infinity at {where}[0]",)),
    ("duplicate-keys", b'{"k": 1, "k": 2}', ("duplicate key 'k' at {where}",)),
    ("invalid-utf8", b'"\xff\xfe"', ("not valid UTF-8", "byte 0xff")),
    ("unpaired-surrogate", b'"\\ud800"', ("unpaired UTF-16 surrogate \\ud800 in a string at {where}",)),
]


@pytest.fixture(scope="module")
def conn(service: ServiceProcess) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection for the whole module: every answer must leave it usable."""
    url = urlsplit(service.base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    yield connection
    connection.close()


def _send(conn: http.client.HTTPConnection, method: str, path: str, header: tuple[str, str], body: bytes | None) -> Any:
    headers = {header[0]: header[1], "Content-Type": "application/json"}
    conn.request(method, path, body=body, headers=headers)
    return conn.getresponse()


@pytest.mark.parametrize("hostile", HOSTILE, ids=[case[0] for case in HOSTILE])
@pytest.mark.parametrize("route_name", [route.name for route in _routes("k")])
def test_hostile_body_gets_the_family_error_and_the_connection_survives(
    service: ServiceProcess, conn: http.client.HTTPConnection, route_name: str, hostile: Hostile
) -> None:
    route = next(route for route in _routes(service.api_key) if route.name == route_name)
    _, value, fragments = hostile
    if conn.sock is None:
        conn.connect()  # first use of the module's connection
    sock = conn.sock
    response = _send(conn, route.method, route.path, route.header, route.template.replace(b"@", value))
    raw = response.read()
    assert response.status == 400, raw
    assert response.getheader("Content-Type", "").startswith(route.media_type)
    assert (response.getheader("Connection") or "").lower() != "close"
    message = route.message(json.loads(raw))
    for fragment in fragments:
        assert fragment.format(where=route.where) in message, message
    follow_up = _send(conn, "GET", route.probe or "/workflow/status", route.header, None)
    assert follow_up.status == 200, follow_up.read()
    follow_up.read()
    assert conn.sock is sock, "the service closed the connection"


def test_depth_limit_is_exact_on_a_deposit(service: ServiceProcess, conn: http.client.HTTPConnection) -> None:
    """A work as deep as the limit allows is stored and viewable, projected both ways; one level more is refused."""
    pipeline = f"hostile-{uuid.uuid4().hex[:8]}"
    header = ("x-access-token", service.api_key)

    def work(levels: int) -> dict[str, Any]:
        deep: Any = "bottom"
        for _ in range(levels):
            deep = [deep]
        return {"id": f"{pipeline}-{levels}", "pipeline": pipeline, "status": "success", "results": {}, "x": deep}

    # The body array is level 1 and the work level 2, so 30 arrays inside "x" reach level 32.
    too_deep = _send(conn, "POST", "/workflow/results", header, json.dumps([work(31)]).encode())
    assert too_deep.status == 400
    assert "deeper than 32 levels at $[0].x" in _detail(json.loads(too_deep.read()))
    stored = _send(conn, "POST", "/workflow/results", header, json.dumps([work(30)]).encode())
    assert stored.status == 200, stored.read()
    stored.read()
    for projection in ({"x": True}, {"results": False}):
        body = {"query": {"pipeline": pipeline}, "projection": projection}
        view = _send(conn, "POST", "/workflow/view", header, json.dumps(body).encode())
        assert view.status == 200, view.read()
        assert json.loads(view.read())[0]["x"] == work(30)["x"]
