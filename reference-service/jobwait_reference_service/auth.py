"""API-key checks: each family reads the key from the header its public client sends.

Each check comes with the ``fastapi.security`` scheme that describes it, so the OpenAPI document
(``openapi.py``) names every family's way of authenticating; the scheme objects never refuse a
request themselves (``auto_error=False``): the check does, with the family's own 401 body.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader


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


def key_header_scheme(name: str, header: str, description: str) -> DependsParam:
    """A dependency that only declares an API key in ``header`` (security scheme ``name``).

    :param name: The scheme's name in ``components.securitySchemes``.
    :param header: The header the key travels in.
    :param description: How the value is written (e.g. ``ApiKey <key>``).
    """
    return Security(APIKeyHeader(name=header, scheme_name=name, description=description, auto_error=False))
