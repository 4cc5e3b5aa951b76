"""A total deadline for ``requests`` calls, and headers cut short detected.

``requests`` applies ``timeout`` to each socket operation: a server that sends one byte a
second never trips it, and one ``read(n)`` of a dripped body blocks until all ``n`` bytes came.
Here every ``recv`` of a response gets the time left until the call's deadline as its socket
timeout, so the status line, the headers and the body together end by the deadline.

``DeadlineAdapter`` is mounted on the sessions of the sync transport and the token source; the
deadline of the calls made inside ``total_deadline(seconds)`` is read from a context variable
(the adapter is shared by the pooled connections, the deadline belongs to one call).
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_jobwait.client.faults import DeadlineExceeded, TruncatedHeaders

#: ``time.monotonic()`` by which the current call must have its whole answer.
_deadline: ContextVar[float | None] = ContextVar("jobwait_total_deadline", default=None)


@contextmanager
def total_deadline(seconds: float) -> Iterator[float]:
    """Calls made inside must be answered whole within ``seconds`` (or an enclosing deadline,
    whichever is sooner). Yields the deadline on the ``time.monotonic()`` clock."""
    outer = _deadline.get()
    deadline = time.monotonic() + seconds
    if outer is not None:
        deadline = min(deadline, outer)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


class _DeadlineSocketReader(io.RawIOBase):
    """The socket's reader, with the time left until ``deadline`` as timeout of each ``recv``."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the total deadline passed before the answer was complete")
        base = self._sock.gettimeout()
        self._sock.settimeout(remaining)
        try:
            return self._raw.readinto(buffer)
        finally:
            # A pooled connection sends its next request with its own timeout, not what was left.
            self._sock.settimeout(base)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _LineWatch:
    """Wraps the response's reader while ``http.client`` reads the head: notes a line that ended
    at end-of-stream instead of CRLF, which ``http.client`` would take for the end of the head."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.cut = False

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._reader.readline(limit)
        too_long = limit >= 0 and len(line) >= limit  # http.client raises LineTooLong for these
        if not line.endswith(b"\n") and not too_long:
            self.cut = True
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class _DeadlineHTTPResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = _deadline.get()
        if deadline is not None:
            # Same socket, same buffering; detach() leaves the socket's reader open for ours.
            self.fp = io.BufferedReader(_DeadlineSocketReader(self.fp.detach(), sock, deadline))  # type: ignore[arg-type]

    def begin(self) -> None:
        if self.headers is not None:
            return
        reader = self.fp
        watch = _LineWatch(reader)
        self.fp = watch  # type: ignore[assignment]
        try:
            super().begin()
        finally:
            if self.fp is watch:  # else http.client closed it (fp None) on a bad status line
                self.fp = reader
        if watch.cut:
            raise TruncatedHeaders("the connection closed before the end of the response headers")


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineHTTPResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineHTTPResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose connections honour ``total_deadline`` and refuse a cut-off head."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not a SOCKS manager: it has its own pools
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def mount_deadlines(session: Any) -> None:
    """Send the session's ``http``/``https`` requests through a ``DeadlineAdapter``."""
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
