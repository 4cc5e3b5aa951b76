"""Lineage from the writing side (issue 17, item 5): operators declare what they wrote on the
asset events of their outlets, in the payload a watcher fires for the same writes; the example
DAGs show both patterns and import cleanly."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from sqlalchemy import select

from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models.watch_events import WatchEvent
from airflow_jobwait.triggers.events import NewWorksTrigger
from tests import reference_datasets as reference
from tests._compat import DagBag

REPO = Path(__file__).resolve().parents[1]


def asset_events(name: str) -> list[dict[str, Any]]:
    """The ``extra`` of every asset event of the asset named ``name``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = (
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == name)
            .order_by(AssetEvent.id)
        )
        return [dict(extra) for extra in session.scalars(query).all()]


@pytest.fixture(scope="module")
def examples() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "dags_examples" / "results_events.py"))
    assert bag.import_errors == {}
    return bag.dags


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_deposit_declares_the_deposited_ids_on_its_outlet(examples: dict[str, DAG]) -> None:
    dag_run = examples["jobwait_deposit_with_outlets"].test()
    assert {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()} == {"deposit": "success"}
    (extra,) = [e for e in asset_events("jobwait-frb-candidates-deposited") if dag_run.run_id in str(e)]
    event = WatchEvent.from_asset_event(extra)
    assert event.kind == "results_store.works" and event.source == {"pipeline": "jobwait-frb-candidates"}
    stored = ResultsHook().get_by_id("jobwait-frb-candidates", event.ids)
    assert len(event.ids) == 2 and sorted(w.id for w in stored) == sorted(event.ids)
    assert all(dag_run.run_id in work_id for work_id in event.ids)


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_squash_and_merge_declares_the_finished_job_on_its_outlet() -> None:
    bag = DagBag(dag_folder=str(REPO / "tests" / "dags" / "jobwait_lineage.py"))
    assert bag.import_errors == {}
    dataset_id = DatasetJobsHook().call(reference.clone_dataset())
    dag_run = bag.dags["jobwait_test_lineage_merge"].test(run_conf={"dataset_id": dataset_id})
    assert {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()} == {"merge": "success"}
    (extra,) = [e for e in asset_events("jobwait-test-merged-drafts") if dataset_id in str(e)]
    event = WatchEvent.from_asset_event(extra)
    (job,) = DatasetJobsHook().list_jobs(dataset_id, "squashAndMerge").jobs
    assert event.kind == "dataset.jobs" and event.ids == [job.job_id]
    assert event.source == {"dataset_id": dataset_id, "job_type": "squashAndMerge"}
    item = event.items[0]
    assert item.status == "SUCCESS" and item.job_status == "COMPLETED"
    assert item.details["draftNumber"] == job.draft_number


def test_the_watcher_example_holds_a_serializable_new_works_trigger(examples: dict[str, DAG]) -> None:
    asset = runpy.run_path(str(REPO / "dags_examples" / "results_events.py"))["NEW_WORKS"]
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, NewWorksTrigger)
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_jobwait.triggers.events.NewWorksTrigger" and kwargs["batch"] is True
    assert {"jobwait_on_new_works", "jobwait_deposit_with_outlets", "jobwait_on_deposited_works"} <= set(examples)
