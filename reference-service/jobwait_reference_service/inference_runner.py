"""Persistence and background progression of inference jobs.

A job's whole life is planned at submit time as absolute epoch times (start, each input's
completion, the terminal transition) and stored in SQLite with the job. ``JobRunner`` sleeps until
the earliest ``next_due`` of any job, applies every transition that has come due in one
transaction, and tells ``StatusHub`` which jobs changed status so watch requests wake up. Because
the plan is in the database, a restarted service simply carries on: a job whose times passed while
the service was down is brought to its end state on the first tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from jobwait_reference_service.db import Database
from jobwait_reference_service.due_loop import DueLoop
from jobwait_reference_service.inference_models import MODELS, ModelError, ModelSpec

log = logging.getLogger(__name__)

SUBMITTED, IN_PROGRESS = "SUBMITTED", "IN_PROGRESS"
COMPLETED, TIMEDOUT, CANCELED, FAILED = "COMPLETED", "TIMEDOUT", "CANCELED", "FAILED"
RUNNING = frozenset({SUBMITTED, IN_PROGRESS})
TERMINAL = frozenset({COMPLETED, TIMEDOUT, CANCELED, FAILED})
TEST_OUTCOMES = (COMPLETED, TIMEDOUT, FAILED)

# Input row states: PENDING until processed; SUCCESSFUL/FAILED are what results show.
PENDING, SUCCESSFUL = "PENDING", "SUCCESSFUL"
# Input plans: run the model, fail on purpose (test control), or never finish (job crashes/times out first).
PLAN_RUN, PLAN_FAIL, PLAN_UNFINISHED = "run", "fail", "unfinished"

SUBMITTED_SECONDS = 0.3
# Bound each runner transaction so submits and cancels never wait long for the write lock.
TICK_BATCH = 500
# SQLite's bound-parameter limit is 32766 on current builds; stay far below it.
SQL_CHUNK = 500

DDL = """
CREATE TABLE IF NOT EXISTS inference_jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    explain INTEGER NOT NULL,
    input_type TEXT NOT NULL,
    access_key TEXT NOT NULL,
    source_keys TEXT NOT NULL,
    total_inputs INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL NOT NULL,
    end_at REAL NOT NULL,
    final_status TEXT NOT NULL,
    finished_at REAL,
    next_due REAL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inference_jobs_status ON inference_jobs (status);
CREATE INDEX IF NOT EXISTS inference_jobs_submitted ON inference_jobs (submitted_at);
CREATE INDEX IF NOT EXISTS inference_jobs_next_due ON inference_jobs (next_due) WHERE next_due IS NOT NULL;
CREATE TABLE IF NOT EXISTS inference_inputs (
    job_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    source_key TEXT NOT NULL,
    text TEXT NOT NULL,
    plan TEXT NOT NULL,
    start_at REAL NOT NULL,
    due_at REAL NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    error TEXT,
    end_at REAL,
    PRIMARY KEY (job_id, position)
);
CREATE TABLE IF NOT EXISTS inference_idempotency (
    access_key TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (access_key, key)
);
"""


@dataclass(frozen=True)
class TestControls:
    """The ``test`` field of a submit body [ext].

    :param duration_s: Whole running time (SUBMITTED to terminal); ``None`` keeps the models' timing.
    :param outcome: Terminal status the job reaches.
    :param fail_inputs: Source keys whose inputs end ``FAILED`` while the job goes on.
    """

    duration_s: float | None = None
    outcome: str = COMPLETED
    fail_inputs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NewJob:
    """A validated submit, ready to be planned and stored.

    :param sources: ``(source key, text the model reads)`` in submit order.
    """

    job_id: str
    model: ModelSpec
    version: str
    explain: bool
    input_type: str
    access_key: str
    sources: list[tuple[str, str]]
    test: TestControls | None = None


@dataclass
class InputPlan:
    position: int
    source_key: str
    text: str
    plan: str
    start_at: float
    due_at: float


@dataclass
class JobPlan:
    started_at: float
    end_at: float
    final_status: str
    inputs: list[InputPlan] = field(default_factory=list)


class KeyConflict(Exception):
    """An ``Idempotency-Key`` was reused with a different body."""


class AlreadyTerminal(Exception):
    """Cancel of a job that has already ended; carries its status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def plan_job(job: NewJob, now: float) -> JobPlan:
    """Lay out a job's life in absolute times: queued, then inputs one after another.

    With a test ``duration_s`` the running time is spread evenly over the inputs. A job planned to
    end ``FAILED`` or ``TIMEDOUT`` finishes only its first half of inputs before the end.
    """
    test = job.test or TestControls()
    count = len(job.sources)
    if test.duration_s is not None:
        queued = min(SUBMITTED_SECONDS, test.duration_s * 0.2)
        slots = [(test.duration_s - queued) / count] * count
    else:
        queued = SUBMITTED_SECONDS
        slots = [job.model.input_seconds(text) for _key, text in job.sources]
    finishing = count if test.outcome == COMPLETED else count // 2
    plan = JobPlan(started_at=now + queued, end_at=now + queued, final_status=test.outcome)
    at = plan.started_at
    for position, ((key, text), slot) in enumerate(zip(job.sources, slots, strict=True)):
        kind = PLAN_UNFINISHED if position >= finishing else PLAN_FAIL if key in test.fail_inputs else PLAN_RUN
        plan.inputs.append(InputPlan(position, key, text, kind, at, at + slot))
        at += slot
    plan.end_at = at
    return plan


