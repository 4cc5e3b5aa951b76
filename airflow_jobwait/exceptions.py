"""Errors of the job APIs, independent of the transport that met them."""

from __future__ import annotations

from typing import Any


class JobWaitError(Exception):
    """Base of every error airflow-jobwait raises about a remote service."""

    #: The socket-level fault behind it (a ``client.faults.Fault`` name), when one was.
    fault: str | None = None


class TransportError(JobWaitError):
    """The request did not get a complete HTTP response (refused, reset, timed out, truncated)."""


class TokenError(JobWaitError):
    """The OAuth2 token endpoint did not issue an access token (refused, or answered something else).

    The message names the endpoint and what it answered (HTTP status, OAuth ``error``), never the
    client secret or a token.

    :param message: What went wrong.
    :param token_url: The token endpoint, without user info or query string.
    :param status: HTTP status of the answer (``None`` when it was not an HTTP error).
    :param error: The OAuth error code of the answer (RFC 6749 §5.2), if it had one.
    """

    def __init__(self, message: str, token_url: str, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.token_url = token_url
        self.status = status
        self.error = error


class InvalidResponse(JobWaitError):
    """The service answered, but not with what the contract says.

    :param message: What is wrong, naming the field or value.
    :param field: Dotted path of the offending field, when one is to blame.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownJobStatus(InvalidResponse):
    """A job status the service's own SDK rejects: polling again would only meet it again, so a
    wait ends on it at once (an ``InvalidResponse`` otherwise counts as transient)."""


class ApiError(JobWaitError):
    """The service answered with an error status.

    :param status: HTTP status code.
    :param body: Decoded JSON body (or text) of the answer, for the message and for callers.
    :param method: HTTP method of the request.
    :param path: Path of the request (no query string, never a credential).
    :param retry_after: Seconds the service asked the client to wait (``Retry-After``), if it did.
    :ivar code: The service's own error code where its error body carries one (TensorBay's
        ``code``, set by the dataset jobs client), else ``None``.
    """

    code: str | None = None

    def __init__(
        self, status: int, body: Any, method: str = "", path: str = "", retry_after: float | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        self.retry_after = retry_after
        super().__init__(f"{method} {path} answered {status}: {_describe(body)}".strip())


class Unauthorized(ApiError):
    """401/403: the API key is missing, wrong or lacks the right."""


class NotFound(ApiError):
    """404: no such job (or no result yet)."""


class Conflict(ApiError):
    """409: the request conflicts with the resource's state (terminal job, lock, idempotency key)."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` seconds is what the service asked for, if it did."""


class ServerError(ApiError):
    """5xx: the service failed; usually worth a retry."""


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("detail", "message", "error", "title"):
            if key in body:
                return str(body[key])[:500]
    return str(body)[:500]


class JobPendingError(JobWaitError):
    """The job's results were asked for while it is still running (compute: results answered 202).

    :param status: The job's native status at the time.
    """

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class JobError(JobWaitError):
    """The job itself ended in failure (or was cancelled); the message names the service's reason.

    :param status: The job's native status.
    :param title: The service's short reason (compute Error ``title``), if any.
    :param detail: The service's explanation (compute Error ``detail``), if any.
    """

    def __init__(self, message: str, status: str | None = None, title: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.title = title
        self.detail = detail
