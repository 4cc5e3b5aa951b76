"""End-to-end: the provider on a real deployment (PostgreSQL, scheduler with LocalExecutor and
two worker slots, dag-processor, API server, two triggerers, the reference job service).

The tests drive Airflow through its REST API only, as users do, and read the remote jobs from
the service's own job list. They run in this order on one deployment.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from tests.e2e.harness import PARALLELISM, Deployment, HarnessError, iter_samples, run_fanout, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FANOUT = "jobwait_e2e_fanout"
N_JOBS = 50
DURATION_S = 90.0


def new_jobs(deployment: Deployment, before: set[str]) -> list[dict[str, Any]]:
    return [job for job in deployment.service.jobs() if job["jobIdentifier"] not in before]


def job_ids(deployment: Deployment) -> set[str]:
    return {job["jobIdentifier"] for job in deployment.service.jobs()}


def submitted_job_ids(deployment: Deployment, dag_id: str, run_id: str, task_id: str, count: int) -> list[str]:
    """The job id each map index of ``task_id`` pushed (key ``job_id``)."""
    return [deployment.airflow.xcom(dag_id, run_id, task_id, key="job_id", map_index=i) for i in range(count)]


def waits(deployment: Deployment, run_id: str) -> dict[int, dict[str, Any]]:
    return {ti["map_index"]: ti for ti in deployment.airflow.task_instances(FANOUT, run_id, task_id="one_job.wait")}


def all_deferred(deployment: Deployment, run_id: str, count: int) -> dict[int, dict[str, Any]] | None:
    """The run's waits once all ``count`` are deferred and each trigger is held by a triggerer."""
    tis = waits(deployment, run_id)
    if len(tis) != count or any(ti["state"] != "deferred" for ti in tis.values()):
        return None
    held = deployment.triggers_of(FANOUT, run_id)
    if len(held) != count or any(triggerer is None for triggerer in held.values()):
        return None
    return tis


def test_waits_hold_no_worker_slot(deployment: Deployment, record: Any) -> None:
    """50 jobs of 90 s, 2 worker slots: the jobs run together while Airflow runs at most 2 TIs."""
    result = run_fanout(deployment, FANOUT, N_JOBS, DURATION_S, timeout=600)
    samples = result["samples"]
    record("fanout_wall_s", round(result["wall_s"], 1))
    record("fanout_peak_jobs_in_progress", result["peak_in_progress"])
    record("fanout_peak_running_tis", result["peak_running"])
    record("fanout_peak_deferred_tis", result["peak_deferred"])
    record("fanout_worker_slot_seconds", round(result["slot_seconds"], 1))
    trace = "\n".join(iter_samples(samples))

    assert result["state"] == "success", trace
    assert result["jobs_submitted"] == N_JOBS and result["jobs_completed"] == N_JOBS, result["jobs"]
    tis = waits(deployment, result["run_id"])
    assert sorted(tis) == list(range(N_JOBS)) and {ti["state"] for ti in tis.values()} == {"success"}
    # Never more task instances running than worker slots...
    assert result["peak_running"] <= PARALLELISM, trace
    # ...and at one moment at least 40 jobs in progress, their waits deferred, not running.
    proof = [s for s in samples if s.in_progress >= 40 and s.running <= PARALLELISM and s.deferred >= 36]
    assert proof, trace
    best = max(proof, key=lambda s: (s.in_progress, s.deferred))
    record("fanout_proof_sample", next(iter_samples([best])))


