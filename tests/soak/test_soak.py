"""Soak: N waits through ``JobTrigger`` and N through ``JobsHook.wait_for_job``, against the reference
service under 20 % injected faults, killed (SIGKILL) and restarted twice mid-run on its SQLite file,
behind a TCP fault proxy (``tests/_fault_proxy.py``) that breaks 10 % of the exchanges on the socket
(resets mid-response, stalls, drips, truncated heads and bodies, corrupted bytes).

Invariants, checked against the service's own SQLite store once the run is over:

- every wait ends ``terminal`` with the job's true final status (the one in the store, which is
  also the one the job was planned to reach, or ``CANCELED`` for the jobs the soak killed);
- every submission made exactly one job (Idempotency-Key), and every job the client was handed
  is that one: 0 duplicates, 0 lost submissions;
- exactly the jobs the soak killed are ``CANCELED``;
- every work deposited to the results store during the run is there afterwards, the locked
  ones byte-for-byte as they were when locked (changing or deleting them is refused meanwhile);
- every kind of fault, the service's and the proxy's, fired at least once.

Knobs (environment): ``JOBWAIT_SOAK_N`` waits per path (default 200; the documented large run
is 1000), ``JOBWAIT_SOAK_SEED`` (fault draws and job plan), ``JOBWAIT_SOAK_FAULT_SHARE`` (0.20),
``JOBWAIT_SOAK_BUDGET`` (seconds before the run fails, default from N),
``JOBWAIT_SOAK_TRIGGER_POLL`` (trigger poll interval, default max(1, N/200) s),
``JOBWAIT_SOAK_STATUS_MODE`` (connection extra ``status_mode`` of the triggers, when set),
``JOBWAIT_SOAK_SOCKET_SHARE`` (share of exchanges the proxy breaks, 0.10),
``JOBWAIT_SOAK_DRIP_INTERVAL`` (seconds per byte of a drip, 0.1). See docs/soak.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from jobwait_reference_service.faults import ENV_VAR as FAULTS_ENV
from jobwait_reference_service.faults_client import FaultControl, share_rules
from jobwait_reference_service.process import ServiceProcess, connection_env

from airflow_jobwait.client import results_store as results_api
from airflow_jobwait.client.retry import RetryPolicy, RetryState
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import ApiError, Conflict, InvalidResponse, JobWaitError, TransportError
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models import JobInput, JobStatus, ModelRef, SubmitJobRequest, WaitOutcome
from airflow_jobwait.triggers import JobTrigger
from tests._fault_proxy import KINDS as SOCKET_KINDS
from tests._fault_proxy import FaultProxy

T = TypeVar("T")

API_KEY = "soakkey.s3cr3t-soak-key-never-logged"
CONN_ID = "modzy_default"  # the families' default connections, pointed at the soak's service
RESULTS_CONN = "chime_results_default"
PIPELINE = "soak"
CLIENT_TIMEOUT = 3.0  # connection extra "timeout": seconds per request
DELAY_S = 6.0  # the "delay" fault answers after the client gave up
SYNC_POLL = 0.5
SYNC_THREADS = 32  # worker slots doing submit + wait_for_job, like an Airflow worker pool
DEPOSITORS = 4  # batches of works deposited at once (parallel tasks writing to the results store)
AUX_THREADS = 16  # submissions of the trigger path (the operator's execute before it defers)
KILL_THREADS = 8  # the soak's kills (on_kill of a marked task) and their checks
SYNC_RETRY = RetryPolicy(max_attempts=8, base_delay=0.25, max_delay=4.0, budget=30.0)
CALLER_ATTEMPTS = 40  # the soak's own re-sends of a call the client gave up on (a task retry)
TRANSIENT = (TransportError, InvalidResponse, ApiError)
RESTART_POINTS = 2

# (weight, rule): the weights are shares of the faulted requests; scaled to the total share.
FAULT_MIX: list[tuple[float, dict[str, Any]]] = [
    (3.0, {"kind": "status", "status": 500}),
    (2.0, {"kind": "status", "status": 502}),
    (3.0, {"kind": "status", "status": 503}),
    (3.0, {"kind": "status", "status": 429, "retry_after": 1}),
    (3.0, {"kind": "drop"}),
    (1.5, {"kind": "delay", "delay_s": DELAY_S}),
    (2.0, {"kind": "truncate"}),
    (2.5, {"kind": "invalid_json"}),
]

# (weight, kind): shares of the exchanges the proxy breaks, scaled to the socket share. The slow
# kinds (stall, drips) cost a client a whole timeout each: fewer of them keeps N=200 quick.
SOCKET_MIX: list[tuple[float, str]] = [
    (2.0, "reset"),
    (1.0, "stall"),
    (1.0, "drip_head"),
    (1.0, "drip_body"),
    (1.5, "truncated_headers"),
    (1.5, "truncated_body"),
    (2.0, "corrupt"),
]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class SoakConfig:
    n: int
    seed: int
    fault_share: float
    budget: float
    trigger_poll: float
    status_mode: str | None
    socket_share: float
    drip_interval: float

    @classmethod
    def from_env(cls) -> SoakConfig:
        n = int(_env_number("JOBWAIT_SOAK_N", 200))
        if n < 20:
            raise ValueError(f"JOBWAIT_SOAK_N must be at least 20, got {n}")
        return cls(
            n=n,
            seed=int(_env_number("JOBWAIT_SOAK_SEED", 8)),
            fault_share=_env_number("JOBWAIT_SOAK_FAULT_SHARE", 0.20),
            budget=_env_number("JOBWAIT_SOAK_BUDGET", 240.0 + max(0, n - 200) * 0.6),
            trigger_poll=_env_number("JOBWAIT_SOAK_TRIGGER_POLL", max(1.0, n / 200)),
            status_mode=os.environ.get("JOBWAIT_SOAK_STATUS_MODE") or None,
            socket_share=_env_number("JOBWAIT_SOAK_SOCKET_SHARE", 0.10),
            drip_interval=_env_number("JOBWAIT_SOAK_DRIP_INTERVAL", 0.1),
        )


CONFIG = SoakConfig.from_env()
pytestmark = [pytest.mark.soak, pytest.mark.timeout(CONFIG.budget + 180)]


def fault_rules(share: float) -> list[dict[str, Any]]:
    total = sum(weight for weight, _ in FAULT_MIX)
    return share_rules([(share * weight / total, rule) for weight, rule in FAULT_MIX])


def socket_mix(share: float) -> dict[str, float]:
    """The proxy's share of exchanges per kind, adding up to ``share``."""
    total = sum(weight for weight, _ in SOCKET_MIX)
    return {kind: share * weight / total for weight, kind in SOCKET_MIX}


