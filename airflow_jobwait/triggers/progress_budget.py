"""How many progress lines the waits of one triggerer write, in all.

Airflow 3.3's triggerer runs the triggers in a runner process whose log lines go to its
supervisor over a socket. The supervisor reads at most 4 KiB of them per round of its loop (one
``recv`` per ``select``), a round that lasts longer the more triggers it holds, and the runner
writes them blocking, from its event loop. Thousands of waits each writing a progress line a
minute outrun that: the runner's event loop stops in a log write and every trigger with it, and
when the supervisor is at that moment writing an answer to the runner, the two wait on each other
for good (seen at 5,000 waits: ``docs/deployment-scale.md``).

A progress line says nothing new (``progress_interval`` is "at most this often"), so the waits of
an event loop share a budget: ``PROGRESS_LINES_PER_S`` lines a second in all, a burst of
``PROGRESS_BURST``. A line over it is skipped, and its wait tries again after ``retry_delay``: a
random share of an interval, because waits that started together come due together, in the same
order, every interval, and would otherwise meet the budget in that order each time (the first few
writing every line, the rest none). Under about 300 waits at the default one-minute interval the
budget is never reached. Lines that say something happened (a status change, a retry, a failure,
the end) are never skipped.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Callable

#: Progress lines a second that the waits of one event loop write in all (about 3 KiB/s).
PROGRESS_LINES_PER_S = 5.0
#: Lines that may be written at once, after a quiet spell.
PROGRESS_BURST = 5.0


class ProgressBudget:
    """A token bucket: ``rate`` lines a second, ``burst`` at most at once.

    :param rate: Lines a second in the long run.
    :param burst: Lines at once; the bucket starts full.
    :param clock: Seconds, monotonic (the event loop's own clock by default). Not the loop's
        bound ``time``: the budgets are kept weakly by loop, and a value that holds its key would
        keep every loop alive.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = self._clock()

    def take(self) -> bool:
        """Whether a line may be written now (and if so, spend it)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def ask(self, interval: float) -> tuple[bool, float]:
        """Whether a wait writes its progress line now, and in how many seconds it asks again:
        ``interval`` after a line, ``retry_delay(interval)`` after a skipped one."""
        if self.take():
            return True, interval
        return False, retry_delay(interval)


def retry_delay(interval: float) -> float:
    """When a wait whose line was skipped tries again: between half and one and a half intervals
    (one on average, so the waits ask no more often than without a budget), at random."""
    return interval * random.uniform(0.5, 1.5)


_BUDGETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProgressBudget] = weakref.WeakKeyDictionary()


def progress_budget() -> ProgressBudget:
    """The running event loop's budget (a triggerer's runner has one loop for all its triggers)."""
    loop = asyncio.get_running_loop()
    budget = _BUDGETS.get(loop)
    if budget is None:
        budget = _BUDGETS[loop] = ProgressBudget(PROGRESS_LINES_PER_S, PROGRESS_BURST)
    return budget
