"""API-key checks: each family reads the key from the header its public client sends."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request


def require_api_key(api_key: str, header: str, scheme: str | None = None) -> Callable[[Request], None]:
    """Build a FastAPI dependency that answers 401 unless ``header`` carries the key.

    :param api_key: The expected key.
    :param header: Header name, e.g. ``Authorization`` or ``X-Token``.
    :param scheme: Optional scheme word before the key (``ApiKey``, ``Bearer``).
    """
    expected = api_key.encode()

    def check(request: Request) -> None:
        raw = request.headers.get(header, "")
        if scheme is not None:
            word, _, raw = raw.partition(" ")
            if word.lower() != scheme.lower():
                raw = ""
        # compare_digest keeps the comparison time independent of where keys differ.
        if not raw or not hmac.compare_digest(raw.strip().encode(), expected):
            raise HTTPException(status_code=401, detail=f"missing or invalid API key in header {header!r}")

    return check
