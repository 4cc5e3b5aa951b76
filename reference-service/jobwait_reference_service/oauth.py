"""OAuth2 client-credentials token endpoint (RFC 6749 §4.4) for the compute family.

Seequent Evo clients (``evo-sdk-common``'s ``ClientCredentialsAuthorizer``) do not send an API
key: they POST ``grant_type=client_credentials`` (and ``scope``) with their client id and secret
to the identity service's ``/connect/token`` and send the access token they get as
``Authorization: Bearer <token>``. This module is that endpoint, for the one client the service
is configured with (``--oauth-client-id``/``--oauth-client-secret``); without one it does not
exist (404).

- ``POST /connect/token``, ``application/x-www-form-urlencoded``; the client authenticates with
  ``client_id``/``client_secret`` in the body (``client_secret_post``) or HTTP Basic
  (``client_secret_basic``, RFC 6749 §2.3.1), never both. 200 ``{"access_token", "token_type":
  "Bearer", "expires_in", "scope"}`` (no ``expires_in`` with ``--token-ttl 0``); errors as
  RFC 6749 §5.2: 401 ``invalid_client``, 400 ``invalid_request``, ``unsupported_grant_type``,
  ``invalid_scope``. Every answer carries ``Cache-Control: no-store`` (§5.1).
- Tokens are stateless, so they survive a restart: ``jw1.<payload>.<signature>``, the payload
  ``{"sub", "scope", "exp", "jti"}`` (base64url JSON) signed by HMAC-SHA256 under a key derived
  from the client secret and the API key. Without the secret a token can be read, not made or
  altered; changing either secret invalidates every token issued before.
- With ``--test-controls``: ``GET /_test/oauth/stats`` (header ``X-Test-Key: <API key>``) answers
  ``{"requests", "issued", "auth_methods": {method: n}, "last_scope"}`` counted since the start or
  the last ``DELETE /_test/oauth/stats``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer, OAuth2

from jobwait_reference_service.auth import require_api_key
from jobwait_reference_service.config import ServiceConfig

TOKEN_PATH = "/connect/token"
STATS_PATH = "/_test/oauth/stats"
KEY_HEADER = "X-Test-Key"
TOKEN_PREFIX = "jw1."
#: The scope granted when the client asks for none (RFC 6749 §3.3 lets the server pick a default).
DEFAULT_SCOPE = "compute"
# scope-token = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E (RFC 6749 §3.3).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenCheck(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class TokenSigner:
    """Issue and check the service's stateless access tokens.

    :param api_key: The service API key (part of the signing key).
    :param client_id: The configured OAuth2 client.
    :param client_secret: Its secret (part of the signing key).
    """

    def __init__(self, api_key: str, client_id: str, client_secret: str) -> None:
        # Derived rather than the secret itself: a token's signature never doubles as anything else.
        material = b"\0".join((b"jobwait-reference-service access token v1", client_id.encode(), api_key.encode()))
        self._key = hmac.new(client_secret.encode(), material, hashlib.sha256).digest()
        self.client_id = client_id

    @classmethod
    def from_config(cls, config: ServiceConfig) -> TokenSigner | None:
        """The signer of ``config``'s client, or ``None`` when no client is configured."""
        if config.oauth_client_id is None or config.oauth_client_secret is None:
            return None
        return cls(config.api_key, config.oauth_client_id, config.oauth_client_secret)

    def issue(self, scope: str, ttl: float, now: float) -> str:
        """A token for ``scope`` valid ``ttl`` seconds from ``now`` (never expiring when ``ttl`` is 0)."""
        claims: dict[str, Any] = {"sub": self.client_id, "scope": scope, "jti": secrets.token_urlsafe(12)}
        if ttl:
            claims["exp"] = now + ttl
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"{TOKEN_PREFIX}{payload}.{_b64encode(self._sign(payload))}"

    def check(self, token: str, now: float) -> TokenCheck:
        """Whether ``token`` is one of ours, untampered, and unexpired at ``now``."""
        if not token.startswith(TOKEN_PREFIX):
            return TokenCheck.INVALID
        payload, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            given = _b64decode(signature)
        except ValueError:
            return TokenCheck.INVALID
        # compare_digest: the time taken tells nothing about how much of a forged signature was right.
        if not hmac.compare_digest(given, self._sign(payload)):
            return TokenCheck.INVALID
        claims = json.loads(_b64decode(payload))
        exp = claims.get("exp")
        return TokenCheck.EXPIRED if exp is not None and now >= exp else TokenCheck.VALID

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError("not base64url") from error


def bearer_schemes(config: ServiceConfig) -> list[DependsParam]:
    """Dependencies that only declare how the compute family authenticates (``openapi.py``).

    The key as a bearer token, and, when a client is configured, OAuth2 client credentials from
    ``POST /connect/token``: alternatives, either will do. The schemes refuse nothing themselves
    (``auto_error=False``); ``require_bearer_key_or_token`` does.

    :param config: The service settings (is there an OAuth2 client).
    """
    schemes = [
        Security(HTTPBearer(scheme_name="EvoBearer", description="The API key (or an access token).", auto_error=False))
    ]
    if config.oauth_enabled:
        flows = OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_PATH))
        oauth2 = OAuth2(flows=flows, scheme_name="EvoOAuth2", description="Client credentials grant.", auto_error=False)
        schemes.append(Security(oauth2))
    return schemes


