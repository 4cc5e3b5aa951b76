"""Dataset-job and compute-task operators through ``dag.test()`` against the live service."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_jobwait.hooks.datasets import DatasetJobsHook
from tests import reference_datasets as reference
from tests._compat import AIRFLOW_V_3_3_PLUS, DagBag

REPO = Path(__file__).resolve().parents[1]
# The failure messages are read from the failure callback's context["exception"], which dag.test()
# fills in from Airflow 3.3 (None before): below it only the task states are checked.
READS_FAILURE_MESSAGES = AIRFLOW_V_3_3_PLUS


@pytest.fixture(scope="module")
def dags() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "tests" / "dags" / "jobwait_dataset_compute.py"))
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture
def failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "failures.txt"
    path.touch()
    monkeypatch.setenv("JOBWAIT_TEST_FAILURES", str(path))
    return path


def run(dag: DAG, **conf: object) -> dict[str, str]:
    dag_run = dag.test(run_conf=conf or None)
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_conflict_fails_then_fix_and_retry_completes(dags: dict[str, DAG], failures: Path) -> None:
    dataset_id = DatasetJobsHook().call(reference.clone_dataset())
    states = run(dags["jobwait_test_dataset_conflict_fix_retry"], dataset_id=dataset_id)
    assert states == {"merge": "failed", "fix": "success", "retry": "success", "check_draft": "success"}
    if READS_FAILURE_MESSAGES:
        message = failures.read_text()
        assert message.startswith("merge: ") and "ended FAILED" in message
        assert "conflicts on README.md" in message and "strategy 'override' or 'skip'" in message
    jobs = DatasetJobsHook().list_jobs(dataset_id, "squashAndMerge").jobs
    assert [job.status for job in jobs] == ["SUCCESS"]  # the retry reran the same job


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_clean_merge_blocking_wait(dags: dict[str, DAG]) -> None:
    dataset_id = DatasetJobsHook().call(reference.clone_dataset())
    assert run(dags["jobwait_test_dataset_clean_merge_blocking"], dataset_id=dataset_id) == {
        "merge": "success",
        "check_clean": "success",
    }


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_compute_typed_result_downstream(dags: dict[str, DAG]) -> None:
    assert run(dags["jobwait_test_compute_typed_result"]) == {"count": "success", "check_count": "success"}


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_compute_failures_name_the_reason(dags: dict[str, DAG], failures: Path) -> None:
    assert run(dags["jobwait_test_compute_failures"]) == {"failing": "failed", "mismatch": "failed"}
    if not READS_FAILURE_MESSAGES:
        return
    lines = dict(line.split(": ", 1) for line in failures.read_text().splitlines())
    assert "ended FAILED: Task failed: disk on fire" in lines["failing"]
    assert "do not fit Sentences: field 'sentences'" in lines["mismatch"]


@pytest.fixture(scope="module")
def examples() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "dags_examples"))
    assert bag.import_errors == {}
    return bag.dags


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_dataset_merge_example(examples: dict[str, DAG]) -> None:
    dataset_id = DatasetJobsHook().call(reference.clone_dataset())
    states = run(examples["jobwait_dataset_merge_example"], dataset_id=dataset_id, source_branch="feature")
    assert states == {"squash_and_merge": "success", "report": "success"}
    assert [job.status for job in DatasetJobsHook().list_jobs(dataset_id, "squashAndMerge").jobs] == ["SUCCESS"]


@pytest.mark.usefixtures("airflow_db", "jobwait_conn")
def test_compute_example(examples: dict[str, DAG]) -> None:
    assert run(examples["jobwait_compute_example"]) == {"count_words": "success", "use_count": "success"}
