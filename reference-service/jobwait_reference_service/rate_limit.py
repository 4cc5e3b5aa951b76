"""A per-key rate limit, as real gateways have: 429 with ``Retry-After`` past the allowance.

A token bucket per credential (whichever family header carries it; the client address when none
does): ``rate`` requests a second, bursts of ``2 * rate``. ``/healthz`` and the test controls
(``/_test/...``) are never limited.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from jobwait_reference_service.family_errors import error_body

#: The headers the families read their credential from (docs/jobs-api.md §1-§4).
CREDENTIAL_HEADERS = (b"authorization", b"x-token", b"x-access-token")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    """Pure-ASGI middleware: one bucket per credential, refilled at ``rate`` tokens a second.

    :param app: The application.
    :param rate: Requests a second each credential may send on average.
    """

    def __init__(self, app: ASGIApp, rate: float) -> None:
        self.app = app
        self.rate = rate
        self.burst = 2.0 * rate
        self._buckets: dict[str, _Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/healthz" or "/_test/" in path or path.startswith("/_test"):
            await self.app(scope, receive, send)
            return
        wait = self._take(self._who(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        media_type, content = error_body(path, 429, "rate limit exceeded: slow down")
        body = json.dumps(content).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _who(scope: Scope) -> str:
        headers = dict(scope.get("headers") or [])
        for name in CREDENTIAL_HEADERS:
            if headers.get(name):
                # A digest: the bucket table never holds a credential.
                return hashlib.sha256(headers[name]).hexdigest()
        client = scope.get("client")
        return f"addr:{client[0] if client else '?'}"

    def _take(self, who: str) -> float:
        """Spend a token of ``who``'s bucket: 0 if there was one, else seconds until there is."""
        now = time.monotonic()
        bucket = self._buckets.get(who)
        if bucket is None:
            bucket = self._buckets[who] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
