"""``StatusPoller``: the inference waits of one event loop on one service, in a handful of requests.

A triggerer runs thousands of ``JobTrigger``s on one event loop. Polled one by one, 10,000 waits at
a 5 s interval are 2,000 requests a second; coalesced, they are 20 batch status requests per
interval (``docs/jobs-api.md`` §1, ``GET /api/jobs?identifiers=``, 500 ids each), or 20 held long-polls
(``POST /api/jobs:watch``) that answer as soon as a job changes.

How a poller works:

- Each wait registers its job id and a ``WaitLoop`` (its deadline and error budget), then awaits
  its own future. The poller resolves it; the wait's ``finally`` unregisters, so a cancelled
  trigger leaves at once, and the last one out stops the poller and releases the pooled client.
- Rounds: every ``poll_interval`` one batch request per ``batch_size`` ids not held in a watch.
  All waits of the poller share the round's phase, so N waits cost ``ceil(N / batch_size)``
  requests per interval. New waits are asked about once right away (those arriving within
  ``GATHER_SECONDS`` together), then join the rounds.
- Watch (``mode="auto"``, where the service offers it): ids whose status is known are handed to at
  most ``MAX_WATCHES`` long-polls of up to ``batch_size`` ids; a watch that returns is re-armed with
  the ids still waited on, topped up with unwatched ones. Ids no watch holds stay in the rounds.
- Probing: a 404/405/501 from the batch endpoint, any other client error (400, 403, 415, 422, ...
  but not 408/425/429) before it ever answered well, or ``PROBE_INVALID`` 200s in a row that are
  not its shape before then, means the service has no batch status: a real service answers its
  unknown routes in many ways, and a probe must never end a wait. Every wait is
  handed back (``None``) to poll its job alone, and the connection is remembered as such for
  ``PROBE_TTL`` seconds. The same for watch, whose waits then stay in the rounds.
- Ids a batch reply omits are unknown to the service, or not yet visible: each is checked with a
  plain ``GET``, so a 404 fails that wait only, exactly as when polled alone.
- A failed request (after the client's own retries) counts one error against each wait it was
  for; a wait ends only when its own budget is spent, as when polled alone.
- The poller logs nothing about a wait. Airflow's triggerer sends a log line to the task whose
  trigger's asyncio task emitted it: structlog context variables (``trigger_id``) bound in that
  task, which tasks it creates inherit. The poller serves many triggers, so it runs without any
  (``_detached_context``), and what it learns for a wait (a status, a retry of a shared request,
  a failed poll, no batch endpoint) is a ``Notice`` queued on the wait's ``Registration``; the
  wait's own coroutine (``wait_coalesced``) takes the notices and hands them to its callback,
  which logs in the trigger's own context, so each line lands in that wait's task log only.

Everything lives in a per-loop registry keyed weakly by the loop: nothing outlives the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import math
import random
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from structlog.contextvars import clear_contextvars

from airflow_jobwait.client import inference
from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import ClientConfig
from airflow_jobwait.client.pool import leased_client
from airflow_jobwait.client.retry import TRANSIENT_STATUSES, OnRetry, Retry
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import ApiError, InvalidResponse, JobWaitError
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.models.status import JobState

log = logging.getLogger(__name__)

# Waits that start together (a triggerer picks triggers up in bulk) are asked about in one request.
GATHER_SECONDS = 0.02
# Batch requests of one round in flight at once: a 10,000-wait round takes ~10 round trips, not 20,
# while at most two replies (~5 ms of parsing each) are handled back to back on the loop.
ROUND_CONCURRENCY = 2
# Held long-polls per poller (500 ids each). The pooled client has 32 connections; leave room
# for rounds, cancels and hooks. Ids beyond them are batch polled.
MAX_WATCHES = 20
# A watch that keeps returning (many jobs changing) re-arms at most this often, which bounds the
# request rate under churn at the cost of this much detection latency.
WATCH_MIN_CYCLE = 0.05
# Longest long-poll; also kept below the connection's request timeout (see ``_watch_timeout``).
WATCH_SECONDS = 25.0
# Waits due to tick within this many seconds of each other are roused by one timer (``_TickWheel``).
TICK_SLOT = 0.1
# Waits told at once when a listing tells thousands (``StatusPoller._apply_sliced``): ~5 ms of work.
APPLY_SLICE = 500
# Waits ended at once when a listing's page ends many (``StatusPoller._apply_sliced``): an ended
# wait's turn (its outcome, its event handed to Airflow's logging thread) is ~0.3 ms at 10,000
# waits, so ~3 ms a slice; the loop reads the logging thread's answers, and queues those events,
# between slices instead of after the last.
END_SLICE = 10
# A service found without an endpoint is probed again after this long (it may have been upgraded).
PROBE_TTL = 600.0
# What a service without the [ext] endpoint answers.
MISSING_ENDPOINT = frozenset({404, 405, 501})
# Garbled answers in a row, before the endpoint ever answered well, that mean "some other route
# lives at this path". One alone may be a transient fault.
PROBE_INVALID = 3


@dataclass(frozen=True, slots=True)
class PollFailed:
    """A request for the wait's job failed after its retries: one error against its budget.

    :param error: What the request raised.
    """

    error: JobWaitError


@dataclass(frozen=True, slots=True)
class BatchMissing:
    """The service lacks the endpoint a poller needs: the wait goes on another way (``auto``: the
    history poller after batch status, per-job polling after that).

    :param error: How the service answered the request.
    :param endpoint: Which endpoint is missing (``batch status``, ``job history`` or ``job list``).
    """

    error: JobWaitError
    endpoint: str = "batch status"


#: What the poller tells one wait: a status it learned (only when it differs from the last one
#: told), a retry of a request for the job, a failed poll, or that the wait must poll alone.
Notice = JobState | Retry | PollFailed | BatchMissing
NoticeCallback = Callable[[Notice], None]


class Ticker(Protocol):
    """A clock of the wait's own, kept by its coroutine while it waits in a poller: ``tick`` is
    called from it (so in its trigger's context and task log) once ``due`` (event-loop time) has
    passed, and ``due`` moves ``interval`` on before it (``tick`` may move it again). No task of
    its own: an asyncio task per wait, with its sleep's future and timer, costs ~1.4 KiB, 14 MB at
    10,000 waits; the loop's ``_TickWheel`` rouses the wait instead. ``due`` lives here, not in
    ``wait_in``, so the clock runs on across a fallback to another poller."""

    interval: float
    due: float

    def tick(self) -> None: ...

    def claim(self) -> bool:
        """Called by the ``_TickWheel`` once ``due`` has passed, outside the wait's coroutine:
        whether the wait must run to ``tick`` (it is then roused, and ``tick`` does what ``claim``
        allowed). ``False``: nothing to do now, and ``claim`` has moved ``due`` on itself."""
        ...


@dataclass(eq=False, slots=True)
class Registration:
    """One wait's place in a poller: its outcome, and the notices its coroutine has yet to take.

    Once ``over``, ``outcome`` is the wait's ``WaitOutcome``, or ``None`` when the service cannot
    answer in bulk and the wait must poll its job alone. Plain fields, not a future: the wait's
    coroutine reads them when roused, and a future of its own cost each wait ~0.1 KiB.
    """

    job_id: str
    loop: WaitLoop
    timer: asyncio.TimerHandle | None = None
    # The deadline passed before the first answer: resolve as timed out at the first one.
    expired: bool = False
    over: bool = False
    outcome: WaitOutcome | None = None
    notices: list[Notice] = field(default_factory=list)
    # Set when a notice or the outcome arrives; the wait's coroutine awaits it.
    wake: asyncio.Future[None] | None = None
    # The last status told: a status is told when it changes, not every round.
    told: JobState | None = None
    # The slot of the loop's ``_TickWheel`` that will rouse the wait for its ticker (its index:
    # the slot ends at ``tick_slot * TICK_SLOT``; None: none).
    tick_slot: int | None = None
    # The ticker the wheel asks (``Ticker.claim``) before it rouses the wait (None: rouse it).
    ticker: Ticker | None = None

    def tell(self, notice: Notice) -> None:
        """Queue a notice for the wait's own coroutine (which logs it in its trigger's context)."""
        self.notices.append(notice)
        self.rouse()

    def rouse(self) -> None:
        """Wake the wait's coroutine (a notice or the outcome is there for it)."""
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class _TickWheel:
    """Rouses waits whose ticker is due: one timer per ``TICK_SLOT`` seconds of due times for all
    the waits of an event loop, not one timer per wait (~0.3 KiB each, 3 MB at 10,000 waits).

    A wait is roused at the end of the slot its ``due`` falls in: a progress line up to
    ``TICK_SLOT`` late; only if its ticker claims it (``Ticker.claim``), else it stays armed for
    the ``due`` the ticker moved on to. So a wait whose line the progress budget
    (``triggers/progress_budget.py``) skips is not roused at all: at 10,000 waits the budget skips
    ~97 % of them, and each rousing left ~7 objects (its next future, the await's iterator, the
    notices list...) to the collector's oldest generation, a full collection (~0.4 s) every few
    minutes. The waits of a slot are asked in a random order: the budget gives its lines to the
    first that ask, and any fixed order would give them to the same few each time (a set's order
    by hash; due order, too, since a wait that just wrote is due an interval after its slot, at
    the start of a later one).
    """

    def __init__(self, aio: asyncio.AbstractEventLoop) -> None:
        self._aio = aio
        # Keyed by the slot's index, an int: every due time in a slot gives the same key exactly.
        self._slots: dict[int, set[Registration]] = {}

    def arm(self, registration: Registration, due: float) -> None:
        """Rouse ``registration`` once ``due`` (event-loop time) has passed (and not before)."""
        slot = math.ceil(due / TICK_SLOT)
        if registration.tick_slot == slot:
            return
        self.disarm(registration)
        waits = self._slots.get(slot)
        if waits is None:
            waits = self._slots[slot] = set()
            # It needs no context variables: a shared empty context spares it a copy.
            self._aio.call_at(slot * TICK_SLOT, self._fire, slot, context=_NO_CONTEXT)
        waits.add(registration)
        registration.tick_slot = slot

    def disarm(self, registration: Registration) -> None:
        """Forget ``registration`` (its wait is over, or its due time moved)."""
        slot, registration.tick_slot = registration.tick_slot, None
        if slot is not None and (waits := self._slots.get(slot)) is not None:
            waits.discard(registration)

    def _fire(self, slot: int) -> None:
        waits = list(self._slots.pop(slot, ()))
        random.shuffle(waits)
        for registration in waits:
            registration.tick_slot = None
            ticker = registration.ticker
            if ticker is not None and not ticker.claim():
                self.arm(registration, ticker.due)
                continue
            registration.rouse()


