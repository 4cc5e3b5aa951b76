"""The API server plugin that lets the connection list's Test reach our types (issue 15, item 2).

The list posts ``port: Number(port)``, ``0`` for a connection without a port; Airflow 3.3.2's
test route takes that for another destination and answers 400. The plugin's middleware drops
``port: 0`` for our four types only. The whole path (real API server, the UI's body) is
``tests/e2e/test_user_views.py::test_connection_list_test_button``.
"""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi.core_api.datamodels.connections import ConnectionBody
from airflow.providers.common.compat.sdk import AirflowPlugin

from airflow_jobwait.hooks.connection import CONNECTION_TYPES
from airflow_jobwait.plugins import ConnectionTestPortMiddleware, JobWaitPlugin, without_port_zero

ROUTE = "/api/v2/connections/test"


def list_body(conn_type: str, port: Any = 0) -> dict[str, Any]:
    """What the connection list's Test posts for a connection without a port."""
    return {
        "conn_type": conn_type,
        "connection_id": "c",
        "description": "",
        "extra": "{}",
        "host": "https://example.test",
        "login": "",
        "password": "***",
        "port": port,
        "schema": "",
    }


async def through(body: bytes, path: str = ROUTE, method: str = "POST", chunks: int = 1) -> tuple[bytes, dict]:
    """The body and headers the app behind the middleware receives."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got = b""
        while True:
            message = await receive()
            got += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"], seen["headers"] = got, dict(scope["headers"])

    size = -(-len(body) // chunks)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        raise AssertionError("the middleware sends nothing itself")

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-length", str(len(body)).encode())]}
    await ConnectionTestPortMiddleware(app)(scope, receive, send)
    return seen["body"], seen["headers"]


@pytest.mark.parametrize("conn_type", [kind.conn_type for kind in CONNECTION_TYPES])
async def test_port_zero_is_dropped_for_our_types(conn_type: str) -> None:
    body, headers = await through(json.dumps(list_body(conn_type)).encode(), chunks=3)
    sent = json.loads(body)
    assert "port" not in sent and sent == {k: v for k, v in list_body(conn_type).items() if k != "port"}
    assert headers[b"content-length"] == str(len(body)).encode()
    # As Airflow's route reads it: no port given, so none compared with the stored one.
    assert "port" not in ConnectionBody.model_validate(sent).model_fields_set


@pytest.mark.parametrize(
    ("body", "path", "method"),
    [
        (list_body("http"), ROUTE, "POST"),  # another provider's type: Airflow's to judge
        (list_body("modzy", port=8443), ROUTE, "POST"),  # a real port: a destination
        (list_body("modzy", port=False), ROUTE, "POST"),
        (list_body("modzy"), "/api/v2/connections", "POST"),  # not the test route
        (list_body("modzy"), ROUTE, "PUT"),
    ],
)
async def test_other_requests_pass_untouched(body: dict[str, Any], path: str, method: str) -> None:
    raw = json.dumps(body).encode()
    assert (await through(raw, path, method))[0] == raw


def test_without_port_zero_leaves_what_is_not_a_connection_alone() -> None:
    assert without_port_zero(b"not json") is None
    assert without_port_zero(b"[0]") is None
    assert without_port_zero(json.dumps(list_body("modzy", port=None)).encode()) is None


def test_the_plugin_is_an_entry_point_airflow_loads() -> None:
    """Declared where Airflow looks whatever ``lazy_discover_providers`` says, with the middleware."""
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["airflow.plugins"] == {"airflow_jobwait": "airflow_jobwait.plugins:JobWaitPlugin"}
    (declared,) = [e for e in entry_points(group="airflow.plugins") if e.name == "airflow_jobwait"]
    assert declared.load() is JobWaitPlugin
    # What Airflow's loader checks of a plugin class (plugins_manager.is_valid_plugin, which on
    # 3.1 also needs the plugins already loaded).
    assert issubclass(JobWaitPlugin, AirflowPlugin) and JobWaitPlugin is not AirflowPlugin
    JobWaitPlugin.validate()
    assert [m["middleware"] for m in JobWaitPlugin.fastapi_root_middlewares] == [ConnectionTestPortMiddleware]
