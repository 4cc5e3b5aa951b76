"""Answering a wrong method as RFC 9110 asks: 405 with ``Allow`` listing every method of the path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match


def allowed_methods(request: Request, catch_all: Callable[..., Any] | None = None) -> list[str]:
    """The methods the app's routes (but ``catch_all``) take on the request's path, sorted.

    Empty when no route has the path: a 404, not a 405. Where literal routes and templates both
    fit the path, the routes with the fewest parameters speak for it.

    :param request: The request the catch-all got.
    :param catch_all: The catch-all's endpoint, which matches every path and so says nothing.
    """
    matching = [
        route
        for route in request.app.router.routes
        if isinstance(route, APIRoute)
        and route.endpoint != catch_all
        and route.matches(request.scope)[0] is not Match.NONE
    ]
    if not matching:
        return []
    # The path as written beats a template that also fits it: ``/api/jobs/history`` is the
    # history's path (GET), not a job id for ``/api/jobs/{job_id}`` (GET, DELETE).
    fewest = min(len(route.param_convertors) for route in matching)
    methods: set[str] = set()
    for route in matching:
        if len(route.param_convertors) == fewest:
            methods |= route.methods or set()
    return sorted(methods)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer to an ``HTTPException``, but a 405's ``Allow`` names every method of the path.

    Starlette's router answers a wrong method with the ``Allow`` of the first route that has the
    path, while several routes may share it (``GET`` and ``POST /api/jobs``).

    :param request: The request.
    :param exc: The exception (a Starlette ``HTTPException``).
    """
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405 and (allowed := allowed_methods(request)):
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)
