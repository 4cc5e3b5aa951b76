"""A whole deployment at scale: N mapped deferred waits in one triggerer, end to end.

Run: ``python -m benchmarks.deployment_scale`` (defaults: ``--tasks 5000`` ``JobSensor`` waits,
``--http-tasks 1000`` ``HttpSensor(deferrable=True)`` waits, poll 5 s). Not part of ``make test``.

Starts the e2e harness (``tests/e2e/harness.py``: private PostgreSQL with ``pg_stat_statements``,
the reference service, API server, dag-processor, scheduler with LocalExecutor and 2 worker slots)
with ONE triggerer, ``[triggerer] capacity`` and ``[core] max_map_length`` raised to hold the
largest N, and the DAGs of ``benchmarks/dags/jobwait_deploy_scale.py``. Per scenario:

1. submit N jobs to the service directly (each would run an hour: the benchmark ends them);
2. trigger the mode's DAG with the ids (a file named in the run's conf): one ``plan`` task on a
   worker, then N mapped waits. ``jobsensor``: ``JobSensor`` started in the triggerer
   (``start_from_trigger``, no worker at all); ``httpsensor``: ``HttpSensor(deferrable=True)`` on
   the service's [ext] ``GET /api/jobs/{id}/done``, which must start on a worker (one poke, then
   defer) and resume on a worker when its trigger fires;
3. ramp: until all N task instances are deferred, their triggers assigned to the triggerer and
   started there (metadata DB and the triggers' log files, every 2 s), and each ``JobSensor`` has
   rendered its job id in the triggerer (N more XCom reads in ``pg_stat_statements``); then two
   poll intervals for every trigger to be up and polling;
4. steady window (``--steady`` s, nothing changes): CPU and RSS of each component's process tree
   (``/proc`` through psutil; the triggerer's tree is its supervisor and trigger-runner
   processes), DB load (``pg_stat_database`` of the metadata DB: commits and rows per second;
   ``pg_stat_statements``: statements per second and their execution time, all roles and the
   triggerer's own role), requests per second at the service (``/api/_test/stats``);
5. end: up to 200 sampled jobs one by one, spread over ``--end-window`` s, then the rest at once
   (``POST /api/_test/finish``, 500 per request); wait for the run to finish. Latency of a job:
   its task instance's ``end_date`` (REST API) minus the job's ``finished_at`` (service DB); p50 and
   p99 over the spread sample and over the bulk-ended rest, and the time until the last success.

Every phase is bounded (``--timeout`` per scenario); a scenario that does not get there reports how
far it got (e.g. how many waits were deferred) and why it stopped. Prints a markdown table; writes
the raw figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import API_KEY, PARALLELISM, Deployment, HarnessError, postgres_bindir

BENCH_DAGS = Path(__file__).resolve().parent / "dags"
DAG_IDS = {"jobsensor": "jobwait_bench_jobsensor", "httpsensor": "jobwait_bench_httpsensor"}
LABELS = {
    "jobsensor": "`JobSensor` (start_from_trigger)",
    "httpsensor": "`HttpSensor(deferrable=True)`",
}
TRIGGERER_ROLE = "airflow_triggerer"
#: XCom reads a wait makes in the triggerer as it starts: a ``JobSensor`` started there renders its
#: job id (``ti.xcom_pull``); an ``HttpSensor`` renders on the worker, before it defers.
RENDERS = {"jobsensor": 1, "httpsensor": 0}
LATENCY_SAMPLE = 200
FINISH_BATCH = 500
TICK = 2.0
COMPONENTS = ("triggerer-1", "scheduler", "api-server", "dag-processor", "service", "postgres")


# ---------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def tree_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes of a process and all its descendants.

    CPU counts the reaped children's time too (``cutime``/``cstime``), so task processes that came
    and went under the scheduler are included.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0
    cpu, rss = 0.0, 0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return cpu, rss


@dataclass
class Usage:
    """CPU seconds and RSS of every component at one instant."""

    t: float
    cpu: dict[str, float]
    rss: dict[str, int]

    @classmethod
    def take(cls, deployment: Deployment) -> Usage:
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for name in COMPONENTS:
            proc = deployment.procs.get(name)
            if proc is not None and proc.popen is not None:
                cpu[name], rss[name] = tree_usage(proc.pid)
        return cls(time.time(), cpu, rss)


def cores_between(before: Usage, after: Usage) -> dict[str, float]:
    wall = max(after.t - before.t, 1e-9)
    return {name: (after.cpu[name] - before.cpu.get(name, 0.0)) / wall for name in after.cpu}


def db_counters(deployment: Deployment, statements: bool) -> dict[str, float]:
    """Cumulative DB counters: ``pg_stat_database`` of ``airflow``, ``pg_stat_statements`` per role."""
    row = deployment.postgres.query(
        "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted "
        "FROM pg_stat_database WHERE datname = 'airflow'"
    )[0]
    names = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated")
    found = dict(zip((*names, "tup_deleted"), (float(v) for v in row), strict=True))
    if statements:
        for role, calls, exec_ms, rows in deployment.postgres.query(
            "SELECT r.rolname, sum(s.calls), sum(s.total_exec_time), sum(s.rows) FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'airflow' GROUP BY r.rolname"
        ):
            prefix = "triggerer" if role == TRIGGERER_ROLE else "others"
            found[f"{prefix}_calls"] = found.get(f"{prefix}_calls", 0.0) + float(calls)
            found[f"{prefix}_exec_ms"] = found.get(f"{prefix}_exec_ms", 0.0) + float(exec_ms)
            found[f"{prefix}_rows"] = found.get(f"{prefix}_rows", 0.0) + float(rows)
    return found


def triggerer_statements(deployment: Deployment) -> dict[str, tuple[float, str]]:
    """``pg_stat_statements`` of the triggerer's role: ``{queryid: (calls, query)}``."""
    rows = deployment.postgres.query(
        "SELECT s.queryid::text, s.calls, left(s.query, 160) FROM pg_stat_statements s "
        "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s",
        TRIGGERER_ROLE,
    )
    return {str(qid): (float(calls), str(query)) for qid, calls, query in rows}


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {key: (after[key] - before.get(key, 0.0)) / seconds for key in after}


