"""Sans-I/O core: requests as values, responses parsed by pure functions.

The sync (``requests``) and async (``aiohttp``) transports only move bytes; every rule about
URLs, headers, status codes and payload validation lives here, written once.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ValidationError

from airflow_jobwait.client.credentials import OAuth2ClientCredentials
from airflow_jobwait.exceptions import (
    ApiError,
    Conflict,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from airflow_jobwait.models.base import first_error, json_problem

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class AuthScheme:
    """How one API family carries the key: ``header: prefix + key``."""

    header: str
    prefix: str = ""

    def render(self, api_key: str) -> dict[str, str]:
        # No key, no header: a service that takes unauthenticated requests (CHIME's results
        # store, for now) gets none rather than an empty credential.
        return {self.header: f"{self.prefix}{api_key}"} if api_key else {}


# Slots: a wait polling alone keeps its status request (and its Call) for its whole life.
@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request, without the credential (the transport adds it from its config).

    :param idempotent: Safe to send again after a transport failure or a 5xx/429.
    """

    method: str
    path: str
    auth: AuthScheme
    params: tuple[tuple[str, str], ...] = ()
    json_body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    idempotent: bool = True

    def __post_init__(self) -> None:
        # Checked here, before any transport sees it: a body that is not strict JSON would fail
        # (or be silently rewritten, NaN -> NaN token) inside requests/aiohttp, naming nothing.
        if self.json_body is not None and (problem := json_problem(self.json_body)) is not None:
            where, why = problem
            raise ValueError(f"request body of {self.method} {self.path} is not JSON at {where!r}: {why}")


@dataclass(frozen=True)
class HttpResponse:
    """What came back: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# Slots: a wait polling alone keeps its status Call, and the Calls it wraps, for its whole life.
@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A request and the function that turns its response into a value (or raises)."""

    request: HttpRequest
    parse: Callable[[HttpResponse], T] = field(repr=False)


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach a service; built from an Airflow connection by the hook.

    :param base_url: Scheme, host, port and optional path prefix, e.g. ``https://jobs.example.com``.
    :param api_key: The secret. Never logged, never in ``repr``.
    :param timeout: Seconds for one request (connect + read).
    :param verify: Verify TLS certificates.
    :param max_response_bytes: Larger response bodies are refused with ``InvalidResponse``.
    :param oauth: Get access tokens by OAuth2 client credentials (``api_key`` is then unused).
    :param default_headers: Headers sent with every request (e.g. Evo's ``API-Preview``).
    :param scheme_assumed: The connection's Host had no scheme and ``https://`` was put before it;
        a TLS failure's message then says so (a plain-HTTP service answers TLS with garbage).
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 30.0
    verify: bool = True
    max_response_bytes: int = 16 * 1024 * 1024
    user_agent: str = "airflow-jobwait"
    oauth: OAuth2ClientCredentials | None = None
    default_headers: tuple[tuple[str, str], ...] = ()
    scheme_assumed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def headers_for(self, request: HttpRequest, credential: str) -> dict[str, str]:
        """The request's headers with ``credential`` (the key, or the current access token)."""
        headers = {
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            **dict(self.default_headers),
            **dict(request.headers),
        }
        headers.update(request.auth.render(credential))
        return headers


def normalize_base_url(base_url: str) -> str:
    """Check a base URL and drop its trailing slash.

    :raises ValueError: Not an ``http``/``https`` URL with a host, or it has a query or fragment.
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(f"base URL must be a non-empty string, got {base_url!r}")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base URL must look like http(s)://host[:port][/prefix], got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not have a query or fragment, got {base_url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as err:
        raise ValueError(f"base URL has an invalid port: {base_url!r}") from err
    return base_url.strip().rstrip("/")


def path_segment(value: object, name: str) -> str:
    """Validate an identifier that goes into a URL path and quote it.

    An id that URL handling would change is refused before any request: ``requests``, aiohttp
    and servers remove dot segments (RFC 3986 §5.2.4), so ``get_job(".")`` would read
    ``/api/jobs/``; some servers decode ``%2e`` (or ``%252e``) before doing so; WHATWG parsers
    take ``\\`` for ``/``; control characters are not allowed in a request target at all
    (RFC 9112 §3.2).

    :param value: The identifier (job id, dataset id, ...).
    :param name: Its parameter name, for the error message.
    :raises ValueError: Empty, not a string, too long, a dot segment (also percent-encoded), or
        containing ``/``, ``\\``, ``..``, a control character or surrounding spaces.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}: {value!r}"[:300])
    if not value.strip():
        raise ValueError(f"{name} must not be empty or whitespace, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{name} must not contain control characters, got {value!r}")
    decoded = _fully_unquoted(value)
    if decoded in (".", ".."):
        raise ValueError(
            f"{name} must not be a dot segment ('.' or '..', also percent-encoded): URL normalisation"
            f" would drop it and address another resource, got {value!r}"
        )
    if any(sep in text for text in (value, decoded) for sep in ("/", "\\", "..")) or value != value.strip():
        raise ValueError(f"{name} must not contain '/', '\\', '..' or surrounding spaces, got {value!r}")
    return quote(value, safe="")


