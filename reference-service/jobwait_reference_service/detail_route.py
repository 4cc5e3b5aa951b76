"""The route class of the families whose errors are ``{"detail": str}`` (Modzy, CHIME results).

Their routes answer their own errors with ``HTTPException``; anything else that escapes a route
would reach Starlette's plain-text 500, which no client of these APIs can read. This class
answers it in the family's shape instead (and logs it), as ``datasets.py`` and ``compute.py`` do
for theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

logger = logging.getLogger(__name__)


class DetailRoute(APIRoute):
    """Answers a failure no route expected with ``500 {"detail": "internal server error"}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise  # the family's own answers (401, 400, 404, 409) keep their handlers
            except Exception:
                logger.exception("request failed: %s %s", request.method, request.url.path)
                return JSONResponse(status_code=500, content={"detail": "internal server error"})

        return route_handler