def fault_env(cfg: SoakConfig, life: int) -> str:
    """``JOBWAIT_FAULTS`` of the service's ``life``-th start: same rules, its own seed."""
    return json.dumps({"rules": fault_rules(cfg.fault_share), "seed": cfg.seed * 1000 + life})


# ---- the plan ---------------------------------------------------------------------------------


@dataclass
class Wait:
    """One submission and its wait, and what became of them."""

    path: str  # "trigger" | "sync"
    index: int
    key: str
    marker: str
    request: SubmitJobRequest
    planned: JobStatus  # the status the store must end with
    kill_after: float | None = None  # seconds after submit the soak cancels the job
    resume_after: float | None = None  # trigger path: seconds after which the trigger is moved
    job_ids: set[str] = field(default_factory=set)  # every id the submits answered
    outcome: WaitOutcome | None = None
    events: int = 0
    error: str | None = None
    kill_error: str | None = None
    submit_s: float = 0.0  # seconds the submission took, re-sends included
    ended_s: float = 0.0  # seconds into the run when the wait ended


def plan(cfg: SoakConfig) -> list[Wait]:
    rng = random.Random(cfg.seed)
    waits = []
    for path in ("trigger", "sync"):
        for i in range(cfg.n):
            marker = f"soak {path}-{i}"
            sources = {f"s{k}": {"input.txt": f"{marker} input {k}"} for k in range(rng.randint(1, 3))}
            kill_after = resume_after = None
            fail_inputs = None
            if i % 20 == 7:  # 5 % are cancelled by the soak: long jobs, killed early
                outcome, duration, kill_after = JobStatus.COMPLETED, 90.0, rng.uniform(0.5, 3.0)
            else:
                draw = rng.random()
                outcome = JobStatus.FAILED if draw < 0.1 else JobStatus.TIMEDOUT if draw < 0.2 else JobStatus.COMPLETED
                # Triggers all wait at once, for about as long as the sync path takes through its threads.
                duration = rng.uniform(2.0, max(10.0, cfg.n / 10)) if path == "trigger" else rng.uniform(1.0, 4.0)
                if outcome is JobStatus.COMPLETED and len(sources) > 1 and rng.random() < 0.2:
                    fail_inputs = ["s0"]  # an input fails, the job still completes
            if path == "trigger" and i % 10 == 3:  # 10 %: the trigger moves to "another triggerer"
                resume_after = rng.uniform(0.5, 3.0)
            request = SubmitJobRequest(
                model=ModelRef(identifier="echo", version="1.0"),
                input=JobInput(sources=sources),
                # The reference service's test controls, as an extra body field (None: leave out).
                test={"duration_s": round(duration, 2), "outcome": outcome.value}
                | ({"fail_inputs": fail_inputs} if fail_inputs is not None else {}),
            )
            waits.append(
                Wait(
                    path=path,
                    index=i,
                    key=f"soak-{cfg.seed}-{path}-{i}",
                    marker=marker,
                    request=request,
                    planned=JobStatus.CANCELED if kill_after is not None else outcome,
                    kill_after=kill_after,
                    resume_after=resume_after,
                )
            )
    return waits


# ---- counting ---------------------------------------------------------------------------------


