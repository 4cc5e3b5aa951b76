"""One shared ``AsyncClient`` per event loop and connection, reference-counted by its users."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def leased_client(key: str, config: ClientConfig) -> AsyncIterator[AsyncClient]:
    """Use the loop's shared client for ``key`` (e.g. the connection id), creating it if needed.

    Every trigger of a process waiting on the same connection leases the same client, so polls
    reuse keep-alive connections. The client is closed when its last lease ends, or replaced
    when the connection's settings change.

    :param key: What identifies the service (the Airflow connection id).
    :param config: The connection's settings now.
    """
    entries = _clients.setdefault(asyncio.get_running_loop(), {})
    entry = entries.get(key)
    if entry is None or entry.config != config:
        entry = _Entry(config, AsyncClient(config))
        entries[key] = entry
    entry.leases += 1
    try:
        yield entry.client
    finally:
        entry.leases -= 1
        if entry.leases == 0:
            if entries.get(key) is entry:
                del entries[key]
            await entry.client.close()


def active_clients() -> int:
    """How many shared clients the running loop holds (for tests and benchmarks)."""
    return len(_clients.get(asyncio.get_running_loop(), {}))
