"""The reference job service: one FastAPI app serving every API family of ``docs/jobs-api.md``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jobwait_reference_service import openapi, routing
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.db import Database
from jobwait_reference_service.family import ApiFamily
from jobwait_reference_service.family_errors import error_body
from jobwait_reference_service.faults import install_fault_injection
from jobwait_reference_service.oauth import create_router as oauth_router
from jobwait_reference_service.rate_limit import RateLimit

# Each module exposes ``create(config, db) -> ApiFamily`` (see ``family.py``).
FAMILY_MODULES: tuple[str, ...] = ("inference", "results_store", "datasets", "compute")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: An oversized body is read (and dropped) up to this many bytes before the 413 goes out, so the
#: client, still sending, reads the answer instead of a reset; beyond it the connection is closed.
DRAIN_LIMIT = 64 * 1024 * 1024


class BodySizeLimit:
    """413 for a request body over ``max_bytes``, whether declared (``Content-Length``) or streamed
    (chunked, no length). The app never runs for such a request, so nothing changes.

    A streamed body is buffered up to ``max_bytes`` before the app sees it, then replayed.

    :param app: The ASGI app to guard.
    :param max_bytes: Largest request body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        declared = headers.get(b"content-length")
        if declared is not None:
            # The server frames the body by Content-Length: the declared size is the real one.
            if declared.strip().isdigit() and int(declared) > self.max_bytes:
                detail = f"request body of {int(declared)} bytes exceeds {self.max_bytes} bytes"
                await self._refuse(receive, send, scope.get("path", ""), detail)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                more = bool(message.get("more_body"))
                await self._refuse(
                    receive if more else None,
                    send,
                    scope.get("path", ""),
                    f"request body exceeds {self.max_bytes} bytes",
                )
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(receive: Receive | None, send: Send, path: str, detail: str) -> None:
        drained = 0
        while receive is not None and drained <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            drained += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        media_type, body = error_body(path, 413, detail)
        response = JSONResponse(status_code=413, content=body, media_type=media_type)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(config: ServiceConfig) -> FastAPI:
    """Build the app for ``config``: every family's routes, persistence and background work."""
    db = Database(config.db_path)
    families: list[ApiFamily] = [
        importlib.import_module(f"jobwait_reference_service.{name}").create(config, db) for name in FAMILY_MODULES
    ]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for family in families:
            await family.start()
        try:
            yield
        finally:
            for family in reversed(families):
                await family.stop()

    app = FastAPI(title="airflow-jobwait reference service", lifespan=lifespan)

    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    if config.rate_limit is not None:
        app.add_middleware(RateLimit, rate=config.rate_limit)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for family in families:
        app.include_router(family.router)
    # The compute family's token endpoint, when an OAuth2 client is configured.
    if (token_routes := oauth_router(config)) is not None:
        app.include_router(token_routes)
    if config.test_controls:
        install_fault_injection(app, config)
    app.add_exception_handler(HTTPException, routing.http_error)
    openapi.install(app)
    return app