@dataclass
class _Capabilities:
    """What probing found about one service; ``None`` until an answer said either way."""

    batch: bool | None = None
    watch: bool | None = None
    history: bool | None = None
    # TensorBay's job list per dataset (``client/coalesce_datasets.py``).
    dataset_list: bool | None = None
    batch_missing_since: float = 0.0
    watch_missing_since: float = 0.0
    history_missing_since: float = 0.0
    dataset_list_missing_since: float = 0.0
    # Garbled answers of each endpoint while it is still unproven.
    invalid: dict[str, int] = field(default_factory=dict)

    def missing(self, endpoint: str, error: JobWaitError) -> bool:
        """Does this failure of ``endpoint`` (``batch``/``watch``/``history``/``dataset_list``) mean
        the service lacks it?"""
        if isinstance(error, ApiError):
            if error.status in MISSING_ENDPOINT:
                return True
            # Unproven, a client error is how this service answers a route it lacks (a bad key, if
            # that is what it is, fails each wait on its own poll after the fallback).
            unproven = getattr(self, endpoint) is None
            return unproven and 400 <= error.status < 500 and error.status not in TRANSIENT_STATUSES
        if isinstance(error, InvalidResponse) and getattr(self, endpoint) is None:
            self.invalid[endpoint] = self.invalid.get(endpoint, 0) + 1
            return self.invalid[endpoint] >= PROBE_INVALID
        return False

    def found(self, endpoint: str) -> None:
        setattr(self, endpoint, True)
        self.invalid.pop(endpoint, None)

    def lost(self, endpoint: str) -> bool:
        """Remember that the service lacks ``endpoint`` (for ``PROBE_TTL``); was that news?"""
        news = getattr(self, endpoint) is not False
        setattr(self, endpoint, False)
        setattr(self, f"{endpoint}_missing_since", time.monotonic())
        return news


