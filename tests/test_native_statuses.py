"""Every reply the public SDKs accept, the provider accepts, with the SDK's meaning (``docs/jobs-api.md`` §5).

Each expectation below is read off the SDK source unpacked from the wheels the brief names
(modzy-sdk 0.11.6, tensorbay 1.24.2, evo-compute 0.0.6): the comment next to it names the file.
The parsers are fed the SDK-shaped JSON directly; one wait per family then runs over real HTTP
against a scripted service, through a status our own reference service never sends.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_jobwait.client import compute, datasets, inference
from airflow_jobwait.client.http import HttpResponse
from airflow_jobwait.client.job_kinds import dataset_state, results_call, status_call
from airflow_jobwait.client.wait_loop import WaitLoop, is_transient
from airflow_jobwait.exceptions import ApiError, InvalidResponse, UnknownJobStatus
from airflow_jobwait.hooks import JobsHook
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.models import JobResults, JobStatus, WaitOutcome
from airflow_jobwait.models.compute import ComputeJobRef
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobSummary
from airflow_jobwait.operators.datasets import AbortDatasetJobOperator
from airflow_jobwait.triggers import JobTrigger
from tests._liveness import LIVENESS_S
from tests._scripted_service import ScriptedService, scripted_service

S = JobStatus
ORG = str(uuid.UUID(int=7))
JOB = str(uuid.UUID(int=9))
COMPUTE_REF = {"org_id": ORG, "topic": "demo", "task": "wordcount"}
DATASET_REF = {"dataset_id": "ds", "job_type": "squashAndMerge"}


def ok(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, body if isinstance(body, bytes) else json.dumps(body).encode())


# ---- Modzy --------------------------------------------------------------------------------------

MODZY_STATUSES = [
    # modzy/jobs.py Jobs.status; block_until_complete polls while SUBMITTED or IN_PROGRESS.
    ("SUBMITTED", S.SUBMITTED),
    ("IN_PROGRESS", S.IN_PROGRESS),
    ("COMPLETED", S.COMPLETED),
    ("CANCELED", S.CANCELED),
    ("TIMEDOUT", S.TIMEDOUT),
    # modzy/edge/proto/jobs/v1/job_pb2.py JobStatus = UNKNOWN, QUEUED, IN_PROGRESS, COMPLETE,
    # CANCELED, FAILED; modzy/edge/jobs.py block_until_complete ends on COMPLETE/CANCELLED/FAILED.
    ("QUEUED", S.SUBMITTED),
    ("UNKNOWN", S.SUBMITTED),
    ("COMPLETE", S.COMPLETED),
    ("CANCELLED", S.CANCELED),
    ("FAILED", S.FAILED),
    # modzy/edge/proto/inferences/api/v1/inferences_pb2.py InferenceStatus adds FETCHING and
    # UNKNOWN_INFERENCE_STATUS; edge/inferences.py _inference_is_finished is COMPLETE/CANCELED/FAILED.
    ("FETCHING", S.IN_PROGRESS),
    ("UNKNOWN_INFERENCE_STATUS", S.SUBMITTED),
    # Unknown to the SDK: modzy/jobs.py block_until_complete returns on anything but
    # SUBMITTED/IN_PROGRESS, and the samples (samples/job_with_text_input_sample.py) count only
    # COMPLETED as success: a terminal failure.
    ("OPEN", S.FAILED),
    ("completed", S.FAILED),  # the SDK compares with ==
]


@pytest.mark.parametrize(("native", "expected"), MODZY_STATUSES)
def test_modzy_status_is_read_as_the_sdk_reads_it(native: str, expected: JobStatus) -> None:
    job = inference.get_job(JOB).parse(ok({"jobIdentifier": JOB, "status": native}))
    assert job.status is expected and job.native_status == native
    state = status_call("inference", JOB).parse(ok({"jobIdentifier": JOB, "status": native}))
    assert state.status is expected and state.native_status == native
    # The shared poller's lean parse agrees with the full one.
    batch = inference.batch_statuses([JOB]).parse(ok({"jobs": [{"jobIdentifier": JOB, "status": native}]}))
    assert batch[JOB].status is expected and batch[JOB].native_status == native


def test_modzy_note_names_a_status_beyond_our_contract_only() -> None:
    open_state = status_call("inference", JOB).parse(ok({"jobIdentifier": JOB, "status": "OPEN"}))
    assert open_state.note is not None and "native status 'OPEN' (Modzy), treated as FAILED" in open_state.note
    ours = status_call("inference", JOB).parse(ok({"jobIdentifier": JOB, "status": "IN_PROGRESS"}))
    assert ours.note is None


def test_modzy_defaults_extras_codes_and_empty_bodies() -> None:
    # modzy/jobs.py Job.__init__: no "status" means SUBMITTED.
    job = inference.get_job(JOB).parse(ok({"jobIdentifier": JOB, "newField": {"x": 1}}))
    assert job.status is S.SUBMITTED and job.model_extra == {"newField": {"x": 1}}
    # modzy/http.py request: any 2xx is success and an empty body is {}; the SDK's Job then
    # carries no id, ours the one asked for.
    for code in (200, 201, 202, 204):
        canceled = inference.cancel_job(JOB).parse(HttpResponse(code, {}, b""))
        assert canceled.job_identifier == JOB
    assert inference.get_job(JOB).parse(ok({"status": "QUEUED"}, 202)).job_identifier == JOB
    results = inference.get_results(JOB).parse(ok({"total": 1}, 203))
    assert results.job_identifier == JOB and results.total == 1
    # Truly malformed still names the field: a status that is no string, a non-JSON body.
    with pytest.raises(InvalidResponse) as info:
        inference.get_job(JOB).parse(ok({"jobIdentifier": JOB, "status": None}))
    assert info.value.field == "status"
    with pytest.raises(InvalidResponse, match="not JSON"):
        inference.get_job(JOB).parse(ok(b"<html>"))


# modzy/_util.py (test_model's sample-output document) lists these per-input keys beside the
# model's output "results.json": they describe the run, they are not outputs.
SDK_METADATA = {
    "model": None,
    "userIdentifier": None,
    "status": "SUCCESSFUL",
    "engine": "model-batch-xyz",
    "error": None,
    "startTime": "2026-01-01T00:00:00.000+0000",
    "endTime": "2026-01-01T00:00:01.000+0000",
    "updateTime": "2026-01-01T00:00:01.000+0000",
    "inputSize": 12,
    "accessKey": None,
    "teamIdentifier": None,
    "accountIdentifier": None,
    "timeMeters": None,
    "datasourceCompletedTime": None,
    "elapsedTime": 1000,
}
OUTPUTS = {"results.json": {"label": "joy"}, "explanation.json": {"w": [1]}}


def test_modzy_results_keep_outputs_and_metadata_apart() -> None:
    body = {
        "jobIdentifier": JOB,
        "total": 2,
        "completed": 2,
        "finished": True,
        "results": {
            "a": {**SDK_METADATA, **OUTPUTS},
            # modzy/results.py get_source_outputs: "legacy double nesting of source source_name".
            "b": {"status": "SUCCESSFUL", "b": {"results.json": {"label": "sad"}}},
        },
    }
    results = inference.get_results(JOB).parse(ok(body))
    assert results.get_source_outputs("a") == OUTPUTS
    assert results.results["a"].metadata == SDK_METADATA
    assert results.get_source_outputs("b") == {"results.json": {"label": "sad"}}
    xcom = results_call("inference", JOB).parse(ok(body))
    # Downstream tasks get outputs under results, metadata beside them.
    assert xcom["results"] == {"a": OUTPUTS, "b": {"results.json": {"label": "sad"}}}
    assert xcom["resultsMetadata"]["a"] == SDK_METADATA
    json.dumps(xcom)
    back = JobResults.model_validate(xcom)  # read back from XCom, as a downstream deposit does
    assert back.get_source_outputs("a") == OUTPUTS
    assert back.results["a"].metadata == SDK_METADATA  # the input's times and status come back too


# ---- TensorBay ----------------------------------------------------------------------------------

TENSORBAY_STATUSES = [
    # tensorbay/client/job.py _JOB_NOT_COMPLETE_STATUS = {"QUEUING", "PROCESSING"}.
    ("QUEUING", S.SUBMITTED),
    ("PROCESSING", S.IN_PROGRESS),
    # tensorbay/client/version.py _list_jobs: "QUEUING", "PROCESSING", "SUCCESS", "FAILED",
    # "ABORTED"; SquashAndMerge.list_jobs spells the last two "FAIL", "ABORT".
    ("SUCCESS", S.COMPLETED),
    ("FAILED", S.FAILED),
    ("ABORTED", S.CANCELED),
    ("FAIL", S.FAILED),
    ("ABORT", S.CANCELED),
    # Anything else ends Job.update(until_complete=True), and BasicSearchJob.result reads a
    # result only on SUCCESS: a terminal failure.
    ("EXPIRED", S.FAILED),
]


@pytest.mark.parametrize(("native", "expected"), TENSORBAY_STATUSES)
def test_tensorbay_status_is_read_as_the_sdk_reads_it(native: str, expected: JobStatus) -> None:
    state = status_call("dataset", "j1", DATASET_REF).parse(ok({"jobId": "j1", "status": native}))
    assert state.status is expected and state.native_status == native


def test_a_dataset_state_read_again_is_kept_while_the_job_reads_the_same() -> None:
    # A job list entry carries jobId, status and errorMessage (tensorbay client/version.py
    # _generate_jobs); the SDK defaults errorMessage to "" (client/job.py), which says no reason.
    def entry(status: str, error: str = "") -> DatasetJobSummary:
        return DatasetJobSummary.model_validate({"jobId": "j1", "status": status, "errorMessage": error})

    running = dataset_state(entry("PROCESSING"))
    assert (running.status, running.native_status, running.message) == (S.IN_PROGRESS, "PROCESSING", None)
    assert dataset_state(entry("PROCESSING"), running) is running
    moved = dataset_state(entry("SUCCESS"), running)
    assert (moved.status, moved.native_status, moved.message) == (S.COMPLETED, "SUCCESS", None)
    failed = dataset_state(entry("FAILED", "disk full"), running)
    assert (failed.status, failed.message) == (S.FAILED, "disk full")
    reworded = dataset_state(entry("FAILED", "disk still full"), failed)
    assert (reworded.status, reworded.message) == (S.FAILED, "disk still full")
    assert dataset_state(entry("FAILED", ""), failed).message is None
    with pytest.raises(InvalidResponse, match="status"):
        dataset_state(DatasetJobSummary.model_validate({"jobId": "j1"}), running)


def test_tensorbay_sends_job_type_on_every_job_call() -> None:
    # client/version.py JobMixin: _get_job, _list_jobs, delete_job; client/job.py abort, retry.
    calls = [
        datasets.get_job("ds", "j1", "basicSearch"),
        datasets.list_jobs("ds", "basicSearch"),
        datasets.list_job_summaries("ds", "basicSearch"),
        datasets.retry_job("ds", "j1", "basicSearch"),
        datasets.abort_job("ds", "j1", "basicSearch"),
        datasets.delete_job("ds", "j1", "basicSearch"),
        status_call("dataset", "j1", {"dataset_id": "ds", "job_type": "basicSearch"}),
    ]
    for call in calls:
        assert ("jobType", "basicSearch") in call.request.params, call.request
    # No default in the SDK (each job class has its own _JOB_TYPE): a missing one is named.
    for build in (
        lambda: datasets.get_job("ds", "j1", None),  # type: ignore[arg-type]
        lambda: datasets.abort_job("ds", "j1", None),  # type: ignore[arg-type]
        lambda: status_call("dataset", "j1", {"dataset_id": "ds"}),
        lambda: AbortDatasetJobOperator(task_id="t", dataset_id="ds", job_id="j1", job_type=None),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="job_type"):
            build()


def test_tensorbay_defaults_and_the_job_type_of_the_request() -> None:
    # client/version.py _get_job: response.update(jobType=...); client/job.py Job attrs default
    # errorMessage and description to "", startedAt/finishedAt/result to None.
    job = datasets.get_job("ds", "j1", "basicSearch").parse(
        ok({"jobId": "j1", "title": "t", "arguments": {}, "createdAt": 1, "status": "QUEUING", "extra": 1})
    )
    assert isinstance(job, DatasetJob)
    assert job.job_type == "basicSearch" and job.error_message == "" and job.description == ""
    assert job.started_at is None and job.finished_at is None and job.result is None
    assert job.model_extra == {"extra": 1}
    listed = datasets.list_jobs("ds", "basicSearch").parse(ok({"jobs": [{"jobId": "j1"}], "totalCount": 1}))
    assert listed.jobs[0].job_type == "basicSearch"
    # tensorbay/utility/requests.py: 200 and 201 only.
    with pytest.raises(ApiError) as info:
        datasets.get_job("ds", "j1", "basicSearch").parse(ok({"jobId": "j1"}, 202))
    assert info.value.status == 202


# ---- Evo compute --------------------------------------------------------------------------------

EVO_STATUSES = [
    # evo/compute/endpoints/models.py JobStatusEnum; client.py wait_for_results ends on
    # succeeded, failed, cancelled.
    ("requested", S.SUBMITTED),
    ("in progress", S.IN_PROGRESS),
    ("cancelling", S.IN_PROGRESS),
    ("succeeded", S.COMPLETED),
    ("failed", S.FAILED),
    ("cancelled", S.CANCELED),
    # The same file's JobStatusOngoing.canceling and JobStatusCompleted.canceled.
    ("canceling", S.IN_PROGRESS),
    ("canceled", S.CANCELED),
]


@pytest.mark.parametrize(("native", "expected"), EVO_STATUSES)
def test_evo_status_is_read_as_the_sdk_reads_it(native: str, expected: JobStatus) -> None:
    state = status_call("compute", JOB, COMPUTE_REF).parse(ok({"status": native, "progress": 5}))
    assert state.status is expected and state.native_status == native


def test_evo_unknown_status_ends_the_wait_at_once() -> None:
    # evo/compute/client.py get_status validates JobStatusResponse (status: JobStatusEnum): an
    # unknown status raises UnknownResponseError, which wait_for_results does not retry.
    with pytest.raises(UnknownJobStatus) as info:
        status_call("compute", JOB, COMPUTE_REF).parse(ok({"status": "paused"}))
    assert info.value.field == "status" and "'paused'" in str(info.value)
    assert not is_transient(info.value)
    loop = WaitLoop(JOB, 1.0)
    outcome = loop.on_error(info.value)
    assert outcome is not None and outcome.kind == "error" and "'paused'" in outcome.message


@pytest.mark.parametrize(
    "location",
    [
        # evo/compute/client.py JobClient.submit: base_url + Location with the base URL and one
        # leading "/" removed, then from_url's RE_STATUS_URL; the ids go through uuid.UUID().
        f"https://evo.example.com/compute/orgs/{ORG}/demo/wordcount/{JOB}/status",
        f"/compute/orgs/{ORG}/demo/wordcount/{JOB}/status",
        f"compute/orgs/{ORG}/demo/wordcount/{JOB}/status",
        f"/compute/orgs/{uuid.UUID(ORG).hex}/demo/wordcount/{uuid.UUID(JOB).hex}/status",
    ],
)
def test_evo_submit_location_forms_the_sdk_takes(location: str) -> None:
    ref = compute.submit(ORG, "demo", "wordcount", {}).parse(HttpResponse(303, {"location": location}, b""))
    assert ref == ComputeJobRef(org_id=ORG, topic="demo", task="wordcount", job_id=JOB)


def test_evo_location_with_ids_that_are_no_uuids_is_refused() -> None:
    # JobClient.from_url: "Invalid ... ID in URL" for an id uuid.UUID() rejects.
    with pytest.raises(InvalidResponse) as info:
        ComputeJobRef.from_location(f"/compute/orgs/{ORG}/demo/wordcount/not-a-uuid/status")
    assert info.value.field == "Location"


# ---- one wait per family over real HTTP, through a status only the SDK knows --------------------


class Recorder:
    """Stands in for a hook's or trigger's logger: keeps the formatted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _keep(self, msg: str, *args: Any, **_: Any) -> None:
        self.lines.append(msg % args if args else msg)

    info = warning = error = debug = exception = _keep


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedService]:
    with scripted_service() as scripted:
        conn = {"conn_type": "modzy", "host": scripted.base_url, "password": "k", "extra": {"status_mode": "per_job"}}
        monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED", json.dumps(conn))
        yield scripted