# ---------------------------------------------------------------- the service


class Jobs:
    """Submit and end jobs on the reference service (its test controls are on in the harness)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"ApiKey {API_KEY}"

    def submit(self, count: int, tag: str, workers: int = 8) -> list[str]:
        """``count`` echo jobs that would run an hour; their ids, in order."""

        def one(index: int) -> str:
            body: dict[str, Any] = {
                "model": {"identifier": "echo", "version": "1.0"},
                "input": {"type": "text", "sources": {"a": {"input.txt": f"{tag} {index}"}}},
                "test": {"duration_s": 3600},
            }
            with requests.Session() as session:
                session.headers["Authorization"] = f"ApiKey {API_KEY}"
                resp = session.post(f"{self.base_url}/api/jobs", json=body, timeout=60)
                resp.raise_for_status()
                return str(resp.json()["jobIdentifier"])

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(count)))

    def finish(self, ids: list[str]) -> None:
        for offset in range(0, len(ids), FINISH_BATCH):
            resp = self.session.post(
                f"{self.base_url}/api/_test/finish",
                json={"identifiers": ids[offset : offset + FINISH_BATCH]},
                timeout=120,
            )
            resp.raise_for_status()

    def stats(self) -> dict[str, Any]:
        resp = self.session.get(f"{self.base_url}/api/_test/stats", timeout=30)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result


def finished_at(db_path: Path, job_ids: list[str]) -> dict[str, float]:
    """The service's ``finished_at`` (epoch seconds) of each ended job."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        found: dict[str, float] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            rows = conn.execute(
                f"SELECT id, finished_at FROM inference_jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update({row[0]: float(row[1]) for row in rows if row[1] is not None})
        return found
    finally:
        conn.close()


# ---------------------------------------------------------------- one scenario


@dataclass
class Scenario:
    """One mode at one N, and what was measured."""

    mode: str
    n: int
    figures: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None

    @property
    def dag_id(self) -> str:
        return DAG_IDS[self.mode]


def wait_states(deployment: Deployment, dag_id: str, run_id: str) -> tuple[dict[str, int], int]:
    """The ``wait`` task instances per state, and how many of their triggers a triggerer holds."""
    states = {
        str(state): int(count)
        for state, count in deployment.postgres.query(
            "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = 'wait' "
            "GROUP BY state",
            dag_id,
            run_id,
        )
    }
    assigned = deployment.postgres.query(
        "SELECT count(*) FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = 'wait' AND t.triggerer_id IS NOT NULL",
        dag_id,
        run_id,
    )[0][0]
    return states, int(assigned)


