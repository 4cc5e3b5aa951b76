"""What a family's catch-all route needs to answer a wrong method as RFC 9110 asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import Match


def allowed_methods(request: Request, catch_all: Callable[..., Any]) -> list[str]:
    """The methods the app's routes (but ``catch_all``) take on the request's path, sorted.

    Empty when no route has the path: a 404, not a 405.

    :param request: The request the catch-all got.
    :param catch_all: The catch-all's endpoint, which matches every path and so says nothing.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if not isinstance(route, APIRoute) or route.endpoint == catch_all:
            continue
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)