class Tally:
    """Thread-safe counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self.counts[name]


@contextlib.contextmanager
def instrumented(tally: Tally, monkeypatch: pytest.MonkeyPatch, log_path: Path) -> Iterator[None]:
    """Count client retries and failed polls; send the package's thousands of warnings to ``log_path``."""
    package_log = logging.getLogger("airflow_jobwait")
    to_file = logging.FileHandler(log_path)
    to_file.setLevel(logging.WARNING)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    monkeypatch.setattr(package_log, "propagate", False)
    package_log.addHandler(to_file)
    # Triggers log through Airflow's structlog, whose levels are per logger name (best effort).
    with contextlib.suppress(Exception):
        from airflow._shared.logging.structlog import PER_LOGGER_LEVELS

        monkeypatch.setitem(PER_LOGGER_LEVELS, "airflow_jobwait", logging.ERROR)
    original = WaitLoop.on_error

    def counting_on_error(self: WaitLoop, error: JobWaitError) -> WaitOutcome | None:
        tally.add("failed polls charged to waits")
        return original(self, error)

    monkeypatch.setattr(WaitLoop, "on_error", counting_on_error)
    after_failure = RetryState.after_failure

    def counting_after_failure(self: RetryState, error: JobWaitError) -> float:
        # Counted here, not from the log: a shared request's retries are told to each wait.
        delay = after_failure(self, error)
        tally.add("client retries")
        return delay

    monkeypatch.setattr(RetryState, "after_failure", counting_after_failure)
    try:
        yield
    finally:
        package_log.removeHandler(to_file)
        to_file.close()


# ---- the run ----------------------------------------------------------------------------------


