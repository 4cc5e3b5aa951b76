"""What each wait keeps in memory, by allocation site: tracemalloc over N waits in a triggerer.

Run: ``python -m benchmarks.wait_memory`` (defaults: N = 1,000; modes per_job, batch, history).
Each mode runs in a fresh process (``--child``) that sets up the triggers exactly as
``benchmarks/triggerer_scale.py`` does (its ``_workloads``, connections and reference service:
``ext`` profile, ``real`` for ``history``/``dataset_list``): ``RunTrigger`` workloads fed to
Airflow's ``TriggerRunner.create_triggers``, each trigger run by ``run_trigger``. tracemalloc starts
just before the triggers are created; once every wait is up (and its first poll or first-contact
read is done) and ``--settle`` seconds more have passed, a snapshot says what is still allocated,
which is what the waits keep.

Printed per mode: KiB per wait traced in all, by the package of the innermost frame that allocated
(``airflow_jobwait``, ``airflow``, ``asyncio``, ``aiohttp``, ``pydantic``, ...), by the innermost
``airflow_jobwait`` frame on the stack (what our code caused, whoever allocated), and the top
allocation sites by size (``--top``), each with its last few frames. RSS is not reported:
tracemalloc's own bookkeeping inflates it (``triggerer_scale`` measures RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks import triggerer_scale as scale

MODES = ("per_job", "batch", "history")
#: Frames kept per allocation: enough to reach from aiohttp or pydantic back to our code.
FRAMES = 40


def _package(filename: str) -> str:
    """The top-level package of a source file (``asyncio``, ``aiohttp``, ``airflow_jobwait``, ...)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            return rest[0].removesuffix(".py") if rest else "?"
    if "airflow_jobwait" in parts:
        return "airflow_jobwait"
    if "benchmarks" in parts:
        return "benchmarks"
    # The standard library: its module or package (asyncio, logging, ...).
    in_package = len(parts) >= 2 and parts[-2] not in ("lib", "Lib") and "python3" not in parts[-2]
    return parts[-2] if in_package else parts[-1]


def _ours(frame: tracemalloc.Frame) -> bool:
    return "airflow_jobwait" in Path(frame.filename).parts and "site-packages" not in frame.filename


def _short(frame: tracemalloc.Frame) -> str:
    parts = Path(frame.filename).parts
    for anchor in ("airflow_jobwait", "site-packages", "benchmarks"):
        if anchor in parts:
            rest = parts[parts.index(anchor) + (anchor == "site-packages") :]
            return f"{'/'.join(rest)}:{frame.lineno}"
    return f"{'/'.join(parts[-2:])}:{frame.lineno}"


def spec_depth() -> int:
    """Frames shown per allocation site (``WAIT_MEMORY_DEPTH``, default 6)."""
    return int(os.environ.get("WAIT_MEMORY_DEPTH", "6"))


def analyse(snapshot: tracemalloc.Snapshot, n: int, top: int) -> str:
    """The report of one snapshot over ``n`` waits."""
    snapshot = snapshot.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    )
    stats = snapshot.statistics("traceback")
    total = sum(s.size for s in stats)
    by_package: collections.Counter[str] = collections.Counter()
    by_ours: collections.Counter[str] = collections.Counter()
    for stat in stats:
        frames = list(reversed(stat.traceback))  # most recent call first (tracemalloc lists oldest first)
        by_package[_package(frames[0].filename)] += stat.size
        ours = next((f for f in frames if _ours(f)), None)
        by_ours["(no airflow_jobwait frame)" if ours is None else _short(ours)] += stat.size
    lines = [f"traced: {total / 1024:,.0f} KiB, {total / 1024 / n:.2f} KiB/wait", "", "by allocating package:"]
    lines += [f"  {size / 1024 / n:7.3f} KiB/wait  {name}" for name, size in by_package.most_common(12)]
    lines += ["", "by innermost airflow_jobwait frame:"]
    lines += [f"  {size / 1024 / n:7.3f} KiB/wait  {name}" for name, size in by_ours.most_common(25)]
    lines += ["", f"top {top} allocation sites:"]
    for stat in stats[:top]:
        frames = list(reversed(stat.traceback))
        trail = " <- ".join(_short(f) for f in frames[: spec_depth()])
        lines.append(f"  {stat.size / 1024 / n:7.3f} KiB/wait  {stat.count / n:6.2f} blocks/wait  {trail}")
    return "\n".join(lines)