@dataclass(frozen=True)
class _PollerKey:
    conn_id: str
    config: ClientConfig
    poll_interval: float
    mode: str
    batch_size: int


@dataclass
class _LoopState:
    ticks: _TickWheel
    pollers: dict[_PollerKey, StatusPoller] = field(default_factory=dict)
    capabilities: dict[tuple[str, str], _Capabilities] = field(default_factory=dict)
    # Pollers started per service (connection, base URL): the next one's phase (``round_phase``).
    started: dict[tuple[str, str], int] = field(default_factory=dict)


_GOLDEN = (math.sqrt(5) - 1) / 2


def round_phase(rank: int) -> float:
    """Where in the poll interval the ``rank``-th poller started on a service runs its rounds (a
    fraction of the interval): the golden-ratio sequence 0, 0.618, 0.236, 0.854, ..., which keeps
    any number of pollers nearly evenly apart without knowing how many will come.

    Pollers started together (the waits of a triggerer arrive in bulk) would otherwise share a
    phase: the job lists of 10 datasets on one service sent their 80 pages at once each round, the
    service answered them together on shared cores, and a page's phase moved from round to round
    by up to 0.4 s (``docs/triggerer-scale.md``). Spread, each dataset's pages are served alone.
    """
    return (rank * _GOLDEN) % 1.0


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()