def insert_job(
    db: Database, job: NewJob, doc: str, now: float, idempotency: tuple[str, str] | None = None
) -> tuple[sqlite3.Row, bool]:
    """Store a new job (or find the one an idempotency key already made).

    :param doc: The Job body's fields that never change, as JSON (served without re-encoding).
    :param idempotency: ``(key, canonical body hash)``; checked and recorded in the job's transaction,
        so concurrent submits with one key create exactly one job.
    :return: The job row and whether it was created now.
    :raises KeyConflict: The key was used before with a different body.
    """
    plan = plan_job(job, now)
    with db.transaction() as conn:
        if idempotency is not None:
            key, body_hash = idempotency
            seen = conn.execute(
                "SELECT body_hash, job_id FROM inference_idempotency WHERE access_key = ? AND key = ?",
                (job.access_key, key),
            ).fetchone()
            if seen is not None:
                if seen["body_hash"] != body_hash:
                    raise KeyConflict(key)
                row = conn.execute("SELECT * FROM inference_jobs WHERE id = ?", (seen["job_id"],)).fetchone()
                return row, False
            conn.execute(
                "INSERT INTO inference_idempotency (access_key, key, body_hash, job_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (job.access_key, key, body_hash, job.job_id, now),
            )
        conn.execute(
            "INSERT INTO inference_jobs (id, status, model_id, model_version, explain, input_type, access_key,"
            " source_keys, total_inputs, submitted_at, updated_at, started_at, end_at, final_status, next_due, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.job_id,
                SUBMITTED,
                job.model.identifier,
                job.version,
                int(job.explain),
                job.input_type,
                job.access_key,
                json.dumps([key for key, _text in job.sources]),
                len(job.sources),
                now,
                now,
                plan.started_at,
                plan.end_at,
                plan.final_status,
                plan.started_at,
                doc,
            ),
        )
        conn.executemany(
            "INSERT INTO inference_inputs (job_id, position, source_key, text, plan, start_at, due_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (job.job_id, i.position, i.source_key, i.text, i.plan, i.start_at, i.due_at, PENDING)
                for i in plan.inputs
            ],
        )
        row = conn.execute("SELECT * FROM inference_jobs WHERE id = ?", (job.job_id,)).fetchone()
    return row, True


def _pending_inputs(conn: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, list[sqlite3.Row]]:
    pending: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for start in range(0, len(job_ids), SQL_CHUNK):
        chunk = job_ids[start : start + SQL_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT * FROM inference_inputs WHERE job_id IN ({marks}) AND status = ? ORDER BY job_id, position",
            (*chunk, PENDING),
        )
        for row in rows:
            pending[row["job_id"]].append(row)
    return pending


