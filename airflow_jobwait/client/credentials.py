"""The credential the compute family sends: a static API key, or an OAuth2 access token.

Seequent Evo authenticates with OAuth2 access tokens from the client-credentials grant (RFC 6749
§4.4), the way ``evo-sdk-common``'s ``ClientCredentialsAuthorizer`` gets them: a form POST of
``grant_type=client_credentials`` and ``scope`` to the token endpoint with the client id and
secret in the body (``client_secret_post``), an answer ``{"access_token", "token_type",
"expires_in"}``, and one more token after a 401.

authlib builds the token request (form body, client authentication); the sync source sends it
with ``requests`` (workers), the async one with ``aiohttp`` (the triggerer): the transports the
hooks already use. Each fetch opens its own short-lived session: a fetch happens once per token
lifetime, so there is no pooled connection to own, close, or tie to an event loop. One parser
reads the answer of both.

Tokens and secrets are never logged, never in a ``repr`` and never in an exception message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import requests
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from airflow_jobwait.client.sync_deadline import mount_deadlines, total_deadline
from airflow_jobwait.exceptions import TokenError, TransportError

log = logging.getLogger(__name__)

#: The client authentication evo-sdk-common uses (RFC 6749 §2.3.1, credentials in the body).
AUTH_METHOD = "client_secret_post"
#: Longest ``error_description`` of a refusal repeated in a ``TokenError`` message.
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    """Client-credentials grant settings (secret never in repr).

    :param token_url: The token endpoint, e.g. ``https://ims.bentley.com/connect/token``.
    :param client_id: The registered client.
    :param client_secret: Its secret.
    :param scope: Space-separated scopes to ask for; ``None`` (or empty): send none.
    :param leeway: Refresh when the token expires within this many seconds. Capped at half a
        token's lifetime, so a token shorter than twice the leeway is still used for a while
        instead of being fetched again on every call.
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    leeway: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.token_url) if isinstance(self.token_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"token_url must be an http(s) URL with a host, got {_public_url(self.token_url)!r}")
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if not (isinstance(self.leeway, int | float) and math.isfinite(self.leeway) and self.leeway >= 0):
            raise ValueError(f"leeway must be a non-negative number of seconds, got {self.leeway!r}")


class TokenSource(Protocol):
    """Where a worker gets the credential for the ``Authorization: Bearer`` header."""

    def token(self) -> str:
        """A valid token (fetches or refreshes as needed); thread-safe."""
        ...

    def refresh(self) -> bool:
        """Force a new token (after a 401); ``False`` if this source cannot refresh."""
        ...


class AsyncTokenSource(Protocol):
    """The triggerer's token source: one per event loop and connection, shared by many triggers."""

    async def token(self) -> str:
        """A valid token (fetches or refreshes as needed); safe for concurrent tasks of one loop."""
        ...

    async def refresh(self) -> bool:
        """Force a new token (after a 401); ``False`` if this source cannot refresh."""
        ...


class StaticToken:
    """A fixed credential (the API key): nothing to fetch, nothing to refresh.

    :param value: The key.
    """

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "StaticToken(***)"

    def token(self) -> str:
        return self._value

    def refresh(self) -> bool:
        return False


class AsyncStaticToken:
    """``StaticToken`` for the triggerer.

    :param value: The key.
    """

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "AsyncStaticToken(***)"

    async def token(self) -> str:
        return self._value

    async def refresh(self) -> bool:
        return False


# -- the token request and its answer, without I/O --