# The context of callbacks that read no context variable (the loop runs one callback at a time,
# so one context serves them all).
_NO_CONTEXT = contextvars.Context()


def _detached_context() -> contextvars.Context:
    """The running context without structlog's bound variables, for the poller's task.

    A task inherits the context of the code that creates it, and Airflow's triggerer routes each
    log line by the ``trigger_id`` bound there: a poller created by the first wait would write to
    that task's log, whichever waits it serves. Its own lines (about the connection, e.g. no
    batch endpoint) go to the triggerer's log instead.
    """
    context = contextvars.copy_context()
    context.run(clear_contextvars)
    return context


def _loop_state() -> _LoopState:
    aio = asyncio.get_running_loop()
    state = _states.get(aio)
    if state is None:
        state = _states[aio] = _LoopState(_TickWheel(aio))
    return state


def wait_coalesced(
    conn_id: str,
    config: ClientConfig,
    job_id: str,
    wait_loop: WaitLoop,
    mode: str = "auto",
    batch_size: int = inference.MAX_BATCH,
    on_notice: NoticeCallback | None = None,
    ticker: Ticker | None = None,
) -> Coroutine[None, None, WaitOutcome | None]:
    """Wait for an inference job through the loop's shared poller for this service.

    A plain function that picks the poller and returns the wait's coroutine: a coroutine of its
    own around it would cost each wait its frame (~0.3 KiB). Await the result.

    :param conn_id: Airflow connection id (shares the pooled client with the hooks).
    :param config: The connection's client settings.
    :param job_id: The job to wait for.
    :param wait_loop: The wait's state: poll interval, absolute deadline, error budget.
    :param mode: ``auto`` (watch where offered, else batch, else the job history), ``batch``
        (never watch, never history) or ``history`` (the job history only,
        ``client/coalesce_history.py``).
    :param batch_size: Ids per batch status or watch request (1-500).
    :param on_notice: Called with what the poller learns for this wait (``Notice``), from this
        coroutine: so in the caller's context (for a trigger, its task log), never the poller's.
    :param ticker: Ticked from this coroutine too, every ``ticker.interval`` seconds (progress lines).
    :return: How the wait ended, or ``None`` when the service offers none of the mode's endpoints
        (then poll the job alone, with the same ``wait_loop``).
    :raises ValueError: An unknown ``mode`` (at the call).
    """
    if mode not in ("auto", "batch", "history"):
        raise ValueError(f"mode must be 'auto', 'batch' or 'history', got {mode!r}")
    poller = None
    if mode != "history":
        poller = StatusPoller.for_service(conn_id, config, wait_loop.poll_interval, mode, batch_size)
    if poller is None and mode != "batch":
        poller = _history_poller(conn_id, config, wait_loop.poll_interval)
    return wait_in(poller, job_id, wait_loop, on_notice, ticker)


def _history_poller(conn_id: str, config: ClientConfig, poll_interval: float) -> StatusPoller | None:
    # Imported here: the history poller builds on this module.
    from airflow_jobwait.client.coalesce_history import HistoryPoller

    return HistoryPoller.for_history(conn_id, config, poll_interval)


