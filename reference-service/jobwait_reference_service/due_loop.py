"""Background driver for job families whose state changes at absolute due times stored in SQLite.

Used by the inference, dataset-job and compute-task families: each stores, per unfinished job, the
wall-clock time (unix seconds) of its next transition. Because those times are absolute and
persisted, a restarted process simply picks up every job that fell due while it was down.

``DueLoop`` only decides when to look; what a pass does is the family's ``advance``. Families that
move one job per transaction through a ``job_id``/``status``/``due_at`` table (dataset jobs,
compute tasks) get that pass from ``DueLoop.for_table``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobwait_reference_service.db import Database

logger = logging.getLogger(__name__)

#: Moves one due job along inside its write transaction: ``step(tx, row, now)``.
Step = Callable[[sqlite3.Connection, sqlite3.Row, float], None]
#: Ends a job whose step raised, in a fresh write transaction: ``fail(tx, job_id, now)``.
Fail = Callable[[sqlite3.Connection, str, float], None]

# Jobs taken per pass in ``for_table``; one left over keeps the next due time in the past, so the
# next pass starts at once, while the event loop still gets a turn in between.
TABLE_BATCH = 200


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

    @classmethod
    def for_table(
        cls, name: str, db: Database, table: str, steps: Mapping[str, Step], fail: Fail, max_idle_s: float = 1.0
    ) -> DueLoop:
        """A loop over ``table``, whose rows have ``job_id``, ``status`` and ``due_at`` columns.

        Each pass takes the rows whose ``due_at`` has passed, earliest first, and moves each in its
        own transaction with the step for its status. A step sets the row's next ``due_at``, or
        ``NULL`` once the job is terminal. A row whose status has no step (a terminal job that kept
        a due time) just has ``due_at`` cleared.

        :param name: As for ``DueLoop``; also names the jobs in log lines.
        :param db: The service database.
        :param table: The family's job table (a constant of the family, never request input).
        :param steps: Per status, the transition made when that status's due time passes.
        :param fail: Ends a job whose step raised: the step's transaction was rolled back, and an
            unhandled error must not leave the job due, or every pass would retry it forever.
        :param max_idle_s: As for ``DueLoop``.
        """
        return cls(name, functools.partial(_advance_table, name, db, table, steps, fail), max_idle_s)

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


def _advance_table(
    name: str, db: Database, table: str, steps: Mapping[str, Step], fail: Fail, now: float
) -> float | None:
    """The ``advance`` of ``DueLoop.for_table`` (see there); returns the table's next due time."""
    conn = db.connection()
    due = conn.execute(
        f"SELECT job_id FROM {table} WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?",
        (now, TABLE_BATCH),
    ).fetchall()
    for listed in due:
        job_id = listed["job_id"]
        try:
            with db.transaction() as tx:
                # Re-read under the write lock: a request (cancel, abort, retry, delete) may have
                # changed or removed the job since it was listed.
                row = tx.execute(
                    f"SELECT * FROM {table} WHERE job_id = ? AND due_at IS NOT NULL AND due_at <= ?", (job_id, now)
                ).fetchone()
                if row is None:
                    continue
                step = steps.get(row["status"])
                if step is None:  # a terminal job never keeps a due time; heal if one did
                    tx.execute(f"UPDATE {table} SET due_at = NULL WHERE job_id = ?", (job_id,))
                else:
                    step(tx, row, now)
        except Exception:
            logger.exception("%s: job %s could not advance", name, job_id)
            try:
                with db.transaction() as tx:
                    fail(tx, job_id, time.time())
            except Exception:
                logger.exception("%s: job %s could not be marked failed", name, job_id)
    next_due = conn.execute(f"SELECT MIN(due_at) AS t FROM {table} WHERE due_at IS NOT NULL").fetchone()["t"]
    return None if next_due is None else float(next_due)
