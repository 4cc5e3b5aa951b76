"""DAGs of ``benchmarks/deployment_scale.py``: N mapped waits on jobs the benchmark submitted itself.

The benchmark writes the job ids (a JSON list) to a file and passes its path as the run's conf
``ids_file``; one task (``plan``) reads it and returns the list that the wait is mapped over.
Settings come from the environment when the file is parsed (the benchmark sets them on the
deployment): ``JOBWAIT_BENCH_POLL`` (seconds between polls, default 5), ``JOBWAIT_BENCH_CONN``
(the ``JobSensor``'s connection, default ``modzy_default``: status mode ``auto``),
``JOBWAIT_BENCH_TIMEOUT`` (each wait's timeout, default 4 h).

``jobwait_bench_jobsensor``: ``JobSensor`` with ``start_from_trigger``, so no wait ever reaches a
worker. Airflow 3.3 builds a mapped task's ``start_trigger_args`` from the class attribute or the
``partial()`` arguments only (the operator's ``__init__`` never runs when the DAG is parsed, and
the scheduler does not expand them per map index), so ``JobSensor.partial(start_from_trigger=True)
.expand(...)`` alone would run every wait on a worker; and ``partial()`` refuses
``start_trigger_args``. So a subclass carries, as a class attribute, the ``start_trigger_args``
an unmapped ``JobSensor`` builds, with a job id the triggerer renders per map index from the
XCom that ``plan`` pushes for each chunk of 100 ids (key ``jobs_<index // 100>``): one XCom read
of 100 ids per wait, whatever N (a read of the whole list would cost O(N) per wait, and a push
per id costs ``plan`` tens of milliseconds each).

``jobwait_bench_httpsensor``: ``HttpSensor(deferrable=True)`` on the service's [ext]
``GET /api/jobs/{id}/done`` (404 until the job is terminal), mapped over the same kind of list. It
has no ``start_from_trigger``: each wait starts on a worker (one poke, then it defers) and resumes
on a worker once its trigger fires (``execute_complete``): two worker starts per wait.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG, task

from airflow_jobwait.sensors import JobSensor

POLL = float(os.environ.get("JOBWAIT_BENCH_POLL", "5"))
CONN = os.environ.get("JOBWAIT_BENCH_CONN", "modzy_default")
TIMEOUT = float(os.environ.get("JOBWAIT_BENCH_TIMEOUT", str(4 * 3600)))
HTTP_CONN_ID = "jobwait_http"
#: ``plan`` pushes the ids in chunks of this many, one XCom each (key ``jobs_<chunk>``).
CHUNK = 100
#: Rendered by the triggerer for each mapped wait: its id, from the chunk of its map index.
JOB_ID_TEMPLATE = (
    "{{ ti.xcom_pull(task_ids='plan', key='jobs_' ~ (ti.map_index // CHUNK), map_indexes=-1)[ti.map_index % CHUNK] }}"
).replace("CHUNK", str(CHUNK))


class MappedTriggerJobSensor(JobSensor):
    """``JobSensor`` whose mapped tasks start in the triggerer: ``start_trigger_args`` on the class.

    ``partial()`` refuses ``start_trigger_args`` and a mapped task takes it from the class, so the
    arguments an unmapped ``JobSensor`` builds (in no DAG) become a class attribute here.
    """

    start_from_trigger = True
    start_trigger_args = JobSensor(
        task_id="template_only",
        job_id=JOB_ID_TEMPLATE,
        conn_id=CONN,
        poll_interval=POLL,
        timeout=TIMEOUT,
        start_from_trigger=True,
    ).start_trigger_args


def _dag(dag_id: str) -> DAG:
    return DAG(
        dag_id,
        start_date=datetime(2026, 1, 1),
        schedule=None,
        catchup=False,
        max_active_tasks=100_000,
        default_args={"retries": 0},
        params={"ids_file": ""},
    )


def _read_ids(params: dict[str, Any] | None) -> list[str]:
    assert params is not None
    ids: list[str] = json.loads(Path(params["ids_file"]).read_text())
    return ids


with _dag("jobwait_bench_jobsensor"):

    @task
    def plan(params: dict[str, Any] | None = None, ti: Any = None) -> list[str]:
        """The job ids, and the same in chunks (``jobs_<chunk>``) for the triggerer to render."""
        ids = _read_ids(params)
        for chunk in range(0, len(ids), CHUNK):
            ti.xcom_push(key=f"jobs_{chunk // CHUNK}", value=ids[chunk : chunk + CHUNK])
        return ids

    MappedTriggerJobSensor.partial(
        task_id="wait", conn_id=CONN, poll_interval=POLL, timeout=TIMEOUT, start_from_trigger=True
    ).expand(job_id=plan())


with _dag("jobwait_bench_httpsensor"):

    @task(task_id="plan")
    def plan_endpoints(params: dict[str, Any] | None = None) -> list[str]:
        """One ``/done`` endpoint per job."""
        return [f"api/jobs/{job_id}/done" for job_id in _read_ids(params)]

    HttpSensor.partial(
        task_id="wait",
        http_conn_id=HTTP_CONN_ID,
        method="GET",
        deferrable=True,
        poke_interval=POLL,
        timeout=TIMEOUT,
    ).expand(endpoint=plan_endpoints())