async def wait_in(
    poller: StatusPoller | None,
    job_id: str,
    wait_loop: WaitLoop,
    on_notice: NoticeCallback | None,
    ticker: Ticker | None = None,
) -> WaitOutcome | None:
    """Register with ``poller`` and hand its notices to ``on_notice`` until the wait resolves;
    tick ``ticker`` when it is due. Where the poller's service lacks its endpoint, go on with
    the poller it falls back to (``StatusPoller.fallback``), if any.

    :return: How the wait ended, or ``None`` (also for no ``poller``): poll the job alone.
    """
    while poller is not None:
        registration = poller.register(job_id, wait_loop)
        registration.ticker = ticker
        ticks = _loop_state().ticks
        aio = poller.loop
        try:
            while True:
                notices, registration.notices = registration.notices, []
                if on_notice is not None:
                    for notice in notices:
                        on_notice(notice)
                if registration.over:
                    break
                if ticker is not None:
                    if aio.time() >= ticker.due:
                        ticker.due = aio.time() + ticker.interval
                        ticker.tick()
                    ticks.arm(registration, ticker.due)  # the wheel rouses the wait as a notice would
                registration.wake = aio.create_future()
                await registration.wake
        finally:
            ticks.disarm(registration)
            await poller.unregister(registration)
        if registration.outcome is not None:
            return registration.outcome
        poller = poller.fallback()
    return None


def running_pollers() -> list[StatusPoller]:
    """The pollers of the running loop (for tests and benchmarks)."""
    state = _states.get(asyncio.get_running_loop())
    return [] if state is None else list(state.pollers.values())