def triggers_started(deployment: Deployment, dag_id: str, run_id: str) -> int:
    """Waits whose trigger the triggerer's runner has started: it opens each trigger's own log file
    (``attempt=N.log.trigger.<triggerer job id>.log``) as it starts the trigger. A trigger held by
    the triggerer (``triggerer_id`` set) is not yet running: at 5,000 the last ones started
    2.5 minutes after all were held (docs/deployment-scale.md)."""
    folder = deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=wait"
    return sum(1 for _ in folder.glob("map_index=*/attempt=*.log.trigger.*.log"))


def xcom_reads(deployment: Deployment) -> float:
    """XCom reads the metadata DB has run (``pg_stat_statements``, every role): a
    ``start_from_trigger`` wait renders its job id (``ti.xcom_pull``) with one, in the triggerer,
    after its trigger's log file is open: at 5,000 waits the last ones ~2 minutes later (one
    request of the runner a round of the supervisor, docs/deployment-scale.md)."""
    rows = deployment.postgres.query(
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = 'airflow' AND s.query ILIKE %s",
        "SELECT%FROM xcom%",
    )
    return float(rows[0][0])


def run_scenario(deployment: Deployment, scenario: Scenario, args: argparse.Namespace, statements: bool) -> None:
    """Submit, ramp, measure the steady window, end the jobs, collect latencies (see the module doc)."""
    figures = scenario.figures
    jobs = Jobs(deployment.service.base_url)
    deadline = time.monotonic() + args.timeout
    log = _logger(scenario)

    began = time.time()
    ids = jobs.submit(scenario.n, f"{scenario.mode}-{scenario.n}-{int(began)}")
    figures["submit_s"] = time.time() - began
    ids_file = deployment.root / f"ids-{scenario.mode}-{scenario.n}.json"
    ids_file.write_text(json.dumps(ids))
    log(f"{scenario.n} jobs submitted in {figures['submit_s']:.0f} s")

    usage_start = Usage.take(deployment)
    figures["triggerer_rss_before"] = usage_start.rss.get("triggerer-1", 0)
    renders = RENDERS[scenario.mode] * scenario.n
    reads_before = xcom_reads(deployment) if statements and renders else 0.0
    run_id = deployment.airflow.trigger(scenario.dag_id, {"ids_file": str(ids_file)})
    triggered = time.time()
    figures["run_id"] = run_id

    # Ramp: every wait deferred, held by the triggerer, and its trigger started there.
    rss_peak = 0
    deferred = assigned = started = 0
    states: dict[str, int] = {}
    while True:
        deployment.check_alive()
        states, assigned = wait_states(deployment, scenario.dag_id, run_id)
        deferred = states.get("deferred", 0)
        usage = Usage.take(deployment)
        rss_peak = max(rss_peak, usage.rss.get("triggerer-1", 0))
        if "expanded_s" not in figures and sum(states.values()) >= scenario.n:
            figures["expanded_s"] = time.time() - triggered
        if "all_deferred_s" not in figures and deferred >= scenario.n:
            figures["all_deferred_s"] = time.time() - triggered
        if "all_assigned_s" not in figures and deferred >= scenario.n and assigned >= scenario.n:
            figures["all_assigned_s"] = time.time() - triggered
        if "all_assigned_s" in figures:
            started = triggers_started(deployment, scenario.dag_id, run_id)
            if started >= scenario.n and "all_started_s" not in figures:
                figures["all_started_s"] = time.time() - triggered
            # Each started trigger that renders has read its XCom (as many reads, or more: other
            # components read XComs too, a few).
            if started >= scenario.n and (not renders or xcom_reads(deployment) - reads_before >= renders):
                figures["ramp_s"] = time.time() - triggered
                break
        if states.get("failed") or states.get("upstream_failed"):
            scenario.stopped = f"task instances failed during the ramp: {states}"
            break
        if time.monotonic() > deadline:
            held = f"{assigned} held by the triggerer, {started} started"
            scenario.stopped = f"timeout during the ramp: {deferred}/{scenario.n} deferred, {held} ({states})"
            break
        time.sleep(TICK)
    figures["ramp_cores"] = cores_between(usage_start, usage)
    figures["ramp_cpu_s"] = {name: usage.cpu[name] - usage_start.cpu.get(name, 0.0) for name in usage.cpu}
    figures["deferred_reached"] = deferred
    figures["assigned_reached"] = assigned
    figures["started_reached"] = started
    elapsed = time.time() - triggered
    log(f"ramp: {deferred} deferred, {assigned} held by the triggerer, {started} started after {elapsed:.0f} s")

    if scenario.stopped is None:
        time.sleep(2 * args.poll + 2)  # every trigger created and polling
        measure_steady(deployment, jobs, scenario, args, statements, rss_peak)
        log(f"steady window done: triggerer {figures['steady']['cores']['triggerer-1']:.2f} cores")

    # End the jobs (all of them, whatever happened) and wait for the run.
    size = min(len(ids), args.sample)
    picked = sorted({int(i * len(ids) / size) for i in range(size)})
    window = args.end_window if scenario.stopped is None else 0.0
    usage_end_start = Usage.take(deployment)
    start = time.time()
    for rank, index in enumerate(picked):
        time.sleep(max(0.0, start + window * rank / len(picked) - time.time()))
        jobs.finish([ids[index]])
    chosen = set(picked)
    rest = [job_id for index, job_id in enumerate(ids) if index not in chosen]
    time.sleep(max(0.0, start + window + args.poll + 1.0 - time.time()))
    jobs.finish(rest)
    log(f"ended {len(picked)} sampled jobs over {window:g} s, then {len(rest)} at once")

    state = "timeout"
    try:
        remaining = max(60.0, deadline - time.monotonic())
        state = deployment.airflow.wait_run(scenario.dag_id, run_id, remaining, interval=TICK)
    except HarnessError as err:
        if scenario.stopped is None:
            scenario.stopped = f"the run did not finish in time: {err}"
        deployment.airflow.request("PATCH", f"/dags/{scenario.dag_id}/dagRuns/{run_id}", json={"state": "failed"})
    figures["state"] = state
    usage_end = Usage.take(deployment)
    figures["end_cores"] = cores_between(usage_end_start, usage_end)
    figures["end_cpu_s"] = {name: usage_end.cpu[name] - usage_end_start.cpu.get(name, 0.0) for name in usage_end.cpu}
    figures["wall_s"] = time.time() - began

    # Latencies: TI end_date (REST API) - job finished_at (service DB), by map index = position in ids.
    tis = deployment.airflow.task_instances(scenario.dag_id, run_id, task_id="wait")
    ended = finished_at(deployment.root / "service.sqlite", ids)
    success_at: dict[int, float] = {
        int(ti["map_index"]): datetime.fromisoformat(ti["end_date"]).timestamp()
        for ti in tis
        if ti["state"] == "success" and ti.get("end_date")
    }
    sample = [success_at[i] - ended[ids[i]] for i in picked if i in success_at and ids[i] in ended]
    bulk = [success_at[i] - ended[ids[i]] for i in range(len(ids)) if i not in chosen and i in success_at]
    figures["succeeded"] = len(success_at)
    figures["latency_sample_s"] = sample
    figures["latency_bulk_p50_s"] = percentile(bulk, 50)
    figures["latency_bulk_p99_s"] = percentile(bulk, 99)
    # From the last job's end to the last task's success.
    figures["drain_s"] = max(success_at.values()) - max(ended.values()) if success_at and ended else None
    plan = deployment.postgres.query(
        "SELECT extract(epoch FROM end_date - start_date) FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s AND task_id = 'plan'",
        scenario.dag_id,
        run_id,
    )
    figures["plan_task_s"] = float(plan[0][0]) if plan and plan[0][0] is not None else None
    log(f"run {state}: {len(success_at)}/{scenario.n} waits succeeded")