def _public_url(url: object) -> str:
    """``url`` without user info, query or fragment: fit for messages and logs."""
    if not isinstance(url, str):
        return repr(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _token_request(oauth: OAuth2ClientCredentials) -> tuple[dict[str, str], str]:
    """Headers and form body of the token request (RFC 6749 §4.4.2)."""
    extra = {"scope": oauth.scope} if oauth.scope else {}
    body = prepare_token_request("client_credentials", **extra)
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    _, headers, body = ClientAuth(oauth.client_id, oauth.client_secret, AUTH_METHOD).prepare(
        "POST", oauth.token_url, headers, body
    )
    return headers, body


@dataclass(frozen=True)
class _Issued:
    access_token: str = field(repr=False)
    expires_in: float | None


def _redact(text: str, oauth: OAuth2ClientCredentials) -> str:
    # A server may echo what it was sent; the message must not carry the secret on.
    return text.replace(oauth.client_secret, "***") if oauth.client_secret else text


def _refusal(oauth: OAuth2ClientCredentials, status: int, reply: Any) -> TokenError:
    where = _public_url(oauth.token_url)
    error = description = None
    if isinstance(reply, dict):
        error = reply.get("error") if isinstance(reply.get("error"), str) else None
        raw = reply.get("error_description")
        description = raw[:MAX_DESCRIPTION] if isinstance(raw, str) else None
    message = f"token request to {where} answered {status}"
    message += f" {error}" if error else ""
    message += f": {description}" if description else ""
    return TokenError(_redact(message, oauth), where, status=status, error=error)


def _expires_in(value: Any) -> float | None:
    """``expires_in`` as seconds; ``None`` when absent (the token does not expire: RFC 6749 §5.1)."""
    if value is None:
        return None
    if isinstance(value, str):  # some servers send the number as a string
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expires_in must be a non-negative number, got {value!r}")
    return float(value)


def _parse_reply(oauth: OAuth2ClientCredentials, status: int, body: bytes) -> _Issued:
    """Read the token endpoint's answer (RFC 6749 §5.1, §5.2).

    :raises TokenError: A refusal, or a success that does not hold a usable bearer token.
    """
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    if not 200 <= status < 300:
        raise _refusal(oauth, status, reply)
    where = _public_url(oauth.token_url)

    def bad(what: str) -> TokenError:
        return TokenError(f"token endpoint {where} answered {status} {what}", where, status=status)

    if not isinstance(reply, dict):
        raise bad("with a body that is not a JSON object")
    access_token = reply.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise bad("without an access_token")
    token_type = reply.get("token_type")
    # The token goes out as "Bearer": any other type would be sent in a form it was not made for.
    if token_type is not None and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
        raise bad(f"with token_type {str(token_type)[:40]!r}, not Bearer")
    try:
        expires_in = _expires_in(reply.get("expires_in"))
    except ValueError as err:
        raise bad(f"with an unusable expires_in: {str(err)[:100]}") from None
    return _Issued(access_token, expires_in)


@dataclass(frozen=True)
class _Current:
    """The token in use and when to stop handing it out (``time.monotonic``; ``None``: never)."""

    token: str = field(repr=False)
    refresh_at: float | None
    generation: int

    def fresh(self, now: float) -> bool:
        return self.refresh_at is None or now < self.refresh_at


class _OAuth2Source:
    """What the sync and async sources share: settings and the current token.

    ``_current`` is replaced whole, never changed, so a reader without the lock sees either the
    old token or the new one.
    """

    def __init__(self, oauth: OAuth2ClientCredentials, *, verify: bool, timeout: float) -> None:
        self.oauth = oauth
        self.verify = verify
        self.timeout = timeout
        self._current: _Current | None = None

    def __repr__(self) -> str:
        where = _public_url(self.oauth.token_url)
        return f"{type(self).__name__}(token_url={where!r}, client_id={self.oauth.client_id!r})"

    def _fresh_token(self) -> str | None:
        current = self._current
        return current.token if current is not None and current.fresh(time.monotonic()) else None

    def _generation(self) -> int:
        return self._current.generation if self._current is not None else 0

    def _store(self, issued: _Issued, sent_at: float) -> str:
        refresh_at = None
        if issued.expires_in is not None:
            # From when the request went out: the token's clock started no earlier than that.
            refresh_at = sent_at + issued.expires_in - min(self.oauth.leeway, issued.expires_in / 2)
        self._current = _Current(issued.access_token, refresh_at, self._generation() + 1)
        lifetime = "does not expire" if issued.expires_in is None else f"expires in {issued.expires_in:g}s"
        log.info("Fetched an access token from %s; it %s", _public_url(self.oauth.token_url), lifetime)
        return issued.access_token

    def _transport_error(self, err: Exception) -> TransportError:
        where = _public_url(self.oauth.token_url)
        return TransportError(_redact(f"token request to {where} failed: {type(err).__name__}: {err}", self.oauth))


class OAuth2TokenSource(_OAuth2Source):
    """Client-credentials tokens for workers; one fetch at a time (``threading.Lock``).

    :param oauth: The grant settings.
    :param verify: Verify the token endpoint's TLS certificate.
    :param timeout: Seconds for one token request.
    """

    def __init__(self, oauth: OAuth2ClientCredentials, *, verify: bool, timeout: float) -> None:
        super().__init__(oauth, verify=verify, timeout=timeout)
        self._lock = threading.Lock()

    def token(self) -> str:
        if (token := self._fresh_token()) is not None:
            return token
        with self._lock:
            # Another thread may have fetched while this one waited for the lock.
            if (token := self._fresh_token()) is not None:
                return token
            return self._fetch()

    def refresh(self) -> bool:
        seen = self._generation()
        with self._lock:
            # Callers that saw the same 401 together share one new token, not one each.
            if self._generation() == seen:
                self._fetch()
        return True

    def _fetch(self) -> str:
        headers, body = _token_request(self.oauth)
        sent_at = time.monotonic()
        try:
            with requests.Session() as session, total_deadline(self.timeout):
                mount_deadlines(session)  # the whole answer within timeout, as any other call
                resp = session.post(
                    self.oauth.token_url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify,
                    # A redirect would re-send (or drop) the secret somewhere not configured.
                    allow_redirects=False,
                )
                status, content = resp.status_code, resp.content
        except requests.RequestException as err:
            raise self._transport_error(err) from None
        return self._store(_parse_reply(self.oauth, status, content), sent_at)


class AsyncOAuth2TokenSource(_OAuth2Source):
    """Client-credentials tokens for the triggerer; one fetch at a time (``asyncio.Lock``).

    Use from one event loop: the lock is made inside it, on first use.

    :param oauth: The grant settings.
    :param verify: Verify the token endpoint's TLS certificate.
    :param timeout: Seconds for one token request.
    """

    def __init__(self, oauth: OAuth2ClientCredentials, *, verify: bool, timeout: float) -> None:
        super().__init__(oauth, verify=verify, timeout=timeout)
        self._lock: asyncio.Lock | None = None

    def _loop_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def token(self) -> str:
        if (token := self._fresh_token()) is not None:
            return token
        async with self._loop_lock():
            if (token := self._fresh_token()) is not None:
                return token
            return await self._fetch()

    async def refresh(self) -> bool:
        seen = self._generation()
        async with self._loop_lock():
            if self._generation() == seen:
                await self._fetch()
        return True

    async def _fetch(self) -> str:
        headers, body = _token_request(self.oauth)
        sent_at = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.post(
                    self.oauth.token_url,
                    data=body.encode(),
                    headers=headers,
                    ssl=self.verify,  # True: aiohttp's default verification; False: none
                    allow_redirects=False,
                ) as resp,
            ):
                status, content = resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise self._transport_error(err) from None
        return self._store(_parse_reply(self.oauth, status, content), sent_at)


def sync_token_source(
    api_key: str, oauth: OAuth2ClientCredentials | None, *, verify: bool, timeout: float
) -> TokenSource:
    """The worker's token source: OAuth2 client credentials when configured, else the API key.

    :param api_key: The static key (used when ``oauth`` is ``None``).
    :param oauth: Client-credentials settings, or ``None``.
    :param verify: Verify the token endpoint's TLS certificate.
    :param timeout: Seconds for one token request.
    """
    if oauth is None:
        return StaticToken(api_key)
    return OAuth2TokenSource(oauth, verify=verify, timeout=timeout)


def async_token_source(
    api_key: str, oauth: OAuth2ClientCredentials | None, *, verify: bool, timeout: float
) -> AsyncTokenSource:
    """The triggerer's token source: OAuth2 client credentials when configured, else the API key.

    :param api_key: The static key (used when ``oauth`` is ``None``).
    :param oauth: Client-credentials settings, or ``None``.
    :param verify: Verify the token endpoint's TLS certificate.
    :param timeout: Seconds for one token request.
    """
    if oauth is None:
        return AsyncStaticToken(api_key)
    return AsyncOAuth2TokenSource(oauth, verify=verify, timeout=timeout)
