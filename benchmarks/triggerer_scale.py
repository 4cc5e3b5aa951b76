"""Triggerer at scale: N concurrent waits in Airflow's own trigger runner, against the reference service.

Run: ``python -m benchmarks.triggerer_scale`` (defaults: N = 100, 1,000, 10,000; poll 5 s). Every
scenario runs in a fresh *triggerer* process (``--child``) that feeds ``RunTrigger`` workloads to
Airflow's ``TriggerRunner.create_triggers``, which deserialises each trigger and runs it with
``run_trigger``, exactly as a triggerer does; the reference service runs in another process on
127.0.0.1 (nothing leaves the machine). Modes:

- ``watch``: ``JobTrigger``, connection extra ``status_mode=auto`` (long-poll where offered);
- ``batch``: ``JobTrigger``, ``status_mode=batch`` (one request per 500 jobs per poll interval);
- ``per_job``: ``JobTrigger``, ``status_mode=per_job`` (this project before coalescing);
- ``per_job_adaptive``: ``per_job`` with ``max_poll_interval`` (``--max-poll``, default 4x the poll
  interval): each wait's delay stretches with its job's quiet time (``client/poll_schedule.py``).
  Not in the default modes; its "wait-poll" is a nominal poll interval per wait, and its steady
  window starts once a wait quiet since its start polls at the maximum (150 s at the defaults:
  the schedule a long wait keeps, not its first minutes);
- ``http_sensor``: ``HttpSensorTrigger`` (apache-airflow-providers-http) polling the service's [ext]
  ``GET /api/jobs/{id}/done``, which answers 404 until the job is terminal;
- ``bare`` (only when asked for): Airflow's own ``DateTimeTrigger`` (the standard provider), due in
  a day: what a trigger costs in the runner that waits on nothing and sends no request, the floor
  of every mode's CPU and RSS per wait. It never fires, so it has no detection latency or status.

Two more modes run only when asked for, against a second reference service in the ``real`` profile
(no [ext] endpoint, a rate limit: ``--rate-limit``, default the profile's 200 requests/s per key):

- ``history``: ``JobTrigger``, ``status_mode=auto``: the batch probe meets a 404, so the waits go to
  the ``HistoryPoller`` (``client/coalesce_history.py``): one read per wait at first contact, then
  one job-history listing per poll interval for all of them. The jobs end in four terminal
  statuses (``COMPLETED``, ``FAILED``, ``TIMEDOUT``, ``CANCELED``, in turn);
- ``dataset_list``: ``JobTrigger(job_kind="dataset")`` on a TensorBay connection, ``status_mode=auto``:
  N squashAndMerge jobs spread over 10 fresh datasets (cloned through the service's test control),
  kept queuing by the create body's ``test`` member; one ``DatasetListPoller`` per dataset
  (``client/coalesce_datasets.py``) reads each job once, then lists the dataset's jobs once per
  interval (one page per 128 jobs). The jobs end by TensorBay's own ``abort`` (rate-limited too).

In these two modes the ramp lasts until every wait's first-contact read is done (its job is in its
poller's window), and the steady window starts a poll interval after that.

Each scenario: submit N long jobs; start the triggers; once every wait is up, measure a *steady*
window (no job changes); then end the jobs through the service's test control
``POST /api/_test/finish``: a sample of up to ``LATENCY_SAMPLE`` (``_sample``: the mode's requests in turn, each's
jobs at random), one by one, spread evenly over ``--end-window`` seconds and over the phases of the poll
interval (``_end_times``; for detection latency), then, a poll interval later, the rest at once,
500 per request (``dataset_list``: ``abort`` one job per request, 16 at once).

What creating the triggers left is collected once when the ramp is done (``gc.collect``), so its
one-off full collection falls in neither the window nor the ending; the collections after it are
counted (``gc_*`` in the window, ``end_gc_*`` while the jobs end, ``sample_gc_*`` while the sample
ends and is detected, before the rest is ended).

Measured in the triggerer process over the steady window: CPU (``time.process_time``) per
wait-poll and in cores, RSS added per wait (``/proc/self/status``, against the RSS before the
triggers were created), event-loop lag (a coroutine sleeping 50 ms and noting how late it wakes). CPU per
wait-poll is net of the idle process (the lag sampler included), measured for 3 s before the
triggers are created;
by the service (``/api/_test/stats``): requests per second and TCP connections opened (distinct
client ports; ``dataset_list``: requests only, counted by the fault-injection middleware, which
sees every request); per sampled job: detection latency from its ``finished_at`` in the service
database (``inference_jobs``; dataset jobs: ``tb_jobs``, which keeps it to the microsecond though
TensorBay's wire has whole seconds) to the moment ``run_trigger`` queued the trigger's event. Each
``JobTrigger`` event's status is checked against the job's status in the database. Every wait,
every child process and the whole run are bounded (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

API_KEY = "benchpub.bench-secret-not-for-production"
JOBS_CONN = "bench_jobs"
HTTP_CONN = "bench_http"
DATASETS_CONN = "bench_datasets"
MODES = ("http_sensor", "per_job", "batch", "watch")
#: Runs only when asked for (``--modes``): per-job polling on the adaptive schedule, the two
#: modes against the reference service's ``real`` profile (``REAL_MODES``), and the baseline.
EXTRA_MODES = ("per_job_adaptive", "history", "dataset_list", "bare")
#: Against a reference service in the ``real`` profile: what the real APIs offer, rate-limited.
REAL_MODES = ("history", "dataset_list")
PEERS = ("http_sensor", "per_job", "per_job_adaptive")
#: This project's modes the peers are compared with (at equal N).
OURS = ("batch", "watch", "history")
STATUS_MODE = {
    "watch": "auto",
    "batch": "batch",
    "per_job": "per_job",
    "per_job_adaptive": "per_job",
    "history": "auto",
    "dataset_list": "auto",
}
#: The statuses the jobs of each mode end in (the finish control's ``status``, in turn).
END_STATUSES = {"history": ("COMPLETED", "FAILED", "TIMEDOUT", "CANCELED")}
#: Jobs ended one by one for detection latency, over ``END_WINDOW`` seconds: 20 a second, so a
#: history round ends ~100 of them, and each of the job list's 10 readers (a dataset) takes 100, on
#: phases ~50 ms apart over the interval (``_sample``). With 200 over 10 s a reader's 20 fell on a
#: 250 ms grid at its own offset, and the median jumped by up to ~50 ms between neighbouring
#: latencies: +-70 ms from run to run at the same mean.
LATENCY_SAMPLE = 1000
END_WINDOW = 50.0
#: Seeds the latency sample (``_sample``).
SAMPLE_SEED = 16
LAG_TICK = 0.05
#: ``dataset_list``: the jobs are spread over this many fresh datasets, all of this type.
DATASETS = 10
DATASET_JOB_TYPE = "squashAndMerge"
TENSORBAY_ROOT = "/gatewayv2/tensorbay-open-api/v1"
#: Jobs per page of a TensorBay job list (the API's maximum, the poller's page).
TENSORBAY_PAGE = 128
#: Seconds a dataset job queues, then processes (each at most 600, the service's test-control bound):
#: it ends by itself only 20 minutes after its creation.
DATASET_JOB_S = 600.0
#: The fault-injection control's key header (``jobwait_reference_service.faults.KEY_HEADER``; not
#: imported, to keep the service's modules out of the triggerer process).
TEST_KEY_HEADER = "X-Test-Key"


# ---------------------------------------------------------------- shared helpers


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _seen(base_url: str) -> int:
    """Every request the service saw, 429 answers of its rate limit included: the fault-injection
    middleware (outermost; no rule set, so nothing is faulted) counts them all."""
    request = urllib.request.Request(f"{base_url}/_test/faults", headers={TEST_KEY_HEADER: API_KEY})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return int(json.load(resp)["stats"]["requests"])


def service_stats(base_url: str, mode: str = "batch") -> dict[str, Any]:
    """``total_requests``, ``connections`` (``None``: not counted), ``requests`` per route and, in
    ``REAL_MODES``, ``seen`` (``_seen``).

    Inference: the family's own stats (``/api/_test/stats``: requests its routes handled).
    ``dataset_list``: the dataset family has none, so ``seen`` is the total.
    """
    if mode == "dataset_list":
        seen = _seen(base_url)
        return {"total_requests": seen, "connections": None, "requests": {}, "seen": seen}
    request = urllib.request.Request(f"{base_url}/api/_test/stats", headers={"Authorization": f"ApiKey {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        result: dict[str, Any] = json.load(resp)
    if mode in REAL_MODES:
        result["seen"] = _seen(base_url)
    return result


# ---------------------------------------------------------------- the triggerer process


class _StampedEvents(collections.deque):  # type: ignore[type-arg]
    """``TriggerRunner.events`` that notes when each trigger's event was queued, and how it ended
    (``kind:status`` of a ``JobTrigger``'s outcome)."""

    def __init__(self, stamps: dict[int, float]) -> None:
        super().__init__()
        self.stamps = stamps
        self.outcomes: dict[int, str | None] = {}

    def append(self, entry: Any) -> None:
        self.stamps.setdefault(entry.trigger_id, time.time())
        payload = getattr(getattr(entry, "event", None), "payload", None)
        outcome = f"{payload.get('kind')}:{payload.get('status')}" if isinstance(payload, dict) else None
        self.outcomes.setdefault(entry.trigger_id, outcome)
        super().append(entry)


async def _lag_sampler(samples: list[tuple[float, float]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_TICK)
        samples.append((time.time(), loop.time() - before - LAG_TICK))


def _settle(mode: str, poll: float, max_poll: float) -> float:
    """Seconds from the waits' start to the steady window's at the earliest: for
    ``per_job_adaptive``, until a wait quiet since its start polls at ``max_poll_interval``
    (``client/poll_schedule.py``: the interval grows by ``GROWTH`` per quiet second), so that the
    window measures the schedule a long wait keeps, not its first minutes; 0 for the other modes."""
    from airflow_jobwait.client.poll_schedule import GROWTH

    if mode != "per_job_adaptive":
        return 0.0
    return (max_poll - poll) / GROWTH


def _workloads(spec: dict[str, Any]) -> list[Any]:
    from airflow.executors.workloads import RunTrigger
    from airflow.models.trigger import Trigger

    from airflow_jobwait.triggers import JobTrigger

    workloads = []
    kwargs: dict[str, Any]
    for n, job_id in enumerate(spec["job_ids"], start=1):
        if spec["mode"] == "bare":
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            classpath, kwargs = DateTimeTrigger(moment=datetime.now(UTC) + timedelta(days=1)).serialize()
        elif spec["mode"] == "http_sensor":
            classpath = "airflow.providers.http.triggers.http.HttpSensorTrigger"
            kwargs = {
                "endpoint": f"api/jobs/{job_id}/done",
                "http_conn_id": HTTP_CONN,
                "method": "GET",
                "poke_interval": spec["poll"],
            }
        elif spec["mode"] == "dataset_list":
            ref = {"dataset_id": spec["dataset_of"][n - 1], "job_type": DATASET_JOB_TYPE}
            trigger = JobTrigger(job_id, DATASETS_CONN, poll_interval=spec["poll"], job_kind="dataset", job_ref=ref)
            classpath, kwargs = trigger.serialize()
        else:
            max_poll = spec.get("max_poll") if spec["mode"] == "per_job_adaptive" else None
            trigger = JobTrigger(job_id, JOBS_CONN, poll_interval=spec["poll"], max_poll_interval=max_poll)
            classpath, kwargs = trigger.serialize()
        workloads.append(RunTrigger(id=n, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs)))
    return workloads


def _gc_pauses(pauses: list[tuple[float, int, float]]) -> None:
    """Record every garbage collection: (end time, generation, seconds), to tell GC pauses from
    the triggers' own work in the loop lag."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((time.time(), info["generation"], time.perf_counter() - started.pop()))

    gc.callbacks.append(callback)


def _first_contacted() -> int:
    """Waits whose job the history and dataset-list pollers have read once (in their window)."""
    from airflow_jobwait.client.coalesce import running_pollers
    from airflow_jobwait.client.coalesce_history import HistoryPoller

    return sum(len(p.windowed) for p in running_pollers() if isinstance(p, HistoryPoller))


def _listings() -> int:
    """Listing requests the history and dataset-list pollers have sent (their own counts)."""
    from airflow_jobwait.client.coalesce import running_pollers
    from airflow_jobwait.client.coalesce_datasets import DatasetListPoller
    from airflow_jobwait.client.coalesce_history import HistoryPoller

    return sum(
        p.list_requests if isinstance(p, DatasetListPoller) else p.history_requests
        for p in running_pollers()
        if isinstance(p, HistoryPoller)
    )


def _route_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    routes = set(before.get("requests", {})) | set(after.get("requests", {}))
    delta = {r: after.get("requests", {}).get(r, 0) - before.get("requests", {}).get(r, 0) for r in routes}
    return {route: count for route, count in sorted(delta.items()) if count}


async def _triggerer(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_jobwait.client.coalesce import running_pollers
    from airflow_jobwait.client.coalesce_datasets import DatasetListPoller  # noqa: F401 - imported before the RSS baseline

    n, poll, mode = len(spec["job_ids"]), spec["poll"], spec["mode"]
    runner = TriggerRunner()
    stamps: dict[int, float] = {}
    events = runner.events = _StampedEvents(stamps)
    lags: list[tuple[float, float]] = []
    sampler = asyncio.ensure_future(_lag_sampler(lags))
    pauses: list[tuple[float, int, float]] = []
    _gc_pauses(pauses)
    workloads = _workloads(spec)
    built = time.time()  # the waits' ``started`` (JobTrigger takes the clock when it is made)
    gc.collect()
    idle_cpu, idle_wall = time.process_time(), time.time()
    await asyncio.sleep(3.0)
    idle_cores = (time.process_time() - idle_cpu) / (time.time() - idle_wall)
    rss_before = rss_bytes()
    stats_start = await asyncio.to_thread(service_stats, spec["base_url"], mode)

    started = time.time()
    runner.to_create.extend(workloads)
    del workloads
    await runner.create_triggers()
    created = time.time()
    ramp_limit = time.time() + spec["ramp_limit"]
    if mode in ("watch", "batch"):
        while sum(p.waiting for p in running_pollers()) + len(stamps) < n and time.time() < ramp_limit:
            await asyncio.sleep(0.05)
    elif mode in REAL_MODES:
        # Registered is not enough: each wait's job is read once (first contact, rate-limited)
        # before the listings cover it. Those reads are the ramp.
        while _first_contacted() + len(stamps) < n and time.time() < ramp_limit:
            await asyncio.sleep(0.1)
    ramp_done = time.time()
    first_contacted = _first_contacted() if mode in REAL_MODES else None
    stats_ramp = await asyncio.to_thread(service_stats, spec["base_url"], mode)
    # What creating N triggers left behind (hundreds of thousands of objects) makes one full
    # collection due (~0.4 s at 10,000 waits); left to come when it will, it fell in the window or
    # in the first round of the ending, and put a one-off pause in a steady-state figure. It
    # happens here, before both; the collections of the steady state itself still count (the
    # window's below, the ending's in ``end_gc_*``).
    gc.collect()

    # Steady window: from a poll interval after the ramp (everyone has polled at least once), and
    # for adaptive polling once every wait's interval has grown to its maximum (_settle).
    window_start = max(ramp_done + poll, built + spec["settle"])
    window_end = window_start + spec["steady"]
    await asyncio.sleep(max(0.0, window_start - time.time()))
    stats_before = await asyncio.to_thread(service_stats, spec["base_url"], mode)
    listings_before = _listings()
    cpu_before, wall_before = time.process_time(), time.time()
    rss_peak = rss_bytes()
    while time.time() < window_end:
        await asyncio.sleep(min(1.0, max(0.0, window_end - time.time())))
        rss_peak = max(rss_peak, rss_bytes())
    cpu_after, wall_after = time.process_time(), time.time()
    listings = _listings() - listings_before
    stats_after = await asyncio.to_thread(service_stats, spec["base_url"], mode)
    window_lags = [lag for at, lag in lags if wall_before <= at <= wall_after]
    window_gc = [(gen, pause) for at, gen, pause in pauses if wall_before <= at <= wall_after]

    # Now the orchestrator ends the jobs; wait (bounded) for every trigger's event.
    end_start = time.time()
    Path(spec["phase_file"]).write_text(f"steady_done {end_start}")
    give_up = time.time() + spec["end_window"] + n / 2000 + 4 * poll + 60.0 + spec["end_extra"]
    while mode != "bare" and len(stamps) < n and time.time() < give_up:
        await asyncio.sleep(0.1)
    resolved = len(stamps)
    end_gc = [(gen, pause) for at, gen, pause in pauses if at >= end_start]
    # The sample's part of the ending: until the orchestrator ends the rest (a poll interval and a
    # second after the end window): a collection there delays the sample's next round.
    sample_end = end_start + spec["end_window"] + poll + 1.0
    sample_gc = [(gen, pause) for at, gen, pause in pauses if end_start <= at < sample_end]
    tasks = [details["task"] for details in runner.triggers.values() if "task" in details]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sampler.cancel()
    return {
        "n": n,
        "ramp_s": ramp_done - started,
        "create_s": created - started,
        "window_s": wall_after - wall_before,
        "cpu_s": cpu_after - cpu_before,
        "idle_cores": idle_cores,
        "rss_before": rss_before,
        "rss_added": rss_peak - rss_before,
        "lag_p50": percentile(window_lags, 50),
        "lag_p99": percentile(window_lags, 99),
        "lag_max": max(window_lags, default=None),
        "gc_full_collections": sum(1 for gen, _ in window_gc if gen == 2),
        "gc_max_pause": max((pause for _, pause in window_gc), default=0.0),
        # While the jobs ended (the detection sample's rounds among them).
        "end_gc_full_collections": sum(1 for gen, _ in end_gc if gen == 2),
        "end_gc_max_pause": max((pause for _, pause in end_gc), default=0.0),
        "sample_gc_full_collections": sum(1 for gen, _ in sample_gc if gen == 2),
        "sample_gc_max_pause": max((pause for _, pause in sample_gc), default=0.0),
        "requests": stats_after["total_requests"] - stats_before["total_requests"],
        "connections": None
        if stats_after["connections"] is None
        else stats_after["connections"] - stats_before["connections"],
        "routes": _route_delta(stats_before, stats_after),
        "ramp_requests": stats_ramp.get("seen", stats_ramp["total_requests"])
        - stats_start.get("seen", stats_start["total_requests"]),
        "ramp_routes": _route_delta(stats_start, stats_ramp),
        "first_contacted": first_contacted,
        "listings": listings if mode in REAL_MODES else None,
        "resolved": resolved,
        "event_at": {spec["job_ids"][tid - 1]: at for tid, at in stamps.items()},
        "event_outcome": {spec["job_ids"][tid - 1]: outcome for tid, outcome in events.outcomes.items()},
    }


def _log_as_a_trigger_runner(log_fd: int) -> None:
    """Log as a triggerer's trigger runner does (Airflow's ``_configure_logs_over_json_channel``):
    JSON lines to an unbuffered binary channel, a socket its supervisor reads in another process,
    secrets left to the reader to mask. ``run_scenario`` gives the child one end of a socket pair
    and a drain process the other (``_log_drain``).

    Two stand-ins measured more than Airflow pays. The console renderer of an interactive process
    costs each line twice as much (~45 us against ~22 us). A regular file as the channel costs a
    ``posix_fadvise(DONTNEED)`` over the whole file per line: Airflow builds a new logger for each
    line (``make_file_io_non_caching``), which on a socket fails at once but on a file of a few MB
    drops its cached pages (~0.1 ms a line, in the event loop, on a 2-core machine): each ended
    wait writes two lines, its outcome and Airflow's "Trigger fired event".
    """
    from airflow.sdk.log import configure_logging, reset_logging

    reset_logging()
    configure_logging(json_output=True, output=os.fdopen(log_fd, "wb", buffering=0), sending_to_supervisor=True)


def _log_drain(channel: socket.socket, path: Path) -> subprocess.Popen[bytes]:
    """A process that copies what the triggerer child logs over ``channel`` to ``path`` until the
    child closes its end, as Airflow's supervisor reads its runner's log socket in a process of
    its own (the child's event loop does not pay for the file)."""
    with open(path, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"],
            stdin=channel,
            stdout=out,
        )


def child_main(out_path: str) -> int:
    spec = json.loads(sys.stdin.readline())
    _log_as_a_trigger_runner(spec["log_fd"])
    result = asyncio.run(_triggerer(spec))
    Path(out_path).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------- the orchestrator


@dataclass
class Scenario:
    mode: str
    n: int
    result: dict[str, Any] | None = None
    latencies: list[float] | None = None
    error: str | None = None
    #: ``JobTrigger`` waits whose event carried the job's true terminal status (``None``: not checked).
    true_status: int | None = None
    #: Listing requests the mode's pollers should send per interval (``REAL_MODES``).
    expected_listings: int | None = None


async def _send_all(
    base_url: str, calls: list[tuple[str, str, Any]], headers: dict[str, str], concurrency: int = 16
) -> list[Any]:
    """Send ``(method, path, json body)`` calls, ``concurrency`` at once; answers their JSON replies.

    A 429 (the real profile's rate limit, answered before the request is handled) is sent again
    after its ``Retry-After``; any other error status raises.
    """
    import aiohttp

    replies: list[Any] = [None] * len(calls)
    queue = collections.deque(range(len(calls)))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            index = queue.popleft()
            method, path, body = calls[index]
            while True:
                async with session.request(method, base_url + path, json=body, headers=headers) as resp:
                    if resp.status == 429:
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    resp.raise_for_status()
                    replies[index] = await resp.json()
                    break

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return replies


async def _submit(base_url: str, count: int, concurrency: int = 16) -> list[str]:
    """Submit ``count`` echo jobs that would run for an hour: the benchmark ends them itself."""
    body = {
        "model": {"identifier": "echo", "version": "1.0"},
        "input": {"type": "text", "sources": {"a": {"input.txt": "x"}}},
        "test": {"duration_s": 3600},
    }
    headers = {"Authorization": f"ApiKey {API_KEY}"}
    replies = await _send_all(base_url, [("POST", "/api/jobs", body)] * count, headers, concurrency)
    return [reply["jobIdentifier"] for reply in replies]


async def _submit_dataset_jobs(base_url: str, count: int, concurrency: int = 16) -> tuple[list[str], list[str]]:
    """Clone ``DATASETS`` datasets (test control) and create ``count`` squashAndMerge jobs over them,
    in turn, each queuing for ``DATASET_JOB_S``; answers the job ids and each job's dataset."""
    headers = {"X-Token": API_KEY}
    clones = [("POST", f"{TENSORBAY_ROOT}/_test/datasets", {"from": "demo-dataset"})] * DATASETS
    datasets = [reply["datasetId"] for reply in await _send_all(base_url, clones, headers, 4)]
    dataset_of = [datasets[index % DATASETS] for index in range(count)]
    calls = []
    for index, dataset_id in enumerate(dataset_of):
        title = f"bench {index}"
        arguments = {"title": title, "sourceBranchName": "feature", "targetBranchName": "main"}
        body = {
            "title": title,
            "jobType": DATASET_JOB_TYPE,
            "arguments": arguments,
            "test": {"queuing_s": DATASET_JOB_S, "processing_s": DATASET_JOB_S},
        }
        calls.append(("POST", f"{TENSORBAY_ROOT}/datasets/{dataset_id}/jobs", body))
    replies = await _send_all(base_url, calls, headers, concurrency)
    return [reply["jobId"] for reply in replies], dataset_of


def _readers(mode: str, n: int, dataset_of: Sequence[str] | None = None) -> list[Sequence[int]]:
    """The jobs (list indexes) that each of the mode's listing requests reads, each at a phase of
    its own: a batch status request per 500 jobs in turn (``batch``, ``watch``), a dataset's job
    list (``dataset_list``: the jobs of each dataset of ``dataset_of``); one history page for all
    (``history``); per-job modes: one group (each wait polls at its own phase).

    :param dataset_of: Each job's dataset (``_submit_dataset_jobs``), for ``dataset_list``.
    """
    from airflow_jobwait.client.inference import MAX_BATCH

    if mode == "dataset_list":
        if dataset_of is None or len(dataset_of) != n:
            raise ValueError(f"dataset_list: dataset_of must name the dataset of each of the {n} jobs")
        by_dataset: dict[str, list[int]] = {}
        for index, dataset in enumerate(dataset_of):
            by_dataset.setdefault(dataset, []).append(index)
        return list(by_dataset.values())
    if mode in ("batch", "watch"):
        return [range(start, min(n, start + MAX_BATCH)) for start in range(0, n, MAX_BATCH)]
    return [range(n)]


def _sample(n: int, readers: list[Sequence[int]], periods: int = 1) -> list[int]:
    """Indexes of the latency sample, in the order the jobs end (``_end_times`` gives the r-th its
    time): the r-th is a job read by one of ``readers`` in turn, picked at random among its jobs
    (seeded: every run ends the same jobs).

    A job's detection latency is the time from its end to the next read of its job (its batch,
    the history page, its dataset's list page: each request of a round is read at a phase of its
    own), plus what follows. The end times fall on every phase of the poll interval 25 ms apart
    (``_end_times``), which pins the median only if each reader's share of the sample is spread
    over the phases too: taken in turn, a reader's jobs end one in every 1/share of the interval,
    and the turns shift by ``len(readers) / periods`` each interval so that its jobs of the next
    interval end between those of the last. At random within a reader, a job's end phase says
    nothing of its place (the page of its dataset's list). An evenly strided sample ended in list
    order put all 200 job-list samples in one dataset of ten, their end phase rising with their
    page (+-100 ms a run); a plain random sample left each dataset's share at random phases
    (+-100 ms a seed).

    :param readers: ``_readers``: the jobs each request reads.
    :param periods: Poll intervals the sample ends over (``_periods``).
    """
    count = min(n, LATENCY_SAMPLE)
    rng = random.Random(SAMPLE_SEED)
    if any(len(jobs) < -(-count // len(readers)) for jobs in readers):
        readers = [range(n)]  # a reader too small for its turns (a short last batch): no turns
    groups = len(readers)
    turns = [(rank + (rank * periods // count) * groups // periods) % groups for rank in range(count)]
    # Per reader, as many distinct jobs as the ranks it takes, in random order.
    picks = [iter(rng.sample(jobs, turns.count(group))) for group, jobs in enumerate(readers)]
    return [next(picks[group]) for group in turns]


def _periods(window: float, poll: float) -> int:
    """Poll intervals the sample's ends span (at least one): ``_end_times`` shifts each interval's
    ends by a fraction of the spacing, ``_sample`` the readers' turns."""
    return max(1, round(window / poll))


def _end_times(count: int, window: float, poll: float) -> list[float]:
    """When each of ``count`` sampled jobs ends (seconds from the start), evenly over ``window``,
    the jobs of each poll interval shifted by a fraction of the spacing so that together their
    times fall on every phase of the poll interval, ``poll / count`` apart.

    A job's detection latency is the time to the next poll, plus the round's own: 200 jobs 50 ms
    apart over two 5 s intervals fall on the same 100 phases twice, so the median carried where
    the rounds happened to fall in a 50 ms step (+-25 ms a run); shifting the second interval's by
    25 ms halves that. The load is unchanged: as many jobs end in each interval.
    """
    spacing = window / count
    periods = _periods(window, poll)
    times = []
    for rank in range(count):
        at = rank * spacing
        times.append(at + (int(at // poll) % periods) * spacing / periods)
    return times


def _end_in_two_parts(
    job_ids: list[str],
    picked: list[int],
    window: float,
    poll: float,
    end_one: Callable[[int, str], None],
    end_rest: Callable[[list[str]], None],
) -> None:
    """End the sample one by one over ``window`` seconds (``_end_times``), then (a poll interval
    later, so the sample's events are not queued behind theirs) the rest."""
    start = time.time()
    for rank, (index, at) in enumerate(zip(picked, _end_times(len(picked), window, poll), strict=True)):
        time.sleep(max(0.0, start + at - time.time()))
        end_one(rank, job_ids[index])
    chosen = set(picked)
    rest = [job_id for index, job_id in enumerate(job_ids) if index not in chosen]
    time.sleep(max(0.0, start + window + poll + 1.0 - time.time()))
    end_rest(rest)


def _end_jobs(
    base_url: str,
    job_ids: list[str],
    picked: list[int],
    window: float,
    poll: float,
    statuses: tuple[str, ...] = ("COMPLETED",),
) -> None:
    """End inference jobs with the finish control (500 per request), in ``statuses`` in turn."""
    import requests

    with requests.Session() as session:
        session.headers["Authorization"] = f"ApiKey {API_KEY}"

        def finish(ids: list[str], status: str) -> None:
            body = {"identifiers": ids, "status": status}
            resp = session.post(f"{base_url}/api/_test/finish", json=body, timeout=60)
            resp.raise_for_status()

        def rest(ids: list[str]) -> None:
            for turn, status in enumerate(statuses):
                group = ids[turn :: len(statuses)]
                for offset in range(0, len(group), 500):
                    finish(group[offset : offset + 500], status)

        _end_in_two_parts(
            job_ids, picked, window, poll, lambda rank, job_id: finish([job_id], statuses[rank % len(statuses)]), rest
        )


def _abort_dataset_jobs(
    base_url: str, job_ids: list[str], dataset_of: list[str], picked: list[int], window: float, poll: float
) -> None:
    """End dataset jobs with TensorBay's ``abort`` (no test control ends them)."""
    import requests

    dataset = dict(zip(job_ids, dataset_of, strict=True))
    headers = {"X-Token": API_KEY}

    def path(job_id: str) -> str:
        return f"{TENSORBAY_ROOT}/datasets/{dataset[job_id]}/jobs/{job_id}/abort?jobType={DATASET_JOB_TYPE}"

    with requests.Session() as session:
        session.headers.update(headers)

        def one(rank: int, job_id: str) -> None:
            while True:
                resp = session.post(base_url + path(job_id), timeout=60)
                if resp.status_code != 429:
                    resp.raise_for_status()
                    return
                time.sleep(float(resp.headers.get("Retry-After", "1")))

        def rest(ids: list[str]) -> None:
            asyncio.run(_send_all(base_url, [("POST", path(job_id), None) for job_id in ids], headers))

        _end_in_two_parts(job_ids, picked, window, poll, one, rest)


def _job_rows(db_path: Path, mode: str, job_ids: list[str]) -> dict[str, tuple[float | None, str]]:
    """``(finished_at, status)`` of each job, from the service database: inference jobs in
    ``inference_jobs``, dataset jobs in ``tb_jobs`` (``finished_at`` in float seconds in both)."""
    query = (
        "SELECT job_id, finished_at, status FROM tb_jobs WHERE job_id IN ({})"
        if mode == "dataset_list"
        else "SELECT id, finished_at, status FROM inference_jobs WHERE id IN ({})"
    )
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        found: dict[str, tuple[float | None, str]] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            rows = conn.execute(query.format(",".join("?" * len(chunk))), chunk)
            found.update({row[0]: (row[1], row[2]) for row in rows})
        return found
    finally:
        conn.close()


def _true_status(mode: str, rows: dict[str, tuple[float | None, str]], outcomes: dict[str, str | None]) -> int:
    """Waits whose event said ``terminal`` with the common status of the job's native one."""
    from airflow_jobwait.models.native_statuses import MODZY, TENSORBAY

    table = TENSORBAY if mode == "dataset_list" else MODZY
    return sum(
        1
        for job_id, (_, native) in rows.items()
        if outcomes.get(job_id) == f"terminal:{table.to_common(native, job_id).value}"
    )


def _expected_listings(mode: str, dataset_of: list[str] | None) -> int | None:
    """Listing requests per interval while no job ends: one history page; one list page per 128
    jobs of each dataset (its list is read newest first, unfiltered, back to the oldest waited job)."""
    if mode == "history":
        return 1
    if mode == "dataset_list" and dataset_of is not None:
        return sum(math.ceil(count / TENSORBAY_PAGE) for count in collections.Counter(dataset_of).values())
    return None


def _child_env(base_url: str, mode: str, home: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            f"AIRFLOW_CONN_{JOBS_CONN.upper()}": json.dumps(
                {
                    "conn_type": "modzy",
                    "host": base_url,
                    "password": API_KEY,
                    "extra": {"status_mode": STATUS_MODE.get(mode, "auto")},
                }
            ),
            # TensorBay's API lives at the same base URL on the reference service (both profiles).
            f"AIRFLOW_CONN_{DATASETS_CONN.upper()}": json.dumps(
                {
                    "conn_type": "tensorbay",
                    "host": base_url,
                    "password": API_KEY,
                    "extra": {"status_mode": STATUS_MODE.get(mode, "auto")},
                }
            ),
            # HttpSensorTrigger's hook sends the connection's extra as request headers.
            f"AIRFLOW_CONN_{HTTP_CONN.upper()}": json.dumps(
                {"conn_type": "http", "host": base_url, "extra": {"Authorization": f"ApiKey {API_KEY}"}}
            ),
        }
    )
    return env


def _rate_bound(scenario: Scenario, rate_limit: float | None) -> float:
    """Seconds the real profile's rate limit may add to a phase of N requests (ramp: N first-contact
    reads; end: N aborts, or N lone reads after a capped history), with a margin."""
    if scenario.mode not in REAL_MODES or rate_limit is None:
        return 0.0
    return 1.5 * scenario.n / rate_limit


def run_scenario(
    service: Any, scenario: Scenario, args: argparse.Namespace, workdir: Path, rate_limit: float | None = None
) -> None:
    n, poll = scenario.n, args.poll
    out = workdir / f"{scenario.mode}-{n}.json"
    log = open(workdir / f"{scenario.mode}-{n}.log", "wb")  # noqa: SIM115 - handed to the child
    channel, child_end = socket.socketpair()
    drain = _log_drain(channel, workdir / f"{scenario.mode}-{n}.jsonl")
    channel.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.triggerer_scale", "--child", str(out)],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_child_env(service.base_url, scenario.mode, workdir / f"home-{scenario.mode}-{n}"),
        cwd=Path(__file__).resolve().parents[1],
        pass_fds=(child_end.fileno(),),
    )
    log_fd = child_end.fileno()  # the same number in the child (pass_fds)
    child_end.close()
    log.close()
    phase = workdir / f"{scenario.mode}-{n}.phase"
    extra = _rate_bound(scenario, rate_limit)
    ramp_limit = 120.0 + extra
    try:
        # The child boots (imports Airflow) while the jobs are submitted.
        dataset_of: list[str] | None = None
        if scenario.mode == "dataset_list":
            job_ids, dataset_of = asyncio.run(_submit_dataset_jobs(service.base_url, n))
        else:
            job_ids = asyncio.run(_submit(service.base_url, n))
        scenario.expected_listings = _expected_listings(scenario.mode, dataset_of)
        picked = _sample(n, _readers(scenario.mode, n, dataset_of), _periods(args.end_window, poll))
        spec = {
            "mode": scenario.mode,
            "poll": poll,
            "max_poll": args.max_poll,
            "job_ids": job_ids,
            "dataset_of": dataset_of,
            "base_url": service.base_url,
            "steady": args.steady,
            "settle": _settle(scenario.mode, poll, args.max_poll),
            "end_window": args.end_window,
            "phase_file": str(phase),
            "log_fd": log_fd,
            "ramp_limit": ramp_limit,
            "end_extra": extra,
        }
        assert child.stdin is not None
        child.stdin.write((json.dumps(spec) + "\n").encode())
        child.stdin.close()
        # Ramp (bounded by the child) + a poll interval + the steady window.
        limit = time.time() + max(ramp_limit + poll, spec["settle"]) + 60.0 + args.steady
        while not phase.exists():
            if child.poll() is not None or time.time() > limit:
                raise RuntimeError("the triggerer process did not reach the end of its steady window")
            time.sleep(0.05)
        if dataset_of is not None:
            _abort_dataset_jobs(service.base_url, job_ids, dataset_of, picked, args.end_window, poll)
        elif scenario.mode != "bare":  # a bare trigger waits on nothing: no job to end
            statuses = END_STATUSES.get(scenario.mode, ("COMPLETED",))
            _end_jobs(service.base_url, job_ids, picked, args.end_window, poll, statuses)
        child.wait(timeout=args.end_window + n / 2000 + 3 * poll + 120.0 + extra)
        if child.returncode != 0:
            raise RuntimeError(f"triggerer process exited {child.returncode}; see {workdir}")
        result = json.loads(out.read_text())
        rows = _job_rows(service.db_path, scenario.mode, job_ids)
        finished = {job_id: at for job_id, (at, _) in rows.items() if at is not None}
        scenario.latencies = [
            result["event_at"][job_id] - finished[job_id]
            for job_id in (job_ids[i] for i in picked)
            if job_id in finished and job_id in result["event_at"]
        ]
        if scenario.mode not in ("http_sensor", "bare"):
            scenario.true_status = _true_status(scenario.mode, rows, result["event_outcome"])
        result.pop("event_at")
        result.pop("event_outcome")
        scenario.result = result
    except Exception as err:
        tail = (workdir / f"{scenario.mode}-{n}.log").read_text(errors="replace").splitlines()[-15:]
        scenario.error = f"{type(err).__name__}: {err}"
        print("\n".join(tail), file=sys.stderr)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        try:
            drain.wait(timeout=60.0)  # ends as the child's end of the channel closes
        except subprocess.TimeoutExpired:
            drain.kill()
            drain.wait()


# ---------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def metrics(scenario: Scenario, poll: float) -> dict[str, float | None]:
    r = scenario.result
    assert r is not None
    wait_polls = r["n"] * r["window_s"] / poll
    lat = scenario.latencies or []
    net_cpu_s = max(0.0, r["cpu_s"] - r["idle_cores"] * r["window_s"])
    return {
        "cpu_ms_per_wait_poll": 1000 * net_cpu_s / wait_polls,
        "cores": r["cpu_s"] / r["window_s"],
        "rss_kib_per_wait": r["rss_added"] / 1024 / r["n"],
        "rss_mb_added": r["rss_added"] / 1e6,
        "lag_p50_ms": None if r["lag_p50"] is None else 1000 * r["lag_p50"],
        "lag_p99_ms": None if r["lag_p99"] is None else 1000 * r["lag_p99"],
        "req_per_s": r["requests"] / r["window_s"],
        "req_per_interval_per_100": r["requests"] / (r["window_s"] / poll) / (r["n"] / 100),
        "new_conns_per_wait_poll": None if r["connections"] is None else r["connections"] / wait_polls,
        "new_conns": r["connections"],
        "detect_p50_ms": None if not lat else 1000 * statistics.median(lat),
        "detect_p99_ms": None if not lat else 1000 * (percentile(lat, 99) or 0.0),
    }


def report(scenarios: list[Scenario], poll: float, max_poll: float | None = None) -> str:
    adaptive = f" (per_job_adaptive: up to {max_poll:g} s)" if max_poll is not None else ""
    lines = [
        f"poll interval {poll:g} s{adaptive}; steady-state figures over the window shown (cores: the whole triggerer "
        f"process; CPU per wait-poll: net of the idle process); detection latency over up to "
        f"{LATENCY_SAMPLE} jobs ending spread over the end window",
        "",
        "| N | mode | window s | CPU ms/wait-poll | cores | RSS added MB | RSS KiB/wait | loop lag p50 ms | "
        "loop lag p99 ms | req/s | req/interval/100 waits | new TCP conns (per wait-poll) | detect p50 ms | "
        "detect p99 ms | resolved |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table: dict[tuple[int, str], dict[str, float | None]] = {}
    for s in scenarios:
        if s.result is None:
            lines.append(f"| {s.n} | {s.mode} | failed: {s.error} |" + " |" * 12)
            continue
        m = table[(s.n, s.mode)] = metrics(s, poll)
        r = s.result
        conns = "-" if m["new_conns"] is None else f"{m['new_conns']:.0f} ({_fmt(m['new_conns_per_wait_poll'], 2)})"
        wrong = (
            ""
            if s.true_status is None or s.true_status == r["resolved"]
            else f" ({r['resolved'] - s.true_status:,} wrong status)"
        )
        resolved = "- (never fires)" if s.mode == "bare" else f"{r['resolved']:,}/{s.n:,}"
        lines.append(
            f"| {s.n:,} | {s.mode} | {r['window_s']:.0f} | {_fmt(m['cpu_ms_per_wait_poll'], 3)} | "
            f"{_fmt(m['cores'], 3)} | {_fmt(m['rss_mb_added'], 1)} | {_fmt(m['rss_kib_per_wait'], 1)} | "
            f"{_fmt(m['lag_p50_ms'], 1)} | {_fmt(m['lag_p99_ms'], 1)} | {_fmt(m['req_per_s'], 1)} | "
            f"{_fmt(m['req_per_interval_per_100'], 2)} | "
            f"{conns} | {_fmt(m['detect_p50_ms'], 0)} | {_fmt(m['detect_p99_ms'], 0)} | "
            f"{resolved}{wrong} |"
        )
    real = [s for s in scenarios if s.mode in REAL_MODES and s.result is not None]
    if real:
        lines += [
            "",
            "Real profile: ramp = creating the triggers + every wait's first-contact read (rate-limited; "
            "ramp requests: all the service saw, 429 answers included); "
            "listings = the pollers' own count of history pages (history) or job-list pages (dataset_list) "
            "in the steady window, per poll interval, against the expected one page per interval (history) "
            f"or per {TENSORBAY_PAGE} waits of each dataset (dataset_list); true status = events whose "
            "status is the job's in the service database",
            "",
            "| N | mode | ramp s | of which creating s | first contacts | ramp requests | listings/interval | "
            "expected | other requests in window | true status |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in real:
            assert s.result is not None
            r = s.result
            intervals = r["window_s"] / poll
            other = r["requests"] - (r["listings"] or 0)
            lines.append(
                f"| {s.n:,} | {s.mode} | {r['ramp_s']:.1f} | {r['create_s']:.1f} | "
                f"{r['first_contacted'] or 0:,}/{s.n:,} | "
                f"{r['ramp_requests']:,} | {_fmt((r['listings'] or 0) / intervals, 2)} | "
                f"{s.expected_listings if s.expected_listings is not None else '-'} | {other:,} | "
                f"{s.true_status if s.true_status is not None else 0:,}/{s.n:,} |"
            )
    lines += [
        "",
        "Ratios, peer / this project (higher is better for this project):",
        "",
        "| N | peer | vs | CPU per wait-poll | cores | RSS per wait | loop lag p99 | req/s |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]

    def ratio(a: float | None, b: float | None) -> str:
        if a is None or b is None or b <= 0:
            return "-"
        return f"{a / b:.1f}x"

    for (n, peer), pm in sorted(table.items()):
        if peer not in PEERS:
            continue
        for ours in OURS:
            om = table.get((n, ours))
            if om is None:
                continue
            lines.append(
                f"| {n:,} | {peer} | {ours} | {ratio(pm['cpu_ms_per_wait_poll'], om['cpu_ms_per_wait_poll'])} | "
                f"{ratio(pm['cores'], om['cores'])} | {ratio(pm['rss_kib_per_wait'], om['rss_kib_per_wait'])} | "
                f"{ratio(pm['lag_p99_ms'], om['lag_p99_ms'])} | {ratio(pm['req_per_s'], om['req_per_s'])} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triggerer_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {', '.join(MODES + EXTRA_MODES)}")
    parser.add_argument("--peer-max", type=int, default=1000, help="largest N the peers run at (default 1000)")
    parser.add_argument("--poll", type=float, default=5.0, help="poll interval, seconds (default 5)")
    parser.add_argument(
        "--max-poll",
        type=float,
        default=None,
        help="max_poll_interval of the per_job_adaptive mode, seconds (default 4x --poll)",
    )
    parser.add_argument(
        "--steady",
        type=float,
        default=60.0,
        # Each wait logs a progress line every progress_interval (60 s by default), and the waits
        # started within seconds of each other: a shorter window catches every wait's line or none
        # (a 20 s window put 0.3 ms per wait of log rendering in, or left it out; README).
        help="steady-state window, seconds (default 60: one JobTrigger progress_interval)",
    )
    parser.add_argument(
        "--end-window",
        type=float,
        default=END_WINDOW,
        help=f"sampled jobs end over this many seconds (default {END_WINDOW:g})",
    )
    parser.add_argument("--max-seconds", type=float, default=900.0, help="skip scenarios that would start later")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="requests per second per key of the real-profile service (history, dataset_list); default: the "
        "profile's own (200)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    from jobwait_reference_service.process import ServiceProcess

    began = time.monotonic()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    from airflow_jobwait.client.poll_schedule import check_max_poll_interval

    try:
        check_max_poll_interval(args.max_poll, args.poll)
    except ValueError as err:
        raise SystemExit(f"--max-poll: {err}") from None
    if args.max_poll is None:  # resolved once: the scenarios, their settling and the report use it
        args.max_poll = 4 * args.poll
    unknown = set(modes) - set(MODES + EXTRA_MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES + EXTRA_MODES)}")
    if args.rate_limit is not None and not args.rate_limit > 0:
        raise SystemExit("--rate-limit must be a positive number of requests per second")
    scenarios = [Scenario(m, n) for n in sizes for m in modes if m not in PEERS or n <= args.peer_max]
    from jobwait_reference_service.config import REAL_RATE_LIMITS

    rate_limit = args.rate_limit if args.rate_limit is not None else REAL_RATE_LIMITS["real"]
    with tempfile.TemporaryDirectory(prefix="jobwait-bench-") as tmp, contextlib.ExitStack() as stack:
        services: dict[str, Any] = {}

        def service_for(mode: str) -> Any:
            """The ``ext`` service, or (``REAL_MODES``) the ``real`` one; each started on first use."""
            profile = "real" if mode in REAL_MODES else "ext"
            if profile not in services:
                services[profile] = stack.enter_context(
                    ServiceProcess(
                        api_key=API_KEY,
                        test_controls=True,
                        db_path=Path(tmp) / f"jobs-{profile}.sqlite",
                        profile=profile,
                        rate_limit=rate_limit if profile == "real" else None,
                    )
                )
            return services[profile]

        for scenario in scenarios:
            if time.monotonic() - began > args.max_seconds:
                scenario.error = f"skipped: --max-seconds {args.max_seconds:g} reached"
                continue
            elapsed = time.monotonic() - began
            print(f"[{elapsed:5.0f}s] {scenario.mode} N={scenario.n:,} ...", file=sys.stderr, flush=True)
            run_scenario(service_for(scenario.mode), scenario, args, Path(tmp), rate_limit)
            if scenario.error:
                print(f"    {scenario.error}", file=sys.stderr, flush=True)
        print(f"[{time.monotonic() - began:5.0f}s] done", file=sys.stderr, flush=True)
    adaptive = any(s.mode == "per_job_adaptive" for s in scenarios)
    text = report(scenarios, args.poll, args.max_poll if adaptive else None)
    print(text)
    if args.json:
        raw = [
            {
                "mode": s.mode,
                "n": s.n,
                "result": s.result,
                "error": s.error,
                "latencies": s.latencies,
                "true_status": s.true_status,
                "expected_listings": s.expected_listings,
                "metrics": metrics(s, args.poll) if s.result else None,
            }
            for s in scenarios
        ]
        Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
