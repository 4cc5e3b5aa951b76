"""The adaptive per-job poll schedule (``client/poll_schedule.py``): injected clocks, scripted services."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_jobwait.client import poll_schedule
from airflow_jobwait.client.poll_schedule import JITTER, MAX_HINTED_DELAY
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import ServerError
from airflow_jobwait.hooks.compute import ComputeHook
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.models.status import JobState
from airflow_jobwait.operators import SubmitComputeTaskOperator
from airflow_jobwait.sensors import JobSensor
from airflow_jobwait.triggers import JobTrigger
from tests._scripted_service import Reply, ScriptedService, scripted_service

S = JobStatus
RUNNING = JobState(status=S.IN_PROGRESS, native_status="IN_PROGRESS")
QUEUED = JobState(status=S.SUBMITTED, native_status="SUBMITTED")
DONE = JobState(status=S.COMPLETED, native_status="COMPLETED")


def at(progress: float) -> JobState:
    return JobState(status=S.IN_PROGRESS, native_status="in progress", progress=progress)


class Clock:
    """Epoch seconds that move only when told (``sleep`` advances them)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll_schedule, "JITTER", 0.0)


def run(loop: WaitLoop, clock: Clock, states: list[JobState], hints: list[float | None] | None = None) -> list[float]:
    """Feed ``states`` one poll at a time; answer the sleeps this took (the last step may be an outcome)."""
    hints = hints or [None] * len(states)
    before = len(clock.sleeps)
    for state, hint in zip(states, hints, strict=True):
        step = loop.then(loop.on_state(state, retry_after=hint))
        if isinstance(step, WaitOutcome):
            break
        clock.sleep(step)
    return clock.sleeps[before:]


# ---- the schedule, on WaitLoop -------------------------------------------------------------


def test_default_schedule_is_the_fixed_poll_interval() -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, clock=clock)
    # Old quiet job, a Retry-After, moving progress: without max_poll_interval nothing changes.
    sleeps = run(loop, clock, [RUNNING] * 200 + [at(10), at(20)], [None] * 100 + [60.0] * 102)
    assert sleeps == [5.0] * 202
    assert not loop.schedule.adaptive


def test_max_equal_to_poll_interval_is_the_fixed_schedule() -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=5, clock=clock)
    assert run(loop, clock, [RUNNING] * 50) == [5.0] * 50


def test_interval_grows_with_the_quiet_age_up_to_the_max(no_jitter: None) -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
    sleeps = run(loop, clock, [RUNNING] * 60)
    assert sleeps[0] == 5.0  # the first answer: no age yet
    assert sleeps == sorted(sleeps)
    # Each delay is poll_interval plus 10% of the time since the start, until the cap.
    elapsed = 0.0
    for sleep in sleeps:
        assert sleep == pytest.approx(min(60.0, 5.0 + 0.1 * elapsed))
        elapsed += sleep
    assert sleeps[-1] == 60.0 and max(sleeps) == 60.0


def test_job_age_counts_from_the_waits_start_not_the_first_poll(no_jitter: None) -> None:
    clock = Clock()
    # Started 200 s ago (a trigger resumed on another triggerer): the first delay already stretches.
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now - 200, clock=clock)
    assert run(loop, clock, [RUNNING]) == [pytest.approx(25.0)]


def test_status_change_resets_the_interval(no_jitter: None) -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
    sleeps = run(loop, clock, [QUEUED] * 40 + [RUNNING] + [RUNNING] * 5)
    assert sleeps[39] == 60.0  # long queued
    assert sleeps[40] == 5.0  # SUBMITTED -> IN_PROGRESS: back to poll_interval
    assert sleeps[41] == pytest.approx(5.5) and sleeps[41:] == sorted(sleeps[41:])  # and grows again


def test_progress_that_moves_resets_the_interval_and_still_progress_does_not(no_jitter: None) -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
    sleeps = run(loop, clock, [at(10)] * 40 + [at(55)] + [at(55)] * 3)
    assert sleeps[39] == 60.0
    assert sleeps[40] == 5.0
    assert sleeps[41] == pytest.approx(5.5) and sleeps[43] > sleeps[41]


def test_a_first_answer_is_not_a_change(no_jitter: None) -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now - 1000, clock=clock)
    # Resumed at an old age: the first status and progress it sees do not reset the schedule.
    assert run(loop, clock, [at(30)]) == [60.0]


