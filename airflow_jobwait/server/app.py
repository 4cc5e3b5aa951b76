"""The reference job service: one FastAPI app serving every API family of ``jobs-api.md``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from airflow_jobwait.server.config import ServiceConfig
from airflow_jobwait.server.db import Database
from airflow_jobwait.server.family import ApiFamily
from airflow_jobwait.server.faults import install_fault_injection

# Each module exposes ``create(config, db) -> ApiFamily`` (see ``family.py``).
FAMILY_MODULES: tuple[str, ...] = ("inference", "results_store", "datasets", "compute")


def create_app(config: ServiceConfig) -> FastAPI:
    """Build the app for ``config``: every family's routes, persistence and background work."""
    db = Database(config.db_path)
    families: list[ApiFamily] = [
        importlib.import_module(f"airflow_jobwait.server.{name}").create(config, db) for name in FAMILY_MODULES
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

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            return JSONResponse(
                status_code=413,
                content={"detail": f"request body of {declared} bytes exceeds {config.max_body_bytes} bytes"},
            )
        return await call_next(request)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for family in families:
        app.include_router(family.router)
    if config.test_controls:
        install_fault_injection(app, config)
    return app
