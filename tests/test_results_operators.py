"""Results store operators through ``dag.test()`` against the live service, and the example DAG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_jobwait.hooks.jobs import JobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models import JobInput, ModelRef, ResultsReference, SubmitJobRequest
from airflow_jobwait.operators.results import DepositResultsOperator, QueryResultsOperator
from tests._compat import DagBag

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results_dags() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "tests" / "dags" / "jobwait_results.py"))
    assert bag.import_errors == {}
    return bag.dags


def run(dags: dict[str, DAG], dag_id: str) -> tuple[str, dict[str, str]]:
    dag_run = dags[dag_id].test()
    return dag_run.run_id, {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
class TestOperators:
    def test_deposit_lock_query_unlock_delete(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_cycle")
        assert states == dict.fromkeys(
            ["deposit", "deposit_again", "lock", "query_locked", "check_locked", "unlock", "delete", "check_gone"],
            "success",
        )
        assert ResultsHook().count(f"ops-cycle-{run_id}", {}) == 0

    def test_unlock_without_force_fails(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_unlock_without_force")
        assert states == {"deposit": "success", "lock": "success", "unlock": "failed"}
        assert ResultsHook().get_locked_count(f"ops-noforce-{run_id}") == 1

    def test_delete_of_locked_work_fails(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_delete_locked")
        assert states == {"deposit": "success", "lock": "success", "delete": "failed"}
        assert ResultsHook().count(f"ops-dellocked-{run_id}", {}) == 1

    def test_conflicting_deposit_fails(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_conflict")
        assert states == {"deposit": "success", "deposit_clash": "failed"}
        (stored,) = ResultsHook().get_by_count(f"ops-conflict-{run_id}")
        assert stored.results == {"n": 0}

    def test_bad_status_fails_and_stores_nothing(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_bad_status")
        assert states == {"deposit": "failed"}
        assert ResultsHook().count(f"ops-badstatus-{run_id}", {}) == 0

    def test_deposit_job_results(self, results_dags: dict[str, DAG]) -> None:
        run_id, states = run(results_dags, "jobwait_test_results_from_job")
        assert states == dict.fromkeys(["submit", "wait", "deposit", "query", "check_works"], "success")
        assert ResultsHook().count(f"ops-fromjob-{run_id}", {"status": "failure"}) == 1


def test_operator_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="exactly one of works= or job_results="):
        DepositResultsOperator(task_id="both", works=[], job_results={})
    with pytest.raises(ValueError, match="exactly one"):
        DepositResultsOperator(task_id="neither")
    with pytest.raises(ValueError, match="pipeline="):
        DepositResultsOperator(task_id="no_pipeline", job_results={})


def test_deposit_fetches_results_too_large_for_xcom_through_the_reference(jobwait_conn: str) -> None:
    """A ``ResultsReference`` (what a wait pushes instead of oversized results) is resolved by
    reading the job's results from the inference connection it names: one work per input."""
    jobs = JobsHook(jobwait_conn)
    body = SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"), input=JobInput(sources={"a": {"t": "x"}, "b": {"t": "y"}})
    )
    job = jobs.submit_job(body)
    assert jobs.wait_for_job(job.job_identifier, 0.1, 30).succeeded
    reference = ResultsReference(
        job_id=job.job_identifier,
        job_kind="inference",
        job_ref={},
        conn_id=jobwait_conn,
        size_bytes=2_000_000,
        result_keys=["a", "b"],
    )
    op = DepositResultsOperator(
        task_id="deposit", job_results=reference.model_dump(), pipeline="too-large", conn_id=jobwait_conn
    )
    works = op.build_works()
    assert sorted(work.id for work in works) == [f"{job.job_identifier}:a", f"{job.job_identifier}:b"]
    assert all(work.pipeline == "too-large" and work.status == "success" for work in works)


def test_query_operator_renders_json_and_numbers(jobwait_conn: str, mocker: Any) -> None:
    view = mocker.patch.object(ResultsHook, "view", return_value=[])
    op = QueryResultsOperator(task_id="q", pipeline="p", query='{"a": 1}', projection=None, skip="2", limit="-1")
    assert op.execute({}) == []  # type: ignore[arg-type]
    view.assert_called_once_with("p", {"a": 1}, None, 2, -1)
    with pytest.raises(ValueError, match="skip"):
        QueryResultsOperator(task_id="q2", pipeline="p", skip="two").execute({})  # type: ignore[arg-type]


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_example_dag_runs(service: object) -> None:
    bag = DagBag(dag_folder=str(REPO / "dags_examples"))
    assert bag.import_errors == {}
    dag_run = bag.dags["jobwait_inference_to_results"].test()
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == dict.fromkeys(
        ["submit_sentiment_job", "wait_for_job", "deposit_results", "lock_results", "query_locked", "summarize"],
        "success",
    )
    works = ResultsHook().view("jobwait-sentiment-reviews", {}, limit=0)[-3:]  # this run's, deposited last
    job_id = (works[0].parameters or {})["job_id"]
    assert sorted(w.id for w in works) == [f"{job_id}:review-{n}" for n in (1, 2, 3)]
    assert all(w.locked and w.status == "success" and w.function == "sentiment:1.0" for w in works)