def measure_steady(
    deployment: Deployment,
    jobs: Jobs,
    scenario: Scenario,
    args: argparse.Namespace,
    statements: bool,
    rss_peak: int,
) -> None:
    """The steady window: CPU, RSS, DB and service load while N waits poll and nothing changes."""
    stats_before = jobs.stats()
    db_before = db_counters(deployment, statements)
    top_before = triggerer_statements(deployment) if statements else {}
    usage_before = Usage.take(deployment)
    end = time.time() + args.steady
    usage = usage_before
    while time.time() < end:
        time.sleep(min(1.0, max(0.0, end - time.time())))
        usage = Usage.take(deployment)
        rss_peak = max(rss_peak, usage.rss.get("triggerer-1", 0))
    db_after = db_counters(deployment, statements)
    top_after = triggerer_statements(deployment) if statements else {}
    stats_after = jobs.stats()
    seconds = usage.t - usage_before.t
    scenario.figures["steady"] = {
        "window_s": seconds,
        "cores": cores_between(usage_before, usage),
        "rss": usage.rss,
        "triggerer_rss_peak": rss_peak,
        "db_per_s": rates(db_before, db_after, seconds),
        "triggerer_top_statements_per_s": sorted(
            (
                ((calls - top_before.get(qid, (0.0, ""))[0]) / seconds, query)
                for qid, (calls, query) in top_after.items()
            ),
            reverse=True,
        )[:10],
        "service_req_per_s": (stats_after["total_requests"] - stats_before["total_requests"]) / seconds,
        "service_routes": {
            route: count - stats_before["requests"].get(route, 0) for route, count in stats_after["requests"].items()
        },
    }