class StatusPoller:
    """Asks one service about every registered job: batch rounds, long-polls where offered.

    Use ``wait_coalesced`` (or ``for_service`` + ``register``/``unregister``), not the constructor.

    :param key: The poller's registry key (connection, settings, poll interval).
    :param capabilities: What is known about the service's [ext] endpoints, shared per connection.
    """

    #: The modes (``_PollerKey.mode``) this class serves.
    MODES: tuple[str, ...] = ("auto", "batch")

    def __init__(self, key: _PollerKey, capabilities: _Capabilities) -> None:
        if not 1 <= key.batch_size <= inference.MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{inference.MAX_BATCH}, got {key.batch_size!r}")
        if key.mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {key.mode!r}")
        self.key = key
        self.capabilities = capabilities
        self._aio = asyncio.get_running_loop()
        self._waits: dict[str, list[Registration]] = {}
        self._known: dict[str, JobState] = {}
        self._fresh: set[str] = set()
        self._watched: set[str] = set()
        self._watches: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # The first full round at this poller's phase among the service's (new waits are asked
        # about at once regardless: ``_next_batch``).
        started = _loop_state().started
        service = (key.conn_id, key.config.base_url)
        rank = started[service] = started.get(service, -1) + 1
        self._next_round = self._aio.time() + round_phase(rank) * key.poll_interval
        self._client: AsyncClient | None = None
        self._closed = False
        self.rounds = 0  # full rounds done (for tests and benchmarks)
        self._task = self._aio.create_task(
            self._run(), name=f"jobwait-status-poller-{key.conn_id}", context=_detached_context()
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the poller runs on."""
        return self._aio

    @classmethod
    def for_service(
        cls, conn_id: str, config: ClientConfig, poll_interval: float, mode: str = "auto", batch_size: int = 500
    ) -> StatusPoller | None:
        """The running loop's poller for these settings (created on first use), or ``None`` when the
        service was recently found to have no batch status endpoint."""
        state = _loop_state()
        capabilities = state.capabilities.setdefault((conn_id, config.base_url), _Capabilities())
        if capabilities.batch is False:
            if time.monotonic() - capabilities.batch_missing_since < PROBE_TTL:
                return None
            capabilities.batch = None  # probe again
        key = _PollerKey(conn_id, config, poll_interval, mode, batch_size)
        poller = state.pollers.get(key)
        if poller is None:
            poller = state.pollers[key] = cls(key, capabilities)
        return poller

    def fallback(self) -> StatusPoller | None:
        """The poller a wait goes on with when this one finds its service without its endpoint
        (``None``: the wait polls its job alone). In ``auto`` mode, the job history."""
        if self.key.mode != "auto":
            return None
        return _history_poller(self.key.conn_id, self.key.config, self.key.poll_interval)

    @property
    def waiting(self) -> int:
        """Registered waits."""
        return sum(len(waits) for waits in self._waits.values())

    # ---- registration ---------------------------------------------------------------------

    def register(self, job_id: str, wait_loop: WaitLoop) -> Registration:
        """Add a wait; it is asked about within ``GATHER_SECONDS``, then every round."""
        if self._closed:
            raise RuntimeError("this status poller has stopped")
        registration = Registration(job_id, wait_loop)
        if wait_loop.deadline is not None:
            delay = max(0.0, wait_loop.deadline - time.time())
            registration.timer = self._aio.call_later(delay, self._expire, registration)
        self._waits.setdefault(job_id, []).append(registration)
        self._fresh.add(job_id)
        self._wake.set()
        return registration

    async def unregister(self, registration: Registration) -> None:
        """Remove a wait (resolved or not); the last one out stops the poller."""
        self._drop(registration)
        if not self._waits:
            await self._stop()

    def _drop(self, registration: Registration) -> None:
        if registration.timer is not None:
            registration.timer.cancel()
            registration.timer = None
        waits = self._waits.get(registration.job_id)
        if waits is None or registration not in waits:
            return
        waits.remove(registration)
        if not waits:
            del self._waits[registration.job_id]
            self._known.pop(registration.job_id, None)
            self._fresh.discard(registration.job_id)
            self._watched.discard(registration.job_id)

    def _resolve(self, registration: Registration, outcome: WaitOutcome | None) -> None:
        self._drop(registration)
        if not registration.over:
            registration.over, registration.outcome = True, outcome
        registration.rouse()

    def _expire(self, registration: Registration) -> None:
        """The wait's deadline passed: time out now, or at its first answer if it had none yet,
        but no later than one request timeout from now (the request in flight would have ended
        by then; its retries, shared with other waits, do not stretch this one)."""
        registration.timer = None
        if registration.loop.polls:
            self._resolve(registration, registration.loop.timed_out())
        else:
            registration.expired = True
            registration.timer = self._aio.call_later(self.key.config.timeout, self._give_up, registration)

    def _give_up(self, registration: Registration) -> None:
        registration.timer = None
        self._resolve(registration, registration.loop.timed_out())

    async def _stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        state = _states.get(self._aio)
        if state is not None and state.pollers.get(self.key) is self:
            del state.pollers[self.key]
        tasks = [*self._watches, self._task]
        for task in tasks:
            task.cancel()
        # Wait for the lease on the pooled client to be released, so nothing is left once the
        # last wait is out.
        current = asyncio.current_task()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)

    # ---- applying answers -----------------------------------------------------------------

    def _apply(self, statuses: dict[str, JobState]) -> None:
        """Feed answered statuses to their waits; resolve the ones that end."""
        for job_id, state in statuses.items():
            waits = self._waits.get(job_id)
            if not waits:
                continue
            self._known[job_id] = state
            for registration in list(waits):
                outcome = registration.loop.on_state(state)
                if outcome is None and registration.expired:
                    outcome = registration.loop.timed_out()
                if outcome is not None:
                    self._resolve(registration, outcome)
                elif state != registration.told:
                    registration.told = state
                    registration.tell(state)

    async def _apply_sliced(self, statuses: dict[str, JobState], size: int = APPLY_SLICE) -> None:
        """``_apply`` ``size`` waits at a time, letting the loop run before each slice, so the
        waits that this round's listing just ended get their events out first: Airflow's
        ``run_trigger`` logs each event through a thread (``ainfo``) and queues it once that
        returns, and one pass over 10,000 running waits (~100 ms) would hold every one of them.
        Ended waits go ``END_SLICE`` at a time: a page that ends 100 would hold the first one's
        event until the last had run (~30 ms).
        """
        pairs = iter(statuses.items())
        while part := dict(itertools.islice(pairs, size)):
            await asyncio.sleep(0)
            self._apply(part)

    def _tell(self, job_ids: Iterable[str], notice: Notice) -> None:
        """Tell every wait on these jobs."""
        for job_id in job_ids:
            for registration in self._waits.get(job_id, ()):
                registration.tell(notice)

    def _retry_teller(self, job_ids: Sequence[str]) -> OnRetry:
        """What a shared request does with its retries: tell each wait it is for (the ids when
        it was sent: a wait gone since is not told)."""
        ids = tuple(job_ids)

        def tell(retry: Retry) -> None:
            self._tell(ids, retry)

        return tell

    def _fail(self, job_ids: Iterable[str], error: JobWaitError) -> None:
        """A request for these jobs failed: one error against each wait's own budget."""
        for job_id in job_ids:
            for registration in list(self._waits.get(job_id, ())):
                registration.tell(PollFailed(error))
                outcome = registration.loop.on_error(error)
                if outcome is None and registration.expired:
                    outcome = registration.loop.timed_out()
                if outcome is not None:
                    self._resolve(registration, outcome)

    def _fall_back(self, error: JobWaitError) -> None:
        """The service has no batch status endpoint: hand every wait back to poll alone."""
        self._endpoint_missing("batch", BatchMissing(error))

    def _endpoint_missing(self, capability: str, missing: BatchMissing) -> None:
        """The service lacks the endpoint this poller relies on: say so once per connection,
        remember it, and hand every wait back to poll alone."""
        if self.capabilities.lost(capability):
            log.warning(
                "connection %r: no %s endpoint (%s); waits poll their jobs one by one",
                self.key.conn_id,
                missing.endpoint,
                missing.error,
            )
        self._hand_back(missing)

    def _hand_back(self, missing: BatchMissing) -> None:
        """The endpoint this poller relies on is missing: every wait goes back (``None``) to poll
        its job alone, told why."""
        for waits in list(self._waits.values()):
            for registration in list(waits):
                registration.tell(missing)
                self._resolve(registration, None)

    # ---- the poller task ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with leased_client(self.key.conn_id, self.key.config) as client:
                self._client = client
                while True:
                    ids, full_round = await self._next_batch()
                    await self._round(ids, full_round)
                    self.rounds += full_round
        finally:
            self._client = None

    async def _round(self, ids: Sequence[str], full_round: bool) -> None:
        """Ask about ``ids`` (all the waits' jobs on a full round, else only new ones)."""
        if ids:
            await self._poll(ids)
        if self._watch_enabled():
            self._arm_watches(full_round)

    async def _next_batch(self) -> tuple[list[str], bool]:
        """Sleep until the next round (or new waits); return the ids to ask about and whether
        this is a full round (else only new waits)."""
        while True:
            if self._fresh:
                await asyncio.sleep(GATHER_SECONDS)
                break
            timeout = None if not self._waits else self._next_round - self._aio.time()
            if timeout is not None and timeout <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            if timeout is not None and self._aio.time() >= self._next_round:
                break
        now = self._aio.time()
        if now >= self._next_round:
            # Keep the phase, so every wait of the poller is asked in the same round.
            self._next_round += self.key.poll_interval
            if self._next_round <= now:
                self._next_round = now + self.key.poll_interval
            ids = [job_id for job_id in self._waits if job_id not in self._watched]
            full_round = True
        else:
            ids = [job_id for job_id in self._fresh if job_id in self._waits]
            full_round = False
        self._fresh.clear()
        return ids, full_round

    async def _poll(self, ids: Sequence[str]) -> None:
        """One round: batch requests of ``batch_size`` ids, a few in flight at once."""
        size = self.key.batch_size
        slices = [ids[start : start + size] for start in range(0, len(ids), size)]
        gate = asyncio.Semaphore(ROUND_CONCURRENCY)

        async def one(job_ids: Sequence[str]) -> None:
            async with gate:
                await self._poll_slice(job_ids)

        if len(slices) == 1:
            await self._poll_slice(slices[0])
        else:
            await asyncio.gather(*(one(s) for s in slices))

    async def _poll_slice(self, job_ids: Sequence[str]) -> None:
        job_ids = [job_id for job_id in job_ids if job_id in self._waits]
        if not job_ids or self._client is None:
            return
        try:
            statuses = await self._client.call(inference.batch_statuses(job_ids), on_retry=self._retry_teller(job_ids))
        except JobWaitError as err:
            if self.capabilities.missing("batch", err):
                self._fall_back(err)
                return
            log.warning("batch status of %d jobs on %r failed: %s", len(job_ids), self.key.conn_id, err)
            self._fail(job_ids, err)
            return
        except Exception as err:  # a bug must end these waits with an error, not kill the poller
            log.exception("batch status of %d jobs on %r failed", len(job_ids), self.key.conn_id)
            self._fail(job_ids, JobWaitError(f"status poll failed: {err!r}"))
            return
        self.capabilities.found("batch")
        self._apply(statuses)
        missing = [job_id for job_id in job_ids if job_id not in statuses and job_id in self._waits]
        if missing:
            await asyncio.gather(*(self._check_alone(job_id) for job_id in missing))

    async def _check_alone(self, job_id: str) -> None:
        """A job the batch reply omitted: a plain ``GET`` says 404 (the wait fails) or its status."""
        assert self._client is not None
        try:
            job = await self._client.call(inference.get_job(job_id), on_retry=self._retry_teller([job_id]))
        except JobWaitError as err:
            self._fail([job_id], err)
        else:
            self._apply({job_id: job.state})

    # ---- watch ----------------------------------------------------------------------------

    def _watch_enabled(self) -> bool:
        caps = self.capabilities
        if self.key.mode != "auto":
            return False
        if caps.watch is False and time.monotonic() - caps.watch_missing_since >= PROBE_TTL:
            caps.watch = None  # probe again
        return caps.watch is not False

    def _watch_timeout(self) -> float:
        # Shorter than the connection's request timeout, or the client would give up first.
        return max(0.5, min(WATCH_SECONDS, self.key.config.timeout * 0.8))

    def _ready(self) -> list[str]:
        """Ids whose status is known and that no watch holds yet."""
        return [job_id for job_id in self._waits if job_id in self._known and job_id not in self._watched]

    def _arm_watches(self, full_round: bool) -> None:
        """Start watches for ready ids. Between rounds (waits arriving one after another, e.g.
        while a triggerer picks up thousands) only full watches, or a first one: a watch slot
        spent on a few ids stays small until it re-arms."""
        ready = self._ready()
        size = self.key.batch_size
        if not full_round and self._watches and len(ready) < size:
            return
        while ready and len(self._watches) < MAX_WATCHES:
            if not full_round and self._watches and len(ready) < size:
                return
            chunk, ready = ready[:size], ready[size:]
            self._watched.update(chunk)
            task = self._aio.create_task(self._watch(chunk), name=f"jobwait-watch-{self.key.conn_id}")
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)

    def _top_up(self, members: list[str]) -> None:
        room = self.key.batch_size - len(members)
        if room <= 0:
            return
        extra = self._ready()[:room]
        self._watched.update(extra)
        members.extend(extra)

    async def _watch(self, members: list[str]) -> None:
        """Hold one long-poll for ``members``; re-arm it until none is waited on any more."""
        try:
            while True:
                # A job whose wait left and came back (a moved trigger) has no known status yet:
                # it goes back to the rounds instead of this watch.
                gone = [job_id for job_id in members if job_id not in self._waits or job_id not in self._known]
                members[:] = [job_id for job_id in members if job_id in self._waits and job_id in self._known]
                self._watched.difference_update(gone)
                self._top_up(members)
                if not members or self._client is None:
                    return
                # As the service spelled them: it compares them with what it would answer.
                before = {job_id: self._known[job_id] for job_id in members}
                known = {job_id: state.native_status for job_id, state in before.items()}
                started = self._aio.time()
                try:
                    changed = await self._client.call(
                        inference.watch_statuses(members, known, self._watch_timeout()),
                        on_retry=self._retry_teller(members),
                    )
                except JobWaitError as err:
                    if self.capabilities.missing("watch", err):
                        log.info("connection %r: no watch endpoint (%s); batch polling only", self.key.conn_id, err)
                        self.capabilities.lost("watch")
                    else:
                        log.warning("watch of %d jobs on %r failed: %s", len(members), self.key.conn_id, err)
                        self._fail(members, err)
                    return  # the members go back to the rounds; a later round re-arms a watch
                except Exception as err:  # a bug must end these waits with an error, not kill the poller
                    log.exception("watch of %d jobs on %r failed", len(members), self.key.conn_id)
                    self._fail(members, JobWaitError(f"status watch failed: {err!r}"))
                    return
                self.capabilities.found("watch")
                # Every member was answered for: the unchanged ones are still what we knew.
                self._apply({job_id: changed.get(job_id, before[job_id]) for job_id in members})
                if changed:
                    elapsed = self._aio.time() - started
                    if elapsed < WATCH_MIN_CYCLE:
                        await asyncio.sleep(WATCH_MIN_CYCLE - elapsed)
        finally:
            self._watched.difference_update(members)
