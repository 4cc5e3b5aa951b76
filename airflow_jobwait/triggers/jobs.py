"""``JobTrigger``: waits for a remote job in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent
from airflow.utils.state import TaskInstanceState
from asgiref.sync import sync_to_async

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.coalesce import BatchMissing, Notice, PollFailed, wait_coalesced
from airflow_jobwait.client.coalesce_datasets import wait_dataset_coalesced
from airflow_jobwait.client.job_kinds import (
    JobState,
    cancel_call,
    progress_call,
    results_call,
    status_call,
    with_retry_after,
)
from airflow_jobwait.client.poll_schedule import check_max_poll_interval, check_started
from airflow_jobwait.client.pool import leased_client
from airflow_jobwait.client.retry import Retry
from airflow_jobwait.client.wait_loop import WaitLoop, check_poll_interval
from airflow_jobwait.exceptions import Conflict, JobWaitError
from airflow_jobwait.hooks import hook_class
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.triggers.progress_budget import progress_budget
from airflow_jobwait.version_compat import warn_unavailable
from airflow_jobwait.xcom_size import DEFAULT_MAX_XCOM_BYTES, fit_for_xcom, log_reference

CANCEL_TIMEOUT = 10.0
STATE_TIMEOUT = 20.0  # the triggerer's first state request can take seconds (it builds its API client)
# Kills in flight: on_kill may be cancelled while its shielded work goes on.
_KILLS: set[asyncio.Future[None]] = set()
T = TypeVar("T")


class _CoalescedWait:
    """A coalesced wait's side of its shared poller: what it does with each notice (``__call__``,
    a ``NoticeCallback``) and its progress lines (``tick``, a ``Ticker``), both run by the wait's
    own coroutine, so every line goes to its task log.

    One small object per wait (slots), where a closure with its cells, a progress record and a
    reporter task of its own cost ~2 KiB a wait.

    :param started: When the wait started (``time.monotonic()``), for the progress lines.
    :param mode: The connection's ``status_mode`` (which fallback a missing endpoint leads to).
    """

    __slots__ = ("claimed", "due", "interval", "loop", "mode", "started", "state", "trigger")

    def __init__(self, trigger: JobTrigger, loop: WaitLoop, mode: str, started: float) -> None:
        self.trigger = trigger
        self.loop = loop
        self.mode = mode
        self.started = started
        #: The last status learned, for the progress lines.
        self.state: JobState | None = None
        # Lines come from a clock of their own: the shared poller tells of a status only when it
        # learns one, which a held watch does once per long-poll (~24 s at the default timeout),
        # whatever the progress_interval.
        self.interval = trigger.progress_interval
        self.due = asyncio.get_running_loop().time() + self.interval
        # A line the budget granted when the tick wheel asked (``claim``), for ``tick`` to write.
        self.claimed = False

    def __call__(self, notice: Notice) -> None:
        trigger = self.trigger
        if isinstance(notice, JobState):
            self.state = notice  # for the progress lines
            trigger._log_status_note(self.loop, notice)
        elif isinstance(notice, Retry):
            trigger._log_retry(notice)
        elif isinstance(notice, PollFailed):
            trigger._log_poll_failure(notice.error)
        elif isinstance(notice, BatchMissing):
            # In auto mode a service without batch status is tried through its job history next.
            then = "asking the job history" if self.mode == "auto" and notice.endpoint == "batch status" else "alone"
            trigger.log.info(
                "connection %r has no %s endpoint (%s): polling job %s %s",
                trigger.conn_id,
                notice.endpoint,
                notice.error,
                trigger.job_id,
                then,
            )

    def claim(self) -> bool:
        """Asked by the loop's tick wheel once ``due`` has passed: the budget's answer, so that a
        wait whose line would be skipped is not roused for nothing (``_TickWheel``)."""
        if self.state is None:  # nothing to say yet
            self.due = asyncio.get_running_loop().time() + self.interval
            return False
        self.claimed = self._ask()
        return self.claimed

    def tick(self) -> None:
        """One line per ``progress_interval`` from the last status the poller learned. No request
        of its own: at 10,000 waits one extra request per wait per interval would outnumber the
        coalesced polls many times over. Within the event loop's budget of lines (``progress_budget``),
        asked here or already by ``claim``."""
        if self.state is None:
            return
        if self.claimed:  # granted already, by ``claim``
            self.claimed, write = False, True
        else:
            write = self._ask()
        if write:
            self.trigger.log.info("%s", self.trigger.progress_line(self.state, time.monotonic() - self.started))

    def _ask(self) -> bool:
        """Ask the event loop's budget for a progress line; where it declines, move ``due`` to when
        it says to ask again. A granted line leaves ``due`` to the wait's caller, which has moved it
        an interval on (``wait_in``), as the budget would."""
        write, then = progress_budget().ask(self.interval)
        if not write:
            self.due = asyncio.get_running_loop().time() + then
        return write


def _is_template(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def _shared(value: T) -> T:
    """``value``, interned if it is a string: one copy for every wait that holds it."""
    return sys.intern(value) if isinstance(value, str) else value  # type: ignore[return-value]


class JobTrigger(BaseTrigger):
    """Poll a job until it is terminal or the deadline passes, then fire one event.

    Inference waits of one triggerer on one connection share a ``StatusPoller``
    (``client/coalesce.py``): one batch status request per 500 jobs per poll interval, or held
    long-polls where the service offers the watch endpoint, or one job history listing per poll
    interval where it offers neither (``client/coalesce_history.py``, as real Modzy services). The
    connection's extra ``status_mode`` (``auto``/``batch``/``history``/``per_job``) chooses. Dataset
    waits (``auto``/``history``) share one ``DatasetListPoller`` per dataset and job type: one job list
    per poll interval (``client/coalesce_datasets.py``). Compute jobs, and services without any of
    these, are polled one by one over the pooled client.

    The event's payload is a ``WaitOutcome``: ``kind`` (``terminal``/``timeout``/``error``),
    ``job_id``, ``status`` and ``message``. Every kwarg is JSON-safe and carries no secret: the
    API key is read from the connection each time the trigger starts, on whichever triggerer.

    :param job_id: The job to wait for.
    :param conn_id: Airflow connection of the job kind's type (default: ``modzy_default``,
        ``tensorbay_default`` or ``evo_default``).
    :param poll_interval: Seconds between polls.
    :param deadline: Absolute epoch seconds when the wait gives up (``None``: never); absolute so
        that a trigger restarted on another triggerer keeps its original deadline.
    :param cancel_on_kill: Cancel the remote job when a user marks or clears the deferred task.
    :param job_kind: ``inference`` (default), ``dataset`` or ``compute``.
    :param job_ref: The other path parameters of the kind (e.g. ``dataset_id``); JSON strings only.
    :param progress_interval: Log the job's progress at most this often (seconds). Less often
        when the waits of the triggerer would together write more than its budget of progress
        lines (``triggers/progress_budget.py``: 5 a second, reached above ~300 waits at 60 s).
    :param end_task: End the task in the triggerer (``start_from_trigger`` sensors): success with
        the results pushed to XCom, failure, or skip (``soft_fail``), so it never reaches a worker.
    :param soft_fail: With ``end_task``: skip instead of failing when the job ends in failure.
    :param max_xcom_bytes: With ``end_task``: larger results are pushed as a ``ResultsReference``.
    :param max_poll_interval: Polled alone (compute, dataset, ``per_job``), the delay between
        polls may stretch with the time the job has been quiet up to this, and back to
        ``poll_interval`` when it changes (``client/poll_schedule.py``). ``None`` (default): every
        delay is ``poll_interval``. The shared poller of batch/watch mode keeps its own rounds.
    :param started: Epoch seconds when the wait started (default: when the trigger is made, if
        ``max_poll_interval`` is set): kept in the kwargs, so the schedule resumes at the same
        age on another triggerer.
    """

    def __init__(
        self,
        job_id: str,
        conn_id: str | None = None,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
        job_kind: str = "inference",
        job_ref: dict[str, str] | None = None,
        progress_interval: float = 60.0,
        end_task: bool = False,
        soft_fail: bool = False,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        max_poll_interval: float | None = None,
        started: float | None = None,
    ) -> None:
        super().__init__()
        if not _is_template(job_id):
            status_call(job_kind, job_id, job_ref)  # validates kind, id and ref now, not at the first poll
        # The strings many waits share (kind, connection, a dataset's id and job type) are interned:
        # the triggerer decodes each trigger's kwargs on its own, and 10,000 copies of each cost
        # ~0.3 KiB a wait.
        self.job_kind = _shared(job_kind)
        self.job_ref = {_shared(key): _shared(value) for key, value in (job_ref or {}).items()}
        self.job_id = job_id
        self.conn_id = _shared(conn_id or hook_class(job_kind).default_conn_name)
        self.poll_interval = check_poll_interval(poll_interval)
        self.deadline = check_deadline(deadline)
        self.cancel_on_kill = cancel_on_kill
        self.progress_interval = check_poll_interval(progress_interval, "progress_interval")
        self.end_task = end_task
        self.soft_fail = soft_fail
        self.max_xcom_bytes = max_xcom_bytes
        self.max_poll_interval = check_max_poll_interval(max_poll_interval, self.poll_interval)
        started = check_started(started)
        if started is None and self.max_poll_interval is not None:
            started = time.time()
        self.started = started
        # Set by the triggerer on every trigger it creates, right after this; named here so every
        # instance has them in its class's shared attribute table. Added later to an instance made
        # after others of its class (the triggerer_scale benchmark makes N to serialize them
        # first), each new name turns the instance's attributes into a dict of its own: ~0.6 KiB
        # more per trigger (CPython's split-table dicts).
        self.triggerer_job_id: int | None = None
        self.timeout_after: datetime | None = None

    @property
    def hook(self) -> JobWaitHook:
        """The job kind's hook on the wait's connection (cheap: it reads the connection when used)."""
        return hook_class(self.job_kind)(self.conn_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Every constructor argument is kept under its own name: the signature is the list.
        return f"{type(self).__module__}.{type(self).__qualname__}", {name: getattr(self, name) for name in _KWARGS}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.cancel_on_kill:
            warn_unavailable("on_kill")  # logs once, on an Airflow without BaseTrigger.on_kill
        outcome = await self.wait()
        if self.end_task:
            yield await self.task_end_event(outcome)
            return
        self.log.info("%s", outcome.message)
        yield TriggerEvent(outcome.to_payload())

    async def task_end_event(self, outcome: WaitOutcome) -> TriggerEvent:
        """End the task here, as ``JobSensor.execute_complete`` would on a worker."""
        if not outcome.succeeded:
            if self.soft_fail and outcome.kind != "timeout":
                self.log.info("%s (soft_fail: skipping)", outcome.message)
                return TaskSkippedEvent()
            self.log.error("%s", outcome.message)
            return TaskFailedEvent()
        try:
            results = await self.hook.acall(results_call(self.job_kind, outcome.job_id, self.job_ref))
        except JobWaitError as err:
            self.log.error("%s, but its results could not be read: %s", outcome.message, err)
            return TaskFailedEvent()
        pushed, size = fit_for_xcom(
            results,
            job_id=outcome.job_id,
            job_kind=self.job_kind,
            job_ref=self.job_ref,
            conn_id=self.conn_id,
            max_bytes=self.max_xcom_bytes,
        )
        if size is not None:
            log_reference(self.log, outcome.job_id, size, self.max_xcom_bytes, self.conn_id)
        self.log.info("%s", outcome.message)
        return TaskSuccessEvent(xcoms={"return_value": pushed})

    async def wait(self) -> WaitOutcome:
        """Wait until the job is terminal, the deadline passes, or polling fails for good.

        Nothing is left to clean up once this returns: the wait has left its poller (which stops
        when it was the last) and released the pooled client.
        """
        # Validated here too, not only in __init__: with start_from_trigger the triggerer renders
        # job_id first. A bad id fails this trigger alone, never the poller it would join.
        status_call(self.job_kind, self.job_id, self.job_ref)
        loop = WaitLoop(
            self.job_id,
            self.poll_interval,
            self.deadline,
            max_poll_interval=self.max_poll_interval,
            started=self.started,
        )
        started = time.monotonic()
        config, polling = await self.hook.asettings()
        if self.job_kind in ("inference", "dataset") and polling.mode != "per_job":
            side = _CoalescedWait(self, loop, polling.mode, started)
            if self.job_kind == "dataset":
                # One job list per dataset and job type (client/coalesce_datasets.py).
                outcome = await wait_dataset_coalesced(
                    self.conn_id,
                    config,
                    self.job_ref["dataset_id"],
                    self.job_ref["job_type"],
                    self.job_id,
                    loop,
                    polling.mode,
                    side,
                    side,
                )
            else:
                outcome = await wait_coalesced(
                    self.conn_id, config, self.job_id, loop, polling.mode, polling.batch_size, side, side
                )
            if outcome is not None:
                return outcome
            # The service has no batch status endpoint: carry on alone, same deadline and budget.
        async with leased_client(self.conn_id, config) as client:
            return await self._poll_alone(client, loop, started)

    async def _poll_alone(self, client: AsyncClient, loop: WaitLoop, started: float) -> WaitOutcome:
        """Per-job polling: one request per poll, for kinds without a batch endpoint.

        :param started: When the wait started (``time.monotonic()``), for the progress lines.
        """
        next_progress = time.monotonic() + self.progress_interval
        while True:
            outcome, next_progress = await self._poll_once(client, loop, started, next_progress)
            step = loop.then(outcome)
            if isinstance(step, WaitOutcome):
                return step
            await asyncio.sleep(step)

    async def _poll_once(
        self, client: AsyncClient, loop: WaitLoop, started: float, next_progress: float
    ) -> tuple[WaitOutcome | None, float]:
        """One poll of the job (and its progress line when due): the outcome if it ended, and when
        the next progress line is due (``time.monotonic()``).

        A coroutine of its own, so that what a poll makes (its call, the hook's retry policy, the
        answer) is gone before the wait sleeps: ~5 us a poll to make again, where holding them
        across the sleeps cost each wait ~1.2 KiB (12 MB at 10,000 waits).
        """
        call = with_retry_after(status_call(self.job_kind, self.job_id, self.job_ref))
        try:
            # The wait's deadline bounds the call's retries: the wait ends by then plus one
            # request timeout, however the service stalls.
            state, hint = await client.call(
                call, retry=self.hook.retry, deadline=loop.deadline, on_retry=self._log_retry
            )
            self._log_status_note(loop, state)
            outcome = loop.on_state(state, retry_after=hint)
        except JobWaitError as err:
            self._log_poll_failure(err)
            return loop.on_error(err), next_progress
        now = time.monotonic()
        if outcome is None and now >= next_progress:
            write, then = progress_budget().ask(self.progress_interval)
            next_progress = now + then
            if write:  # a skipped line skips its progress request too
                await self.log_progress(client, state, now - started, loop.deadline)
        return outcome, next_progress

    def _log_status_note(self, loop: WaitLoop, state: JobState) -> None:
        """A native status beyond our contract: say how it was read, once as it appears."""
        if text := loop.note_once(state):
            self.log.info("%s", text)

    def _log_retry(self, retry: Retry) -> None:
        """A request about this job is sent again (this wait's own, or one the poller shares)."""
        self.log.warning("job %s: %s", self.job_id, retry)

    def _log_poll_failure(self, error: JobWaitError) -> None:
        """A poll of this job failed after its retries (counted against the wait's error budget)."""
        self.log.warning("poll of job %s failed: %s", self.job_id, error)

    def progress_line(self, state: JobState, elapsed: float, inputs: str | None = None) -> str:
        """``inference job X is IN_PROGRESS after 24s (40% done; 2 completed, 0 failed of 4 inputs)``.

        :param elapsed: Seconds since the wait started (not time left: a wait has no end but its deadline).
        :param inputs: How far the job's inputs are, where the kind can tell.
        """
        details = [f"{state.progress:.0f}% done"] if state.progress is not None else []
        details += [text for text in (state.message, inputs) if text]
        line = f"{self.job_kind} job {self.job_id} is {state.native_status} after {elapsed:.0f}s"
        return f"{line} ({'; '.join(details)})" if details else line

    async def log_progress(
        self, client: AsyncClient, state: JobState, elapsed: float, deadline: float | None = None
    ) -> None:
        """One progress line: status, the kind's own progress, inputs done, time waited.

        :param deadline: The wait's end: the progress request does not retry past it.
        """
        inputs = None
        call = progress_call(self.job_kind, self.job_id, self.job_ref)
        if call is not None:
            try:
                inputs = await client.call(call, deadline=deadline, on_retry=self._log_retry)
            except JobWaitError as err:  # e.g. 404 before the first result: progress is best effort
                self.log.debug("no progress for job %s yet: %s", self.job_id, err)
        self.log.info("%s", self.progress_line(state, elapsed, inputs))

    async def on_kill(self) -> None:
        """Cancel the remote job when a user marked or cleared the deferred task.

        Airflow 3.3 also calls ``on_kill`` on a triggerer that lost the trigger to another one
        (after a missed heartbeat). The task is then still deferred, and the job must live on.
        The triggerer repeats its cancel about every second until the trigger is gone, which
        would cut this short: the work runs shielded, bounded by its own timeouts.
        """
        if not self.cancel_on_kill:
            return
        task = asyncio.ensure_future(self._cancel_unless_still_deferred())
        _KILLS.add(task)  # a strong reference until it is done, even if on_kill is cut short
        task.add_done_callback(_KILLS.discard)
        await asyncio.shield(task)

    async def _cancel_unless_still_deferred(self) -> None:
        if await self.task_still_deferred():
            self.log.info("job %s: the wait moved to another triggerer; not canceling", self.job_id)
            return
        try:
            cancel = cancel_call(self.job_kind, self.job_id, self.job_ref)
            await asyncio.wait_for(self.hook.acall(cancel), CANCEL_TIMEOUT)
            self.log.info("canceled %s job %s on user request", self.job_kind, self.job_id)
        except Conflict:
            self.log.info("job %s was already terminal; nothing to cancel", self.job_id)
        except (TimeoutError, JobWaitError, ValueError) as err:
            self.log.warning("could not cancel job %s: %s", self.job_id, err)

    async def task_still_deferred(self) -> bool:
        """True if the metadata DB says the task is still deferred, i.e. no user ended the wait.

        Without a task instance (a trigger run outside a triggerer) or an answer, False: the
        kill is then taken as the user's.
        """
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            states = await asyncio.wait_for(
                sync_to_async(RuntimeTaskInstance.get_task_states)(
                    dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
                ),
                STATE_TIMEOUT,
            )
        except Exception as err:  # the comms channel's own errors vary; never block the cancel
            self.log.warning("could not read the state of task %s: %s", ti.task_id, err)
            return False
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        return str(states.get(ti.run_id, {}).get(key)) == TaskInstanceState.DEFERRED.value


_KWARGS = tuple(inspect.signature(JobTrigger.__init__).parameters)[1:]


def check_deadline(deadline: float | None) -> float | None:
    """:raises ValueError: ``deadline`` is neither ``None`` nor a finite epoch time (names it)."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline):
        raise ValueError(f"deadline must be None or a finite epoch time in seconds, got {deadline!r}")
    return float(deadline)


def deadline_after(seconds: float | None, now: float | None = None) -> float | None:
    """Absolute deadline ``seconds`` from now (``None`` stays ``None``)."""
    if seconds is None:
        return None
    return (time.time() if now is None else now) + seconds