def test_retry_after_is_honoured_beyond_the_max_but_not_past_the_deadline(no_jitter: None) -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
    assert run(loop, clock, [RUNNING], [120.0]) == [120.0]  # the service asks for longer than the max
    assert run(loop, clock, [RUNNING], [1.0]) == [pytest.approx(5.0 + 0.1 * 120)]  # shorter: the schedule
    assert run(loop, clock, [RUNNING]) == [pytest.approx(5.0 + 0.1 * 137)]  # one answer's hint only

    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, deadline=clock.now + 30, clock=clock)
    assert run(loop, clock, [RUNNING], [120.0]) == [30.0]  # cut to the deadline
    assert isinstance(loop.then(loop.on_state(RUNNING)), WaitOutcome)  # then it times out


def test_retry_after_without_deadline_is_capped() -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, clock=clock)
    assert run(loop, clock, [RUNNING], [1e12]) == [MAX_HINTED_DELAY]


def test_a_failed_poll_drops_the_hint() -> None:
    clock = Clock()
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
    loop.on_state(RUNNING, retry_after=300.0)
    step = loop.then(loop.on_error(ServerError(503, None)))
    assert isinstance(step, float) and step < 60.0


@pytest.mark.parametrize("deadline_in", [0.5, 7.0, 33.3, 301.0, 3600.0])
def test_no_sleep_ever_passes_the_deadline(deadline_in: float) -> None:
    clock = Clock()
    deadline = clock.now + deadline_in
    loop = WaitLoop("j", poll_interval=5, max_poll_interval=120, deadline=deadline, clock=clock)
    for n in range(10_000):
        hint = 500.0 if n % 7 == 3 else None
        step = loop.then(loop.on_state(at(n // 13), retry_after=hint))
        if isinstance(step, WaitOutcome):
            assert step.kind == "timeout"
            break
        assert step > 0
        clock.sleep(step)
        assert clock.now <= deadline
    else:
        pytest.fail("the wait never timed out")
    assert clock.now == pytest.approx(deadline)


def test_jitter_only_shortens_the_stretch_and_is_deterministic() -> None:
    def sleeps_of(job_id: str) -> list[float]:
        clock = Clock()
        loop = WaitLoop(job_id, poll_interval=5, max_poll_interval=60, started=clock.now, clock=clock)
        return run(loop, clock, [RUNNING] * 80)

    a, b = sleeps_of("job-a"), sleeps_of("job-b")
    assert a == sleeps_of("job-a")  # the same job, clock and answers: the same schedule anywhere
    assert a != b  # two waits started together drift apart
    for sleeps in (a, b):
        assert all(5.0 <= s <= 60.0 for s in sleeps)
        assert min(sleeps[-20:]) >= 5.0 + (1 - JITTER) * 55.0  # at the cap, within the jitter band
        assert len(set(sleeps[-20:])) > 1


def test_a_resumed_wait_follows_the_same_schedule() -> None:
    # The original and a wait rebuilt from the trigger's kwargs (same start) on another
    # triggerer ask for the same delay at the same moment.
    clock = Clock()
    started = clock.now
    first = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=started, clock=clock)
    run(first, clock, [RUNNING] * 30)
    resumed = WaitLoop("j", poll_interval=5, max_poll_interval=60, started=started, clock=clock)
    for _ in range(5):
        delays = [loop.then(loop.on_state(RUNNING)) for loop in (first, resumed)]
        assert delays[0] == delays[1] and isinstance(delays[0], float), delays
        assert 5.0 + (1 - JITTER) * 55.0 <= delays[0] <= 60.0
        clock.sleep(delays[0])
    assert resumed.schedule.quiet_since == first.schedule.quiet_since == started


@pytest.mark.parametrize("bad", [4.9, -1, math.nan, math.inf, True, "60"])
def test_bad_max_poll_interval_is_refused_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_poll_interval"):
        WaitLoop("j", poll_interval=5, max_poll_interval=bad)
    with pytest.raises(ValueError, match="max_poll_interval"):
        JobTrigger("j", "modzy_default", poll_interval=5, max_poll_interval=bad)
    with pytest.raises(ValueError, match="max_poll_interval"):
        JobSensor(task_id="wait", job_id="j", poll_interval=5, max_poll_interval=bad)
    with pytest.raises(ValueError, match="max_poll_interval"):
        SubmitComputeTaskOperator(
            task_id="submit", topic="t", task="w", parameters={}, poll_interval=5, max_poll_interval=bad
        )


@pytest.mark.parametrize("bad", [math.nan, math.inf, "yesterday", True])
def test_bad_started_is_refused_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match="started"):
        JobTrigger("j", "modzy_default", max_poll_interval=60, started=bad)


# ---- the trigger's kwargs and the operators ---------------------------------------------------


def test_trigger_kwargs_round_trip_with_the_schedule() -> None:
    before = time.time()
    trigger = JobTrigger("job-1", "evo_default", poll_interval=5, max_poll_interval=60, job_kind="compute",
                         job_ref={"org_id": "o", "topic": "t", "task": "w"})  # fmt: skip
    classpath, kwargs = trigger.serialize()
    assert kwargs["max_poll_interval"] == 60.0
    assert before <= kwargs["started"] <= time.time()  # kept: another triggerer resumes at this age
    clone = JobTrigger(**json.loads(json.dumps(kwargs)))
    assert clone.serialize() == (classpath, kwargs)


def test_default_trigger_kwargs_keep_no_start() -> None:
    _, kwargs = JobTrigger("job-1", "modzy_default", poll_interval=5).serialize()
    assert kwargs["max_poll_interval"] is None and kwargs["started"] is None


def test_sensor_and_operator_pass_the_max_to_the_trigger() -> None:
    sensor = JobSensor(task_id="wait", job_id="j", poll_interval=5, max_poll_interval=45)
    assert sensor.trigger_kwargs("j")["max_poll_interval"] == 45.0
    assert JobSensor(task_id="w2", job_id="j").trigger_kwargs("j")["max_poll_interval"] is None
    op = SubmitComputeTaskOperator(task_id="submit", topic="t", task="w", parameters={}, max_poll_interval=30)
    assert op.max_poll_interval == 30.0


# ---- over HTTP: Evo compute answers with progress and Retry-After ------------------------------

ORG = str(uuid.UUID(int=7))
JOB = str(uuid.UUID(int=9))
REF = {"org_id": ORG, "topic": "demo", "task": "wordcount"}
STATUS_PATH = f"/compute/orgs/{ORG}/demo/wordcount/{JOB}/status"


def reply(status: str, progress: float | None = None, code: int = 202, **headers: str) -> Reply:
    body = {"status": status} if progress is None else {"status": status, "progress": progress}
    return code, {"content-type": "application/json", **headers}, json.dumps(body).encode()


@pytest.fixture
def evo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedService]:
    with scripted_service() as scripted:
        conn = {"conn_type": "evo", "host": scripted.base_url, "password": "token", "extra": {"org_id": ORG}}
        monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_EVO", json.dumps(conn))
        yield scripted


