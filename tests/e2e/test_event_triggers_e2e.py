"""End-to-end: the event triggers (``AssetWatcher``) on a real deployment (``docs/event-triggers.md``).

- ``jobwait_on_new_works`` (``dags_examples/results_events.py``: ``NewWorksTrigger``, batch, its
  poll interval shortened to ``EVENTS_POLL_INTERVAL`` through ``JOBWAIT_FRB_POLL_INTERVAL``)
  starts within two poll intervals (plus a scheduling allowance) of a deposit;
- 200 deposits in bursts while the triggerer running that watcher is ``kill -9``ed and restarted:
  every work reported, counted as distinct ids and duplicates separately;
- ``jobwait_e2e_on_merge`` (``tests/e2e/dags/jobwait_events.py``: ``DatasetJobsTrigger``) starts
  once for a squash-and-merge that finished.

Works are deposited as any client of the results store does (``POST {base}/workflow/results``);
DAG runs and the watchers' watermarks (asset state store) are read through the REST API; asset
events and which triggerer runs the watcher are read from the metadata DB (``asset_events`` says
why for the events).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from jobwait_reference_service.process import connection_env

from airflow_jobwait.hooks.datasets import DatasetJobsHook
from tests import reference_datasets
from tests.e2e.harness import API_KEY, EVENTS_POLL_INTERVAL, Deployment, HarnessError, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

WORKS_DAG = "jobwait_on_new_works"
WORKS_ASSET = "jobwait-frb-candidates-new"
WORKS_WATCHER = "frb_candidates_watcher"
PIPELINE = "jobwait-frb-candidates"
MERGE_DAG = "jobwait_e2e_on_merge"
MERGE_ASSET = "jobwait-e2e-merges-ended"
MERGE_WATCHER = "e2e_merges_watcher"
DATASET_ID = "jobwait-e2e-merges"
WATERMARK_PREFIX = "airflow_jobwait.watermark."
#: From the trigger's event to the scheduler's DAG run: the runner's state sync (~1 s), the
#: supervisor's DB write, a scheduler loop, all on a loaded 2-core machine; plus one scan's time.
SCHEDULING_ALLOWANCE = 20.0
#: Deposits of the crash test: ``BURSTS`` bursts of ``BURST`` works, one POST per work.
BURST = 20
BURSTS = 10
#: The burst after which the triggerer running the watcher is ``kill -9``ed.
KILL_AFTER_BURST = 4
#: Bursts deposited while the watcher runs nowhere (before the triggerer is restarted).
BURSTS_WHILE_DOWN = 3
#: The squash-and-merge runs two polls (the reference service's test timing): the watcher sees it
#: unfinished first, and must fire only when it ends.
MERGE_TIMING = {"queuing_s": 0.1, "processing_s": 2 * EVENTS_POLL_INTERVAL}


# ---- the results store, as a client deposits ------------------------------------------------------


def deposit(deployment: Deployment, work_ids: list[str]) -> float:
    """Deposit each work on its own (one POST per work, as separate depositors would); the time
    (epoch) the last one was stored.

    :param work_ids: Ids of new works of ``PIPELINE``, status ``success``, created now.
    """
    session = deployment.service.session
    for work_id in work_ids:
        resp = session.post(
            f"{deployment.service.base_url}/workflow/results",
            # The results store takes its key in x-access-token (the provider's ResultsHook sends it so).
            headers={"x-access-token": API_KEY},
            json=[{"id": work_id, "pipeline": PIPELINE, "status": "success", "creation": time.time(), "results": {}}],
            timeout=10,
        )
        resp.raise_for_status()
    return time.time()


# ---- Airflow's side, through the REST API ----------------------------------------------------------


def asset_id(deployment: Deployment, name: str) -> int:
    found = deployment.airflow.get("/assets", name_pattern=name, limit=100)["assets"]
    ids = [asset["id"] for asset in found if asset["name"] == name]
    if not ids:
        raise HarnessError(f"no asset named {name!r}")
    return int(ids[0])


def asset_events(deployment: Deployment, asset: int) -> list[dict[str, Any]]:
    """Every event of the asset, oldest first, each with the DAG runs it created, shaped as
    ``GET /assets/events`` answers (``id``, ``timestamp``, ``extra``, ``created_dagruns``).

    Read from the metadata DB, not through that endpoint: Airflow 3.3.2 answers it with a 500 while
    any run one of the events created is still queued (``start_date`` NULL; apache/airflow#71360,
    fixed by apache/airflow#71379 after 3.3.2), and these tests look right after an event, when the
    run it created may well be queued still.
    """
    rows = deployment.postgres.query(
        "SELECT e.id, e.timestamp, e.extra, r.dag_id, r.run_id FROM asset_event e "
        "LEFT JOIN dagrun_asset_event c ON c.event_id = e.id LEFT JOIN dag_run r ON r.id = c.dag_run_id "
        "WHERE e.asset_id = %s ORDER BY e.timestamp, e.id, r.id",
        asset,
    )
    events: dict[int, dict[str, Any]] = {}
    for event_id, stamp, extra, dag_id, run_id in rows:
        event = events.setdefault(
            event_id, {"id": event_id, "timestamp": stamp.isoformat(), "extra": extra, "created_dagruns": []}
        )
        if run_id is not None:
            event["created_dagruns"].append({"dag_id": dag_id, "run_id": run_id})
    return list(events.values())


def consumed_events(deployment: Deployment, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The asset events the DAG run consumed (``id``, ``extra``), from the metadata DB for the
    reason ``asset_events`` gives (``upstreamAssetEvents`` serializes the same way)."""
    rows = deployment.postgres.query(
        "SELECT e.id, e.extra FROM asset_event e JOIN dagrun_asset_event c ON c.event_id = e.id "
        "JOIN dag_run r ON r.id = c.dag_run_id WHERE r.dag_id = %s AND r.run_id = %s ORDER BY e.id",
        dag_id,
        run_id,
    )
    return [{"id": event_id, "extra": extra} for event_id, extra in rows]


def event_ids(event: dict[str, Any]) -> list[str]:
    """The item ids of a watcher's event (its ``WatchEvent`` payload)."""
    return list(((event.get("extra") or {}).get("payload") or {}).get("ids") or [])


def reported(events: list[dict[str, Any]], prefix: str) -> Counter[str]:
    """How many events reported each id starting with ``prefix``."""
    return Counter(work_id for event in events for work_id in event_ids(event) if work_id.startswith(prefix))


def watermark(deployment: Deployment, asset: int) -> dict[str, Any] | None:
    """The watcher's stored watermark on ``asset`` (the one key of ours), if written yet."""
    entries = deployment.airflow.get(f"/assets/{asset}/state-store", limit=100)["asset_state_store"]
    ours = [entry["value"] for entry in entries if entry["key"].startswith(WATERMARK_PREFIX)]
    return ours[0] if ours else None


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def start_watcher(deployment: Deployment, dag_id: str, watcher: str, asset_name: str) -> int:
    """Unpause ``dag_id``, have its file parsed (which creates the watcher's trigger), and wait
    until a triggerer runs the watcher and has written its first watermark (its baseline scan:
    anything deposited after that is new to it). Answers the asset's id.
    """
    deployment.airflow.wait_dag(dag_id, timeout=180, check=deployment.check_alive)
    deployment.airflow.reparse(dag_id)

    def running() -> bool:
        deployment.check_alive()
        held = deployment.watcher_trigger(watcher)
        return held is not None and held[1] is not None

    wait_for(f"a triggerer to run {watcher}", running, timeout=240, interval=1)
    asset = asset_id(deployment, asset_name)
    wait_for(f"{watcher}'s first watermark", lambda: watermark(deployment, asset) is not None, timeout=120, interval=1)
    return asset


@pytest.fixture(scope="module")
def works_asset(deployment: Deployment) -> Iterator[int]:
    """The example works watcher, running; paused again after the module (its trigger then goes)."""
    asset = start_watcher(deployment, WORKS_DAG, WORKS_WATCHER, WORKS_ASSET)
    yield asset
    deployment.airflow.request("PATCH", f"/dags/{WORKS_DAG}", json={"is_paused": True})


def run_of(deployment: Deployment, asset: int, work_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The asset event reporting ``work_id`` and the DAG run it created, once both exist."""
    for event in asset_events(deployment, asset):
        if work_id in event_ids(event) and event["created_dagruns"]:
            ref = event["created_dagruns"][0]
            return event, deployment.airflow.get(f"/dags/{ref['dag_id']}/dagRuns/{ref['run_id']}")
    return None


def consumed_ids(deployment: Deployment, dag_id: str, run_id: str) -> list[str]:
    """The item ids of every asset event the DAG run consumed."""
    return [item for event in consumed_events(deployment, dag_id, run_id) for item in event_ids(event)]


def test_deposit_starts_the_dag_within_two_polls(deployment: Deployment, works_asset: int, record: Any) -> None:
    """One deposit: the example DAG's run is created within two poll intervals plus the allowance."""
    work_id = f"e2e-start-{uuid.uuid4().hex[:8]}"
    deposited = deposit(deployment, [work_id])
    bound = 2 * EVENTS_POLL_INTERVAL + SCHEDULING_ALLOWANCE
    # The deadline only bounds the wait; the assertion is on the run's own queued_at.
    event, run = wait_for("the deposit's DAG run", lambda: run_of(deployment, works_asset, work_id), timeout=bound + 60)
    fired = epoch(event["timestamp"]) - deposited
    started = epoch(run["queued_at"] or run["run_after"]) - deposited
    record("events_poll_interval_s", EVENTS_POLL_INTERVAL)
    record("events_deposit_to_asset_event_s", round(fired, 1))
    record("events_deposit_to_dag_run_s", round(started, 1))
    assert started <= bound, f"run {run['dag_run_id']} queued {started:.1f}s after the deposit (bound {bound}s)"
    assert run["run_type"] == "asset_triggered"
    # The run's task read the work from its triggering asset event.
    assert deployment.airflow.wait_run(WORKS_DAG, run["dag_run_id"], timeout=180) == "success"
    assert work_id in deployment.airflow.xcom(WORKS_DAG, run["dag_run_id"], "new_works")


def test_kill_9_of_the_watchers_triggerer_reports_every_deposit(
    deployment: Deployment, works_asset: int, record: Any
) -> None:
    """200 deposits in bursts; the triggerer running the watcher is ``kill -9``ed right after its
    events for a burst are stored, and restarted. Every one of the 200 works is reported (distinct
    ids: exactly the 200); works reported twice are counted apart, and may only be those of the
    poll whose watermark was not yet written when the triggerer died (fire, then commit)."""
    prefix = f"e2e-crash-{uuid.uuid4().hex[:8]}-"
    bursts = [[f"{prefix}{b:02d}-{n:02d}" for n in range(BURST)] for b in range(BURSTS)]
    everything = {work_id for burst in bursts for work_id in burst}
    liveness = 2 * EVENTS_POLL_INTERVAL + SCHEDULING_ALLOWANCE

    def seen() -> Counter[str]:
        return reported(asset_events(deployment, works_asset), prefix)

    def committed() -> set[str]:
        mark = watermark(deployment, works_asset) or {}
        return {key for key in mark.get("seen", {}) if key.startswith(prefix)}

    def reported_all(burst: list[str]) -> bool:
        return set(burst) <= set(seen())

    def committed_all(burst: list[str]) -> bool:
        return set(burst) <= committed()

    # Before the kill: each burst reported before the next (the watcher is live); for all but the
    # last, also how long after its event the watermark covering it was written (the window in
    # which a kill -9 makes that poll fire again).
    report_s: list[float] = []
    commit_lag_s: list[float] = []
    for index, burst in enumerate(bursts[:KILL_AFTER_BURST]):
        deposited = deposit(deployment, burst)
        wait_for("the burst's works to be reported", partial(reported_all, burst), timeout=liveness + 60)
        report_s.append(round(time.time() - deposited, 1))
        if index < KILL_AFTER_BURST - 1:
            wait_for("the burst's watermark", partial(committed_all, burst), timeout=60, interval=0.2)
            events = [e for e in asset_events(deployment, works_asset) if set(event_ids(e)) & set(burst)]
            entries = deployment.airflow.get(f"/assets/{works_asset}/state-store", limit=100)["asset_state_store"]
            written = max(epoch(e["updated_at"]) for e in entries if e["key"].startswith(WATERMARK_PREFIX))
            commit_lag_s.append(round(written - max(epoch(e["timestamp"]) for e in events), 2))
    record("events_burst_reported_s", report_s)
    record("events_event_to_watermark_s", commit_lag_s)

    held = deployment.watcher_trigger(WORKS_WATCHER)
    assert held is not None, "the watcher's trigger is gone"
    trigger_id, victim = held
    assert victim is not None, f"no live triggerer of ours runs trigger {trigger_id}"
    # The kill comes right after the last burst's event is stored: the moment its watermark may
    # not be committed yet (fire, then commit), the worst case for duplicates.
    killed = time.monotonic()
    deployment.procs[victim].kill()
    try:
        # Both final now: stored but not covered by the watermark is what may be fired again.
        uncommitted = set(seen()) - committed()
        record("events_killed_triggerer", f"{victim} (trigger {trigger_id})")
        record("events_fired_uncommitted_at_kill", len(uncommitted))
        for burst in bursts[KILL_AFTER_BURST : KILL_AFTER_BURST + BURSTS_WHILE_DOWN]:
            deposit(deployment, burst)  # no triggerer runs the watcher now
    finally:
        # Even when the test fails here: the later tests share this deployment and its triggerers.
        deployment.start_triggerer(victim)
    for burst in bursts[KILL_AFTER_BURST + BURSTS_WHILE_DOWN :]:
        deposit(deployment, burst)

    def resumed() -> str | None:
        deployment.check_alive()
        now = deployment.watcher_trigger(WORKS_WATCHER)
        return now[1] if now is not None and now[1] is not None else None

    holder = wait_for("a live triggerer to run the watcher again", resumed, timeout=180, interval=1)
    record("events_kill_to_watcher_held_s", round(time.monotonic() - killed, 1))
    record("events_watcher_resumed_on", holder)
    wait_for("all 200 works to be reported", lambda: everything <= set(seen()), timeout=300, interval=2)
    record("events_kill_to_all_reported_s", round(time.monotonic() - killed, 1))

    # A barrier: a later work reported means every poll that could still fire ours has run.
    sentinel = f"e2e-sentinel-{uuid.uuid4().hex[:8]}"
    deposit(deployment, [sentinel])
    wait_for("the sentinel's event", lambda: sentinel in reported(asset_events(deployment, works_asset), sentinel), 120)

    # Every event of ours has started (or joined) a DAG run; read the works back per run.
    def ours_with_runs() -> list[dict[str, Any]] | None:
        events = [e for e in asset_events(deployment, works_asset) if any(i.startswith(prefix) for i in event_ids(e))]
        return events if all(e["created_dagruns"] for e in events) else None

    events = wait_for("every event to have its DAG run", ours_with_runs, timeout=180, interval=2)
    runs = sorted({ref["run_id"] for event in events for ref in event["created_dagruns"]})
    per_run: Counter[str] = Counter()
    times_consumed: Counter[int] = Counter()
    for run_id in runs:
        consumed = consumed_events(deployment, WORKS_DAG, run_id)
        for event in consumed:
            times_consumed[event["id"]] += 1
        per_run.update(reported(consumed, prefix))
    counts = reported(events, prefix)
    duplicates = {work_id: n for work_id, n in counts.items() if n > 1}
    record("events_crash_asset_events", len(events))
    record("events_crash_dag_runs", len(runs))
    record("events_crash_distinct_ids", len(counts))
    record("events_crash_duplicates", len(duplicates))
    record("events_crash_duplicates_uncommitted_at_kill", len(set(duplicates) & uncommitted))

    assert set(counts) == everything, sorted(set(counts) ^ everything)
    assert per_run == counts, "the DAG runs consumed other works than the asset events carry"
    assert all(n == 1 for n in times_consumed.values()), "an asset event consumed by two DAG runs"
    # Reported twice, if at all: only works of the poll whose watermark was not written yet when
    # the triggerer died, and that is at most the last burst's poll (the earlier ones committed).
    assert set(duplicates) <= uncommitted, sorted(set(duplicates) - uncommitted)
    assert uncommitted <= set(bursts[KILL_AFTER_BURST - 1]), sorted(uncommitted)
    assert all(n == 2 for n in duplicates.values()), duplicates


def test_squash_and_merge_finishing_starts_its_dag_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, record: Any
) -> None:
    """A squash-and-merge of the watched dataset ends: ``jobwait_e2e_on_merge`` runs once for it."""
    # The test talks to the service as the provider does: DatasetJobsHook on tensorbay_default.
    for name, value in connection_env(deployment.service.base_url, API_KEY).items():
        monkeypatch.setenv(name, value)
    hook = DatasetJobsHook("tensorbay_default")
    hook.call(reference_datasets.clone_dataset(dataset_id=DATASET_ID))  # before the watcher's baseline
    asset = start_watcher(deployment, MERGE_DAG, MERGE_WATCHER, MERGE_ASSET)
    try:
        job = hook.squash_and_merge(DATASET_ID, "e2e merge", "feature", "main", extra_body={"test": MERGE_TIMING})

        def finished() -> Any:
            done = hook.get_job(DATASET_ID, job.job_id, "squashAndMerge")
            return done if done.finished_at is not None else None

        done = wait_for("the squash-and-merge to end", finished, timeout=120)
        assert done.status == "SUCCESS", done
        bound = 2 * EVENTS_POLL_INTERVAL + SCHEDULING_ALLOWANCE
        _, run = wait_for("its DAG run", lambda: run_of(deployment, asset, job.job_id), timeout=bound + 60)
        record("events_merge_end_to_dag_run_s", round(epoch(run["queued_at"]) - done.finished_at, 1))
        assert deployment.airflow.wait_run(MERGE_DAG, run["dag_run_id"], timeout=180) == "success"
        assert deployment.airflow.xcom(MERGE_DAG, run["dag_run_id"], "merged") == [job.job_id]

        # A barrier: a second merge, created once the first's run exists, is reported by a later
        # poll, whose window still holds the first job: that poll did not report it again.
        barrier = hook.squash_and_merge(DATASET_ID, "e2e barrier", "feature", "main", extra_body={"test": MERGE_TIMING})
        wait_for("the barrier's event", lambda: run_of(deployment, asset, barrier.job_id), timeout=bound + 60)
        events = asset_events(deployment, asset)
        counts = Counter(job_id for e in events for job_id in event_ids(e))
        record("events_merge_events", dict(counts))
        assert counts[job.job_id] == 1, events
        run_ids = [r["dag_run_id"] for r in deployment.airflow.get(f"/dags/{MERGE_DAG}/dagRuns", limit=100)["dag_runs"]]
        started = [run_id for run_id in run_ids if job.job_id in consumed_ids(deployment, MERGE_DAG, run_id)]
        record("events_merge_dag_runs", len(run_ids))
        assert started == [run["dag_run_id"]], started
    finally:
        deployment.airflow.request("PATCH", f"/dags/{MERGE_DAG}", json={"is_paused": True})
