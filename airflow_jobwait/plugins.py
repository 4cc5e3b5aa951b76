"""The provider's Airflow plugin: a workaround in the API server for the connection list's Test.

The Test action on the UI's connection list posts the listed connection with
``port: Number(connection.port)``, which is ``0`` when the stored port is null (our connection
types hide Port: they never store one). ``POST /api/v2/connections/test`` compares that with
the stored connection; up to Airflow 3.3.2 it normalises a blank host or port to null but not
``0``, finds a different destination, and refuses the test: 400 "The host or port to test
differs from the stored connection" (fixed upstream by apache/airflow#73298, in no released
version yet). The form's own Test is not affected: it leaves a blank port out.

``ConnectionTestPortMiddleware`` drops ``port: 0`` from such a request when the connection type
is one of ours. No service of ours is addressed through port 0 (``base_url_of`` ignores a port
that is not set), so for our types it says exactly "no port", as Airflow's fix reads it. Any
other request, and every other connection type, goes through untouched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The API server's connection test route (after any base path the deployment serves it under).
TEST_ROUTE = "/api/v2/connections/test"
#: Larger bodies are passed on untouched (a connection's JSON is a few kilobytes).
MAX_BODY_BYTES = 1 << 20


@functools.cache
def _our_types() -> frozenset[str]:
    # Imported on the first test request, not with the plugin: every Airflow process loads plugins.
    from airflow_jobwait.hooks.connection import CONNECTION_TYPES

    return frozenset(kind.conn_type for kind in CONNECTION_TYPES)


def without_port_zero(body: bytes) -> bytes | None:
    """The test request without ``port: 0`` if it tests a connection of ours, else ``None``.

    :param body: The request body (JSON).
    """
    try:
        data = json.loads(body)
    except ValueError:
        return None  # Airflow answers it as it would
    if not isinstance(data, dict) or data.get("conn_type") not in _our_types():
        return None
    port = data.get("port")
    if port != 0 or isinstance(port, bool):
        return None
    del data["port"]
    return json.dumps(data).encode()


class ConnectionTestPortMiddleware:
    """ASGI middleware: ``POST .../api/v2/connections/test`` of our types without ``port: 0``.

    :param app: The API server's application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith(TEST_ROUTE):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False) or size > MAX_BODY_BYTES:
                more = message.get("more_body", False)
                break
        body = b"".join(chunks)
        fixed = None if more else without_port_zero(body)
        if fixed is None:
            await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": more}], receive), send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(fixed)).encode()))
        scope = {**scope, "headers": headers}
        await self.app(scope, _replay([{"type": "http.request", "body": fixed, "more_body": False}], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that answers ``messages`` first, then the client's own."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class JobWaitPlugin(AirflowPlugin):
    """Registered through the ``airflow.plugins`` entry point; only the API server uses what it adds."""

    name = "airflow_jobwait"
    fastapi_root_middlewares = [
        {
            "middleware": ConnectionTestPortMiddleware,
            "args": [],
            "kwargs": {},
            "name": "airflow-jobwait: connection list Test without port 0",
        }
    ]