def test_blocking_wait_stretches_resets_on_progress_and_honours_retry_after(
    evo: ScriptedService, monkeypatch: pytest.MonkeyPatch, no_jitter: None
) -> None:
    evo.scripts[("GET", STATUS_PATH)] = (
        [reply("in progress", 10.0)] * 30
        + [reply("in progress", 60.0, **{"Retry-After": "90"})]
        + [reply("in progress", 60.0)] * 3
        + [reply("succeeded", 100.0, code=200)]
    )
    clock = Clock(time.time())
    import airflow_jobwait.hooks.base as base

    monkeypatch.setattr(base, "time", SimpleNamespace(time=clock, sleep=clock.sleep, monotonic=time.monotonic))
    outcome = ComputeHook("scripted_evo").wait_for_job(
        JOB, poll_interval=2, max_poll_interval=20, job_kind="compute", job_ref=REF
    )
    assert outcome.kind == "terminal" and outcome.status is S.COMPLETED
    sleeps = clock.sleeps
    assert len(sleeps) == 34
    assert sleeps[0] == 2.0 and sleeps[29] == 20.0 and sleeps == sorted(sleeps[:30]) + sleeps[30:]
    assert sleeps[30] == 90.0  # progress moved, but the service asked for 90 s: honoured past the max
    assert sleeps[31] == pytest.approx(2.0 + 0.1 * 90)  # quiet since the move, 90 s ago
    assert len(evo.seen) == 35


async def test_trigger_polls_alone_on_the_same_schedule(evo: ScriptedService, monkeypatch: pytest.MonkeyPatch) -> None:
    evo.scripts[("GET", STATUS_PATH)] = [
        reply("requested"),
        reply("in progress", 5.0, **{"Retry-After": "40"}),
        reply("in progress", 5.0),
        reply("succeeded", code=200),
    ]
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float, *args: Any) -> Any:
        if seconds > 0:
            sleeps.append(seconds)
        return await real_sleep(0)

    import airflow_jobwait.triggers.jobs as jobs

    monkeypatch.setattr(jobs, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": fake_sleep}))
    trigger = JobTrigger(
        JOB, "scripted_evo", poll_interval=0.5, max_poll_interval=10, job_kind="compute", job_ref=REF,
        cancel_on_kill=False,
    )  # fmt: skip
    kwargs = trigger.serialize()[1]
    outcome = await asyncio.wait_for(JobTrigger(**kwargs).wait(), 20)
    assert outcome.kind == "terminal" and outcome.status is S.COMPLETED
    assert sleeps[0] < 10 and sleeps[1] == 40.0 and sleeps[2] < 10  # Retry-After of one answer, past the max
    assert len(sleeps) == 3
