"""Retries through ``dag.test()``: the job id in ``task_state_store`` and the idempotency key keep
every task instance at one remote job unless its job failed; the "Job" link is pushed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from jobwait_reference_service.process import ServiceProcess
from pytest_mock import MockerFixture

from airflow_jobwait.client import inference as api
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.links import JobLink
from airflow_jobwait.models import Job, JobStatus
from airflow_jobwait.waiting import JobWaitMixin
from tests._compat import AIRFLOW_V_3_3_PLUS, DagBag
from tests.conftest import CONN_ID, connection_json

REPO = Path(__file__).resolve().parents[1]
CRASH_DAG = "jobwait_test_crash_after_submit"
ALONE_DAG = "jobwait_test_crash_alone"  # its inputs are its own: docs/jobs-api.md §6
FAILED_TWICE_DAG = "jobwait_test_failed_job_is_resubmitted"

pytestmark = pytest.mark.usefixtures("airflow_db", "jobwait_conn")


@pytest.fixture(scope="module")
def behaviour_dags() -> dict[str, DAG]:
    bag = DagBag(dag_folder=str(REPO / "tests" / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def jobs_of(run: Any) -> tuple[dict[str, str], list[Job]]:
    """Run the DAG; its task states and the jobs it created on the service, oldest first."""
    before = {job.job_identifier for job in JobsHook().call(api.history(per_page=1000))}
    dag_run = run()
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    new = [j for j in JobsHook().call(api.history(per_page=1000)) if j.job_identifier not in before]
    return states, sorted(new, key=lambda job: str(job.submitted_at))


def fail_once(mocker: MockerFixture, owner: type, name: str, when: Any = lambda *a, **k: True) -> list[Any]:
    """Make ``owner.name`` raise the first time ``when(args)`` holds, as a worker dying there would."""
    real = getattr(owner, name)
    failures: list[Any] = []

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not failures and when(*args, **kwargs):
            failures.append(args)
            raise RuntimeError(f"injected: worker died in {owner.__name__}.{name}")
        return real(self, *args, **kwargs)

    mocker.patch.object(owner, name, flaky)
    return failures


# Before Airflow 3.3 (no task_state_store) compat's ResumableJobMixin submits on every try: the
# request key then gets the retry the same job back from the service, so there is still one job.
SUBMITS_ON_RETRY = 1 if AIRFLOW_V_3_3_PLUS else 2


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
def test_crash_between_submit_and_storing_the_id_makes_one_job(
    behaviour_dags: dict[str, DAG], mocker: MockerFixture
) -> None:
    from airflow.sdk.execution_time.context import TaskStateStoreAccessor

    crashes = fail_once(mocker, TaskStateStoreAccessor, "set", lambda key, *_, **__: key == "job_id")
    submits = mocker.spy(JobsHook, "submit_job")
    lookups = mocker.spy(JobsHook, "find_submitted")
    states, jobs = jobs_of(behaviour_dags[ALONE_DAG].test)
    assert crashes, "the fault was injected"
    assert states == {"submit": "success", "check_alone": "success"}
    assert len(jobs) == 1 and jobs[0].status is JobStatus.COMPLETED
    # No job id was stored, but the start of the submit was: the retry found the job in the
    # history and did not submit again (a real service would have made a second job).
    assert submits.call_count == 1 and lookups.call_count == 1


def test_retry_reconnects_to_the_stored_running_job_without_submitting(
    behaviour_dags: dict[str, DAG], mocker: MockerFixture
) -> None:
    # The job id is stored before it is pushed to XCom: a crash in the push leaves it stored.
    crashes = fail_once(mocker, RuntimeTaskInstance, "xcom_push", lambda *a, **k: k.get("key", a[:1]) == "job_id")
    submits = mocker.spy(JobsHook, "submit_job")
    states, jobs = jobs_of(behaviour_dags[CRASH_DAG].test)
    assert crashes
    assert states == {"submit": "success", "check_results": "success"}
    assert len(jobs) == 1
    assert submits.call_count == SUBMITS_ON_RETRY, "the retry reconnected through task_state_store"


def test_retry_returns_a_completed_jobs_results_without_waiting_again(
    behaviour_dags: dict[str, DAG], mocker: MockerFixture
) -> None:
    crashes = fail_once(mocker, JobWaitMixin, "bounded_for_xcom")  # dies after the job completed
    submits = mocker.spy(JobsHook, "submit_job")
    deferrals = mocker.spy(JobWaitMixin, "defer_until_done")
    states, jobs = jobs_of(behaviour_dags[CRASH_DAG].test)
    assert crashes
    assert states == {"submit": "success", "check_results": "success"}, "the retry returned the results"
    assert len(jobs) == 1 and jobs[0].status is JobStatus.COMPLETED
    assert submits.call_count == SUBMITS_ON_RETRY
    assert deferrals.call_count == SUBMITS_ON_RETRY, "the retry did not wait again (Airflow 3.3+)"


def test_a_failed_job_is_replaced_on_retry(behaviour_dags: dict[str, DAG]) -> None:
    states, jobs = jobs_of(behaviour_dags[FAILED_TWICE_DAG].test)
    assert states == {"submit": "failed"}
    assert [job.status for job in jobs] == [JobStatus.FAILED, JobStatus.FAILED], "one new job per try"


def test_job_link_is_pushed_from_the_connection_template(
    behaviour_dags: dict[str, DAG], service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    template = "{base_url}/api/jobs/{job_id}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service, job_url_template=template))
    for dag_id, task_id in ((CRASH_DAG, "submit"), ("jobwait_test_sensor_completed", "wait")):
        dag_run = behaviour_dags[dag_id].test()
        job_id = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "submit").xcom_pull(key="job_id")
        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(dag_id=dag_id, run_id=dag_run.run_id, task_id=task_id, key=JobLink().xcom_key)
                .one()
            )
        assert XComModel.deserialize_value(row) == f"{service.base_url.rstrip('/')}/api/jobs/{job_id}", task_id


def test_job_url_template_with_an_unknown_placeholder_gives_no_link(
    service: ServiceProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_jobwait.links import job_url

    monkeypatch.setenv("AIRFLOW_CONN_LINKED", connection_json(service, job_url_template="https://x/{project}/{job_id}"))
    assert job_url("linked", "job-1") is None
    # The warning names the placeholder that cannot be filled, and says there is no link.
    assert "{project}" in caplog.text and "('project';" in caplog.text and "no job link" in caplog.text
    monkeypatch.setenv(
        "AIRFLOW_CONN_LINKED", connection_json(service, job_url_template="https://x/d/{dataset_id}/{job_id}")
    )
    assert job_url("linked", "a/b", {"dataset_id": "ds 1"}) == "https://x/d/ds%201/a%2Fb"


def test_job_link_is_registered_and_survives_dag_serialization(behaviour_dags: dict[str, DAG]) -> None:
    from airflow.providers_manager import ProvidersManager

    from tests._compat import DagSerialization

    assert "airflow_jobwait.links.JobLink" in ProvidersManager().extra_links_class_names
    task = DagSerialization.from_dict(DagSerialization.to_dict(behaviour_dags[CRASH_DAG])).get_task("submit")
    assert task.extra_links == ["Job"]
    assert [link.xcom_key for link in task.operator_extra_links] == [JobLink().xcom_key]


def test_job_link_reads_xcom_only_where_an_earlier_process_pushed_it(mocker: MockerFixture) -> None:
    """The task runner asks every link for its URL as a try ends. A try that never knew a job id
    (its submit failed) has no link XCom, and reading it would log "XCom not found" as an error."""
    from airflow_jobwait import links

    get_value = mocker.patch.object(links.XCom, "get_value", return_value="https://x/jobs/1")
    key = mocker.sentinel.ti_key
    fresh = SimpleNamespace()
    assert JobLink().get_link(fresh, ti_key=key) == ""  # type: ignore[arg-type]
    get_value.assert_not_called()
    pushed = SimpleNamespace(**{links.PUSHED_ATTR: "https://x/jobs/2"})
    assert JobLink().get_link(pushed, ti_key=key) == "https://x/jobs/2"  # type: ignore[arg-type]
    get_value.assert_not_called()
    resumed = SimpleNamespace(**{links.RESUMED_ATTR: True})  # pushed before the deferral
    assert JobLink().get_link(resumed, ti_key=key) == "https://x/jobs/1"  # type: ignore[arg-type]
    get_value.assert_called_once_with(ti_key=key, key=JobLink().xcom_key)
