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
  Not in the default modes; its "wait-poll" is a nominal poll interval per wait;
- ``http_sensor``: ``HttpSensorTrigger`` (apache-airflow-providers-http) polling the service's [ext]
  ``GET /api/jobs/{id}/done``, which answers 404 until the job is terminal.

Each scenario: submit N long jobs; start the triggers; once every wait is up, measure a *steady*
window (no job changes); then end the jobs through the service's test control
``POST /api/_test/finish``: a sample of up to 200 one by one, spread evenly over ``--end-window``
seconds (for detection latency), then, a poll interval later, the rest at once, 500 per request.

Measured in the triggerer process over the steady window: CPU (``time.process_time``) per
wait-poll and in cores, RSS added per wait (``/proc/self/status``, against the RSS before the
triggers were created), event-loop lag (a coroutine sleeping 50 ms and noting how late it wakes). CPU per
wait-poll is net of the idle process (the lag sampler included), measured for 3 s before the
triggers are created;
by the service (``/api/_test/stats``): requests per second and TCP connections opened (distinct
client ports); per sampled job: detection latency from its ``finished_at`` in the service database
to the moment ``run_trigger`` queued the trigger's event. Every wait, every child process and the
whole run are bounded (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_KEY = "benchpub.bench-secret-not-for-production"
JOBS_CONN = "bench_jobs"
HTTP_CONN = "bench_http"
MODES = ("http_sensor", "per_job", "batch", "watch")
#: Runs only when asked for (``--modes``): per-job polling on the adaptive schedule.
EXTRA_MODES = ("per_job_adaptive",)
PEERS = ("http_sensor", "per_job", "per_job_adaptive")
STATUS_MODE = {"watch": "auto", "batch": "batch", "per_job": "per_job", "per_job_adaptive": "per_job"}
LATENCY_SAMPLE = 200
LAG_TICK = 0.05


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


def service_stats(base_url: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base_url}/api/_test/stats", headers={"Authorization": f"ApiKey {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        result: dict[str, Any] = json.load(resp)
        return result


# ---------------------------------------------------------------- the triggerer process


class _StampedEvents(collections.deque):  # type: ignore[type-arg]
    """``TriggerRunner.events`` that notes when each trigger's event was queued."""

    def __init__(self, stamps: dict[int, float]) -> None:
        super().__init__()
        self.stamps = stamps

    def append(self, entry: Any) -> None:
        self.stamps.setdefault(entry.trigger_id, time.time())
        super().append(entry)


async def _lag_sampler(samples: list[tuple[float, float]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_TICK)
        samples.append((time.time(), loop.time() - before - LAG_TICK))


def _workloads(spec: dict[str, Any]) -> list[Any]:
    from airflow.executors.workloads import RunTrigger
    from airflow.models.trigger import Trigger

    from airflow_jobwait.triggers import JobTrigger

    workloads = []
    for n, job_id in enumerate(spec["job_ids"], start=1):
        if spec["mode"] == "http_sensor":
            classpath = "airflow.providers.http.triggers.http.HttpSensorTrigger"
            kwargs: dict[str, Any] = {
                "endpoint": f"api/jobs/{job_id}/done",
                "http_conn_id": HTTP_CONN,
                "method": "GET",
                "poke_interval": spec["poll"],
            }
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


async def _triggerer(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_jobwait.client.coalesce import running_pollers

    n, poll = len(spec["job_ids"]), spec["poll"]
    runner = TriggerRunner()
    stamps: dict[int, float] = {}
    runner.events = _StampedEvents(stamps)
    lags: list[tuple[float, float]] = []
    sampler = asyncio.ensure_future(_lag_sampler(lags))
    pauses: list[tuple[float, int, float]] = []
    _gc_pauses(pauses)
    workloads = _workloads(spec)
    gc.collect()
    idle_cpu, idle_wall = time.process_time(), time.time()
    await asyncio.sleep(3.0)
    idle_cores = (time.process_time() - idle_cpu) / (time.time() - idle_wall)
    rss_before = rss_bytes()

    started = time.time()
    runner.to_create.extend(workloads)
    del workloads
    await runner.create_triggers()
    created = time.time()
    if spec["mode"] in ("watch", "batch"):
        ramp_limit = time.time() + 120.0
        while sum(p.waiting for p in running_pollers()) + len(stamps) < n and time.time() < ramp_limit:
            await asyncio.sleep(0.05)
    ramp_done = time.time()

    # Steady window: from a poll interval after the ramp (everyone has polled at least once).
    window_start = ramp_done + poll
    window_end = window_start + spec["steady"]
    await asyncio.sleep(max(0.0, window_start - time.time()))
    stats_before = await asyncio.to_thread(service_stats, spec["base_url"])
    cpu_before, wall_before = time.process_time(), time.time()
    rss_peak = rss_bytes()
    while time.time() < window_end:
        await asyncio.sleep(min(1.0, max(0.0, window_end - time.time())))
        rss_peak = max(rss_peak, rss_bytes())
    cpu_after, wall_after = time.process_time(), time.time()
    stats_after = await asyncio.to_thread(service_stats, spec["base_url"])
    window_lags = [lag for at, lag in lags if wall_before <= at <= wall_after]
    window_gc = [(gen, pause) for at, gen, pause in pauses if wall_before <= at <= wall_after]

    # Now the orchestrator ends the jobs; wait (bounded) for every trigger's event.
    Path(spec["phase_file"]).write_text(f"steady_done {time.time()}")
    give_up = time.time() + spec["end_window"] + n / 2000 + 4 * poll + 60.0
    while len(stamps) < n and time.time() < give_up:
        await asyncio.sleep(0.1)
    resolved = len(stamps)
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
        "requests": stats_after["total_requests"] - stats_before["total_requests"],
        "connections": stats_after["connections"] - stats_before["connections"],
        "resolved": resolved,
        "event_at": {spec["job_ids"][tid - 1]: at for tid, at in stamps.items()},
    }


def child_main(out_path: str) -> int:
    spec = json.loads(sys.stdin.readline())
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


async def _submit(base_url: str, count: int, concurrency: int = 16) -> list[str]:
    """Submit ``count`` echo jobs that would run for an hour: the benchmark ends them itself."""
    import aiohttp

    ids: list[str] = [""] * count
    headers = {"Authorization": f"ApiKey {API_KEY}"}
    queue = collections.deque(range(count))
    body = {
        "model": {"identifier": "echo", "version": "1.0"},
        "input": {"type": "text", "sources": {"a": {"input.txt": "x"}}},
        "test": {"duration_s": 3600},
    }

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            index = queue.popleft()
            async with session.post(f"{base_url}/api/jobs", json=body, headers=headers) as resp:
                resp.raise_for_status()
                ids[index] = (await resp.json())["jobIdentifier"]

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ids


def _sample(n: int) -> list[int]:
    """Indexes of the latency sample, spread over the list (so over batches and watches too)."""
    sample = min(n, LATENCY_SAMPLE)
    return sorted({int(i * n / sample) for i in range(sample)})


def _end_jobs(base_url: str, job_ids: list[str], picked: list[int], window: float, poll: float) -> None:
    """End the sample one by one, evenly over ``window`` seconds, then (a poll interval later, so the
    sample's events are not queued behind theirs) the rest, 500 at a time."""
    import requests

    with requests.Session() as session:
        session.headers["Authorization"] = f"ApiKey {API_KEY}"

        def finish(ids: list[str]) -> None:
            resp = session.post(f"{base_url}/api/_test/finish", json={"identifiers": ids}, timeout=60)
            resp.raise_for_status()

        start = time.time()
        for rank, index in enumerate(picked):
            time.sleep(max(0.0, start + window * rank / len(picked) - time.time()))
            finish([job_ids[index]])
        chosen = set(picked)
        rest = [job_id for index, job_id in enumerate(job_ids) if index not in chosen]
        time.sleep(max(0.0, start + window + poll + 1.0 - time.time()))
        for offset in range(0, len(rest), 500):
            finish(rest[offset : offset + 500])


def _finished_at(db_path: Path, job_ids: list[str]) -> dict[str, float]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        found: dict[str, float] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            rows = conn.execute(
                f"SELECT id, finished_at FROM inference_jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update({row[0]: row[1] for row in rows if row[1] is not None})
        return found
    finally:
        conn.close()


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
            # HttpSensorTrigger's hook sends the connection's extra as request headers.
            f"AIRFLOW_CONN_{HTTP_CONN.upper()}": json.dumps(
                {"conn_type": "http", "host": base_url, "extra": {"Authorization": f"ApiKey {API_KEY}"}}
            ),
        }
    )
    return env


def run_scenario(service: Any, scenario: Scenario, args: argparse.Namespace, workdir: Path) -> None:
    n, poll = scenario.n, args.poll
    out = workdir / f"{scenario.mode}-{n}.json"
    log = open(workdir / f"{scenario.mode}-{n}.log", "wb")  # noqa: SIM115 - handed to the child
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.triggerer_scale", "--child", str(out)],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_child_env(service.base_url, scenario.mode, workdir / f"home-{scenario.mode}-{n}"),
        cwd=Path(__file__).resolve().parents[1],
    )
    log.close()
    phase = workdir / f"{scenario.mode}-{n}.phase"
    try:
        # The child boots (imports Airflow) while the jobs are submitted.
        job_ids = asyncio.run(_submit(service.base_url, n))
        picked = _sample(n)
        spec = {
            "mode": scenario.mode,
            "poll": poll,
            "max_poll": args.max_poll if args.max_poll is not None else 4 * poll,
            "job_ids": job_ids,
            "base_url": service.base_url,
            "steady": args.steady,
            "end_window": args.end_window,
            "phase_file": str(phase),
        }
        assert child.stdin is not None
        child.stdin.write((json.dumps(spec) + "\n").encode())
        child.stdin.close()
        # Ramp (bounded by the child at 120 s) + a poll interval + the steady window.
        limit = time.time() + 180.0 + poll + args.steady
        while not phase.exists():
            if child.poll() is not None or time.time() > limit:
                raise RuntimeError("the triggerer process did not reach the end of its steady window")
            time.sleep(0.05)
        _end_jobs(service.base_url, job_ids, picked, args.end_window, poll)
        child.wait(timeout=args.end_window + n / 2000 + 3 * poll + 120.0)
        if child.returncode != 0:
            raise RuntimeError(f"triggerer process exited {child.returncode}; see {workdir}")
        result = json.loads(out.read_text())
        finished = _finished_at(service.db_path, [job_ids[i] for i in picked])
        scenario.latencies = [
            result["event_at"][job_id] - finished[job_id]
            for job_id in (job_ids[i] for i in picked)
            if job_id in finished and job_id in result["event_at"]
        ]
        result.pop("event_at")
        scenario.result = result
    except Exception as err:
        tail = (workdir / f"{scenario.mode}-{n}.log").read_text(errors="replace").splitlines()[-15:]
        scenario.error = f"{type(err).__name__}: {err}"
        print("\n".join(tail), file=sys.stderr)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


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
        "new_conns_per_wait_poll": r["connections"] / wait_polls,
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
        lines.append(
            f"| {s.n:,} | {s.mode} | {r['window_s']:.0f} | {_fmt(m['cpu_ms_per_wait_poll'], 3)} | "
            f"{_fmt(m['cores'], 3)} | {_fmt(m['rss_mb_added'], 1)} | {_fmt(m['rss_kib_per_wait'], 1)} | "
            f"{_fmt(m['lag_p50_ms'], 1)} | {_fmt(m['lag_p99_ms'], 1)} | {_fmt(m['req_per_s'], 1)} | "
            f"{_fmt(m['req_per_interval_per_100'], 2)} | "
            f"{m['new_conns']:.0f} ({_fmt(m['new_conns_per_wait_poll'], 2)}) | "
            f"{_fmt(m['detect_p50_ms'], 0)} | {_fmt(m['detect_p99_ms'], 0)} | {r['resolved']:,}/{s.n:,} |"
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
        for ours in ("batch", "watch"):
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
    parser.add_argument("--steady", type=float, default=20.0, help="steady-state window, seconds (default 20)")
    parser.add_argument("--end-window", type=float, default=10.0, help="sampled jobs end over this many seconds")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="skip scenarios that would start later")
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
    unknown = set(modes) - set(MODES + EXTRA_MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES + EXTRA_MODES)}")
    scenarios = [Scenario(m, n) for n in sizes for m in modes if m not in PEERS or n <= args.peer_max]
    with (
        tempfile.TemporaryDirectory(prefix="jobwait-bench-") as tmp,
        ServiceProcess(api_key=API_KEY, test_controls=True, db_path=Path(tmp) / "jobs.sqlite") as service,
    ):
        for scenario in scenarios:
            if time.monotonic() - began > args.max_seconds:
                scenario.error = f"skipped: --max-seconds {args.max_seconds:g} reached"
                continue
            elapsed = time.monotonic() - began
            print(f"[{elapsed:5.0f}s] {scenario.mode} N={scenario.n:,} ...", file=sys.stderr, flush=True)
            run_scenario(service, scenario, args, Path(tmp))
            if scenario.error:
                print(f"    {scenario.error}", file=sys.stderr, flush=True)
        print(f"[{time.monotonic() - began:5.0f}s] done", file=sys.stderr, flush=True)
    adaptive = any(s.mode == "per_job_adaptive" for s in scenarios)
    text = report(scenarios, args.poll, (args.max_poll or 4 * args.poll) if adaptive else None)
    print(text)
    if args.json:
        raw = [
            {
                "mode": s.mode,
                "n": s.n,
                "result": s.result,
                "error": s.error,
                "latencies": s.latencies,
                "metrics": metrics(s, args.poll) if s.result else None,
            }
            for s in scenarios
        ]
        Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