async def _measure(spec: dict[str, Any]) -> str:
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_jobwait.client.coalesce import running_pollers
    from airflow_jobwait.client.coalesce_datasets import DatasetListPoller  # noqa: F401 - imported before tracing

    n, mode = len(spec["job_ids"]), spec["mode"]
    runner = TriggerRunner()
    stamps: dict[int, float] = {}
    runner.events = scale._StampedEvents(stamps)
    workloads = scale._workloads(spec)
    gc.collect()
    tracemalloc.start(FRAMES)
    runner.to_create.extend(workloads)
    del workloads
    await runner.create_triggers()
    limit = time.time() + 120.0 + (1.5 * n / 200 if mode in scale.REAL_MODES else 0.0)
    # Up: registered with a poller (batch), in a history window (history, dataset_list), or (per_job)
    # simply running; then a poll interval for every wait's first poll, then the settle time.
    while time.time() < limit:
        if mode == "batch" and sum(p.waiting for p in running_pollers()) + len(stamps) >= n:
            break
        if mode in scale.REAL_MODES and scale._first_contacted() + len(stamps) >= n:
            break
        if mode not in ("batch", *scale.REAL_MODES):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(spec["poll"] + spec["settle"])
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    report = f"== {mode}, N={n:,} ({len(stamps)} resolved early)\n" + analyse(snapshot, n, spec["top"])
    tasks = [details["task"] for details in runner.triggers.values() if "task" in details]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return report


def child_main() -> int:
    spec = json.loads(sys.stdin.readline())
    Path(spec["out"]).write_text(asyncio.run(_measure(spec)))
    return 0


def run_mode(service: Any, mode: str, args: argparse.Namespace, workdir: Path) -> None:
    if mode == "dataset_list":
        job_ids, dataset_of = asyncio.run(scale._submit_dataset_jobs(service.base_url, args.n))
    else:
        job_ids, dataset_of = asyncio.run(scale._submit(service.base_url, args.n)), None
    spec = {
        "mode": mode,
        "poll": args.poll,
        "job_ids": job_ids,
        "dataset_of": dataset_of,
        "settle": args.settle,
        "top": args.top,
        "out": str(workdir / f"{mode}.txt"),
    }
    env = scale._child_env(service.base_url, mode, workdir / f"home-{mode}")
    # The triggers' log lines (a thousand at the end, as they are cancelled) go to a file.
    with open(workdir / f"{mode}.log", "wb") as log:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.wait_memory", "--child"],
            input=(json.dumps(spec) + "\n").encode(),
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    if child.returncode != 0:
        tail = (workdir / f"{mode}.log").read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"{mode}: the triggerer process exited {child.returncode}:\n" + "\n".join(tail))
    print((workdir / f"{mode}.txt").read_text(), "\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wait_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1000, help="waits (default 1000)")
    parser.add_argument("--modes", default=",".join(MODES), help="of per_job, batch, watch, history, dataset_list")
    parser.add_argument("--poll", type=float, default=5.0, help="poll interval, seconds (default 5)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the first polls (default 5)")
    parser.add_argument("--top", type=int, default=25, help="allocation sites listed (default 25)")
    args = parser.parse_args(argv)
    if args.child:
        return child_main()
    from jobwait_reference_service.config import REAL_RATE_LIMITS
    from jobwait_reference_service.process import ServiceProcess

    with tempfile.TemporaryDirectory(prefix="jobwait-mem-") as tmp:
        for mode in [m for m in args.modes.split(",") if m]:
            profile = "real" if mode in scale.REAL_MODES else "ext"
            with ServiceProcess(
                api_key=scale.API_KEY,
                test_controls=True,
                db_path=Path(tmp) / f"jobs-{mode}.sqlite",
                profile=profile,
                rate_limit=REAL_RATE_LIMITS["real"] if profile == "real" else None,
            ) as service:
                run_mode(service, mode, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
