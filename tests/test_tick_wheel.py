"""The loop's tick wheel: the progress clocks of many coalesced waits on a few shared timers.

Each coalesced wait writes its progress lines from its own coroutine, roused when its ticker is
due (``client/coalesce.py``). The wheel rouses them: waits due within one ``TICK_SLOT`` share one
timer, none is roused before its due time, and a wait that moved or left is not roused. Before
rousing a wait the wheel asks its ticker (``Ticker.claim``): a ticker with nothing to do now (its
progress line over the budget) moves its due time on, and its wait stays asleep until then.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from airflow_jobwait.client.coalesce import TICK_SLOT, Registration, _TickWheel
from airflow_jobwait.client.wait_loop import WaitLoop

WAITS = 100


def _registrations(aio: asyncio.AbstractEventLoop, n: int) -> list[Registration]:
    registrations = []
    for i in range(n):
        registration = Registration(f"job-{i}", WaitLoop(f"job-{i}", 5.0))
        registration.wake = aio.create_future()
        registrations.append(registration)
    return registrations


def _timers(aio: asyncio.AbstractEventLoop) -> int:
    """Timers the loop holds (asyncio's own heap of scheduled handles)."""
    return sum(1 for handle in aio._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_waits_due_within_one_slot_share_one_timer_and_none_is_roused_early() -> None:
    aio = asyncio.get_running_loop()
    wheel = _TickWheel(aio)
    registrations = _registrations(aio, WAITS)
    slot = math.ceil((aio.time() + 0.2) / TICK_SLOT) * TICK_SLOT
    # Due times spread over the last tenth of the slot, the latest a millionth of a slot before its
    # end (a due time on the end itself is a float quotient away from the next slot).
    dues = [slot - TICK_SLOT * (1e-6 + 0.1 * i / WAITS) for i in range(WAITS)]
    roused_at: dict[str, float] = {}
    for registration in registrations:
        assert registration.wake is not None
        registration.wake.add_done_callback(lambda _, r=registration: roused_at.setdefault(r.job_id, aio.time()))
    timers_before = _timers(aio)

    for registration, due in zip(registrations, dues, strict=True):
        wheel.arm(registration, due)

    assert _timers(aio) - timers_before == 1
    await asyncio.sleep(0)
    assert not roused_at
    await asyncio.wait([r.wake for r in registrations if r.wake is not None], timeout=5)
    assert len(roused_at) == WAITS
    for registration, due in zip(registrations, dues, strict=True):
        # asyncio runs a timer once its time is within the clock's resolution.
        assert roused_at[registration.job_id] >= due - aio._clock_resolution  # type: ignore[attr-defined]
        assert registration.tick_slot is None


async def test_a_disarmed_wait_is_not_roused_and_a_moved_one_is_roused_at_its_new_time() -> None:
    aio = asyncio.get_running_loop()
    wheel = _TickWheel(aio)
    gone, moved, stays = _registrations(aio, 3)
    due = aio.time() + 0.05
    for registration in (gone, moved, stays):
        wheel.arm(registration, due)

    wheel.disarm(gone)  # its wait ended
    later = due + 1.0
    wheel.arm(moved, later)  # its due time moved (a skipped progress line retries later)

    assert stays.wake is not None and moved.wake is not None and gone.wake is not None
    await asyncio.wait_for(asyncio.shield(stays.wake), 5)
    assert not moved.wake.done()
    assert not gone.wake.done()
    await asyncio.wait_for(asyncio.shield(moved.wake), 5)
    assert aio.time() >= later - aio._clock_resolution  # type: ignore[attr-defined]
    await asyncio.sleep(TICK_SLOT * 2)
    assert not gone.wake.done()


async def test_arming_again_at_the_same_time_keeps_one_place() -> None:
    aio = asyncio.get_running_loop()
    wheel = _TickWheel(aio)
    (registration,) = _registrations(aio, 1)
    due = aio.time() + 0.05
    timers_before = _timers(aio)
    for _ in range(5):  # a wait roused by notices arms again at each wake, its due time unchanged
        wheel.arm(registration, due)
    assert _timers(aio) - timers_before == 1
    assert registration.wake is not None
    await asyncio.wait_for(asyncio.shield(registration.wake), 5)


@dataclass
class _Ticker:
    """A ticker that answers its claims from a script: ``True`` (rouse the wait) or a delay (move
    ``due`` that far on and stay asleep)."""

    due: float
    answers: list[bool | float]
    interval: float = 60.0
    claims: list[float] = field(default_factory=list)

    def tick(self) -> None:
        raise AssertionError("the wheel never ticks: the wait's coroutine does")

    def claim(self) -> bool:
        now = asyncio.get_running_loop().time()
        self.claims.append(now)
        answer = self.answers.pop(0)
        if answer is True:
            return True
        assert not isinstance(answer, bool)
        self.due = now + answer
        return False


async def test_a_wait_whose_ticker_declines_is_not_roused_until_its_ticker_claims() -> None:
    aio = asyncio.get_running_loop()
    wheel = _TickWheel(aio)
    declined, claimed = _registrations(aio, 2)
    due = aio.time() + 0.05
    # The first declines twice (its line over the budget), 0.15 s on each time, then claims.
    declined.ticker = declined_ticker = _Ticker(due, [0.15, 0.15, True])
    claimed.ticker = claimed_ticker = _Ticker(due, [True])
    wheel.arm(declined, due)
    wheel.arm(claimed, due)
    assert declined.wake is not None and claimed.wake is not None

    await asyncio.wait_for(asyncio.shield(claimed.wake), 5)
    assert len(claimed_ticker.claims) == 1
    assert len(declined_ticker.claims) == 1 and not declined.wake.done()
    assert declined.tick_slot is not None  # armed again, for the due time its ticker moved to

    await asyncio.wait_for(asyncio.shield(declined.wake), 5)
    first, second, third = declined_ticker.claims
    resolution = aio._clock_resolution  # type: ignore[attr-defined]
    assert first >= due - resolution
    assert second >= first + 0.15 - resolution and third >= second + 0.15 - resolution
    assert declined.tick_slot is None
