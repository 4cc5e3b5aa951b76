"""Blocking transport for workers: one ``requests.Session`` per client, retries per ``RetryPolicy``.

Each attempt (token included) has a total deadline of the connection's ``timeout``: connect,
send, the head and the whole body (``sync_deadline``), as the async transport's
``ClientTimeout(total=...)``. Socket-level faults are classified by ``faults.classify``, the
same table the async transport uses.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TypeVar

import requests

from airflow_jobwait.client.credentials import sync_token_source
from airflow_jobwait.client.faults import Fault, fault_error
from airflow_jobwait.client.http import Call, ClientConfig, HttpRequest, HttpResponse, server_date
from airflow_jobwait.client.retry import DEFAULT_RETRY, RetryPolicy, RetryState
from airflow_jobwait.client.sync_deadline import mount_deadlines, total_deadline
from airflow_jobwait.exceptions import ApiError, InvalidResponse, TokenError, TransportError, Unauthorized

T = TypeVar("T")


class SyncClient:
    """Send ``Call``s over a pooled ``requests.Session``.

    :param config: Base URL, key, timeout, TLS verification.
    :param retry: Retry policy for transient failures (a call may give its own).
    """

    def __init__(self, config: ClientConfig, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or DEFAULT_RETRY
        self._session = requests.Session()
        mount_deadlines(self._session)
        self._session.verify = config.verify
        #: The service's clock (``Date``) at its last answer: a lookup compares times on its clock.
        self.last_server_time: datetime | None = None
        self._tokens = sync_token_source(config.api_key, config.oauth, verify=config.verify, timeout=config.timeout)

    def call(self, call: Call[T], retry: RetryPolicy | None = None, deadline: float | None = None) -> T:
        """Send the request (retrying transient failures) and parse the answer.

        A 401 with a refreshable token (OAuth2) gets one new token and one more try, as the Evo
        SDK does: the token may have been revoked or expired early. A 401 was not processed, so
        sending again is safe even for a submit.

        :param call: The prepared call.
        :param retry: Retry policy of this call (default: the client's).
        :param deadline: Epoch seconds when the caller's wait ends: no retry backoff reaches past
            it, so the call ends by then plus one attempt (``timeout``).
        """
        state = RetryState(retry or self.retry, call.request, deadline)
        refreshed = False
        while True:
            try:
                return call.parse(self.send(call.request))
            except Unauthorized as err:
                if err.status == 401 and not refreshed and self._tokens.refresh():
                    refreshed = True
                    continue
                time.sleep(state.after_failure(err))
            except (TransportError, ApiError, TokenError) as err:  # a token endpoint briefly down is retried
                time.sleep(state.after_failure(err))

    def send(self, request: HttpRequest) -> HttpResponse:
        """One attempt: bytes out, bytes in, no interpretation; whole within ``config.timeout``.

        :raises TransportError: No complete answer in time (the message names the deadline), or
            another fault that ``faults.FAULT_ERRORS`` retries.
        :raises InvalidResponse: The answer is not HTTP, or its body is over the size limit.
        """
        timeout = self.config.timeout
        with total_deadline(timeout) as deadline:
            try:
                with self._session.request(
                    request.method,
                    self.config.url(request.path),
                    params=list(request.params),
                    json=request.json_body,
                    headers=self.config.headers_for(request, self._tokens.token()),
                    # Connect, then each read; the total is kept by total_deadline.
                    timeout=(timeout, timeout),
                    # Per request: requests lets REQUESTS_CA_BUNDLE override a session-level verify=False.
                    verify=self.config.verify,
                    allow_redirects=False,
                    stream=True,
                ) as resp:
                    body = self._read_capped(resp, request, deadline)
                    response = HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)
                    self.last_server_time = server_date(response) or self.last_server_time
                    return response
            except requests.RequestException as err:
                raise fault_error(err, request.method, request.path, timeout, self.config.scheme_assumed) from None

    def _read_capped(self, resp: requests.Response, request: HttpRequest, deadline: float) -> bytes:
        limit = self.config.max_response_bytes
        chunks, size = [], 0
        for chunk in resp.iter_content(65536):
            # The socket reads keep the deadline; this also holds where they cannot (a SOCKS proxy).
            if time.monotonic() > deadline:
                error = TransportError(
                    f"{request.method} {request.path} failed: {Fault.TIMEOUT.value}"
                    f" ({self.config.timeout:g}s total deadline): the body was still arriving"
                )
                error.fault = Fault.TIMEOUT.name
                raise error
            size += len(chunk)
            if size > limit:
                raise InvalidResponse(
                    f"{request.method} {request.path}: response body exceeds the {limit}-byte limit"
                    " (max_response_bytes in the connection extra)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._session.close()
