"""The triggerer-scale benchmark's sample and its schedule (``benchmarks/triggerer_scale.py``,
``_sample`` and ``_end_times``).

Detection latency is measured on sampled jobs ended one by one; its median is only as fine as the
phases of the poll interval the end times fall on. The schedule must end as many jobs in each poll
interval of the window as an even spread does, and fall on every phase ``poll / count`` apart. The
sample must reach every dataset of the job-list mode, and the order the jobs end in must say
nothing of where they sit in the list (their batch, dataset and page): else the median carries how
the rounds' pages fall against the end times.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks.triggerer_scale import DATASETS, END_WINDOW, LATENCY_SAMPLE, _end_times, _periods, _readers, _sample

# Each job's dataset as ``_submit_dataset_jobs`` makes them: created over the datasets in turn.
IN_TURN = [f"dataset-{index % DATASETS}" for index in range(10_000)]


@pytest.mark.parametrize(
    ("count", "window", "poll"),
    [(200, 10.0, 5.0), (200, 20.0, 5.0), (120, 6.0, 2.0), (LATENCY_SAMPLE, END_WINDOW, 5.0)],
)
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


@pytest.mark.parametrize(
    ("mode", "reader_of", "readers"),
    [
        # Jobs created over the datasets in turn (``_submit_dataset_jobs``).
        ("dataset_list", lambda index: index % DATASETS, DATASETS),
        # Datasets in runs of 7 jobs: the readers follow each job's dataset, not its index.
        ("dataset_list", lambda index: index // 7 % DATASETS, DATASETS),
        # A batch status request per 500 jobs, in list order.
        ("batch", lambda index: index // 500, 20),
    ],
)
def test_the_sample_takes_the_requests_in_turn_and_spreads_each_over_the_phases(
    mode: str, reader_of: Callable[[int], int], readers: int
) -> None:
    dataset_of = [f"dataset-{reader_of(index)}" for index in range(10_000)] if mode == "dataset_list" else None
    picked = _sample(10_000, _readers(mode, 10_000, dataset_of), _periods(END_WINDOW, 5.0))
    assert len(picked) == LATENCY_SAMPLE == len(set(picked)) and all(0 <= i < 10_000 for i in picked)
    # Each request's jobs end on phases spread evenly over the whole poll interval (each request
    # is read at a phase of its own): one in every 1/share of the interval, each interval's
    # between the others'. In whole microseconds: 0.45 // 0.05 is 8 in floating point.
    times = _end_times(LATENCY_SAMPLE, END_WINDOW, 5.0)
    share = LATENCY_SAMPLE // readers
    step = round(5e6 / share)
    for reader in range(readers):
        phases = [round(times[rank] % 5.0 * 1e6) for rank, index in enumerate(picked) if reader_of(index) == reader]
        assert sorted(phase // step for phase in phases) == list(range(share)), reader
    # And the whole list: every tenth of it (its pages, its batches) holds some of the sample.
    per_tenth = [sum(1 for i in picked if i * 10 // 10_000 == t) for t in range(10)]
    assert min(per_tenth) >= LATENCY_SAMPLE // 10 // 2, per_tenth


def test_the_end_order_says_nothing_of_the_place_in_the_list() -> None:
    picked = _sample(10_000, _readers("dataset_list", 10_000, IN_TURN), _periods(END_WINDOW, 5.0))
    for dataset in range(DATASETS):  # within a dataset: its pages
        mine = [index for index in picked if index % DATASETS == dataset]
        assert abs(_spearman(mine)) < 0.5, dataset
    assert abs(_spearman(_sample(10_000, _readers("history", 10_000)))) < 0.2


def _spearman(order: list[int]) -> float:
    """Spearman's rank correlation between the end order and the list position."""
    by_position = {index: rank for rank, index in enumerate(sorted(order))}
    n = len(order)
    d2 = sum((end_rank - by_position[index]) ** 2 for end_rank, index in enumerate(order))
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_a_short_list_is_sampled_whole_and_every_run_the_same() -> None:
    assert sorted(_sample(50, _readers("dataset_list", 50, IN_TURN[:50]))) == list(range(50))
    assert _sample(10_000, _readers("batch", 10_000)) == _sample(10_000, _readers("batch", 10_000))
    # A short last batch cannot take its turns: the sample is then drawn from the whole list.
    picked = _sample(10_001, _readers("batch", 10_001))
    assert len(set(picked)) == LATENCY_SAMPLE and all(0 <= i < 10_001 for i in picked)


def test_the_job_list_readers_need_each_jobs_dataset() -> None:
    with pytest.raises(ValueError, match="dataset_of"):
        _readers("dataset_list", 10_000)
    with pytest.raises(ValueError, match="dataset_of"):
        _readers("dataset_list", 10_000, IN_TURN[:50])
