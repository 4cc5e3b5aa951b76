"""Time to error under hostile servers: one attempt, a blocking wait and a trigger.

One attempt (``NO_RETRY``) against a server that drips its answer one byte a second (head or
body) or stalls, in both transports; then ``wait_for_job`` and ``JobTrigger`` (per-job and
coalesced batch polling) while the reference service holds every status read past the request
timeout. The goal: an attempt ends at the connection's ``timeout``, a wait by its deadline plus
one ``timeout``. Prints a markdown table.

    .venv/bin/python -m benchmarks.deadlines [--timeout 3] [--wait 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference-service"))

from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import AuthScheme, Call, ClientConfig, HttpRequest, HttpResponse
from airflow_jobwait.client.retry import NO_RETRY
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.exceptions import JobWaitError
from tests._hostile_server import HostileServer

CALL: Call[HttpResponse] = Call(HttpRequest("GET", "/api/jobs/j", AuthScheme("Authorization")), lambda r: r)
API_KEY = "bench.key"


def timed(run: Callable[[], object]) -> tuple[float, str]:
    started = time.monotonic()
    try:
        result = run()
        what = getattr(result, "kind", "answered")
    except JobWaitError as err:
        what = type(err).__name__ + (f" ({err.fault})" if err.fault else "")
    return time.monotonic() - started, str(what)


def one_attempt(url: str, timeout: float, transport: str) -> tuple[float, str]:
    config = ClientConfig(url, "k", timeout=timeout)
    if transport == "sync":
        return timed(lambda: SyncClient(config).call(CALL, retry=NO_RETRY))

    async def run() -> HttpResponse:
        client = AsyncClient(config)
        try:
            return await client.call(CALL, retry=NO_RETRY)
        finally:
            await client.close()

    return timed(lambda: asyncio.run(run()))


def waits(timeout: float, wait: float) -> list[tuple[str, float, str]]:
    from airflow_jobwait.hooks import JobsHook
    from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest
    from airflow_jobwait.triggers import JobTrigger

    rows = []
    with ServiceProcess(api_key=API_KEY, test_controls=True) as service:
        for mode in ("per_job", "batch"):
            extra = {"modzy": {"timeout": timeout, "status_mode": mode}}
            os.environ.update(service.connection_env(extra))
            hook = JobsHook("modzy_default")
            body = SubmitJobRequest(
                model=ModelRef(identifier="echo", version="1.0"),
                input=JobInput(sources={"a": {"input.txt": "hi"}}),
                test={"duration_s": 600},
            )
            job_id = hook.submit_job(body).job_identifier
            stall = [{"kind": "delay", "delay_s": timeout * 3, "methods": ["GET"], "path_prefix": "/api/jobs"}]
            with FaultControl(service.base_url, service.api_key).injected(stall):
                if mode == "per_job":
                    elapsed, what = timed(lambda: hook.wait_for_job(job_id, poll_interval=1, timeout=wait))  # noqa: B023
                    rows.append(("`wait_for_job` (worker)", elapsed, what))
                trigger = JobTrigger(job_id, "modzy_default", poll_interval=1, deadline=time.time() + wait)
                elapsed, what = timed(lambda: asyncio.run(trigger.wait()))  # noqa: B023 - run at once
                rows.append((f"`JobTrigger`, {mode}", elapsed, what))
            hook.cancel_job(job_id)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="the connection's request timeout (s)")
    parser.add_argument("--wait", type=float, default=10.0, help="the waits' deadline (s)")
    args = parser.parse_args(argv)
    print(f"| what (request timeout {args.timeout:g} s, wait deadline {args.wait:g} s) | ended after | with |")
    print("|---|---|---|")
    for behaviour in ("drip_head", "drip_body", "stall"):
        with HostileServer(behaviour, drip_interval=1.0) as server:
            for transport in ("sync", "async"):
                elapsed, what = one_attempt(server.url, args.timeout, transport)
                print(f"| one attempt, {transport}, {behaviour.replace('_', ' ')} | {elapsed:.1f} s | {what} |")
    for label, elapsed, what in waits(args.timeout, args.wait):
        print(f"| {label}, service stalled | {elapsed:.1f} s | {what} |")


if __name__ == "__main__":
    main()
