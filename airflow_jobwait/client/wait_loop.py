"""The decisions of a poll loop, without I/O: shared by ``JobsHook.wait_for_job`` and ``JobTrigger``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_jobwait.client.poll_schedule import PollSchedule, check_max_poll_interval, check_started
from airflow_jobwait.client.retry import TRANSIENT_STATUSES
from airflow_jobwait.exceptions import (
    ApiError,
    InvalidResponse,
    JobWaitError,
    TokenError,
    TransportError,
    UnknownJobStatus,
)
from airflow_jobwait.models.events import WaitOutcome
from airflow_jobwait.models.status import JobState, JobStatus


def check_poll_interval(poll_interval: float, name: str = "poll_interval") -> float:
    """:raises ValueError: Not a finite number > 0 (names the parameter)."""
    if (
        isinstance(poll_interval, bool)
        or not isinstance(poll_interval, int | float)
        or not math.isfinite(poll_interval)
        or poll_interval <= 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {poll_interval!r}")
    return float(poll_interval)


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    """:raises ValueError: Negative or not a number (names the parameter). ``None`` waits forever."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0 or None, got {timeout!r}")
    return float(timeout)


# Slots: one per wait, 10,000 at a time in a triggerer (a __dict__ each would add ~0.1 KiB).
@dataclass(slots=True)
class WaitLoop:
    """State of one wait: feed it each poll's result; it says when and how the wait ends.

    :param job_id: The job waited on.
    :param poll_interval: Seconds between polls (the shortest delay when the schedule adapts).
    :param deadline: Absolute epoch seconds after which the wait times out (``None``: never).
        Absolute, so a wait resumed elsewhere (another triggerer) keeps the same deadline.
    :param max_consecutive_errors: Transient failures in a row that end the wait with an error.
    :param max_poll_interval: Let the delay stretch with the job's quiet time up to this
        (``client/poll_schedule.py``); ``None``: every delay is ``poll_interval``.
    :param started: Epoch seconds when the wait started, for the schedule (``None``: at the
        first poll). Absolute, like ``deadline``, so a resumed wait keeps the job's age.
    :param clock: Epoch seconds now (injected by tests).
    """

    job_id: str
    poll_interval: float
    deadline: float | None = None
    max_consecutive_errors: int = 20
    last_status: JobStatus | None = None
    consecutive_errors: int = 0
    polls: int = field(default=0)
    #: The last status as the service spelled it, and its note (``JobState.note``) if any.
    last_native: str | None = None
    last_note: str | None = None
    _noted: str | None = field(default=None, repr=False)
    max_poll_interval: float | None = None
    started: float | None = None
    clock: Callable[[], float] = field(default=time.time, repr=False)
    schedule: PollSchedule = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.poll_interval = check_poll_interval(self.poll_interval)
        self.max_poll_interval = check_max_poll_interval(self.max_poll_interval, self.poll_interval)
        self.started = check_started(self.started)
        self.schedule = PollSchedule(self.poll_interval, self.max_poll_interval, self.started, key=self.job_id)

    def on_status(self, status: JobStatus, reason: str | None = None) -> WaitOutcome | None:
        """A poll succeeded: the outcome if the job is terminal, else ``None``.

        :param reason: What the service said about a job that did not complete (kept in the outcome).
        """
        return self.on_state(JobState(status=status, native_status=status.value, message=reason))

    def on_state(self, state: JobState, retry_after: float | None = None) -> WaitOutcome | None:
        """``on_status`` for a kind's ``JobState``: its message is the reason of a failure; a
        native status beyond our contract is named in the outcome (``native_status``, message).

        :param retry_after: The answer's ``Retry-After`` (seconds), a floor of the next delay
            when the schedule adapts.
        """
        status = state.status
        self.schedule.observe(status, state.progress, self.clock(), retry_after)
        self.polls += 1
        self.consecutive_errors = 0
        self.last_status = status
        self.last_native, self.last_note = state.native_status, state.note
        if not status.is_terminal:
            return None
        reason = None if status is JobStatus.COMPLETED else state.message or None
        message = f"job {self.job_id} ended {status.value}"
        message += (f" (reported {state.note})" if state.note else "") + (f": {reason}" if reason else "")
        return WaitOutcome(
            kind="terminal",
            job_id=self.job_id,
            status=status,
            message=message,
            reason=reason,
            native_status=state.native_status,
        )

    def note_once(self, state: JobState) -> str | None:
        """The log line for a native status beyond our contract, once per change of it (e.g.
        ``job 42 reported native status 'QUEUED' (Modzy), treated as SUBMITTED``); else ``None``."""
        if state.note is None or state.native_status == self._noted:
            return None
        self._noted = state.native_status
        return f"job {self.job_id} reported {state.note}"

    def on_error(self, error: JobWaitError) -> WaitOutcome | None:
        """A poll failed: an error outcome if it is permanent or the error budget is spent, else ``None``."""
        self.schedule.failed(self.clock())
        self.polls += 1
        if not is_transient(error):
            return self._error(f"polling job {self.job_id} failed: {error}")
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.max_consecutive_errors:
            return self._error(
                f"polling job {self.job_id} failed {self.consecutive_errors} times in a row; last error: {error}"
            )
        return None

    def then(self, outcome: WaitOutcome | None, now: float | None = None) -> WaitOutcome | float:
        """After a poll and its ``on_state``/``on_error``: the outcome that ends the wait (the
        poll's own, or a timeout once the deadline has passed), or the seconds to sleep before the
        next poll."""
        if outcome is not None:
            return outcome
        delay = self.next_delay(now)
        return self.timed_out() if delay is None else delay

    def next_delay(self, now: float | None = None) -> float | None:
        """Seconds until the next poll (the schedule's, cut to the deadline), or ``None`` when
        the deadline has passed."""
        now = self.clock() if now is None else now
        delay = self.schedule.delay(now)
        if self.deadline is None:
            return delay
        remaining = self.deadline - now
        if remaining <= 0:
            return None
        return min(delay, remaining)

    def timed_out(self) -> WaitOutcome:
        status = self.last_status.value if self.last_status else "unknown"
        native = f", native {self.last_native!r}" if self.last_note else ""
        return WaitOutcome(
            kind="timeout",
            job_id=self.job_id,
            status=self.last_status,
            message=f"timed out waiting for job {self.job_id} (last status {status}{native})",
            native_status=self.last_native,
        )

    def _error(self, message: str) -> WaitOutcome:
        return WaitOutcome(
            kind="error", job_id=self.job_id, status=self.last_status, message=message, native_status=self.last_native
        )


def is_transient(error: JobWaitError) -> bool:
    """Worth polling again: no answer, a garbled answer, or a transient status; not a job status
    the service's SDK rejects (it would reject it again)."""
    if isinstance(error, UnknownJobStatus):
        return False
    if isinstance(error, TransportError | InvalidResponse):
        return True
    if isinstance(error, TokenError):  # the token endpoint, briefly down (429, 5xx)
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, ApiError) and error.status in TRANSIENT_STATUSES
