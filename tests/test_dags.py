"""Sensor and operator through ``dag.test()`` (trigger run inline) against the live service."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG
from sqlalchemy import select

from airflow_jobwait.client import inference as api
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.models import JobStatus
from tests._compat import AIRFLOW_V_3_3_PLUS, DagBag

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def behaviour_dags() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "tests" / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def run(dags: dict[str, DAG], dag_id: str) -> dict[str, str]:
    dag_run = dags[dag_id].test()
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
class TestSensor:
    def test_completed_job_pushes_results(self, behaviour_dags: dict[str, DAG]) -> None:
        assert run(behaviour_dags, "jobwait_test_sensor_completed") == {
            "submit": "success",
            "wait": "success",
            "check_results": "success",
        }

    @pytest.mark.parametrize("outcome", ["timedout", "failed"])
    def test_failed_outcomes_fail_the_sensor(self, behaviour_dags: dict[str, DAG], outcome: str) -> None:
        assert run(behaviour_dags, f"jobwait_test_sensor_{outcome}") == {"submit": "success", "wait": "failed"}

    def test_canceled_job_fails_the_sensor(self, behaviour_dags: dict[str, DAG]) -> None:
        states = run(behaviour_dags, "jobwait_test_sensor_canceled")
        assert states == {"submit": "success", "cancel": "success", "wait": "failed"}

    def test_soft_fail_skips(self, behaviour_dags: dict[str, DAG]) -> None:
        assert run(behaviour_dags, "jobwait_test_sensor_soft_fail") == {"submit": "success", "wait": "skipped"}

    def test_sensor_timeout_fails_the_task(self, behaviour_dags: dict[str, DAG]) -> None:
        assert run(behaviour_dags, "jobwait_test_sensor_timeout") == {"submit": "success", "wait": "failed"}

    @pytest.mark.parametrize("mode", ["poke", "reschedule"])
    def test_non_deferrable_modes(self, behaviour_dags: dict[str, DAG], mode: str) -> None:
        states = run(behaviour_dags, f"jobwait_test_sensor_{mode}")
        assert states == {"submit": "success", "wait": "success", "check_results": "success"}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
class TestSubmitOperator:
    @pytest.mark.parametrize("how", ["deferred", "blocking"])
    def test_wait_for_completion_returns_results(self, behaviour_dags: dict[str, DAG], how: str) -> None:
        states = run(behaviour_dags, f"jobwait_test_operator_wait_{how}")
        assert states == {"submit": "success", "check_results": "success"}

    def test_failed_job_fails_the_operator(self, behaviour_dags: dict[str, DAG]) -> None:
        assert run(behaviour_dags, "jobwait_test_operator_failed") == {"submit": "failed"}

    def test_soft_fail_skips(self, behaviour_dags: dict[str, DAG]) -> None:
        assert run(behaviour_dags, "jobwait_test_operator_soft_fail") == {"submit": "skipped"}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_example_dags_import_and_run(service: object) -> None:
    bag = DagBag(dag_folder=str(REPO / "dags_examples"))
    assert bag.import_errors == {}
    assert "jobwait_inference_example" in bag.dags
    states = run(bag.dags, "jobwait_inference_example")
    assert states == {"submit_sentiment_job": "success", "wait_for_job": "success", "summarize": "success"}
    # summarize returns a dict: one XCom, not one per key as multiple_outputs would push.
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = session.scalars(
            select(XComModel.key).where(
                XComModel.dag_id == "jobwait_inference_example", XComModel.task_id == "summarize"
            )
        ).all()
    assert keys and set(keys) == {"return_value"}, keys
    assert not any(
        task.multiple_outputs for dag in bag.dags.values() for task in dag.tasks if hasattr(task, "multiple_outputs")
    )
    newest = JobsHook().client.call(api.history(per_page=1))[0]  # the job the DAG ran
    assert newest.status is JobStatus.COMPLETED
    results = JobsHook().get_results(newest.job_identifier)
    assert set(results.outputs_by_source) == {"review-1", "review-2", "review-3"}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_mapped_submit_and_wait(behaviour_dags: dict[str, DAG]) -> None:
    dag_run = behaviour_dags["jobwait_test_mapped"].test()
    states = sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in dag_run.get_task_instances())
    assert states == [
        ("collect", -1, "success"),
        *[("submit", i, "success") for i in range(3)],
        *[("wait", i, "success") for i in range(3)],
    ]


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="before 3.3 start_from_trigger is ignored")
@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_a_mapped_start_from_trigger_wait_that_reaches_a_worker_says_so(
    behaviour_dags: dict[str, DAG], capsys: pytest.CaptureFixture[str]
) -> None:
    dag_run = behaviour_dags["jobwait_test_mapped_start_from_trigger"].test()
    states = sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in dag_run.get_task_instances())
    # The wait still works, from a worker.
    assert states == [("submit", 0, "success"), ("wait", 0, "success")]
    assert "runs on a worker although start_from_trigger=True" in capsys.readouterr().out
