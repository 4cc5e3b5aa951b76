"""One table of socket-level faults, used by both transports.

``requests`` and ``aiohttp`` report the same fault with different exceptions (a response cut
inside its headers is a clean 200 with an empty body to ``http.client``, a
``ServerDisconnectedError`` to aiohttp). Each transport hands what it caught to ``classify``,
which names the fault; ``FAULT_ERRORS`` says which of our errors it becomes, so a fault is
retried (or not) the same way whichever transport met it.

The rule of the table: no complete response arrived (refused, reset, timed out, cut short,
TLS failed) is a ``TransportError``, retried for idempotent requests; bytes arrived that are not
HTTP (a status line or chunk framing that breaks RFC 9112) is an ``InvalidResponse``: the peer
answered, and would answer the same again.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable
from enum import Enum

import aiohttp
import requests
import urllib3.exceptions
from aiohttp import http_exceptions

from airflow_jobwait.exceptions import InvalidResponse, JobWaitError, TransportError


class Fault(Enum):
    """What went wrong on the socket, as the message says it."""

    REFUSED = "connection refused"
    RESET = "connection reset or closed before any answer"
    TIMEOUT = "no complete answer within the deadline"
    TRUNCATED_HEADERS = "connection closed inside the response headers"
    TRUNCATED_BODY = "connection closed inside the response body"
    BAD_FRAMING = "invalid chunked or content coding"
    TLS = "TLS handshake or certificate failure"
    INVALID_HTTP = "the answer is not HTTP/1.1"


#: The one classification: which error each fault raises.
FAULT_ERRORS: dict[Fault, type[JobWaitError]] = {
    Fault.REFUSED: TransportError,
    Fault.RESET: TransportError,
    Fault.TIMEOUT: TransportError,
    Fault.TRUNCATED_HEADERS: TransportError,
    Fault.TRUNCATED_BODY: TransportError,
    Fault.TLS: TransportError,
    Fault.BAD_FRAMING: InvalidResponse,
    Fault.INVALID_HTTP: InvalidResponse,
}


class TruncatedHeaders(http.client.HTTPException):
    """The connection closed before the blank line that ends the header section (RFC 9112 §2.1).

    ``http.client`` takes end-of-stream for the end of the headers and, without a
    ``Content-Length``, the end of an empty body: the sync transport raises this instead.
    """


class DeadlineExceeded(TimeoutError):
    """The call's total deadline passed while its answer was still arriving."""


def _not_refused(exc: BaseException) -> bool:
    # urllib3 2 derives NewConnectionError (refused, unreachable) from ConnectTimeoutError.
    return not isinstance(exc, urllib3.exceptions.NewConnectionError)


def _aiohttp_truncated_head(exc: BaseException) -> bool:
    # aiohttp puts the partly parsed message in the error when the close came inside the head.
    return isinstance(exc, aiohttp.ServerDisconnectedError) and not isinstance(exc.message, str)


def _aiohttp_bad_framing(exc: BaseException) -> bool:
    if isinstance(exc, http_exceptions.ContentEncodingError):
        return True
    return isinstance(exc, http_exceptions.BadHttpMessage) and "chunk" in str(exc.message).lower()


# In order: the first rule that matches any exception of the chain names the fault. Subclasses
# come before their bases (RemoteDisconnected is a BadStatusLine, InvalidChunkLength an
# IncompleteRead, a connect timeout a connection error).
_Test = Callable[[BaseException], bool] | None
_RULES: tuple[tuple[Fault, tuple[type[BaseException], ...], _Test], ...] = (
    (Fault.TIMEOUT, (TimeoutError, requests.Timeout, urllib3.exceptions.TimeoutError), _not_refused),
    (Fault.TLS, (ssl.SSLError, ssl.CertificateError, requests.exceptions.SSLError, aiohttp.ClientSSLError), None),
    (Fault.TRUNCATED_HEADERS, (TruncatedHeaders,), None),
    (Fault.TRUNCATED_HEADERS, (aiohttp.ServerDisconnectedError,), _aiohttp_truncated_head),
    (
        Fault.BAD_FRAMING,
        (
            urllib3.exceptions.InvalidChunkLength,
            urllib3.exceptions.DecodeError,
            requests.exceptions.ContentDecodingError,
        ),
        None,
    ),
    (Fault.BAD_FRAMING, (http_exceptions.HttpProcessingError,), _aiohttp_bad_framing),
    (
        Fault.TRUNCATED_BODY,
        (http.client.IncompleteRead, http_exceptions.ContentLengthError, http_exceptions.TransferEncodingError),
        None,
    ),
    (Fault.TRUNCATED_BODY, (aiohttp.ClientPayloadError, requests.exceptions.ChunkedEncodingError), None),
    (Fault.REFUSED, (ConnectionRefusedError, urllib3.exceptions.NewConnectionError), None),
    (Fault.REFUSED, (aiohttp.ClientConnectorError,), None),
    (Fault.RESET, (ConnectionError, http.client.RemoteDisconnected, aiohttp.ServerDisconnectedError), None),
    (
        Fault.INVALID_HTTP,
        (http.client.HTTPException, urllib3.exceptions.HeaderParsingError, http_exceptions.HttpProcessingError),
        None,
    ),
    (Fault.INVALID_HTTP, (aiohttp.ClientResponseError,), None),
    (Fault.RESET, (OSError, aiohttp.ClientError, requests.RequestException), None),
)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: ``__cause__``/``__context__`` and exceptions held in
    ``args`` (urllib3 and requests wrap by argument, e.g. ``ProtocolError('...', BadStatusLine())``)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError(pool, url, reason)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return seen


def classify(exc: BaseException) -> Fault:
    """The fault behind what ``requests``/``urllib3``/``aiohttp`` raised (``RESET`` if unknown)."""
    chain = _chain(exc)
    for fault, types, test in _RULES:
        for candidate in chain:
            if isinstance(candidate, types) and (test is None or test(candidate)):
                return fault
    return Fault.RESET


#: Appended to a TLS failure when the connection's Host had no scheme.
SCHEME_ASSUMED_HINT = "Host had no scheme: https:// was assumed; write http:// if the service speaks plain HTTP"


def fault_error(
    exc: BaseException, method: str, path: str, timeout: float, scheme_assumed: bool = False
) -> JobWaitError:
    """The error a transport raises for ``exc``: the table's class, naming the fault.

    :param exc: What the HTTP library raised.
    :param method: The request's method, for the message.
    :param path: The request's path (never a credential), for the message.
    :param timeout: The call's total deadline in seconds, named when it passed.
    :param scheme_assumed: ``https://`` was put before a bare Host: a TLS failure says so first,
        as a plain-HTTP service answers a TLS hello with e.g. ``WRONG_VERSION_NUMBER``.
    """
    fault = classify(exc)
    what = f"{fault.value} ({timeout:g}s total deadline)" if fault is Fault.TIMEOUT else fault.value
    if fault is Fault.TLS and scheme_assumed:
        what = f"{what} ({SCHEME_ASSUMED_HINT})"
    error = FAULT_ERRORS[fault](f"{method} {path} failed: {what}: {type(exc).__name__}: {exc}"[:1000])
    error.fault = fault.name
    return error
