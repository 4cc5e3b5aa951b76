"""DatasetJobsHook and dataset-kind waits against the live reference service (a cloned dataset per test)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jobwait_reference_service.process import ServiceProcess
from pytest_mock import MockerFixture

from airflow_jobwait.client import datasets as api
from airflow_jobwait.client.http import HttpResponse
from airflow_jobwait.client.job_kinds import cancel_call, results_call, status_call
from airflow_jobwait.exceptions import ApiError, InvalidResponse, NotFound, Unauthorized
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.models import JobStatus
from airflow_jobwait.models.datasets import DatasetJob
from airflow_jobwait.triggers import JobTrigger
from tests import reference_datasets as reference
from tests._pollers import bounded_outcome
from tests._scripted_service import ScriptedService, scripted_service
from tests.conftest import TENSORBAY_CONN, connection_json

FAST = {"queuing_s": 0.05, "processing_s": 0.1}
SLOW = {"queuing_s": 30}


@pytest.fixture
def hook(jobwait_conn: str) -> DatasetJobsHook:
    return DatasetJobsHook(TENSORBAY_CONN)


@pytest.fixture
def dataset(hook: DatasetJobsHook) -> str:
    return hook.call(reference.clone_dataset())


def wait(hook: DatasetJobsHook, dataset: str, job: DatasetJob) -> JobStatus | None:
    ref = {"dataset_id": dataset, "job_type": str(job.job_type)}
    return hook.wait_for_job(job.job_id, 0.05, 30, job_kind="dataset", job_ref=ref).status


def test_squash_and_merge_makes_a_draft(hook: DatasetJobsHook, dataset: str) -> None:
    job = hook.squash_and_merge(
        dataset, "add a bird", "feature", "main", draft_description="d", extra_body={"test": FAST}
    )
    assert job.status == "QUEUING" and job.job_type == "squashAndMerge"
    assert job.arguments == {
        "title": "add a bird",
        "sourceBranchName": "feature",
        "targetBranchName": "main",
        "strategy": "abort",
        "description": "d",
    }
    assert wait(hook, dataset, job) is JobStatus.COMPLETED
    done = hook.get_job(dataset, job.job_id, "squashAndMerge")
    assert done.status == "SUCCESS" and done.error_message == "" and done.finished_at is not None
    draft = hook.get_result_draft(dataset, done)
    assert draft.number == done.draft_number and draft.status == "OPEN" and draft.branch_name == "main"
    assert draft.title == "add a bird" and draft.description == "d"
    assert [d.number for d in hook.list_drafts(dataset).drafts] == [draft.number]
    with pytest.raises(ValueError) as refused:
        hook.get_result_draft(dataset, job)  # the QUEUING snapshot has no result yet
    assert str(refused.value) == (
        f"dataset job {job.job_id} (squashAndMerge, QUEUING) has no result.draftNumber: "
        "only a successful squashAndMerge job has a draft"
    )


def test_list_drafts_by_branch_and_page(hook: DatasetJobsHook, dataset: str) -> None:
    # As the tensorbay SDK's list_drafts(status, branch_name) (client/version.py _generate_drafts): GET drafts
    # with status, branchName (only drafts onto that branch), offset and limit (one page).
    jobs = [hook.squash_and_merge(dataset, f"merge {n}", "feature", "main", extra_body={"test": FAST}) for n in (1, 2)]
    for job in jobs:
        assert wait(hook, dataset, job) is JobStatus.COMPLETED
    numbers = sorted(hook.get_job(dataset, job.job_id, "squashAndMerge").draft_number or 0 for job in jobs)
    assert sorted(d.number for d in hook.list_drafts(dataset, "ALL", branch_name="main").drafts) == numbers
    onto_feature = hook.list_drafts(dataset, "ALL", branch_name="feature")
    assert (onto_feature.drafts, onto_feature.total_count) == ([], 0)
    first = hook.list_drafts(dataset, "ALL", limit=1)
    second = hook.list_drafts(dataset, "ALL", offset=1, limit=1)
    assert (len(first.drafts), first.total_count, len(second.drafts), second.total_count) == (1, 2, 1, 2)
    assert sorted(d.number for d in first.drafts + second.drafts) == numbers


def test_conflict_fails_then_retry_after_fix_succeeds(hook: DatasetJobsHook, dataset: str) -> None:
    job = hook.squash_and_merge(dataset, "fish", "conflicting", "main", extra_body={"test": FAST})
    assert wait(hook, dataset, job) is JobStatus.FAILED
    failed = hook.get_job(dataset, job.job_id, "squashAndMerge")
    assert failed.status == "FAILED" and "README.md" in str(failed.error_message)
    state = hook.call(status_call("dataset", job.job_id, {"dataset_id": dataset, "job_type": "squashAndMerge"}))
    assert state.native_status == "FAILED" and "conflict" in str(state.message)
    readme = hook.call(reference.branch(dataset, "main"))["files"]["README.md"]
    hook.call(reference.commit(dataset, "conflicting", {"README.md": readme}))
    hook.retry_job(dataset, job.job_id, "squashAndMerge")
    assert wait(hook, dataset, job) is JobStatus.COMPLETED
    results = hook.call(results_call("dataset", job.job_id, {"dataset_id": dataset, "job_type": "squashAndMerge"}))
    assert results["status"] == "SUCCESS" and results["result"]["draftNumber"] >= 1
    json.dumps(results)


@pytest.mark.ext
def test_create_with_same_request_id_returns_the_same_job(hook: DatasetJobsHook, dataset: str) -> None:
    first = hook.squash_and_merge(dataset, "t", "feature", "main", request_id="req-1", extra_body={"test": FAST})
    again = hook.squash_and_merge(dataset, "t", "feature", "main", request_id="req-1", extra_body={"test": FAST})
    assert again.job_id == first.job_id
    assert hook.create_job(dataset, "t", "squashAndMerge", first.arguments).job_id != first.job_id


def test_basic_search_list_abort_delete(hook: DatasetJobsHook, dataset: str) -> None:
    search = hook.basic_search(
        dataset,
        "cats",
        {
            "commit": "main",
            "conjunction": "and",
            "filters": [{"key": "content", "operator": "=", "value": "cat"}],
            "unit": "FILE",
        },
        extra_body={"test": FAST},
    )
    slow = hook.squash_and_merge(dataset, "slow", "feature", "main", extra_body={"test": SLOW})
    assert wait(hook, dataset, search) is JobStatus.COMPLETED
    assert set(hook.get_job(dataset, search.job_id, "basicSearch").result or {}) == {
        "searchResultId",
        "searchResultCommitId",
    }
    # Listed per job type, as the tensorbay SDK lists (client/version.py _list_jobs sends jobType).
    assert [j.job_id for j in hook.list_jobs(dataset, "squashAndMerge").jobs] == [slow.job_id]
    assert [j.job_id for j in hook.list_jobs(dataset, job_type="basicSearch").jobs] == [search.job_id]
    assert [j.job_id for j in hook.list_jobs(dataset, "squashAndMerge", status="QUEUING").jobs] == [slow.job_id]
    hook.abort(dataset, slow.job_id, "squashAndMerge")
    assert hook.get_job(dataset, slow.job_id, "squashAndMerge").status == "ABORTED"
    with pytest.raises(ApiError) as info:
        hook.abort(dataset, slow.job_id, "squashAndMerge")
    assert info.value.status == 400 and "InvalidParamsValue" in str(info.value) and "ABORTED" in str(info.value)
    assert info.value.code == "InvalidParamsValue"  # type: ignore[attr-defined]
    hook.delete_job(dataset, slow.job_id, "squashAndMerge")
    with pytest.raises(NotFound, match="ResourceNotExist"):
        hook.get_job(dataset, slow.job_id, "squashAndMerge")


def test_basic_search_sends_its_request_id_and_extra_body(
    hook: DatasetJobsHook, dataset: str, mocker: MockerFixture
) -> None:
    send = mocker.spy(hook.client, "send")
    arguments = {"commit": "main", "conjunction": "and", "filters": [], "unit": "FILE"}
    failing = {**FAST, "outcome": "FAILED", "error_message": "search index offline"}
    search = hook.basic_search(dataset, "cats", arguments, request_id="search-req-1", extra_body={"test": failing})
    create = send.call_args_list[0].args[0]
    assert (create.method, create.path) == ("POST", f"{api.PREFIX}/{dataset}/jobs")
    assert ("X-Request-Id", "search-req-1") in create.headers  # the caller's id, not a fresh one
    assert create.json_body["test"] == failing and create.json_body["jobType"] == "basicSearch"
    # The service took the extra body's test control: the search fails with its message.
    assert wait(hook, dataset, search) is JobStatus.FAILED
    assert hook.get_job(dataset, search.job_id, "basicSearch").error_message == "search index offline"


@pytest.mark.ext
def test_basic_search_with_the_same_request_id_is_the_same_job(hook: DatasetJobsHook, dataset: str) -> None:
    arguments = {"commit": "main", "conjunction": "and", "filters": [], "unit": "FILE"}
    first = hook.basic_search(dataset, "t", arguments, request_id="search-req-2", extra_body={"test": FAST})
    again = hook.basic_search(dataset, "t", arguments, request_id="search-req-2", extra_body={"test": FAST})
    assert again.job_id == first.job_id


def test_documented_errors(
    hook: DatasetJobsHook, dataset: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ApiError, match=r"400: InvalidParamsValue: .*branch 'nope' does not exist"):
        hook.squash_and_merge(dataset, "t", "nope", "main")
    with pytest.raises(ValueError, match="strategy"):
        hook.squash_and_merge(dataset, "t", "feature", "main", strategy="merge")
    with pytest.raises(ApiError, match="only FAILED or ABORTED"):
        job = hook.squash_and_merge(dataset, "t", "feature", "main", extra_body={"test": SLOW})
        hook.retry_job(dataset, job.job_id, "squashAndMerge")
    with pytest.raises(NotFound, match="ResourceNotExist"):
        hook.list_jobs("no-such-dataset", "squashAndMerge")
    with pytest.raises(ValueError, match="dataset_id"):
        hook.get_job("a/b", "x", "squashAndMerge")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{TENSORBAY_CONN.upper()}", connection_json(service, "tensorbay").replace(service.api_key, "bad")
    )
    with pytest.raises(Unauthorized, match="Unauthorized"):
        DatasetJobsHook(TENSORBAY_CONN).list_jobs(dataset, "squashAndMerge")


def test_kind_mapping_reads_unknown_status_as_the_sdk_and_requires_the_ref() -> None:
    ref = {"dataset_id": "d", "job_type": "squashAndMerge"}
    call = status_call("dataset", "j", ref)
    # tensorbay/client/job.py: only QUEUING/PROCESSING keep Job.update(until_complete) polling, and
    # only SUCCESS has a result: any other status is a terminal failure.
    state = call.parse(HttpResponse(200, {}, json.dumps({"jobId": "j", "status": "EXPLODED"}).encode()))
    assert state.status is JobStatus.FAILED and state.native_status == "EXPLODED"
    assert state.note is not None and "'EXPLODED' (TensorBay), treated as FAILED" in state.note
    with pytest.raises(InvalidResponse) as info:  # client/job.py Job.update reads job_info["status"]
        call.parse(HttpResponse(200, {}, json.dumps({"jobId": "j"}).encode()))
    assert info.value.field == "status"
    with pytest.raises(ValueError, match="'dataset_id'"):
        status_call("dataset", "j", {"job_type": "squashAndMerge"})
    # client/version.py JobMixin sends jobType on get, list, delete; client/job.py on abort/retry.
    with pytest.raises(ValueError, match="'job_type'"):
        status_call("dataset", "j", {"dataset_id": "d"})
    abort = cancel_call("dataset", "j", ref).request
    assert abort.path.endswith("/jobs/j/abort") and abort.params == (("jobType", "squashAndMerge"),)


@pytest.mark.parametrize(
    ("source", "test", "expected", "reason"),
    [
        ("feature", FAST, JobStatus.COMPLETED, None),
        # A conflict's errorMessage names the conflicting file.
        ("conflicting", FAST, JobStatus.FAILED, "README.md"),
        ("feature", {**FAST, "outcome": "FAILED", "error_message": "boom"}, JobStatus.FAILED, "boom"),
        ("feature", SLOW, JobStatus.CANCELED, None),
    ],
)
async def test_trigger_runs_a_dataset_job_to_each_terminal_status(
    hook: DatasetJobsHook, dataset: str, source: str, test: dict, expected: JobStatus, reason: str | None
) -> None:
    job = await asyncio.to_thread(hook.squash_and_merge, dataset, "t", source, "main", extra_body={"test": test})
    ref = {"dataset_id": dataset, "job_type": "squashAndMerge"}
    trigger = JobTrigger(job.job_id, hook.jobwait_conn_id, poll_interval=0.05, job_kind="dataset", job_ref=ref)
    assert trigger.serialize()[1]["job_ref"] == ref
    task = asyncio.ensure_future(bounded_outcome(trigger))
    if expected is JobStatus.CANCELED:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(hook.abort, dataset, job.job_id, "squashAndMerge")
    outcome = await task
    assert outcome.kind == "terminal" and outcome.status is expected
    # The job's errorMessage travels in the event: nobody asks the service again for it.
    if reason is None:
        assert outcome.reason is None
    else:
        assert outcome.reason is not None and reason in outcome.reason and reason in outcome.message


async def test_async_twin_reads_the_same_job(hook: DatasetJobsHook, dataset: str) -> None:
    job = hook.squash_and_merge(dataset, "async twin", "feature", "main", extra_body={"test": FAST})
    twin = await hook.aget_job(dataset, job.job_id, "squashAndMerge")
    assert twin.job_id == job.job_id and twin.job_type == "squashAndMerge"
    assert wait(hook, dataset, job) is JobStatus.COMPLETED
    assert (await hook.aget_job(dataset, job.job_id, "squashAndMerge")).status == "SUCCESS"


def test_a_create_reply_with_only_the_id_reads_as_the_sdk_reads_it() -> None:
    """TensorBay answers a create with ``{"jobId", "createdAt"}``; the tensorbay SDK (1.24.2,
    ``JobMixin._create_job``) completes it from the request: title, jobType, arguments, QUEUING."""
    arguments = {"title": "t", "sourceBranchName": "feature", "targetBranchName": "main", "strategy": "abort"}
    call = api.create_job("ds-1", "t", "squashAndMerge", arguments, "req-1")
    job = call.parse(HttpResponse(200, {}, json.dumps({"jobId": "job-1", "createdAt": 1700000000}).encode()))
    assert (job.job_id, job.created_at, job.status) == ("job-1", 1700000000, "QUEUING")
    assert (job.job_type, job.title, job.arguments) == ("squashAndMerge", "t", arguments)
    # A reply that says more (our service, or a repeated X-Request-Id) keeps what it says.
    full = {"jobId": "job-1", "createdAt": 1, "status": "SUCCESS", "title": "t", "result": {"draftNumber": 3}}
    job = call.parse(HttpResponse(200, {}, json.dumps(full).encode()))
    assert job.status == "SUCCESS" and job.draft_number == 3
    with pytest.raises(InvalidResponse, match="jobId"):
        call.parse(HttpResponse(200, {}, json.dumps({"createdAt": 1}).encode()))


# ---- get_result_draft against a scripted service: paging, branch, a draft not listed ----------

DRAFTS = f"{api.PREFIX}/ds/drafts"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedService]:
    with scripted_service() as service:
        conn = {"conn_type": "tensorbay", "host": service.base_url, "password": "ACCESSKEY-k"}
        monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_TB", json.dumps(conn))
        yield service


def merged(draft_number: int, **arguments: Any) -> DatasetJob:
    """A successful squashAndMerge job, as ``get_job`` reads it."""
    return DatasetJob.model_validate(
        {"jobId": "job-7", "jobType": "squashAndMerge", "status": "SUCCESS", "arguments": arguments,
         "result": {"draftNumber": draft_number}}
    )  # fmt: skip


def drafts_page(numbers: list[int], total: int) -> dict[str, Any]:
    drafts = [{"number": n, "title": f"d{n}", "branchName": "main", "status": "OPEN"} for n in numbers]
    return {"drafts": drafts, "offset": 0, "recordSize": len(numbers), "totalCount": total}


def draft_queries(service: ScriptedService) -> list[dict[str, str]]:
    return [query for method, path, query in service.seen if (method, path) == ("GET", DRAFTS)]


def test_result_draft_is_searched_page_by_page_on_the_target_branch(scripted: ScriptedService) -> None:
    # A service may answer fewer drafts than asked (its own page cap): the next page starts
    # after the drafts received, until totalCount.
    scripted.play("GET", DRAFTS, drafts_page([1, 2], 5), drafts_page([3, 4], 5), drafts_page([5], 5))
    draft = DatasetJobsHook("scripted_tb").get_result_draft("ds", merged(5, targetBranchName="main"))
    assert (draft.number, draft.title) == (5, "d5")
    # Every status (the draft may be closed or committed by now), onto the job's target branch.
    asked = {"status": "ALL", "branchName": "main", "limit": str(api.MAX_PAGE)}
    assert draft_queries(scripted) == [{**asked, "offset": offset} for offset in ("0", "2", "4")]


@pytest.mark.parametrize("arguments", [{}, {"targetBranchName": 7}], ids=["no-target", "garbled-target"])
def test_result_draft_without_a_target_branch_name_is_searched_on_every_branch(
    scripted: ScriptedService, arguments: dict[str, Any]
) -> None:
    scripted.play("GET", DRAFTS, drafts_page([3], 1))
    assert DatasetJobsHook("scripted_tb").get_result_draft("ds", merged(3, **arguments)).number == 3
    assert draft_queries(scripted) == [{"status": "ALL", "offset": "0", "limit": str(api.MAX_PAGE)}]


@pytest.mark.parametrize(
    ("pages", "asked"),
    [
        # Every listed draft read (offset reaches totalCount): no further page is asked for.
        ([drafts_page([1, 2], 4), drafts_page([3, 4], 4), drafts_page([9], 4)], 2),
        # An empty page ends the search even if totalCount says there are more.
        ([drafts_page([], 3), drafts_page([9], 3)], 1),
    ],
    ids=["all-read", "empty-page"],
)
def test_result_draft_not_listed_is_an_invalid_response_naming_it(
    scripted: ScriptedService, pages: list[dict[str, Any]], asked: int
) -> None:
    scripted.play("GET", DRAFTS, *pages)
    with pytest.raises(InvalidResponse) as info:
        DatasetJobsHook("scripted_tb").get_result_draft("ds", merged(9, targetBranchName="main"))
    assert str(info.value) == "draft #9 of dataset job job-7 is not listed in dataset ds"
    assert info.value.field == "result.draftNumber"
    assert len(draft_queries(scripted)) == asked
