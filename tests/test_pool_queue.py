"""The time a request queues for one of the pool's connections is not charged to its timeout.

Thousands of waits that end together read their results at once over one pooled client. Charged
to each request's own timeout, the queue timed out (and retried) most of 4,800 results reads of a
5,000-wait deployment (docs/deployment-scale.md). A wait's deadline still bounds the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import Call, ClientConfig
from airflow_jobwait.client.job_kinds import status_call
from airflow_jobwait.client.retry import NO_RETRY
from airflow_jobwait.exceptions import TransportError
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.models.status import JobState
from tests._pollers import submit_many

#: Each status answer is held this long by the service; the client's timeout is TIMEOUT.
HELD_S = 0.6
TIMEOUT = 1.0


@pytest.fixture
def held_status(service: ServiceProcess, jobwait_conn: str) -> tuple[ServiceProcess, str]:
    """A job of the service (whose status answers each test holds ``HELD_S``)."""
    (job_id,) = submit_many(JobsHook(jobwait_conn), 1, duration_s=600.0)
    return service, job_id


@asynccontextmanager
async def held_client(
    held_status: tuple[ServiceProcess, str], max_connections: int
) -> AsyncIterator[tuple[AsyncClient, Call[JobState], FaultControl]]:
    """A client of ``max_connections`` and the job's status call, every answer held ``HELD_S``
    (the service's fault injection); ``faults.stats()`` counts the requests that reached it."""
    service, job_id = held_status
    client = AsyncClient(ClientConfig(service.base_url, service.api_key, timeout=TIMEOUT), NO_RETRY, max_connections)
    faults = FaultControl(service.base_url, service.api_key)
    try:
        with faults.injected([{"kind": "delay", "delay_s": HELD_S, "path_prefix": f"/api/jobs/{job_id}"}]):
            yield client, status_call("inference", job_id), faults
    finally:
        await client.close()


async def test_requests_queued_for_a_connection_are_not_timed_out_by_the_queue(
    held_status: tuple[ServiceProcess, str],
) -> None:
    async with held_client(held_status, max_connections=2) as (client, call, faults):
        began = time.monotonic()
        states = await asyncio.gather(*(client.call(call) for _ in range(6)))
        took = time.monotonic() - began
        held = faults.stats()
    # Two at a time, three rounds of HELD_S: the last ones queued 1.2 s, past their 1 s timeout,
    # and each was answered.
    assert len(states) == 6 and all(state.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS) for state in states)
    assert took >= 3 * HELD_S, took
    assert held["injected"].get("delay") == 6, held  # one attempt each: none timed out and came again


async def test_a_request_still_queued_at_the_waits_deadline_is_not_sent(
    held_status: tuple[ServiceProcess, str],
) -> None:
    async with held_client(held_status, max_connections=1) as (client, call, faults):
        first = asyncio.ensure_future(client.call(call))
        await asyncio.sleep(0.1)  # the first holds the one connection
        began = time.monotonic()
        with pytest.raises(TransportError, match=r"not sent: all 1 connections .* busy until the wait's deadline"):
            await client.call(call, deadline=time.time() + 0.2)
        gave_up = time.monotonic() - began
        await first
        held = faults.stats()
    assert 0.15 <= gave_up < HELD_S, gave_up  # at its deadline, not when the connection came free
    assert held["injected"].get("delay") == 1, held  # the late one never reached the service
