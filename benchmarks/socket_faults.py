"""Time to error under each socket fault of the soak's proxy: one attempt, a blocking wait, a trigger.

The reference service runs a long job; one ``tests._fault_proxy.FaultProxy`` per fault kind
stands in front of it and breaks *every* exchange that way. Through each proxy:

- one attempt (``NO_RETRY``) of ``GET /api/jobs/{id}``, sync (``requests``) and async (``aiohttp``);
- ``JobsHook.wait_for_job`` (the hook's default retry policy, poll 1 s, ``--wait`` s);
- ``JobTrigger.wait()`` with ``status_mode`` ``per_job`` and ``batch`` (same deadline).

How long until each gives up, and how (the error, or the wait's outcome). Goal: an attempt
ends by the connection's ``timeout``; a wait ends by its deadline plus one ``timeout``, or
earlier with an error outcome after 20 failed polls in a row (``WaitLoop``). The waits of all
kinds run at once (they mostly sleep; one at a time would take seven times as long), so on a
loaded machine a figure may be a little late; nothing here asserts on time. Prints markdown.

    .venv/bin/python -m benchmarks.socket_faults [--timeout 3] [--wait 30] [--drip 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference-service"))

from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import AuthScheme, Call, ClientConfig, HttpRequest, decode_json
from airflow_jobwait.client.retry import NO_RETRY
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.exceptions import JobWaitError
from tests._fault_proxy import KINDS, FaultProxy

API_KEY = "bench.key"
MODES = ("per_job", "batch")


def _what(result: object) -> str:
    if isinstance(result, JobWaitError):
        return type(result).__name__ + (f" ({result.fault})" if result.fault else "")
    return str(getattr(result, "kind", "answered"))


def timed(run: Callable[[], object]) -> tuple[float, str]:
    """Seconds ``run`` took and what it ended with (the error's class and fault, or the outcome)."""
    started = time.monotonic()
    try:
        result: object = run()
    except JobWaitError as err:
        result = err
    return time.monotonic() - started, _what(result)


async def timed_async(run: Callable[[], Awaitable[object]]) -> tuple[float, str]:
    """``timed`` for a coroutine."""
    started = time.monotonic()
    try:
        result: object = await run()
    except JobWaitError as err:
        result = err
    return time.monotonic() - started, _what(result)


def one_attempt(url: str, job_id: str, timeout: float, transport: str) -> tuple[float, str]:
    """One ``GET /api/jobs/{id}`` with no retry, its body decoded as JSON.

    :param url: The proxy's URL.
    :param job_id: The job read.
    :param timeout: The connection's timeout (the call's total deadline).
    :param transport: ``sync`` or ``async``.
    """
    request = HttpRequest("GET", f"/api/jobs/{job_id}", AuthScheme("Authorization", "ApiKey "))
    call: Call[Any] = Call(request, decode_json)
    config = ClientConfig(url, API_KEY, timeout=timeout)
    if transport == "sync":
        return timed(lambda: SyncClient(config).call(call, retry=NO_RETRY))

    async def run() -> object:
        client = AsyncClient(config)
        try:
            return await client.call(call, retry=NO_RETRY)
        finally:
            await client.close()

    return timed(lambda: asyncio.run(run()))


def conn_id(kind: str, mode: str) -> str:
    return f"bench_{kind}_{mode}"


def point_connections(proxies: dict[str, FaultProxy], timeout: float) -> None:
    """``AIRFLOW_CONN_BENCH_<KIND>_<MODE>``: a Modzy connection through each kind's proxy."""
    for kind, proxy in proxies.items():
        for mode in MODES:
            conn = {
                "conn_type": "modzy",
                "host": proxy.url,
                "password": API_KEY,
                "extra": {"timeout": timeout, "status_mode": mode},
            }
            os.environ[f"AIRFLOW_CONN_{conn_id(kind, mode).upper()}"] = json.dumps(conn)


def waits(proxies: dict[str, FaultProxy], job_id: str, wait: float) -> dict[tuple[str, str], tuple[float, str]]:
    """All kinds at once: ``wait_for_job`` in threads, the triggers in this thread's event loop."""
    from airflow_jobwait.hooks import JobsHook
    from airflow_jobwait.triggers import JobTrigger

    results: dict[tuple[str, str], tuple[float, str]] = {}

    def blocking(kind: str) -> None:
        hook = JobsHook(conn_id(kind, "per_job"))
        results[(kind, "wait_for_job")] = timed(lambda: hook.wait_for_job(job_id, poll_interval=1, timeout=wait))

    threads = [threading.Thread(target=blocking, args=(kind,)) for kind in proxies]
    for thread in threads:
        thread.start()

    async def triggers() -> None:
        async def one(kind: str, mode: str) -> None:
            trigger = JobTrigger(job_id, conn_id(kind, mode), poll_interval=1, deadline=time.time() + wait)
            results[(kind, f"trigger {mode}")] = await timed_async(trigger.wait)

        await asyncio.gather(*(one(kind, mode) for kind in proxies for mode in MODES))

    asyncio.run(triggers())
    for thread in threads:
        thread.join()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="request timeout (s), the soak's")
    parser.add_argument("--wait", type=float, default=30.0, help="the waits' deadline (s)")
    parser.add_argument("--drip", type=float, default=0.1, help="seconds per byte of a drip")
    args = parser.parse_args(argv)
    from airflow_jobwait.hooks import JobsHook
    from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest

    with ServiceProcess(api_key=API_KEY, test_controls=True) as service:
        os.environ.update(service.connection_env({"modzy": {"timeout": args.timeout}}))
        body = SubmitJobRequest(
            model=ModelRef(identifier="echo", version="1.0"),
            input=JobInput(sources={"a": {"input.txt": "hi"}}),
            test={"duration_s": 3600},
        )
        hook = JobsHook("modzy_default")  # straight to the service: the job exists
        job_id = hook.submit_job(body).job_identifier
        proxies = {
            kind: FaultProxy(service.host, service.port, {kind: 1.0}, drip_interval=args.drip).start() for kind in KINDS
        }
        try:
            point_connections(proxies, args.timeout)
            attempts = {
                (kind, transport): one_attempt(proxies[kind].url, job_id, args.timeout, transport)
                for kind in KINDS
                for transport in ("sync", "async")
            }
            wait_results = waits(proxies, job_id, args.wait)
        finally:
            for proxy in proxies.values():
                proxy.close()
            hook.cancel_job(job_id)

    print(
        f"| fault (every exchange; timeout {args.timeout:g} s, wait deadline {args.wait:g} s, "
        f"drip {args.drip:g} s/byte) | one attempt, sync | one attempt, async | `wait_for_job` "
        "| `JobTrigger` per_job | `JobTrigger` batch |"
    )
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        cells = [attempts[(kind, "sync")], attempts[(kind, "async")]]
        cells += [wait_results[(kind, column)] for column in ("wait_for_job", "trigger per_job", "trigger batch")]
        # Two decimals under a second: the fast faults end in milliseconds, not in "0.0 s".
        texts = [f"{elapsed:.{2 if elapsed < 1 else 1}f} s, {what}" for elapsed, what in cells]
        print(f"| {kind} | " + " | ".join(texts) + " |")


if __name__ == "__main__":
    main()