def _finish_input(conn: sqlite3.Connection, job: sqlite3.Row, row: sqlite3.Row, spec: ModelSpec) -> None:
    """Run the model on one due input (or fail it on purpose) and store the outcome."""
    output = error = None
    if row["plan"] == PLAN_FAIL:
        error = f"model {spec.identifier!r} {job['model_version']} failed on this input (test control fail_inputs)"
    else:
        try:
            output = json.dumps(spec.run(row["text"]))
        except ModelError as exc:
            error = str(exc)
        except Exception as exc:
            # A model bug fails its input rather than rolling back (and retrying forever) the whole tick.
            log.exception("model %s crashed on job %s", spec.identifier, row["job_id"])
            error = f"model {spec.identifier!r} crashed: {exc!r}"
    conn.execute(
        "UPDATE inference_inputs SET status = ?, output = ?, error = ?, end_at = ? WHERE job_id = ? AND position = ?",
        (FAILED if error else SUCCESSFUL, output, error, row["due_at"], row["job_id"], row["position"]),
    )


def _unfinished_error(job: sqlite3.Row) -> str:
    if job["final_status"] == TIMEDOUT:
        return "input timed out: the job reached its time limit before this input finished"
    return f"model {job['model_id']!r} {job['model_version']} crashed before finishing this input"


def advance_job(conn: sqlite3.Connection, job: sqlite3.Row, pending: list[sqlite3.Row], now: float) -> str:
    """Apply every transition of ``job`` due at ``now``, stamped with its planned time.

    :param pending: The job's ``PENDING`` input rows, in position order.
    :return: The job's status afterwards.
    """
    status, updated_at, finished_at = job["status"], job["updated_at"], None
    if status in TERMINAL:
        return status
    if status == SUBMITTED and now >= job["started_at"]:
        status, updated_at = IN_PROGRESS, job["started_at"]
    remaining = pending
    if status == IN_PROGRESS:
        spec = MODELS[job["model_id"]]
        remaining = []
        for row in pending:
            if row["plan"] != PLAN_UNFINISHED and row["due_at"] <= now:
                _finish_input(conn, job, row, spec)
                updated_at = max(updated_at, row["due_at"])
            else:
                remaining.append(row)
        if now >= job["end_at"]:
            error = _unfinished_error(job)
            conn.executemany(
                "UPDATE inference_inputs SET status = ?, error = ?, end_at = ? WHERE job_id = ? AND position = ?",
                [(FAILED, error, job["end_at"], row["job_id"], row["position"]) for row in remaining],
            )
            status, updated_at = job["final_status"], max(updated_at, job["end_at"])
            finished_at, remaining = updated_at, []
    next_due = None
    if status not in TERMINAL:
        candidates = [job["end_at"], *(r["due_at"] for r in remaining if r["plan"] != PLAN_UNFINISHED)]
        if status == SUBMITTED:
            candidates.append(job["started_at"])
        next_due = min(candidates)
    conn.execute(
        "UPDATE inference_jobs SET status = ?, updated_at = ?, finished_at = ?, next_due = ? WHERE id = ?",
        (status, updated_at, finished_at, next_due, job["id"]),
    )
    return status


def cancel_job(db: Database, job_id: str, now: float) -> sqlite3.Row | None:
    """Cancel a running job; its unfinished inputs stop and never appear in results.

    Transitions already due are applied first, so a job that should have ended cannot be canceled.

    :return: The updated row, or ``None`` for an unknown id.
    :raises AlreadyTerminal: The job has already ended.
    """
    with db.transaction() as conn:
        job = conn.execute("SELECT * FROM inference_jobs WHERE id = ?", (job_id,)).fetchone()
        if job is None:
            return None
        status = advance_job(conn, job, _pending_inputs(conn, [job_id])[job_id], now)
        if status in TERMINAL:
            raise AlreadyTerminal(status)
        conn.execute(
            "UPDATE inference_jobs SET status = ?, updated_at = ?, finished_at = ?, next_due = NULL WHERE id = ?",
            (CANCELED, now, now, job_id),
        )
        conn.execute(
            "UPDATE inference_inputs SET status = ?, end_at = ? WHERE job_id = ? AND status = ?",
            (CANCELED, now, job_id, PENDING),
        )
        return conn.execute("SELECT * FROM inference_jobs WHERE id = ?", (job_id,)).fetchone()