def _logger(scenario: Scenario) -> Any:
    began = time.monotonic()

    def log(message: str) -> None:
        print(
            f"[{time.monotonic() - began:6.0f}s] {scenario.mode} N={scenario.n:,}: {message}",
            file=sys.stderr,
            flush=True,
        )

    return log


# ---------------------------------------------------------------- report


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _with_triggerer(db: dict[str, float], what: str) -> str:
    """``all (triggerer's)`` of a ``pg_stat_statements`` rate."""
    mine = db.get(f"triggerer_{what}", 0.0)
    return f"{_f(mine + db.get(f'others_{what}', 0.0))} ({_f(mine)})"


def report(scenarios: list[Scenario], args: argparse.Namespace, statements: bool) -> str:
    lines = [
        f"One triggerer, LocalExecutor with {PARALLELISM} worker slots, poll interval {args.poll:g} s, "
        f"steady window {args.steady:g} s; latency = task success (TI end_date) - job end (service finished_at); "
        f"sample: up to {args.sample} jobs ended one by one over {args.end_window:g} s; "
        "bulk: the rest ended at once.",
        "",
        "| wait with | N | outcome | ramp (all deferred, held, started, rendered) | ramp CPU s (all) | triggerer cores "
        "| triggerer RSS MB before / steady (peak) "
        "| all components cores | DB commits/s | DB statements/s (triggerer) | DB exec ms/s (triggerer) "
        "| service req/s | latency p50 / p99 s (sample) | latency p50 / p99 s (bulk) "
        "| last success after last job end |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scenarios:
        f = s.figures
        steady = f.get("steady")
        outcome = f"{f.get('state', '-')}, {f.get('succeeded', 0):,}/{s.n:,} succeeded"
        if s.stopped:
            outcome += f"; stopped: {s.stopped}"
        ramp = _f(f.get("ramp_s"), 0) + " s" if "ramp_s" in f else f"{f.get('deferred_reached', 0):,} deferred"
        ramp_cpu = _f(sum(f.get("ramp_cpu_s", {}).values()), 0)
        sample = f.get("latency_sample_s") or []
        if steady:
            cores = steady["cores"]
            db = steady["db_per_s"]
            trig_cores = _f(cores.get("triggerer-1"), 2)
            rss = (
                f"{f['triggerer_rss_before'] / 1e6:,.0f} / {steady['rss'].get('triggerer-1', 0) / 1e6:,.0f} "
                f"({steady['triggerer_rss_peak'] / 1e6:,.0f})"
            )
            all_cores = _f(sum(cores.values()), 2)
            commits = _f(db.get("xact_commit"))
            calls = _with_triggerer(db, "calls") if statements else "-"
            exec_ms = _with_triggerer(db, "exec_ms") if statements else "-"
            req = _f(steady["service_req_per_s"])
        else:
            trig_cores = rss = all_cores = commits = calls = exec_ms = req = "-"
        lines.append(
            f"| {LABELS[s.mode]} | {s.n:,} | {outcome} | {ramp} | {ramp_cpu} | {trig_cores} | {rss} | {all_cores} | "
            f"{commits} | "
            f"{calls} | {exec_ms} | {req} | {_f(percentile(sample, 50), 2)} / {_f(percentile(sample, 99), 2)} | "
            f"{_f(f.get('latency_bulk_p50_s'), 2)} / {_f(f.get('latency_bulk_p99_s'), 2)} | "
            f"{_f(f.get('drain_s'), 0)} s |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deployment_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="5000", help="comma-separated N of the JobSensor runs (default 5000)")
    parser.add_argument("--http-tasks", type=int, default=1000, help="N of the HttpSensor run (default 1000)")
    parser.add_argument("--modes", default="jobsensor,httpsensor", help="comma-separated of jobsensor, httpsensor")
    parser.add_argument("--poll", type=float, default=5.0, help="poll interval of every wait, seconds (default 5)")
    parser.add_argument(
        "--conn",
        default="modzy_default",
        help="the JobSensor's connection: modzy_default (status mode auto), jobwait_batch, jobwait_per_job",
    )
    parser.add_argument("--steady", type=float, default=60.0, help="steady window, seconds (default 60)")
    parser.add_argument("--end-window", type=float, default=20.0, help="sampled jobs end over this long (s)")
    parser.add_argument(
        "--sample", type=int, default=LATENCY_SAMPLE, help=f"jobs ended one by one (default {LATENCY_SAMPLE})"
    )
    parser.add_argument("--timeout", type=float, default=2400.0, help="bound on each scenario, seconds (default 2400)")
    parser.add_argument(
        "--select-per-loop",
        type=int,
        default=None,
        help="[triggerer] max_trigger_to_select_per_loop (Airflow's default 50 when not given)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the deployment's folder (logs) afterwards")
    parser.add_argument("--json", metavar="PATH", default="deployment_scale.json", help="raw figures (JSON)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(DAG_IDS)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {', '.join(DAG_IDS)}")
    scenarios = [Scenario("jobsensor", int(n)) for n in args.tasks.split(",") if n and "jobsensor" in modes]
    if "httpsensor" in modes:
        scenarios.append(Scenario("httpsensor", args.http_tasks))
    largest = max(s.n for s in scenarios)
    statements = (postgres_bindir().parent / "lib" / "pg_stat_statements.so").exists()
    env = {
        "AIRFLOW__TRIGGERER__CAPACITY": str(largest + 100),
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(largest, 1024)),
        "JOBWAIT_BENCH_POLL": repr(args.poll),
        "JOBWAIT_BENCH_CONN": args.conn,
    }
    if args.select_per_loop:
        env["AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP"] = str(args.select_per_loop)
    started = time.monotonic()
    with Deployment(
        lifetime=args.timeout * len(scenarios) + 900,
        keep=args.keep,
        triggerers=1,
        env=env,
        dag_folders={"bench": BENCH_DAGS},
        dag_ids=[DAG_IDS[s.mode] for s in scenarios],
        postgres_settings={"shared_preload_libraries": "pg_stat_statements"} if statements else None,
        triggerer_db_role=TRIGGERER_ROLE,
    ) as deployment:
        if statements:
            deployment.postgres.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        print(f"deployment up in {time.monotonic() - started:.0f} s ({deployment.root})", file=sys.stderr)
        for scenario in scenarios:
            try:
                run_scenario(deployment, scenario, args, statements)
            except HarnessError as err:  # a process died: report what there is, stop here
                scenario.stopped = f"{type(err).__name__}: {str(err)[:300]}"
                print(deployment.report(), file=sys.stderr)
                break
    text = report(scenarios, args, statements)
    print(text)
    raw = {
        "args": vars(args),
        "machine": {"cpus": psutil.cpu_count(), "memory_bytes": psutil.virtual_memory().total},
        "pg_stat_statements": statements,
        "wall_s": time.monotonic() - started,
        "scenarios": [
            {
                "mode": s.mode,
                "n": s.n,
                "stopped": s.stopped,
                **{k: v for k, v in s.figures.items() if k != "latency_sample_s"},
                "latency_sample_p50_s": percentile(s.figures.get("latency_sample_s") or [], 50),
                "latency_sample_p99_s": percentile(s.figures.get("latency_sample_s") or [], 99),
            }
            for s in scenarios
        ],
    }
    Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
