"""When a job polled on its own is polled next: the adaptive schedule, without I/O or a clock.

Used by ``WaitLoop`` and so by both per-job loops (``JobTrigger._poll_alone``, the blocking
``JobWaitHook.wait_for_job``). The coalesced poller (``coalesce.py``) keeps its shared rounds.

With ``max_poll_interval`` equal to ``poll_interval`` (the default) every delay is
``poll_interval``: today's fixed polling, as ``polling_period_seconds``/``check_interval`` of the
official providers (dbt Cloud, Databricks) behave. Opted in (``max_poll_interval`` larger):

- **Age.** The interval is ``poll_interval + GROWTH * quiet``, ``quiet`` the seconds since the
  job last changed (or since the wait started), capped at ``max_poll_interval``: a job that has
  said nothing new for 10 minutes is polled about once a minute, so the extra detection latency
  stays near ``GROWTH`` (10%) of how long the job has been quiet.
- **Change.** A new status (``SUBMITTED`` -> ``IN_PROGRESS``) or progress that moved resets
  ``quiet``: the next poll is ``poll_interval`` away again. A job that moves is likely to end soon.
- **Retry-After.** A successful status answer that carries ``Retry-After`` makes that the least
  delay, beyond ``max_poll_interval`` if the service asks (polling sooner only earns a 429 that
  costs the wait's error budget), but never past the deadline (``WaitLoop`` cuts the last sleep)
  nor past ``MAX_HINTED_DELAY`` (a wait without deadline must not stall on a wild header).
- **Jitter.** The stretched part (above ``poll_interval``) is shortened by up to ``JITTER``
  (20%), from a hash of the job id and the second of the poll: deterministic given the clock,
  the same on any triggerer. Waits that started together (a mapped task, a triggerer restart re-creating
  thousands of triggers at once) have the same age and would otherwise poll in one burst forever;
  the floor is never jittered, so a fixed schedule stays exactly what it was.

The schedule depends only on ``started`` (absolute epoch seconds, kept in the trigger's kwargs),
the statuses seen and the clock: a trigger resumed on another triggerer goes on from the same
age. What it saw before the move (a reset) is not carried: it resumes at most ``max_poll_interval``
apart, as for a job quiet since the start.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from airflow_jobwait.models.status import JobStatus

#: Seconds added to the interval per second the job has been quiet.
GROWTH = 0.1
#: Largest share of the stretched part (interval above ``poll_interval``) taken off as jitter.
JITTER = 0.2
#: A ``Retry-After`` on a status answer is honoured up to this many seconds (and the deadline).
MAX_HINTED_DELAY = 900.0


def check_max_poll_interval(max_poll_interval: float | None, poll_interval: float) -> float | None:
    """:raises ValueError: Not ``None`` nor a finite number >= ``poll_interval`` (names the field)."""
    if max_poll_interval is None:
        return None
    if (
        isinstance(max_poll_interval, bool)
        or not isinstance(max_poll_interval, int | float)
        or not math.isfinite(max_poll_interval)
        or max_poll_interval < poll_interval
    ):
        raise ValueError(
            f"max_poll_interval must be None or a finite number of seconds >= poll_interval "
            f"({poll_interval:g}), got {max_poll_interval!r}"
        )
    return float(max_poll_interval)


def check_started(started: float | None) -> float | None:
    """:raises ValueError: ``started`` is neither ``None`` nor a finite epoch time (names it)."""
    if started is None:
        return None
    if isinstance(started, bool) or not isinstance(started, int | float) or not math.isfinite(started):
        raise ValueError(f"started must be None or a finite epoch time in seconds, got {started!r}")
    return float(started)


# Slots: one per wait (in its WaitLoop), 10,000 at a time in a triggerer.
@dataclass(slots=True)
class PollSchedule:
    """The delay before each poll of one job.

    :param poll_interval: The shortest delay (and the only one unless ``max_poll_interval`` is larger).
    :param max_poll_interval: The longest delay the schedule chooses by itself (``None``:
        ``poll_interval``). A ``Retry-After`` may ask for longer.
    :param started: Epoch seconds when the wait started (``None``: at the first answer).
    :param key: Seeds the jitter (the job id).
    """

    poll_interval: float
    max_poll_interval: float | None = None
    started: float | None = None
    key: str = ""
    #: Epoch seconds of the last change seen (or ``started``).
    quiet_since: float | None = None
    last_status: JobStatus | None = None
    last_progress: float | None = None
    #: ``Retry-After`` of the last successful answer, seconds.
    hint: float | None = None
    _seen: bool = field(default=False, repr=False)

    @property
    def ceiling(self) -> float:
        return self.poll_interval if self.max_poll_interval is None else max(self.max_poll_interval, self.poll_interval)

    @property
    def adaptive(self) -> bool:
        return self.ceiling > self.poll_interval

    def observe(self, status: JobStatus, progress: float | None, now: float, retry_after: float | None = None) -> bool:
        """A poll answered: note a change (the job's status, or its progress moved) and the
        service's ``Retry-After``. Answers whether the job changed (never at the first answer)."""
        if self.quiet_since is None:
            self.quiet_since = now if self.started is None else min(self.started, now)
        changed = self._seen and (
            status != self.last_status or (progress is not None and progress != self.last_progress)
        )
        if changed:
            self.quiet_since = now
        self._seen = True
        self.last_status = status
        if progress is not None:
            self.last_progress = progress
        ok = retry_after is not None and math.isfinite(retry_after) and retry_after > 0
        self.hint = min(retry_after, MAX_HINTED_DELAY) if ok and retry_after is not None else None
        return changed

    def failed(self, now: float) -> None:
        """A poll failed (its retries already honoured any ``Retry-After``): no hint carries over."""
        if self.quiet_since is None:
            self.quiet_since = now if self.started is None else min(self.started, now)
        self.hint = None

    def delay(self, now: float) -> float:
        """Seconds until the next poll, before the deadline's cut."""
        if not self.adaptive:
            return self.poll_interval
        quiet = 0.0 if self.quiet_since is None else max(0.0, now - self.quiet_since)
        stretch = min(self.ceiling - self.poll_interval, GROWTH * quiet)
        stretch *= 1.0 - JITTER * _unit(f"{self.key}:{math.floor(now)}")
        delay = self.poll_interval + stretch
        return delay if self.hint is None else max(delay, self.hint)


def _unit(text: str) -> float:
    """A number in [0, 1) from ``text``, the same in every process (``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2.0**64