def require_bearer_key_or_token(api_key: str, signer: TokenSigner | None) -> Callable[[Request], None]:
    """Build a FastAPI dependency accepting ``Authorization: Bearer`` with the API key or a valid token.

    Any other value gets the family's usual 401 ``{"detail": ...}`` (``auth.py``), an expired
    token included: an Evo client then fetches a new token and sends the request again.

    :param api_key: The service API key.
    :param signer: Checks tokens; ``None`` when no OAuth2 client is configured (key only).
    """
    expected = api_key.encode()

    def check(request: Request) -> None:
        word, _, raw = request.headers.get("Authorization", "").partition(" ")
        raw = raw.strip() if word.lower() == "bearer" else ""
        if raw and hmac.compare_digest(raw.encode(), expected):
            return
        verdict = signer.check(raw, time.time()) if signer is not None and raw else TokenCheck.INVALID
        if verdict is TokenCheck.EXPIRED:
            raise HTTPException(status_code=401, detail="expired access token in header 'Authorization'")
        if verdict is not TokenCheck.VALID:
            raise HTTPException(status_code=401, detail="missing or invalid API key in header 'Authorization'")

    return check


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer.

    :param status: 400, or 401 for ``invalid_client``.
    :param error: The error code.
    :param description: ``error_description``: what was wrong, never a credential.
    """

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            # §5.2: a client that tried HTTP authentication must be told the scheme to use.
            headers["WWW-Authenticate"] = 'Basic realm="jobwait"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(status_code=self.status, content=body, headers=headers)


def _invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def _invalid_client() -> OAuthError:
    return OAuthError(401, "invalid_client", "client authentication failed")


@dataclass
class TokenStats:
    """What the token endpoint saw, for tests (``GET /_test/oauth/stats``)."""

    requests: int = 0
    issued: int = 0
    auth_methods: Counter[str] = field(default_factory=Counter)
    last_scope: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "issued": self.issued,
            "auth_methods": dict(self.auth_methods),
            "last_scope": self.last_scope,
        }

    def reset(self) -> dict[str, Any]:
        self.requests = self.issued = 0
        self.auth_methods.clear()
        self.last_scope = None
        return self.snapshot()


def _form(request: Request, raw: bytes) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _invalid_request("the request body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("the request body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _invalid_request(f"parameter {name!r} is repeated")  # §3.2
        if value:  # §3.2: a parameter without a value counts as omitted
            form[name] = value
    return form


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client_id, secret)`` from ``Authorization: Basic``; ``None`` when the header is not Basic."""
    word, _, encoded = header.partition(" ")
    if word.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client() from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _invalid_client()
    return client_id, secret


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class TokenEndpoint:
    """``POST /connect/token`` for the configured client.

    :param config: The service settings (client, secret, token lifetime).
    :param signer: Makes the tokens.
    """

    def __init__(self, config: ServiceConfig, signer: TokenSigner) -> None:
        assert config.oauth_client_id is not None and config.oauth_client_secret is not None
        self.client_id = config.oauth_client_id
        self.client_secret = config.oauth_client_secret
        self.ttl = config.token_ttl
        self.signer = signer
        self.stats = TokenStats()

    async def token(self, request: Request) -> JSONResponse:
        # async: runs on the event loop, so the stats counters need no lock.
        self.stats.requests += 1
        raw = await request.body()
        try:
            return self._grant(request, raw)
        except OAuthError as error:
            return error.response()

    def _grant(self, request: Request, raw: bytes) -> JSONResponse:
        form = _form(request, raw)
        basic = _basic_credentials(request.headers.get("authorization", ""))
        if basic is not None and "client_secret" in form:
            raise _invalid_request("use one client authentication method, not both Basic and client_secret")  # §2.3
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise _invalid_request("grant_type is required")
        if basic is not None:
            method = "client_secret_basic"
            client_id, secret = basic
            # §2.3.1: id and secret are form-encoded before base64; many clients skip that step.
            ok = self._authenticates(client_id, secret) or self._authenticates(
                unquote_plus(client_id), unquote_plus(secret)
            )
        elif "client_secret" in form:
            method = "client_secret_post"
            ok = self._authenticates(form.get("client_id", ""), form["client_secret"])
        else:
            raise _invalid_client()
        if not ok:
            raise _invalid_client()
        if grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        scope = form.get("scope", DEFAULT_SCOPE)
        if not all(SCOPE_TOKEN.fullmatch(part) for part in scope.split(" ")):
            raise OAuthError(400, "invalid_scope", "scope must be space-separated tokens of printable ASCII")
        self.stats.auth_methods[method] += 1
        self.stats.last_scope = form.get("scope")
        self.stats.issued += 1
        body: dict[str, Any] = {
            "access_token": self.signer.issue(scope, self.ttl, time.time()),
            "token_type": "Bearer",
            "scope": scope,
        }
        if self.ttl:
            # Whole seconds, rounded down: a client refreshing on it is never late.
            body["expires_in"] = math.floor(self.ttl)
        return JSONResponse(status_code=200, content=body, headers=NO_STORE)

    def _authenticates(self, client_id: str, secret: str) -> bool:
        # Both compared, always: the time taken does not tell which one was wrong.
        return _same(client_id, self.client_id) & _same(secret, self.client_secret)


def create_router(config: ServiceConfig) -> APIRouter | None:
    """The token endpoint (and, with test controls, its stats) for ``config``; ``None`` without a client."""
    signer = TokenSigner.from_config(config)
    if signer is None:
        return None
    endpoint = TokenEndpoint(config, signer)
    router = APIRouter()
    router.add_api_route(TOKEN_PATH, endpoint.token, methods=["POST"], include_in_schema=False)
    if config.test_controls:
        check_key = Depends(require_api_key(config.api_key, KEY_HEADER))
        stats = APIRouter(prefix=STATS_PATH, dependencies=[check_key], include_in_schema=False)

        @stats.get("")
        async def get_stats() -> dict[str, Any]:
            return endpoint.stats.snapshot()

        @stats.delete("")
        async def reset_stats() -> dict[str, Any]:
            return endpoint.stats.reset()

        router.include_router(stats)
    return router
