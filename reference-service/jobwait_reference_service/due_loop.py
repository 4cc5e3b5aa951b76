"""Background driver for job families whose state changes at absolute due times stored in SQLite.

Used by the dataset-job and compute-task families: each stores, per unfinished job, the wall-clock
time (unix seconds) of its next transition. Because those times are absolute and persisted, a
restarted process simply picks up every job that fell due while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class DueLoop:
    """Run ``advance(now)`` whenever a stored due time passes, or sooner when woken.

    :param name: Used in log lines and the task name.
    :param advance: Moves every job due at ``now`` along (runs in a worker thread, since SQLite
        calls block) and returns the next due time, or ``None`` when nothing is pending.
    :param max_idle_s: Upper bound on a sleep, a safety net should a wake-up ever be missed.
    """

    def __init__(self, name: str, advance: Callable[[float], float | None], max_idle_s: float = 1.0) -> None:
        self._name = name
        self._advance = advance
        self._max_idle_s = max_idle_s
        self._wake_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-due-loop")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None

    def wake(self) -> None:
        """Ask for an early pass (safe from any thread, e.g. a sync request handler)."""
        loop, event = self._loop, self._wake_event
        if loop is None or event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(event.set)

    async def _run(self) -> None:
        assert self._wake_event is not None
        while True:
            # Clear before the pass so a wake-up arriving during it is not lost.
            self._wake_event.clear()
            try:
                next_due = await asyncio.to_thread(self._advance, time.time())
            except Exception:
                logger.exception("%s: advancing due jobs failed; retrying shortly", self._name)
                next_due = time.time() + 0.5
            timeout = self._max_idle_s if next_due is None else min(self._max_idle_s, next_due - time.time())
            if timeout <= 0:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), timeout)
