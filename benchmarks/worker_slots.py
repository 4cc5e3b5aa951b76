"""Worker slots: deferrable ``JobSensor`` vs. poke-mode ``HttpSensor`` on a real deployment.

Starts the e2e harness (PostgreSQL, scheduler with LocalExecutor and 2 worker slots, two
triggerers, API server, dag-processor, reference service; see ``tests/e2e/harness.py``), runs the
fan-out DAG of e2e test 1 (``jobwait_e2e_fanout``: N jobs, each submitted and then waited on with
the deferrable ``JobSensor``) and the same DAG written with ``HttpSensor(mode="poke",
response_check=...)`` (``jobwait_e2e_fanout_poke``), sampling the jobs in progress on the service
and the running/deferred task instances (REST API) every half second. Prints a markdown table.

    .venv/bin/python benchmarks/worker_slots.py [--jobs 50] [--duration 90] [--poke-timeout 600]

Each run is bounded: a run still going at its timeout is marked failed through the REST API and
reported as such (wall time ">= timeout", with the jobs done by then).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import PARALLELISM, Deployment, run_fanout

VARIANTS = (
    ("jobwait_e2e_fanout", "`JobSensor` (deferrable)"),
    ("jobwait_e2e_fanout_poke", "`HttpSensor` poke mode"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="jobs per run (default 50, as e2e test 1)")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds each job runs (default 90)")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the deferrable run (s)")
    parser.add_argument("--poke-timeout", type=float, default=600.0, help="bound on the poke-mode run (s)")
    return parser.parse_args(argv)


def row(label: str, result: dict[str, Any], timeout: float) -> str:
    finished = result["state"] in ("success", "failed")
    wall = f"{result['wall_s']:.0f} s" if finished else f">= {timeout:.0f} s (stopped)"
    done = f"{result['jobs_completed']}/{result['jobs_submitted']} submitted completed"
    return (
        f"| {label} | {wall} | {result['state'] if finished else 'timeout'}, {done} | "
        f"{result['peak_in_progress']} | {result['peak_running']} | {result['peak_deferred']} | "
        f"{result['slot_seconds']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lifetime = args.timeout + args.poke_timeout + 900
    results = []
    started = time.monotonic()
    with Deployment(lifetime=lifetime) as deployment:
        print(f"deployment up in {time.monotonic() - started:.0f} s ({deployment.root})", file=sys.stderr)
        for (dag_id, label), timeout in zip(VARIANTS, (args.timeout, args.poke_timeout), strict=True):
            print(f"running {dag_id}: {args.jobs} jobs of {args.duration:g} s ...", file=sys.stderr)
            result = run_fanout(deployment, dag_id, args.jobs, args.duration, timeout)
            if result["state"] == "timeout":  # stop what is left of it: it holds the worker slots
                deployment.airflow.request(
                    "PATCH", f"/dags/{dag_id}/dagRuns/{result['run_id']}", json={"state": "failed"}
                )
            results.append((label, result, timeout))
            print(f"  {result['state']} in {result['wall_s']:.0f} s", file=sys.stderr)
    print(
        f"{args.jobs} jobs of {args.duration:g} s each, LocalExecutor with {PARALLELISM} worker slots, "
        "two triggerers; each job's wait ranks above the submits still to run (weight_rule=upstream).\n"
    )
    print(
        "| wait with | wall time | outcome | peak jobs in progress (service) | peak running TIs "
        "| peak deferred TIs | worker-slot seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, result, timeout in results:
        print(row(label, result, timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
