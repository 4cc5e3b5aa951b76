"""Non-blocking transport for the triggerer: one ``aiohttp`` session, keep-alive pooled.

Each attempt (token included) has a total deadline of the connection's ``timeout``, as in the
sync transport, from the moment it has one of the pool's connections; socket-level faults are
classified by ``faults.classify``, the same table.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import aiohttp

from airflow_jobwait.client.credentials import async_token_source
from airflow_jobwait.client.faults import fault_error
from airflow_jobwait.client.http import Call, ClientConfig, HttpRequest, HttpResponse
from airflow_jobwait.client.retry import DEFAULT_RETRY, OnRetry, RetryPolicy, RetryState
from airflow_jobwait.exceptions import ApiError, InvalidResponse, TokenError, TransportError, Unauthorized

T = TypeVar("T")


class AsyncClient:
    """Send ``Call``s over one ``aiohttp.ClientSession`` bound to the running event loop.

    Share one per loop and connection (see ``pool.leased_client``): thousands of triggers then
    reuse a handful of keep-alive connections instead of opening one per poll.

    :param config: Base URL, key, timeout, TLS verification.
    :param retry: Default retry policy for transient failures. The client is shared by every
        hook and trigger of the loop on one connection: each call may give its own (``call``).
    :param max_connections: Cap of concurrent connections to the service.
    """

    def __init__(self, config: ClientConfig, retry: RetryPolicy | None = None, max_connections: int = 32) -> None:
        self.config = config
        self.retry = retry or DEFAULT_RETRY
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # As many as the connector's limit, so that aiohttp never queues a request itself: its
        # timeout (and ours) would count the queue. Made on first use, in the client's loop.
        self._slots: asyncio.Semaphore | None = None
        # One token for every trigger that shares this client: one token request per expiry,
        # however many waits run on the connection.
        self._tokens = async_token_source(config.api_key, config.oauth, verify=config.verify, timeout=config.timeout)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                ssl=self.config.verify,  # True: aiohttp's default verification; False: none
                keepalive_timeout=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                auto_decompress=True,
            )
            # aiohttp sends an idempotent request once more, unasked, when the connection closes
            # or resets before the answer; requests does not. The retry policy alone decides
            # (NO_RETRY is one attempt), the same in both transports. aiohttp's own test client
            # turns it off the same way: there is no public switch.
            self._session._retry_connection = False
        return self._session

    async def call(
        self,
        call: Call[T],
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Send the request (retrying transient failures) and parse the answer.

        :param call: The prepared call.
        :param retry: Retry policy of this call (default: the client's). A hook passes its own:
            the pooled client is shared, the policy belongs to the caller.
        :param deadline: Epoch seconds when the caller's wait ends: no retry backoff reaches past
            it, so the call ends by then plus one attempt (``timeout``).
        :param on_retry: Told of each retry instead of the log line (``RetryState``).
        """
        state = RetryState(retry or self.retry, call.request, deadline, on_retry)
        refreshed = False
        while True:
            try:
                return call.parse(await self.send(call.request, deadline))
            except Unauthorized as err:
                # As SyncClient.call: one new token and one more try after a 401.
                if err.status == 401 and not refreshed and await self._tokens.refresh():
                    refreshed = True
                    continue
                await asyncio.sleep(state.after_failure(err))
            except (TransportError, ApiError, TokenError) as err:  # a token endpoint briefly down is retried
                await asyncio.sleep(state.after_failure(err))

    async def send(self, request: HttpRequest, deadline: float | None = None) -> HttpResponse:
        """One attempt: bytes out, bytes in, no interpretation; whole within ``config.timeout``
        from the moment it has one of the pool's connections.

        :param deadline: Epoch seconds when the caller's wait ends: a request still waiting for a
            connection then is not sent.
        :raises TransportError: No complete answer in time (the message names the deadline), no
            connection free before ``deadline``, or another fault that ``faults.FAULT_ERRORS``
            retries.
        :raises InvalidResponse: The answer is not HTTP, or its body is over the size limit.
        """
        session = self._ensure_session()
        slots = await self._connection(request, deadline)
        try:
            async with asyncio.timeout(self.config.timeout):
                # The session's ClientTimeout(total) covers the request; this also the token fetch.
                credential = await self._tokens.token()
                async with session.request(
                    request.method,
                    self.config.url(request.path),
                    params=list(request.params),
                    json=request.json_body,
                    headers=self.config.headers_for(request, credential),
                    allow_redirects=False,
                ) as resp:
                    body = await self._read_capped(resp, request)
                    return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        except (TimeoutError, aiohttp.ClientError) as err:
            raise fault_error(
                err, request.method, request.path, self.config.timeout, self.config.scheme_assumed
            ) from None
        finally:
            slots.release()

    async def _connection(self, request: HttpRequest, deadline: float | None) -> asyncio.Semaphore:
        """Take one of the pool's ``max_connections`` for the request: release it when it ends.
        Not an ``@asynccontextmanager``: its generator, context manager and the loop's weak
        reference to it cost each request in flight or queued ~0.6 KiB.

        Thousands of waits that end together read their results at once: the time they queue
        for a connection is ours, not the service's, and charged to the request's own timeout it
        timed out and retried most of 4,800 results reads of a 5,000-wait deployment
        (docs/deployment-scale.md). A caller's deadline still bounds the queue.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        slots = self._slots
        try:
            async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.time())):
                await slots.acquire()
        except TimeoutError:
            raise TransportError(
                f"{request.method} {request.path} not sent: all {self._max_connections} connections to the"
                " service were busy until the wait's deadline"
            ) from None
        return slots

    async def _read_capped(self, resp: aiohttp.ClientResponse, request: HttpRequest) -> bytes:
        limit = self.config.max_response_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise InvalidResponse(f"{request.method} {request.path}: response body exceeds the {limit}-byte limit")
        # read(n) answers what is buffered now (at most n bytes), not the whole body: read to EOF.
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await resp.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        if len(body) > limit:
            raise InvalidResponse(f"{request.method} {request.path}: response body exceeds the {limit}-byte limit")
        return body

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
