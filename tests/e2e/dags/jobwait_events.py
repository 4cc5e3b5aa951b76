"""Event-driven DAG the end-to-end event tests run (``tests/e2e/test_event_triggers_e2e.py``).

``jobwait_e2e_on_merge`` is scheduled on an ``AssetWatcher`` holding a ``DatasetJobsTrigger``: it
runs when a squash-and-merge of the dataset ``jobwait-e2e-merges`` ends. The dataset is cloned on
the reference service by the test (its ``_test`` endpoint) before the DAG is unpaused; the works
watcher the tests also run is the example's (``dags_examples/results_events.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jobwait.models.watch_events import WatchEvent
from airflow_jobwait.triggers.events import DatasetJobsTrigger

DATASET_ID = "jobwait-e2e-merges"
#: Seconds between polls: short, so the test's waits are short (the harness's EVENTS_POLL_INTERVAL).
POLL_INTERVAL = 5

MERGED = Asset(
    "jobwait-e2e-merges-ended",
    watchers=[
        AssetWatcher(
            name="e2e_merges_watcher",
            trigger=DatasetJobsTrigger(DATASET_ID, "squashAndMerge", poll_interval=POLL_INTERVAL),
        )
    ],
)

with DAG(
    dag_id="jobwait_e2e_on_merge",
    description="Runs when a squash-and-merge of the e2e dataset ends (AssetWatcher + DatasetJobsTrigger).",
    start_date=datetime(2026, 1, 1),
    schedule=[MERGED],
    catchup=False,
    tags=["jobwait", "e2e", "events"],
):

    @task
    def merged(triggering_asset_events: Any = None) -> list[str]:
        ids = [job_id for event in triggering_asset_events[MERGED] for job_id in WatchEvent.from_asset_event(event).ids]
        print(f"squash-and-merge job(s) ended: {ids}")
        return ids

    merged()
