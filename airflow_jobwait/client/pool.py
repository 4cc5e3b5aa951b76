"""One shared ``AsyncClient`` per event loop and connection, reference-counted by its users."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import ClientConfig


@dataclass
class _Entry:
    config: ClientConfig
    client: AsyncClient
    leases: int = 0


# Keyed weakly by loop, so nothing here outlives the event loop it belongs to.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Entry]] = weakref.WeakKeyDictionary()


class leased_client:  # lower case: used as the function it was, ``async with leased_client(key, config)``
    """Use the loop's shared client for ``key`` (e.g. the connection id), creating it if needed.

    Every trigger of a process waiting on the same connection leases the same client, so polls
    reuse keep-alive connections. The client is closed when its last lease ends, or replaced
    when the connection's settings change.

    A class, not an ``@asynccontextmanager``: a wait polling alone holds its lease for its whole
    life, and a generator-based one (its context manager, async generator frame and the loop's
    weak reference to every live async generator) costs ~0.6 KiB a wait, this ~0.1.

    :param key: What identifies the service (the Airflow connection id).
    :param config: The connection's settings now.
    """

    __slots__ = ("config", "entry", "key")

    def __init__(self, key: str, config: ClientConfig) -> None:
        self.key = key
        self.config = config
        self.entry: _Entry | None = None

    async def __aenter__(self) -> AsyncClient:
        entries = _clients.setdefault(asyncio.get_running_loop(), {})
        entry = entries.get(self.key)
        if entry is None or entry.config != self.config:
            entry = _Entry(self.config, AsyncClient(self.config))
            entries[self.key] = entry
        entry.leases += 1
        self.entry = entry
        return entry.client

    async def __aexit__(self, *exc_info: object) -> None:
        entry, self.entry = self.entry, None
        if entry is None:
            return
        entry.leases -= 1
        if entry.leases == 0:
            entries = _clients.get(asyncio.get_running_loop(), {})
            if entries.get(self.key) is entry:
                del entries[self.key]
            await entry.client.close()


def active_clients() -> int:
    """How many shared clients the running loop holds (for tests and benchmarks)."""
    return len(_clients.get(asyncio.get_running_loop(), {}))
