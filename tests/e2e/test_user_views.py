"""End-to-end: what users read in the UI, through the real API server.

- Each deferred wait's task log holds its own job's lines and no other job's, in every status
  mode, with several waits on one triggerer sharing a status poller (issue 15, item 1). The logs
  are read as the UI reads them (``GET .../logs/{try}``), which joins the worker's part and the
  triggerer's; the routing of triggerer lines to a task's log is Airflow's own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from jobwait_reference_service.faults_client import FaultControl

from tests.e2e.harness import API_KEY, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: Status mode -> its DAG (``dags/jobwait_e2e.py``, one connection per mode).
LOG_DAGS = {"batch": "jobwait_e2e_logs_batch", "auto": "jobwait_e2e_logs_auto", "per_job": "jobwait_e2e_logs_per_job"}
#: Waits per mode: with two triggerers, at least 3 of them share one.
WAITS = 5
# Every status read of the waits fails while set: rounds and per-job polls (GET /api/jobs...)
# and held watches (POST /api/jobs:watch, re-armed within ~24 s). Submits and results are spared.
STATUS_FAULTS = [
    {"kind": "status", "status": 503, "methods": ["GET"], "path_prefix": "/api/jobs"},
    {"kind": "status", "status": 503, "methods": ["POST"], "path_prefix": "/api/jobs:watch"},
]


def _waits_deferred(deployment: Deployment, runs: dict[str, str]) -> bool:
    """Every wait of every run deferred, and its trigger held by a triggerer."""
    for mode, run_id in runs.items():
        tis = deployment.airflow.task_instances(LOG_DAGS[mode], run_id, task_id="wait")
        if len(tis) != WAITS or any(ti["state"] != "deferred" for ti in tis):
            return False
        held = deployment.triggers_of(LOG_DAGS[mode], run_id)
        if len(held) != WAITS or None in held.values():
            return False
    return True


def _progress_line(job_id: str) -> re.Pattern[str]:
    """A progress line of the trigger (the worker's first look says "is SUBMITTED", no time)."""
    return re.compile(rf"inference job {re.escape(job_id)} is \w+ after \d+s")


def _fault_line(job_id: str) -> re.Pattern[str]:
    """A line telling this wait that a status read of its job failed (retried, or counted)."""
    return re.compile(rf"job {re.escape(job_id)}: .* failed .*retrying|poll of job {re.escape(job_id)} failed")


def test_each_wait_logs_to_its_own_task_log_only(deployment: Deployment, record: Any) -> None:
    """5 waits per status mode (batch, watch, per-job), 3 runs at once on two triggerers. While
    every status read fails for a while, each wait's log says so for its job (a retry of the
    shared request, or a failed poll); each log has its progress lines and outcome, and names no
    other job."""
    airflow, service = deployment.airflow, deployment.service
    faults = FaultControl(service.base_url, API_KEY)
    for dag_id in LOG_DAGS.values():
        airflow.wait_dag(dag_id, timeout=180, check=deployment.check_alive)
    # Jobs that run until the test ends them: nothing depends on how fast this machine is.
    runs = {mode: airflow.trigger(dag_id, {"n_jobs": WAITS, "duration_s": 600}) for mode, dag_id in LOG_DAGS.items()}
    wait_for("every wait to be deferred", lambda: _waits_deferred(deployment, runs), timeout=300)
    jobs = {
        mode: airflow.xcom(LOG_DAGS[mode], run_id, "submit_all")  # map index i waits on jobs[mode][i]
        for mode, run_id in runs.items()
    }
    every_job = {job_id for ids in jobs.values() for job_id in ids}
    assert len(every_job) == 3 * WAITS
    for mode, run_id in runs.items():
        shared = Counter(deployment.triggers_of(LOG_DAGS[mode], run_id).values())
        record(f"task_logs_{mode}_waits_per_triggerer", sorted(shared.values()))
        assert max(shared.values()) >= 3, shared  # several waits in one triggerer, one poller

    def logs(mode: str, index: int) -> list[str]:
        return airflow.task_log(LOG_DAGS[mode], runs[mode], "wait", map_index=index)

    def every_wait_logged(pattern: Callable[[str], re.Pattern[str]]) -> bool:
        deployment.check_alive()
        return all(
            any(pattern(job_id).search(line) for line in logs(mode, i))
            for mode, ids in jobs.items()
            for i, job_id in enumerate(ids)
        )

    wait_for("each wait's progress lines", lambda: every_wait_logged(_progress_line), 120, interval=2)
    faults.set(STATUS_FAULTS)
    try:
        wait_for("each wait to tell of its failed reads", lambda: every_wait_logged(_fault_line), 120, interval=2)
    finally:
        faults.clear()
    resp = service.session.post(
        f"{service.base_url}/api/_test/finish", json={"identifiers": sorted(every_job)}, timeout=10
    )
    resp.raise_for_status()
    for mode, run_id in runs.items():
        assert airflow.wait_run(LOG_DAGS[mode], run_id, timeout=300) == "success", mode

    for mode, ids in jobs.items():
        for i, job_id in enumerate(ids):
            lines = logs(mode, i)
            others = [line for line in lines if any(other in line for other in every_job - {job_id})]
            assert not others, f"{mode} wait {i} (job {job_id}) logged other jobs' lines: {others}"
            assert any(_progress_line(job_id).search(line) for line in lines), (mode, lines)
            assert any(_fault_line(job_id).search(line) for line in lines), (mode, lines)
            assert any(f"job {job_id} ended COMPLETED" in line for line in lines), (mode, lines)


# ---- the connection list's Test (issue 15, item 2) ----------------------------------------------


def _ui_number(value: Any) -> int:
    """JavaScript's ``Number(value)`` for what the API lists as a port: ``null`` is ``0``."""
    return 0 if value is None else int(value)


def _list_test_body(listed: dict[str, Any]) -> dict[str, Any]:
    """The body the Test action of the UI's connection list posts for a listed connection
    (Airflow 3.3 UI: ``port: Number(n.port)``, blanks for the rest, the masked password)."""
    return {
        "conn_type": listed["conn_type"],
        "connection_id": listed["connection_id"],
        "description": listed["description"] or "",
        "extra": listed["extra"] or "{}",
        "host": listed["host"] or "",
        "login": listed["login"] or "",
        "password": listed["password"] or "",
        "port": _ui_number(listed["port"]),
        "schema": listed["schema"] or "",
    }


@pytest.mark.parametrize(
    ("conn_type", "right_key", "said"),
    [
        ("modzy", True, "connected to Modzy at {url}"),
        ("tensorbay", True, "connected to TensorBay at {url}"),
        ("evo", True, "connected to Seequent Evo at {url}"),
        ("chime_results", True, "connected to the CHIME results store at {url}"),
        ("modzy", False, "Modzy refused the credential (401 on /api/models): check the connection's Password"),
    ],
    ids=["modzy", "tensorbay", "evo", "chime_results", "modzy-wrong-key"],
)
def test_connection_list_test_button(deployment: Deployment, conn_type: str, right_key: bool, said: str) -> None:
    """A connection saved as our form saves it (Port hidden: none stored), then the list's Test:
    the API server answers with what was reached, or what failed and why, never 400."""
    from jobwait_reference_service.process import family_paths

    airflow = deployment.airflow
    url = deployment.service.base_url + family_paths()[conn_type]
    key = API_KEY if right_key else "wrong-key"
    conn_id = f"ui_list_{conn_type}_{'ok' if right_key else 'bad'}"
    extra = {"org_id": "00000000-0000-0000-0000-000000000e70"} if conn_type == "evo" else {}
    saved = {"connection_id": conn_id, "conn_type": conn_type, "host": url, "password": key, "extra": json.dumps(extra)}
    airflow.request("POST", "/connections", json=saved)
    try:
        listed = next(c for c in airflow.get("/connections", limit=100)["connections"] if c["connection_id"] == conn_id)
        assert listed["port"] is None and listed["password"] == "***", listed
        result = airflow.request("POST", "/connections/test", json=_list_test_body(listed))
    finally:
        airflow.request("DELETE", f"/connections/{conn_id}")
    assert result["status"] is right_key, result
    assert said.format(url=deployment.service.base_url) in result["message"], result
