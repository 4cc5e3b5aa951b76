"""Blocking transport for workers: one ``requests.Session`` per client, retries per ``RetryPolicy``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TypeVar

import requests

from airflow_jobwait.client.credentials import sync_token_source
from airflow_jobwait.client.http import Call, ClientConfig, HttpRequest, HttpResponse, server_date
from airflow_jobwait.client.retry import RetryPolicy, RetryState
from airflow_jobwait.exceptions import ApiError, InvalidResponse, TokenError, TransportError, Unauthorized

T = TypeVar("T")


class SyncClient:
    """Send ``Call``s over a pooled ``requests.Session``.

    :param config: Base URL, key, timeout, TLS verification.
    :param retry: Retry policy for transient failures.
    """

    def __init__(self, config: ClientConfig, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self._session = requests.Session()
        self._session.verify = config.verify
        #: The service's clock (``Date``) at its last answer: a lookup compares times on its clock.
        self.last_server_time: datetime | None = None
        self._tokens = sync_token_source(config.api_key, config.oauth, verify=config.verify, timeout=config.timeout)

    def call(self, call: Call[T]) -> T:
        """Send the request (retrying transient failures) and parse the answer.

        A 401 with a refreshable token (OAuth2) gets one new token and one more try, as the Evo
        SDK does: the token may have been revoked or expired early. A 401 was not processed, so
        sending again is safe even for a submit.
        """
        retry = RetryState(self.retry, call.request)
        refreshed = False
        while True:
            try:
                return call.parse(self.send(call.request))
            except Unauthorized as err:
                if err.status == 401 and not refreshed and self._tokens.refresh():
                    refreshed = True
                    continue
                time.sleep(retry.after_failure(err))
            except (TransportError, ApiError, TokenError) as err:  # a token endpoint briefly down is retried
                time.sleep(retry.after_failure(err))

    def send(self, request: HttpRequest) -> HttpResponse:
        """One attempt: bytes out, bytes in, no interpretation."""
        try:
            with self._session.request(
                request.method,
                self.config.url(request.path),
                params=list(request.params),
                json=request.json_body,
                headers=self.config.headers_for(request, self._tokens.token()),
                timeout=self.config.timeout,
                # Per request: requests lets REQUESTS_CA_BUNDLE override a session-level verify=False.
                verify=self.config.verify,
                allow_redirects=False,
                stream=True,
            ) as resp:
                body = self._read_capped(resp, request)
                response = HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)
                self.last_server_time = server_date(response) or self.last_server_time
                return response
        except requests.RequestException as err:
            raise TransportError(f"{request.method} {request.path} failed: {type(err).__name__}: {err}") from None

    def _read_capped(self, resp: requests.Response, request: HttpRequest) -> bytes:
        limit = self.config.max_response_bytes
        chunks, size = [], 0
        for chunk in resp.iter_content(65536):
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
