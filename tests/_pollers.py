"""Helpers of the shared pollers' tests (batch, history, job list): run a trigger to its event,
wait for a condition (bounded), submit jobs, count requests, pick the failure notices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from airflow_jobwait.client.coalesce import Notice, PollFailed
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest, WaitOutcome
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S


async def outcome_of(trigger: JobTrigger) -> WaitOutcome:
    """Run ``trigger`` to its one event; its payload, checked to be JSON-safe (it goes to the DB)."""
    events = [event async for event in trigger.run()]
    assert len(events) == 1, "a JobTrigger fires exactly one event"
    json.dumps(events[0].payload)
    return WaitOutcome.model_validate(events[0].payload)


async def bounded_outcome(trigger: JobTrigger) -> WaitOutcome:
    """:func:`outcome_of`, failing after the liveness bound (a bug fails instead of hanging)."""
    return await asyncio.wait_for(outcome_of(trigger), LIVENESS_S)


async def until(condition: Callable[[], bool], limit: float = LIVENESS_S) -> None:
    """Yield to the loop until ``condition`` holds (bounded, so a bug fails instead of hanging)."""

    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(spin(), limit)


def submit_many(hook: JobsHook, count: int, duration_s: float) -> list[str]:
    """``count`` echo jobs that run ``duration_s`` (the tests end them earlier with test controls)."""
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"),
        input=JobInput(sources={"a": {"input.txt": "hi"}}),
        test={"duration_s": duration_s},
    )
    return [hook.submit_job(body).job_identifier for _ in range(count)]


def delta(before: dict[str, Any], after: dict[str, Any], route: str) -> int:
    """Requests to ``route`` between two ``/api/_test/stats`` answers."""
    return int(after["requests"].get(route, 0) - before["requests"].get(route, 0))


def failures(notices: list[Notice]) -> list[PollFailed]:
    """The failed polls a wait was told of."""
    return [n for n in notices if isinstance(n, PollFailed)]