def test_inference_wait_runs_through_modzy_edge_statuses(service: ScriptedService) -> None:
    service.play(
        "GET",
        f"/api/jobs/{JOB}",
        {"jobIdentifier": JOB, "status": "QUEUED"},
        {"jobIdentifier": JOB, "status": "FETCHING"},
        {"jobIdentifier": JOB, "status": "COMPLETE"},
    )
    hook = JobsHook("scripted")
    hook._log = Recorder()  # type: ignore[assignment]
    outcome = hook.wait_for_job(JOB, poll_interval=0.01, timeout=10)
    assert outcome.kind == "terminal" and outcome.status is S.COMPLETED and outcome.native_status == "COMPLETE"
    lines = hook._log.lines  # type: ignore[attr-defined]
    assert f"job {JOB} reported native status 'QUEUED' (Modzy), treated as SUBMITTED" in lines
    assert f"job {JOB} reported native status 'FETCHING' (Modzy), treated as IN_PROGRESS" in lines


async def test_inference_trigger_ends_on_a_status_unknown_to_modzy(service: ScriptedService) -> None:
    service.play(
        "GET",
        f"/api/jobs/{JOB}",
        {"jobIdentifier": JOB, "status": "IN_PROGRESS"},
        {"jobIdentifier": JOB, "status": "OPEN"},
    )
    trigger = JobTrigger(JOB, "scripted", poll_interval=0.01, cancel_on_kill=False)
    trigger._log = Recorder()  # type: ignore[assignment]
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)

    await asyncio.wait_for(consume(), LIVENESS_S)
    outcome = WaitOutcome.model_validate(events[0].payload)
    # modzy/jobs.py block_until_complete: anything but SUBMITTED/IN_PROGRESS ends the wait.
    assert outcome.kind == "terminal" and outcome.status is S.FAILED and outcome.native_status == "OPEN"
    assert "'OPEN' (Modzy)" in outcome.message
    assert any(f"job {JOB} reported native status 'OPEN' (Modzy)" in line for line in trigger._log.lines)  # type: ignore[attr-defined]
    polls = [seen for seen in service.seen if seen[1] == f"/api/jobs/{JOB}"]
    assert len(polls) == 2  # ended on the first OPEN, not after a budget of invalid polls