def _fully_unquoted(value: str) -> str:
    """``value`` percent-decoded until it no longer changes (``%252e`` -> ``%2e`` -> ``.``)."""
    for _ in range(len(value)):  # each round shortens it; bounded however it is nested
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


# ---- response parsing -------------------------------------------------------------------------


def retry_after_seconds(response: HttpResponse) -> float | None:
    """Seconds the service asked us to wait: ``Retry-After`` as delay-seconds or an HTTP-date
    (RFC 9110 §10.2.3), ``None`` when the value is neither (our own backoff applies then).

    :param response: The answer carrying the header.
    """
    raw = response.header("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if _DELAY_SECONDS.fullmatch(raw):
        # 1*DIGIT: a decimal, a sign or an exponent is not a delay the RFC defines. More digits
        # than any wait can use are read as the longest wait (the retry policy caps it anyway).
        # (and ``int`` refuses over 4,300 digits).
        return float(int(raw)) if len(raw) <= _MAX_DELAY_DIGITS else float(10**_MAX_DELAY_DIGITS)
    if not (raw.endswith(" GMT") or _ASCTIME.fullmatch(raw)):
        return None  # an HTTP-date is in GMT (IMF-fixdate, RFC 850) or zoneless (asctime)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone: it is GMT (RFC 9110 §5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


#: ``delay-seconds = 1*DIGIT`` (ASCII digits only: ``str.isdigit`` would take "²").
_DELAY_SECONDS = re.compile(r"[0-9]+")
_MAX_DELAY_DIGITS = 12
#: asctime-date, the one HTTP-date form without "GMT": ``Sun Nov  6 08:49:37 1994``.
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}")


def server_date(response: HttpResponse) -> datetime | None:
    """The service's clock when it answered (``Date``, RFC 9110 §6.6.1), ``None`` without a valid one."""
    raw = response.header("date")
    if raw is None:
        return None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def decode_json(response: HttpResponse, what: str = "response") -> Any:
    """The body as JSON.

    :param what: What the body is (e.g. ``"job 42"``), for the message.
    :raises InvalidResponse: The body is not JSON (or nested too deeply to decode).
    """
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        snippet = response.body[:80].decode("utf-8", "replace")
        raise InvalidResponse(f"{what} body is not JSON ({err.__class__.__name__}): {snippet!r}") from None


def json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    """The body as a JSON object.

    :raises InvalidResponse: Not JSON, or not an object.
    """
    data = decode_json(response, what)
    if not isinstance(data, dict):
        raise InvalidResponse(f"{what} must be a JSON object, got {type(data).__name__}", field="<root>")
    return data


def error_for(request: HttpRequest, response: HttpResponse) -> ApiError:
    """Map an error status to the exception hierarchy."""
    try:
        body: Any = json.loads(response.body) if response.body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = response.body[:500].decode("utf-8", "replace")
    cls: type[ApiError] = ApiError
    if response.status in (401, 403):
        cls = Unauthorized
    elif response.status == 404:
        cls = NotFound
    elif response.status == 409:
        cls = Conflict
    elif response.status == 429:
        cls = RateLimited
    elif response.status >= 500:
        cls = ServerError
    return cls(response.status, body, request.method, request.path, retry_after=retry_after_seconds(response))


def expect(request: HttpRequest, response: HttpResponse, ok: tuple[int, ...] = (200, 201)) -> None:
    """Raise the mapped error unless the status is one of ``ok``."""
    if response.status not in ok:
        raise error_for(request, response)


def validate(model: type[M], data: Any, what: str) -> M:
    """Validate decoded JSON against a model.

    :raises InvalidResponse: Naming the first offending field and what was wrong with it.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise _invalid(err, what) from err


def validate_json(model: type[M], response: HttpResponse, what: str) -> M:
    """``validate(model, decode_json(response, what), what)``, parsed straight from the body's
    bytes (pydantic's own JSON parser): no Python object is built for what ``model`` ignores.

    A body that parser refuses (not JSON, or JSON only to the standard library: ``NaN``, a BOM,
    UTF-16, lone surrogates, deeper nesting) takes ``decode_json``'s way: what is accepted, and
    how a body that is not JSON is reported, stay exactly those of that one-liner.

    :raises InvalidResponse: Not JSON, or naming the first offending field and what was wrong with it.
    """
    try:
        return model.model_validate_json(response.body)
    except ValidationError as err:
        if err.errors()[0]["type"] == "json_invalid":
            return validate(model, decode_json(response, what), what)
        raise _invalid(err, what) from err


def _invalid(err: ValidationError, what: str) -> InvalidResponse:
    where, why = first_error(err)
    return InvalidResponse(f"{what} is invalid at field {where!r}: {why} ({err.error_count()} error(s))", field=where)


def json_model(request: HttpRequest, model: type[M], what: str, ok: tuple[int, ...] = (200, 201)) -> Call[M]:
    """A call whose successful answer is one JSON object of ``model``."""

    def parse(response: HttpResponse) -> M:
        expect(request, response, ok)
        return validate(model, decode_json(response, what), what)

    return Call(request, parse)
