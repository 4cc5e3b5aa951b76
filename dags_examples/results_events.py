"""Event-driven DAGs on the results store, both ways (README, "Event-driven DAGs").

**Watcher** (``jobwait_on_new_works``): an ``AssetWatcher`` holds a ``NewWorksTrigger``; the
triggerer polls the results store and fires once per poll with the ids of the works deposited
since (``batch=True``), whoever deposited them. The DAG reads them from its triggering asset
events.

**Outlets** (``jobwait_deposit_with_outlets`` → ``jobwait_on_deposited_works``): a DAG that
writes the works itself declares the asset as the deposit's outlet; Airflow emits the asset event
when the deposit succeeds, carrying the deposited ids in the same payload: no watcher, no poll.

Both consumers read the ids the same way, with ``WatchEvent.from_asset_event``. Needs the
connection ``chime_results_default`` (type ``chime_results``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jobwait.models.watch_events import WatchEvent
from airflow_jobwait.operators.results import DepositResultsOperator
from airflow_jobwait.triggers.events import NewWorksTrigger

PIPELINE = "jobwait-frb-candidates"
#: Seconds between polls; ``JOBWAIT_FRB_POLL_INTERVAL`` (read when the file is parsed) shortens it,
#: as the e2e deployment does. A new value is a new trigger for Airflow: it starts from a new baseline.
POLL_INTERVAL = float(os.environ.get("JOBWAIT_FRB_POLL_INTERVAL", "60"))

# Any deposit of a successful work in the pipeline, seen by polling (one poll per interval for
# every watcher of this pipeline and query, however many DAGs watch it).
NEW_WORKS = Asset(
    "jobwait-frb-candidates-new",
    watchers=[
        AssetWatcher(
            name="frb_candidates_watcher",
            trigger=NewWorksTrigger(PIPELINE, statuses=["success"], batch=True, poll_interval=POLL_INTERVAL),
        )
    ],
)
# Works this project deposits itself: declared by the writing task, no polling.
DEPOSITED = Asset("jobwait-frb-candidates-deposited")


def ids_of(events: Any, asset: Asset) -> list[str]:
    """The work ids every triggering event of ``asset`` carries (watcher or outlet alike)."""
    return [work_id for event in events[asset] for work_id in WatchEvent.from_asset_event(event).ids]


with DAG(
    dag_id="jobwait_on_new_works",
    description="Runs when new successful works appear in the results store (AssetWatcher).",
    start_date=datetime(2026, 1, 1),
    schedule=[NEW_WORKS],
    catchup=False,
    tags=["jobwait", "example", "results-store", "events"],
):

    @task
    def new_works(triggering_asset_events: Any = None) -> list[str]:
        ids = ids_of(triggering_asset_events, NEW_WORKS)
        print(f"{len(ids)} new work(s): {ids}")
        return ids

    new_works()


with DAG(
    dag_id="jobwait_deposit_with_outlets",
    description="Deposits works and declares them on an asset (outlets).",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["jobwait", "example", "results-store", "events"],
):
    DepositResultsOperator(
        task_id="deposit",
        works=[
            {"id": f"{PIPELINE}-{{{{ run_id }}}}-{n}", "pipeline": PIPELINE, "status": "success", "results": {"n": n}}
            for n in range(2)
        ],
        outlets=[DEPOSITED],
    )


with DAG(
    dag_id="jobwait_on_deposited_works",
    description="Runs when jobwait_deposit_with_outlets deposited works (asset event from outlets).",
    start_date=datetime(2026, 1, 1),
    schedule=[DEPOSITED],
    catchup=False,
    tags=["jobwait", "example", "results-store", "events"],
):

    @task
    def deposited(triggering_asset_events: Any = None) -> list[str]:
        ids = ids_of(triggering_asset_events, DEPOSITED)
        print(f"deposited: {ids}")
        return ids

    deposited()