def test_dataset_wait_runs_through_tensorbay_abort_and_sends_job_type(service: ScriptedService) -> None:
    path = "/gatewayv2/tensorbay-open-api/v1/datasets/ds/jobs/j1"
    service.play("GET", path, {"jobId": "j1", "status": "QUEUING"}, {"jobId": "j1", "status": "ABORT"})
    hook = DatasetJobsHook("scripted")
    outcome = hook.wait_for_job("j1", poll_interval=0.01, timeout=10, job_kind="dataset", job_ref=DATASET_REF)
    # tensorbay/client/version.py SquashAndMerge.list_jobs names "ABORT" among its statuses.
    assert outcome.status is S.CANCELED and outcome.native_status == "ABORT"
    assert {query.get("jobType") for method, seen_path, query in service.seen if seen_path == path} == {
        "squashAndMerge"
    }


def test_compute_wait_runs_through_one_l_canceling(service: ScriptedService) -> None:
    path = f"/compute/orgs/{ORG}/demo/wordcount/{JOB}/status"
    service.play("GET", path, {"status": "requested"}, {"status": "canceling"}, {"status": "canceled"}, status=202)
    outcome = JobsHook("scripted").wait_for_job(JOB, 0.01, 10, job_kind="compute", job_ref=COMPUTE_REF)
    # evo/compute/endpoints/models.py JobStatusOngoing.canceling, JobStatusCompleted.canceled.
    assert outcome.status is S.CANCELED and outcome.native_status == "canceled"
    assert len([seen for seen in service.seen if seen[1] == path]) == 3