def test_user_marking_a_wait_failed_cancels_its_job(deployment: Deployment, record: Any) -> None:
    """Mark one deferred wait failed (REST): its job is CANCELED; the other waits go on."""
    before = job_ids(deployment)
    run_id = deployment.airflow.trigger(FANOUT, {"n_jobs": 3, "duration_s": 40})
    wait_for("the 3 waits to be deferred", lambda: all_deferred(deployment, run_id, 3), timeout=120)
    jobs = submitted_job_ids(deployment, FANOUT, run_id, "one_job.submit", 3)

    marked = time.monotonic()
    deployment.airflow.set_state(FANOUT, run_id, "one_job.wait", 0, "failed")
    # Measured 2-8 s: on_kill first asks the triggerer's supervisor for the task's state (a
    # trigger that merely moved must not cancel), and that first request builds its API client.
    wait_for(
        "the marked wait's job to be CANCELED",
        lambda: deployment.service.job(jobs[0])["status"] == "CANCELED",
        timeout=30,
        interval=0.2,
    )
    record("cancel_latency_s", round(time.monotonic() - marked, 1))
    # The others are still waiting on running jobs, and then finish.
    assert {deployment.service.job(j)["status"] for j in jobs[1:]} <= {"SUBMITTED", "IN_PROGRESS"}

    assert deployment.airflow.wait_run(FANOUT, run_id, timeout=180) == "failed"  # one task failed
    tis = waits(deployment, run_id)
    assert [tis[i]["state"] for i in range(3)] == ["failed", "success", "success"]
    statuses = {job["jobIdentifier"]: job["status"] for job in new_jobs(deployment, before)}
    assert statuses == {jobs[0]: "CANCELED", jobs[1]: "COMPLETED", jobs[2]: "COMPLETED"}


def holder(deployment: Deployment, run_id: str) -> tuple[str, str, list[int]]:
    """The triggerer holding most of the run's triggers, the other one, and the map indexes it holds."""
    held = deployment.triggers_of(FANOUT, run_id)
    ids = deployment.triggerer_job_ids
    counts = {name: sum(t == job_id for t in held.values()) for name, job_id in ids.items()}
    victim = max(counts, key=lambda name: counts[name])
    survivor = next(name for name in ids if name != victim)
    return victim, survivor, sorted(i for i, t in held.items() if t == ids[victim])


def wait_takeover(deployment: Deployment, run_id: str, survivor: str, moved: list[int], timeout: float = 90) -> None:
    def taken_over() -> bool:
        now = deployment.triggers_of(FANOUT, run_id)
        return all(now.get(i) == deployment.triggerer_job_ids[survivor] for i in moved)

    wait_for(f"{survivor} to take over the triggers", taken_over, timeout=timeout)


def triggerer_alive(deployment: Deployment, name: str) -> bool:
    """The triggerer heartbeated within the last 3 seconds (its ``job`` row)."""
    rows = deployment.postgres.query(
        "SELECT latest_heartbeat > now() - interval '3 seconds' FROM job WHERE id = %s",
        deployment.triggerer_job_ids[name],
    )
    return bool(rows and rows[0][0])


def test_triggerer_failover(deployment: Deployment, record: Any) -> None:
    """``kill -9`` the triggerer holding the waits: the other takes them over; nothing lost or doubled."""
    n_jobs = 6
    before = job_ids(deployment)
    run_id = deployment.airflow.trigger(FANOUT, {"n_jobs": n_jobs, "duration_s": 75})
    wait_for("the waits to be deferred and held", lambda: all_deferred(deployment, run_id, n_jobs), timeout=120)
    victim, survivor, moved = holder(deployment, run_id)

    killed = time.monotonic()
    deployment.procs[victim].kill()  # SIGKILL to the triggerer's whole process group
    try:
        wait_takeover(deployment, run_id, survivor, moved)
        record("failover_takeover_s", round(time.monotonic() - killed, 1))
        record("failover_triggers_moved", len(moved))
        # Taken over while the jobs still ran: the survivor really waited on them.
        assert {
            deployment.service.job(j)["status"]
            for j in submitted_job_ids(deployment, FANOUT, run_id, "one_job.submit", n_jobs)
        } <= {"SUBMITTED", "IN_PROGRESS"}

        assert deployment.airflow.wait_run(FANOUT, run_id, timeout=180) == "success"
    finally:
        deployment.start_triggerer(victim)  # the next tests get two triggerers again

    tis = waits(deployment, run_id)
    assert {ti["state"] for ti in tis.values()} == {"success"} and len(tis) == n_jobs
    jobs = new_jobs(deployment, before)
    expected = set(submitted_job_ids(deployment, FANOUT, run_id, "one_job.submit", n_jobs))
    assert {job["jobIdentifier"] for job in jobs} == expected and len(jobs) == n_jobs  # none submitted twice
    assert {job["status"] for job in jobs} == {"COMPLETED"}  # none cancelled