def finish_jobs(db: Database, job_ids: Sequence[str], status: str, now: float) -> list[str]:
    """[ext, test controls] End running jobs now with ``status``, in one transaction.

    For benchmarks that must decide when jobs end after they were submitted. Inputs not done yet
    end ``FAILED`` (the job stopped before reaching them), as with a crash or a time limit.

    :return: The ids that were running and have ended now (unknown or terminal ones are skipped).
    """
    if status not in TERMINAL:
        raise ValueError(f"status must be one of {sorted(TERMINAL)}, got {status!r}")
    ended: list[str] = []
    with db.transaction() as conn:
        for start in range(0, len(job_ids), SQL_CHUNK):
            chunk = list(job_ids[start : start + SQL_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id FROM inference_jobs WHERE id IN ({marks}) AND status IN (?, ?)", (*chunk, *sorted(RUNNING))
            ).fetchall()
            ids = [row["id"] for row in rows]
            if not ids:
                continue
            marks = ",".join("?" * len(ids))
            conn.execute(
                f"UPDATE inference_jobs SET status = ?, updated_at = ?, finished_at = ?, next_due = NULL"
                f" WHERE id IN ({marks})",
                (status, now, now, *ids),
            )
            conn.execute(
                "UPDATE inference_inputs SET status = ?, error = ?, end_at = ?"
                f" WHERE job_id IN ({marks}) AND status = ?",
                (FAILED, "the job was ended early by a test control", now, *ids, PENDING),
            )
            ended.extend(ids)
    return ended


def earliest_due(db: Database) -> float | None:
    """Earliest planned transition of any unfinished job (an index lookup)."""
    row = db.connection().execute("SELECT MIN(next_due) FROM inference_jobs WHERE next_due IS NOT NULL").fetchone()
    return row[0]


def apply_due(db: Database, now: float, limit: int = TICK_BATCH) -> tuple[list[str], bool]:
    """Advance up to ``limit`` jobs with transitions due at ``now``, in one transaction.

    :return: Ids of jobs whose status changed, and whether more due jobs may remain.
    """
    changed: list[str] = []
    with db.transaction() as conn:
        jobs = conn.execute(
            "SELECT * FROM inference_jobs WHERE next_due <= ? ORDER BY next_due LIMIT ?", (now, limit)
        ).fetchall()
        pending = _pending_inputs(conn, [job["id"] for job in jobs])
        for job in jobs:
            if advance_job(conn, job, pending.get(job["id"], []), now) != job["status"]:
                changed.append(job["id"])
    return changed, len(jobs) == limit


class StatusHub:
    """In-process wake-ups for watch requests: one ``asyncio.Event`` per waiting request.

    Publishing only sets events; a woken watcher re-reads its jobs, so a missed or duplicated
    publish costs at most one extra read.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, job_ids: Iterable[str]) -> asyncio.Event:
        event = asyncio.Event()
        for job_id in job_ids:
            self._waiters[job_id].add(event)
        return event

    def unsubscribe(self, job_ids: Iterable[str], event: asyncio.Event) -> None:
        for job_id in job_ids:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def publish(self, job_ids: Iterable[str]) -> None:
        """Wake watchers of ``job_ids``; call on the event loop."""
        for job_id in job_ids:
            for event in self._waiters.get(job_id, ()):
                event.set()

    def publish_threadsafe(self, job_ids: Iterable[str]) -> None:
        """Wake watchers from a worker thread (e.g. a cancel handled in the threadpool)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, list(job_ids))


class JobRunner:
    """Background task that moves jobs along their planned times (a ``DueLoop``).

    :param db: The service database.
    :param hub: Told about every status change.
    :param max_sleep: Longest nap between ticks, a safety net against missed wake-ups and clock jumps.
    """

    def __init__(self, db: Database, hub: StatusHub, max_sleep: float = 0.2) -> None:
        self._db = db
        self._hub = hub
        self._due = DueLoop("inference-jobs", self._advance, max_idle_s=max_sleep)

    async def start(self) -> None:
        self._hub.bind(asyncio.get_running_loop())
        await self._due.start()

    async def stop(self) -> None:
        await self._due.stop()

    def wake_threadsafe(self) -> None:
        """Have the runner look again now (a job was submitted with an earlier due time)."""
        self._due.wake()

    def _advance(self, now: float) -> float | None:
        """Runs in a worker thread: apply what is due, then report the next due time (``now``
        again when a batch was left over, so the next pass starts at once)."""
        next_due = earliest_due(self._db)
        if next_due is None or next_due > now:
            return next_due
        changed, more = apply_due(self._db, now)
        if changed:
            self._hub.publish_threadsafe(changed)
        return now if more else earliest_due(self._db)
