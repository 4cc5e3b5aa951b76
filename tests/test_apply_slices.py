"""A poller telling thousands of running waits at once lets the waits that just ended finish first;
a page that ends many waits gets the first ones' events out while the later ones run.

Airflow's ``TriggerRunner.run_trigger`` logs each event through a thread (structlog's ``ainfo``,
``run_in_executor``) and queues it only once that returns. A history or job-list round ends a few
waits, then tells every other windowed wait that its job still runs (``_apply``); told in one
pass, 10,000 of them hold the loop ~100 ms, and every event of the round with it
(``client/coalesce.py``, ``StatusPoller._apply_sliced``). A page that ends 100 waits at once would
likewise hold the first one's event until the last had run (~0.3 ms each at 10,000 waits), so
they end ``END_SLICE`` at a time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from airflow_jobwait.client.coalesce import (
    APPLY_SLICE,
    END_SLICE,
    Registration,
    StatusPoller,
    _Capabilities,
    _PollerKey,
)
from airflow_jobwait.client.coalesce_history import HistoryPoller
from airflow_jobwait.client.http import ClientConfig
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.models.status import JobState, JobStatus

# 40 slices (~0.1 s of telling): room for the thread to be scheduled on a loaded machine, where
# one pass would still hold its answer to the end.
WAITS = 40 * APPLY_SLICE


async def test_an_ended_waits_thread_round_trip_returns_before_every_running_wait_is_told() -> None:
    aio = asyncio.get_running_loop()
    # No request is ever sent: the waits are put in place, not registered, so no round is due.
    config = ClientConfig("https://jobs.example.com", "key")
    poller = StatusPoller(_PollerKey("slices", config, 5.0, "auto", 500), _Capabilities())
    try:
        registrations = [Registration(f"job-{i}", WaitLoop(f"job-{i}", 5.0)) for i in range(WAITS)]
        for registration in registrations:
            poller._waits[registration.job_id] = [registration]
        running = JobState(status=JobStatus.IN_PROGRESS, native_status="IN_PROGRESS")
        told_when_queued: list[int] = []

        async def ended_wait_queues_its_event() -> None:
            await aio.run_in_executor(None, lambda: None)  # run_trigger's ainfo, as little as it gets
            told_when_queued.append(sum(1 for r in registrations if r.told is not None))

        event = asyncio.ensure_future(ended_wait_queues_its_event())
        await poller._apply_sliced({r.job_id: running for r in registrations})
        await asyncio.wait_for(event, 5)

        assert all(r.told == running for r in registrations)
        assert all(r.loop.polls == 1 and r.loop.last_status is JobStatus.IN_PROGRESS for r in registrations)
        # Told in one pass, the event would have waited for all of them.
        assert told_when_queued[0] < WAITS, told_when_queued
    finally:
        await poller._stop()


async def test_a_page_that_ends_many_waits_queues_the_first_events_before_the_last_wait_runs() -> None:
    aio = asyncio.get_running_loop()
    config = ClientConfig("https://jobs.example.com", "key")
    poller = HistoryPoller(_PollerKey("ends", config, 5.0, "history", 500), _Capabilities())
    ended = 10 * END_SLICE
    try:
        registrations = [Registration(f"job-{i}", WaitLoop(f"job-{i}", 5.0)) for i in range(ended)]
        for registration in registrations:  # in place, as above: windowed waits of the history
            poller._waits[registration.job_id] = [registration]
            poller._submitted[registration.job_id] = datetime.now(UTC)
        resumed: list[str] = []
        resumed_when_queued: list[int] = []

        async def ended_wait(registration: Registration) -> None:
            registration.wake = aio.create_future()
            await registration.wake
            resumed.append(registration.job_id)
            # Its turn: the outcome line, written to the log channel (a syscall, as a sleep, lets
            # the logging thread run meanwhile), then run_trigger's ainfo for its event.
            time.sleep(0.0003)
            await aio.run_in_executor(None, lambda: None)
            resumed_when_queued.append(len(resumed))

        waits = [asyncio.ensure_future(ended_wait(registration)) for registration in registrations]
        await asyncio.sleep(0)  # every wait is waiting
        completed = JobState(status=JobStatus.COMPLETED, native_status="COMPLETED")
        await poller._end_terminal((registration.job_id, completed) for registration in registrations)
        await asyncio.wait_for(asyncio.gather(*waits), 5)

        assert all(r.over and r.outcome is not None and r.outcome.status is JobStatus.COMPLETED for r in registrations)
        assert poller._waits == {}
        # Ended in one pass, the first event would have waited for all of them to run.
        assert resumed_when_queued[0] < ended // 2, resumed_when_queued
    finally:
        await poller._stop()