def test_worker_killed_after_submit_retries_without_duplicate(deployment: Deployment, record: Any) -> None:
    """``kill -9`` the task process once its job reached the service: the retry reuses the job."""
    dag_id, task_id = "jobwait_e2e_retry", "submit_and_wait"
    before = job_ids(deployment)
    run_id = deployment.airflow.trigger(dag_id)
    job = wait_for("the submit to reach the service", lambda: new_jobs(deployment, before), timeout=120)[0]

    ti = deployment.airflow.task_instance(dag_id, run_id, task_id)
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    pids = wait_for("the task process", lambda: deployment.task_process_pids(ti["id"]), timeout=30)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    record("retry_killed_pids", pids)

    assert deployment.airflow.wait_run(dag_id, run_id, timeout=240) == "success"
    tries = deployment.airflow.tries(dag_id, run_id, task_id)
    assert [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])] == ["failed", "success"], tries
    jobs = new_jobs(deployment, before)
    assert [j["jobIdentifier"] for j in jobs] == [job["jobIdentifier"]], jobs  # one remote job only
    assert jobs[0]["status"] == "COMPLETED"
    assert deployment.airflow.xcom(dag_id, run_id, task_id, key="job_id") == job["jobIdentifier"]


def test_start_from_trigger_never_waits_on_a_worker(deployment: Deployment, record: Any) -> None:
    """``JobSensor(start_from_trigger=True)`` goes straight to the triggerer: no worker while it waits."""
    dag_id = "jobwait_e2e_start_from_trigger"
    run_id = deployment.airflow.trigger(dag_id)
    states: list[str] = []
    while_deferred: list[tuple[str, Any]] = []

    def watch() -> None:
        ti = deployment.airflow.task_instance(dag_id, run_id, "wait")
        if ti["state"] and (not states or states[-1] != ti["state"]):
            states.append(ti["state"])
        if ti["state"] == "deferred":
            while_deferred.append((ti["hostname"], ti["pid"]))

    assert deployment.airflow.wait_run(dag_id, run_id, timeout=180, on_poll=watch, interval=0.3) == "success"
    record("start_from_trigger_states", states)
    # Scheduled straight into the triggerer, and ended there: deferred, then success, nothing else.
    assert states == ["deferred", "success"], states
    # No worker ever ran it: a worker sets hostname and pid, and they stay set after the try.
    assert while_deferred and set(while_deferred) == {("", None)}, while_deferred
    final = deployment.airflow.task_instance(dag_id, run_id, "wait")
    assert not final["hostname"] and final["pid"] is None, final
    tries = deployment.airflow.tries(dag_id, run_id, "wait")
    assert len(tries) == 1 and not tries[0]["hostname"], tries
    # The triggerer pushed the job's results.
    job_id = deployment.airflow.xcom(dag_id, run_id, "submit")
    assert deployment.service.job(job_id)["status"] == "COMPLETED"
    results = deployment.airflow.xcom(dag_id, run_id, "wait")
    assert results["jobIdentifier"] == job_id and results["finished"], results


def test_stalled_triggerer_does_not_cancel_the_jobs_it_lost(deployment: Deployment, record: Any) -> None:
    """A triggerer that stalls (SIGSTOP) past the health threshold loses its waits to the other
    one; when it resumes it must let them go without cancelling their jobs."""
    n_jobs = 2
    before = job_ids(deployment)
    run_id = deployment.airflow.trigger(FANOUT, {"n_jobs": n_jobs, "duration_s": 75})
    wait_for("the waits to be deferred and held", lambda: all_deferred(deployment, run_id, n_jobs), timeout=120)
    victim, survivor, moved = holder(deployment, run_id)

    for attempt in range(3):
        deployment.procs[victim].pause()
        try:
            wait_takeover(deployment, run_id, survivor, moved, timeout=60)
            break
        except HarnessError:
            # Frozen inside a transaction, its row locks keep the triggers from being taken
            # (the takeover skips locked rows): let it finish the transaction, then freeze it again.
            if attempt == 2:
                raise
            deployment.procs[victim].resume()
            wait_for("the frozen triggerer to heartbeat", lambda: triggerer_alive(deployment, victim), timeout=30)
        finally:
            deployment.procs[victim].resume()
    state = deployment.airflow.wait_run(FANOUT, run_id, timeout=180)
    statuses = sorted(job["status"] for job in new_jobs(deployment, before))
    record("stalled_triggerer_job_statuses", statuses)
    assert statuses == ["COMPLETED"] * n_jobs
    assert state == "success"