class Soak:
    def __init__(self, cfg: SoakConfig, proc: ServiceProcess, proxy: FaultProxy) -> None:
        self.cfg = cfg
        self.proc = proc
        self.proxy = proxy
        self.waits = plan(cfg)
        self.tally = Tally()
        self.faults = FaultControl(proc.base_url, proc.api_key)
        self.deadline = time.time() + cfg.budget
        self._local = threading.local()
        self._lock = threading.Lock()
        self.submitted = 0
        self.finished = 0
        self.finished_triggers = 0
        self.active = 0
        self.peak_active = 0
        self.lives = 0
        self.restarts: list[dict[str, Any]] = []
        self.fault_stats: list[dict[str, Any]] = []
        self.waits_over = threading.Event()
        self.stop = threading.Event()
        self.sync_pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="soak-sync")
        self.aux_pool = ThreadPoolExecutor(AUX_THREADS, thread_name_prefix="soak-aux")
        # Kills get threads of their own: a user's "mark failed" does not queue behind other
        # tasks' submissions (under socket faults, lost submit answers keep the aux pool busy for
        # minutes at N=1000, and a kill queued there came after its 90 s job had completed).
        self.kill_pool = ThreadPoolExecutor(KILL_THREADS, thread_name_prefix="soak-kill")
        self.control_pool = ThreadPoolExecutor(2, thread_name_prefix="soak-control")
        self.results_pool = ThreadPoolExecutor(DEPOSITORS, thread_name_prefix="soak-results")
        # results store: planned works, what the store must hold at the end, what was locked
        self.works_expected: dict[str, dict[str, Any]] = {}
        self.locked_snapshots: dict[str, dict[str, Any]] = {}
        self.work_errors: list[str] = []
        self.loop_errors: list[str] = []  # what the event loop reported unhandled (e.g. a task's exception)
        self.depositor_done_s = 0.0
        self.started = time.monotonic()

    # -- helpers --------------------------------------------------------------------------------

    def jobs_hook(self) -> JobsHook:
        hook = getattr(self._local, "jobs", None)
        if hook is None:
            hook = self._local.jobs = JobsHook(CONN_ID, retry=SYNC_RETRY)
        return hook

    def results_hook(self) -> ResultsHook:
        hook = getattr(self._local, "results", None)
        if hook is None:
            hook = self._local.results = ResultsHook(RESULTS_CONN, retry=SYNC_RETRY)
        return hook

    def persist(self, what: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it gets through: what a task retry does once the client gave up."""
        for attempt in range(1, CALLER_ATTEMPTS + 1):
            try:
                return fn()
            except TRANSIENT as err:
                if isinstance(err, ApiError) and not _transient_status(err):
                    raise
                if attempt == CALLER_ATTEMPTS or self.stop.is_set():
                    raise
                self.resent(what, err)
                time.sleep(min(2.0, 0.2 * attempt))
        raise AssertionError("unreachable")

    def resent(self, what: str, err: Exception) -> None:
        cause = f"{type(err).__name__} {err.status}" if isinstance(err, ApiError) else type(err).__name__
        self.tally.add(f"caller re-sends: {what}: {cause}")

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + delta)
            if name == "active":
                self.peak_active = max(self.peak_active, self.active)

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.time())

    # -- submissions and kills ------------------------------------------------------------------

    def submit(self, wait: Wait) -> str:
        hook = self.jobs_hook()
        started = time.monotonic()
        job = self.persist("submit", lambda: hook.submit_job(wait.request, idempotency_key=wait.key))
        wait.submit_s = time.monotonic() - started
        wait.job_ids.add(job.job_identifier)
        self._count("submitted")
        return job.job_identifier

    def get_job_status(self, job_id: str) -> JobStatus:
        hook = self.jobs_hook()
        return self.persist("get job", lambda: hook.get_job(job_id)).status

    def cancel_until_canceled(self, wait: Wait, job_id: str) -> None:
        """Cancel (again) until the job is CANCELED; a cancel answered 409 is checked with a get."""
        hook = self.jobs_hook()
        for _ in range(CALLER_ATTEMPTS):
            status = self.get_job_status(job_id)
            if status is JobStatus.CANCELED:
                return
            if status.is_terminal:
                wait.kill_error = f"job {job_id} ended {status.value} before the soak killed it"
                return
            try:
                hook.cancel_job(job_id)
                self.tally.add("cancel calls")
                return
            except Conflict:
                if self.get_job_status(job_id) is JobStatus.CANCELED:
                    # The first attempt's answer was lost, the client's retry found the job cancelled.
                    self.tally.add("cancel_job raised 409 for a cancel that took effect")
                    return
                continue  # terminal otherwise: the get above tells how
            except TRANSIENT as err:
                self.resent("cancel", err)
                time.sleep(0.5)
        wait.kill_error = f"could not cancel job {job_id}"

    async def kill_trigger_job(self, wait: Wait, trigger_kwargs: dict[str, Any]) -> None:
        """What the triggerer does when a user marks the deferred task: ``on_kill`` of the trigger."""
        assert wait.kill_after is not None
        await asyncio.sleep(wait.kill_after)
        await JobTrigger(**trigger_kwargs).on_kill()
        self.tally.add("kills: trigger on_kill")
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(self.kill_pool, self.get_job_status, trigger_kwargs["job_id"])
        if status is not JobStatus.CANCELED:  # on_kill only logs a failed cancel: a user clicks again
            self.tally.add("kills: on_kill did not get through, cancelled again")
            await loop.run_in_executor(self.kill_pool, self.cancel_until_canceled, wait, trigger_kwargs["job_id"])

    async def kill_sync_job(self, wait: Wait, job_id: str) -> None:
        """What ``on_kill`` of a blocking operator does: cancel from another thread while it waits."""
        assert wait.kill_after is not None
        await asyncio.sleep(wait.kill_after)
        self.tally.add("kills: cancel_job during wait_for_job")
        await asyncio.get_running_loop().run_in_executor(self.kill_pool, self.cancel_until_canceled, wait, job_id)

    # -- the two wait paths ---------------------------------------------------------------------

    async def trigger_path(self, wait: Wait) -> None:
        loop = asyncio.get_running_loop()
        killer: asyncio.Task[None] | None = None
        try:
            job_id = await loop.run_in_executor(self.aux_pool, self.submit, wait)
            kwargs = {
                "job_id": job_id,
                "conn_id": CONN_ID,
                "poll_interval": self.cfg.trigger_poll,
                "deadline": time.time() + self.remaining(),
                "cancel_on_kill": True,
            }
            trigger = JobTrigger(**kwargs)
            if wait.kill_after is not None:
                killer = asyncio.create_task(self.kill_trigger_job(wait, trigger.serialize()[1]))
            self._count("active")
            try:
                if wait.resume_after is not None:
                    first = asyncio.create_task(self.run_trigger(trigger, wait))
                    done, _ = await asyncio.wait({first}, timeout=wait.resume_after)
                    if not done:
                        # The triggerer stops it (shutdown, rebalancing); another one starts it
                        # again from its serialized kwargs. Neither may cancel the job.
                        first.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await first
                        self.tally.add("triggers moved to another triggerer")
                        classpath, moved_kwargs = trigger.serialize()
                        assert classpath.endswith("JobTrigger")
                        await self.run_trigger(JobTrigger(**moved_kwargs), wait)
                    else:
                        first.result()
                else:
                    await self.run_trigger(trigger, wait)
            finally:
                self._count("active", -1)
            if killer is not None:
                await killer
        except Exception as err:  # recorded, checked with the others
            wait.error = f"{type(err).__name__}: {err}"
            if killer is not None:
                killer.cancel()
        finally:
            wait.ended_s = time.monotonic() - self.started
            self._count("finished")
            self._count("finished_triggers")

    async def run_trigger(self, trigger: JobTrigger, wait: Wait) -> None:
        """Consume ``run()`` as the triggerer does; a trigger fires exactly one event."""
        async for event in trigger.run():
            wait.events += 1
            wait.outcome = WaitOutcome.model_validate(event.payload)

    def sync_path(self, wait: Wait, loop: asyncio.AbstractEventLoop) -> None:
        killer: Future[None] | None = None
        try:
            job_id = self.submit(wait)
            if wait.kill_after is not None:
                killer = asyncio.run_coroutine_threadsafe(self.kill_sync_job(wait, job_id), loop)
            self._count("active")
            try:
                wait.outcome = self.jobs_hook().wait_for_job(job_id, poll_interval=SYNC_POLL, timeout=self.remaining())
            finally:
                self._count("active", -1)
            if killer is not None:
                killer.result(timeout=self.remaining())
        except Exception as err:
            wait.error = f"{type(err).__name__}: {err}"
        finally:
            wait.ended_s = time.monotonic() - self.started
            self._count("finished")

    # -- restarts -------------------------------------------------------------------------------

    def collect_fault_stats(self) -> None:
        """Requests seen and faults fired per rule in this life of the service."""
        try:
            state = self.faults.state()
        except Exception as err:
            self.fault_stats.append({"error": repr(err)})
            return
        fired = Counter({_rule_label(rule): rule["fired"] for rule in state["rules"]})
        self.fault_stats.append({"requests": state["stats"]["requests"], "fired": fired})

    def restart(self, label: str) -> None:
        self.collect_fault_stats()  # counters live in the process: read them just before the kill
        self.lives += 1
        self.proc.env[FAULTS_ENV] = fault_env(self.cfg, self.lives)
        in_flight = self.active
        at = time.monotonic() - self.started
        down = self.proc.restart(kill=True)
        self.restarts.append(
            {"label": label, "at_s": at, "down_s": down, "waits_in_flight": in_flight, "submitted": self.submitted}
        )

    async def restarter(self) -> None:
        loop = asyncio.get_running_loop()
        total = len(self.waits)
        points: list[tuple[str, Callable[[], bool]]] = [
            ("after 25% of waits ended", lambda: self.finished >= total // 4),
            ("after 60% of waits ended", lambda: self.finished >= total * 3 // 5 and self.since_last_restart() >= 3.0),
        ]
        for label, due in points:
            while not due():
                if self.waits_over.is_set():
                    return
                await asyncio.sleep(0.05)
            await loop.run_in_executor(self.control_pool, self.restart, label)

    def since_last_restart(self) -> float:
        if not self.restarts:
            return float("inf")
        return time.monotonic() - self.started - self.restarts[-1]["at_s"] - self.restarts[-1]["down_s"]

    # -- results store --------------------------------------------------------------------------

    def planned_works(self) -> list[list[dict[str, Any]]]:
        count = max(20, self.cfg.n // 2)
        batch = max(1, count // 40)
        works = [
            {
                "id": f"soak-work-{i}",
                "pipeline": PIPELINE,
                "status": "success" if i % 7 else "failure",
                "function": "soak",
                "parameters": {"index": i, "seed": self.cfg.seed},
                "results": {"value": i * 3, "locked": False},
                "event": [i],
                "tags": ["soak"],
                "creation": 1_700_000_000 + i,
            }
            for i in range(count)
        ]
        return [works[i : i + batch] for i in range(0, count, batch)]

    def deposit(self, batch: list[dict[str, Any]]) -> None:
        """Deposit a batch (all or none). A lost answer is sent again; 409 then means "done already"
        only if every stored work is exactly what was sent."""
        hook = self.results_hook()
        ids = [work["id"] for work in batch]
        for attempt in range(1, CALLER_ATTEMPTS + 1):
            try:
                hook.deposit(batch)
                self.tally.add("works deposited")
                break
            except Conflict:
                stored = {
                    doc["id"]: doc
                    for doc in self.persist(
                        "view",
                        lambda: hook.call(
                            results_api.view_documents(PIPELINE, {"id": {"$in": ids}}, limit=results_api.NO_LIMIT)
                        ),
                    )
                }
                if all(stored.get(work["id"]) == work for work in batch):
                    self.tally.add("deposits answered 409 after an earlier lost answer (matched)")
                    break
                raise AssertionError(f"deposit of {ids} clashed with other works: {stored}") from None
            except TRANSIENT as err:
                if attempt == CALLER_ATTEMPTS:
                    raise
                self.resent("deposit", err)
                time.sleep(0.3)
        for work in batch:
            self.works_expected[work["id"]] = json.loads(json.dumps(work))
        self.tally.add("work batches", 1)

    def lock(self, work_ids: list[str]) -> None:
        hook = self.results_hook()
        self.persist("lock", lambda: hook.lock(PIPELINE, work_ids))
        for work_id in work_ids:
            self.works_expected[work_id]["results"]["locked"] = True
            self.locked_snapshots[work_id] = json.loads(json.dumps(self.works_expected[work_id]))
        self.tally.add("works locked", len(work_ids))

    def try_forbidden(self, work_id: str) -> None:
        """Change and delete a locked work: both must be refused with 409, whatever the faults."""
        hook = self.results_hook()
        for name, change in (
            ("update", lambda: hook.update([{"id": work_id, "results": {"value": -1, "locked": True}}])),
            ("delete", lambda: hook.delete_ids(PIPELINE, [work_id])),
        ):
            for _ in range(CALLER_ATTEMPTS):
                try:
                    change()
                except Conflict:
                    self.tally.add("changes to locked works refused")
                    break
                except TRANSIENT as err:
                    self.resent("change of a locked work", err)
                    time.sleep(0.3)
                    continue
                self.work_errors.append(f"{name} of locked work {work_id} was accepted")
                break

    def update_unlocked(self, work_id: str) -> None:
        hook = self.results_hook()
        self.persist("update", lambda: hook.update([{"id": work_id, "tags": ["soak", "updated"]}]))
        self.works_expected[work_id]["tags"] = ["soak", "updated"]
        self.tally.add("unlocked works updated")

    def depositor(self) -> None:
        """Deposit the batches spread over the run (paced by finished waits), lock some, poke them.

        Up to ``DEPOSITORS`` batches at once, as parallel tasks of a DAG would: a deposit whose
        answer is lost costs at least one request timeout before it is read back, and one
        depositor alone would fall behind the waits.
        """
        batches = self.planned_works()
        total_waits = len(self.waits)
        running: list[Future[None]] = []
        for number, batch in enumerate(batches):
            while not self.waits_over.is_set() and not self.stop.is_set():
                if self.finished * len(batches) >= number * total_waits:
                    break
                time.sleep(0.05)
            if self.stop.is_set():
                break
            running.append(self.results_pool.submit(self.batch_work, number, batch))
        for future in running:
            with contextlib.suppress(Exception):  # batch_work records its own errors
                future.result()

    def batch_work(self, number: int, batch: list[dict[str, Any]]) -> None:
        """Deposit one batch, then lock two of its works (and try to change them) or update one."""
        try:
            self.deposit(batch)
            if number % 3 == 1:
                self.lock([work["id"] for work in batch[:2]])
                self.try_forbidden(batch[0]["id"])
            elif number % 4 == 2:
                self.update_unlocked(batch[-1]["id"])
        except Exception as err:
            self.work_errors.append(f"batch {number} stopped: {type(err).__name__}: {err}")

    # -- all together ---------------------------------------------------------------------------

    def on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The triggerer's loop must not drop exceptions: a crashed background task is a defect."""
        error = context.get("exception")
        where = context.get("task") or context.get("future") or ""
        self.loop_errors.append(f"{context.get('message')}: {error!r} {str(where)[:160]}")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        restarter = asyncio.create_task(self.restarter())
        depositor = loop.run_in_executor(self.control_pool, self.depositor)
        triggers = [asyncio.create_task(self.trigger_path(w)) for w in self.waits if w.path == "trigger"]
        syncs = [loop.run_in_executor(self.sync_pool, self.sync_path, w, loop) for w in self.waits if w.path == "sync"]
        try:
            await asyncio.gather(*triggers, *syncs)
            self.waits_over.set()
            await restarter
            await depositor
            self.depositor_done_s = time.monotonic() - self.started
        finally:
            self.waits_over.set()
            self.stop.set()
            restarter.cancel()
            for task in triggers:
                task.cancel()

    def close(self) -> None:
        self.stop.set()
        for pool in (self.sync_pool, self.aux_pool, self.kill_pool, self.control_pool, self.results_pool):
            pool.shutdown(wait=False, cancel_futures=True)


def _rule_label(rule: dict[str, Any]) -> str:
    return {"status": str(rule.get("status")), "drop": "reset", "delay": "delay", "truncate": "truncated"}.get(
        rule["kind"], "invalid JSON"
    )


def _transient_status(err: ApiError) -> bool:
    return err.status in (408, 425, 429, 500, 502, 503, 504)


# ---- checks against the store -----------------------------------------------------------------


def read_store(db_path: Path) -> tuple[list[tuple[str, str, str]], dict[str, tuple[bool, dict[str, Any]]]]:
    """Jobs ``(id, status, first input text)`` and works ``{id: (locked, doc)}`` from the SQLite file."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        jobs = con.execute(
            "SELECT j.id, j.status, i.text FROM inference_jobs j"
            " JOIN inference_inputs i ON i.job_id = j.id AND i.position = 0"
        ).fetchall()
        works = {
            row[0]: (bool(row[1]), json.loads(row[2]))
            for row in con.execute("SELECT id, locked, doc FROM results_store_works WHERE pipeline = ?", (PIPELINE,))
        }
    finally:
        con.close()
    return jobs, works


def check(soak: Soak, timed_out: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """The invariants (violations, at most a few named each) and the figures."""
    jobs, works = read_store(soak.proc.db_path)
    by_marker: dict[str, list[tuple[str, str]]] = {}
    for job_id, status, text in jobs:
        by_marker.setdefault(text.rsplit(" input ", 1)[0], []).append((job_id, status))
    problems: dict[str, list[str]] = {}

    def problem(kind: str, detail: str) -> None:
        problems.setdefault(kind, []).append(detail)

    if timed_out:
        problem("run exceeded its budget", f"{soak.cfg.budget:.0f}s; {soak.finished}/{len(soak.waits)} waits ended")
    waits_ok = Counter[str]()
    duplicates = 0
    for wait in soak.waits:
        stored = by_marker.get(wait.marker, [])
        duplicates += max(0, len(stored) - 1)
        if len(stored) > 1:
            problem("duplicate jobs", f"{wait.marker}: {len(stored)} jobs")
        name = f"{wait.path}-{wait.index}"
        if wait.error:
            problem("wait raised", f"{name}: {wait.error}")
            continue
        if wait.kill_error:
            problem("kill failed", f"{name}: {wait.kill_error}")
        if not stored:
            problem("submission lost (no job in the store)", name)
            continue
        store_id, store_status = stored[0]
        if wait.job_ids != {store_id} or len(stored) != 1:
            problem("client saw other job ids than the store holds", f"{name}: {sorted(wait.job_ids)} vs {stored}")
        outcome = wait.outcome
        if outcome is None:
            problem("wait ended without an outcome", name)
            continue
        if wait.path == "trigger" and wait.events != 1:
            problem("trigger fired other than one event", f"{name}: {wait.events}")
        if outcome.kind != "terminal":
            problem(f"wait ended {outcome.kind}", f"{name}: {outcome.message}")
        elif outcome.status is None or outcome.status.value != store_status:
            problem("wait status differs from the store", f"{name}: {outcome.status} vs {store_status}")
        elif store_status != wait.planned.value:
            problem("job ended other than planned", f"{name}: {store_status}, planned {wait.planned.value}")
        else:
            waits_ok[wait.path] += 1
    markers = {wait.marker for wait in soak.waits}
    strangers = [job_id for marker, found in by_marker.items() if marker not in markers for job_id, _ in found]
    if strangers:
        problem("jobs in the store nobody submitted", ", ".join(strangers[:5]))
    killed = {wait.marker for wait in soak.waits if wait.kill_after is not None}
    canceled = {marker for marker, found in by_marker.items() for _, status in found if status == "CANCELED"}
    for marker in sorted(canceled - killed):
        problem("job CANCELED that nobody killed", marker)
    for marker in sorted(killed - canceled):
        problem("killed job not CANCELED", marker)

    lost = [work_id for work_id in soak.works_expected if work_id not in works]
    for work_id in lost:
        problem("deposited work lost", work_id)
    changed = [work_id for work_id, doc in soak.works_expected.items() if work_id in works and works[work_id][1] != doc]
    for work_id in changed:
        problem("work differs from what was deposited/updated", f"{work_id}: {works[work_id][1]}")
    locked_changed = [
        work_id
        for work_id, snap in soak.locked_snapshots.items()
        if work_id not in works or works[work_id][1] != snap or not works[work_id][0]
    ]
    for work_id in locked_changed:
        problem("locked work changed", work_id)
    for error in soak.work_errors:
        problem("results store", error)
    for error in soak.loop_errors:
        problem("unhandled exception in the triggerer's event loop", error)
    if len(soak.restarts) < RESTART_POINTS:
        problem("fewer restarts than planned", f"{len(soak.restarts)} of {RESTART_POINTS}")

    # figures
    injected: Counter[str] = Counter()
    requests = 0
    for stats in soak.fault_stats:
        if "error" in stats:
            problem("could not read fault stats", stats["error"])
            continue
        requests += stats["requests"]
        injected.update(stats["fired"])
    total_injected = sum(injected.values())
    by_kind = ", ".join(f"{label} {count}" for label, count in sorted(injected.items()))
    if soak.cfg.fault_share > 0:
        for label in sorted({_rule_label(rule) for _, rule in FAULT_MIX} - {k for k, v in injected.items() if v}):
            problem("service fault kind never fired", label)
    proxy = soak.proxy.stats()
    socket_fired: Counter[str] = proxy["fired"]
    socket_total = sum(socket_fired.values())
    socket_writes: Counter[str] = proxy["fired on writes"]
    if soak.cfg.socket_share > 0:
        for kind in SOCKET_KINDS:
            if not socket_fired[kind]:
                problem("socket fault kind never fired", kind)
        if not socket_writes.total():  # else "no duplicates" would say nothing of lost submit answers
            problem("no socket fault hit a write (submit, cancel, deposit)", "0 faults on POST/PUT/PATCH/DELETE")
    n = soak.cfg.n
    t = soak.tally
    retries = t["client retries"]
    caller = sum(v for k, v in t.counts.items() if k.startswith("caller re-sends"))
    replays = t["deposits answered 409 after an earlier lost answer (matched)"]
    figures = [
        ("waits", f"{n} through JobTrigger (one event loop) + {n} through wait_for_job ({SYNC_THREADS} threads)"),
        (
            "poll interval",
            f"trigger {soak.cfg.trigger_poll:g}s (status_mode {soak.cfg.status_mode or 'default'}), "
            f"sync {SYNC_POLL:g}s; client timeout {CLIENT_TIMEOUT:g}s",
        ),
        ("wall time", f"{time.monotonic() - soak.started:.0f}s (peak {soak.peak_active} waits in flight)"),
        ("requests seen by the service", str(requests)),
        (
            "faults injected by the service",
            f"{total_injected} ({100 * total_injected / max(1, requests):.1f}%): {by_kind}",
        ),
        ("exchanges through the proxy", f"{proxy['exchanges']} on {proxy['connections']} client connections"),
        (
            "socket faults (proxy)",
            f"{socket_total} ({100 * socket_total / max(1, proxy['exchanges']):.1f}%): "
            + ", ".join(f"{kind} {socket_fired[kind]}" for kind in SOCKET_KINDS)
            + f"; on writes {socket_writes.total()}; drips the client gave up on {proxy['drips abandoned']}",
        ),
        (
            "proxy: service unreachable / closed early",
            f"{proxy['upstream refused']} / {proxy['upstream closed early']} (restarts; the service's resets and cuts)",
        ),
        ("client retries (RetryPolicy)", str(retries)),
        ("failed polls charged to waits", str(t["failed polls charged to waits"])),
        ("caller re-sends (as a task retry would)", f"{caller} ({_caller_detail(t)})"),
        (
            "restarts (SIGKILL, same SQLite)",
            f"{len(soak.restarts)}: "
            + "; ".join(
                f"{r['label']} at {r['at_s']:.0f}s, down {r['down_s']:.1f}s, {r['waits_in_flight']} waits in flight"
                for r in soak.restarts
            ),
        ),
        ("triggers moved to another triggerer", str(t["triggers moved to another triggerer"])),
        ("where the time went", _timeline(soak)),
        ("unhandled exceptions in the event loop", str(len(soak.loop_errors))),
        (
            "kills",
            f"{t['kills: trigger on_kill']} by trigger on_kill "
            f"({t['kills: on_kill did not get through, cancelled again']} not through, cancelled again), "
            f"{t['kills: cancel_job during wait_for_job']} by cancel_job during wait_for_job; "
            f"{t['cancel_job raised 409 for a cancel that took effect']} cancel_job 409s for a cancel that took effect",
        ),
        (
            "waits finished with the true status",
            f"{waits_ok['trigger'] + waits_ok['sync']}/{2 * n} "
            f"(trigger {waits_ok['trigger']}/{n}, sync {waits_ok['sync']}/{n})",
        ),
        (
            "jobs in the store / submissions",
            f"{len(jobs)}/{len(soak.waits)}; duplicates {duplicates}; strangers {len(strangers)}",
        ),
        (
            "killed / CANCELED in the store",
            f"{len(killed)} / {len(canceled)}; cancelled unasked {len(canceled - killed)}",
        ),
        (
            "results store",
            f"{len(soak.works_expected)} works deposited, {len(soak.works_expected) - len(lost)} present, "
            f"lost {len(lost)}; {len(soak.locked_snapshots)} locked, "
            f"{len(soak.locked_snapshots) - len(locked_changed)} unchanged; "
            f"{t['changes to locked works refused']} changes to locked works refused; "
            f"{replays} re-sent deposits found already stored",
        ),
    ]
    violations = [f"{kind}: {len(items)} (e.g. {'; '.join(items[:3])})" for kind, items in problems.items()]
    return violations, figures


def _timeline(soak: Soak) -> str:
    """When the last waits of each path ended, the slowest submission, when deposits ended."""
    parts = []
    for path in ("trigger", "sync"):
        ends = sorted(w.ended_s for w in soak.waits if w.path == path)
        if ends:
            parts.append(f"{path} waits 95% ended by {ends[int(0.95 * (len(ends) - 1))]:.0f}s, all by {ends[-1]:.0f}s")
    slowest = max(soak.waits, key=lambda w: w.submit_s)
    parts.append(f"slowest submit {slowest.submit_s:.0f}s ({slowest.path}-{slowest.index})")
    parts.append(f"deposits done at {soak.depositor_done_s:.0f}s")
    return "; ".join(parts)


def _caller_detail(tally: Tally) -> str:
    """``submit 12 (InvalidResponse 10, TransportError 2), ...``: what was re-sent, and why."""
    by_call: dict[str, Counter[str]] = {}
    for name, count in tally.counts.items():
        if name.startswith("caller re-sends: "):
            what, cause = name.removeprefix("caller re-sends: ").rsplit(": ", 1)
            by_call.setdefault(what, Counter())[cause] += count
    parts = [
        f"{what} {sum(causes.values())} ({', '.join(f'{c} {n}' for c, n in causes.most_common())})"
        for what, causes in sorted(by_call.items())
    ]
    return "; ".join(parts) or "none"


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(none)"


def render(cfg: SoakConfig, figures: list[tuple[str, str]], violations: list[str]) -> str:
    width = max(len(name) for name, _ in figures)
    lines = [
        "",
        f"=== jobwait soak: N={cfg.n}, {100 * cfg.fault_share:g}% service faults, "
        f"{100 * cfg.socket_share:g}% socket faults, seed {cfg.seed} ===",
        *(f"  {name:<{width}}  {value}" for name, value in figures),
        f"  {'invariants':<{width}}  " + ("all hold" if not violations else f"{len(violations)} VIOLATED"),
        *(f"    - {v}" for v in violations),
    ]
    return "\n".join(lines)


async def test_soak_under_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = CONFIG
    proc = ServiceProcess(
        api_key=API_KEY,
        db_path=tmp_path / "soak.sqlite",
        test_controls=True,
        startup_timeout=60,
        env={FAULTS_ENV: fault_env(cfg, 0)},
    )
    proc.start()
    # The clients talk to the proxy; the soak's own control calls (faults, stats) go straight
    # to the service.
    proxy = FaultProxy(
        proc.host, proc.port, socket_mix(cfg.socket_share), seed=cfg.seed, drip_interval=cfg.drip_interval
    ).start()
    extra: dict[str, Any] = {"timeout": CLIENT_TIMEOUT}
    if cfg.status_mode:
        extra["status_mode"] = cfg.status_mode
    conn_extra = {"modzy": extra, "chime_results": {"timeout": CLIENT_TIMEOUT}}
    for name, value in connection_env(proxy.url, API_KEY, conn_extra, proc.profile).items():
        monkeypatch.setenv(name, value)
    soak = Soak(cfg, proc, proxy)
    timed_out = False
    try:
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(soak.on_loop_error)
        with instrumented(soak.tally, monkeypatch, tmp_path / "client.log"):
            try:
                await asyncio.wait_for(soak.run(), cfg.budget)
            except TimeoutError:
                timed_out = True
            finally:
                gc.collect()  # tasks that died unobserved report it when collected
                await asyncio.sleep(0.1)
                loop.set_exception_handler(previous_handler)
            await asyncio.get_running_loop().run_in_executor(None, soak.collect_fault_stats)
        FaultControl(proc.base_url, API_KEY).clear()
        violations, figures = check(soak, timed_out)
        report = render(cfg, figures, violations)
        if violations:
            client_log = _tail(tmp_path / "client.log", 30)
            pytest.fail(
                f"{report}\n\nclient log tail ({tmp_path / 'client.log'}):\n{client_log}\n\n"
                f"service log tail ({proc.log_path}):\n{proc.log_tail(30)}",
                pytrace=False,
            )
        with capsys.disabled():
            print(report)
    finally:
        soak.close()
        proxy.close()
        proc.close()
