"""The triggerer-scale benchmark's sample schedule (``benchmarks/triggerer_scale.py``, ``_end_times``).

Detection latency is measured on sampled jobs ended one by one; its median is only as fine as the
phases of the poll interval the end times fall on. The schedule must end as many jobs in each poll
interval of the window as an even spread does, and fall on every phase ``poll / count`` apart.
"""

from __future__ import annotations

import pytest

from benchmarks.triggerer_scale import _end_times


@pytest.mark.parametrize(("count", "window", "poll"), [(200, 10.0, 5.0), (200, 20.0, 5.0), (120, 6.0, 2.0)])
def test_end_times_cover_every_phase_of_the_poll_interval(count: int, window: float, poll: float) -> None:
    times = _end_times(count, window, poll)
    assert len(times) == count
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] < window
    periods = round(window / poll)
    per_period = [sum(1 for at in times if period * poll <= at < (period + 1) * poll) for period in range(periods)]
    assert per_period == [count // periods] * periods  # the load: as many ends in each interval
    step = poll / count
    phases = sorted(round((at % poll) / step, 6) for at in times)
    assert phases == [float(k) for k in range(count)]  # every phase, step apart, once


def test_a_window_shorter_than_the_poll_interval_is_an_even_spread() -> None:
    assert _end_times(4, 2.0, 5.0) == [0.0, 0.5, 1.0, 1.5]
