"""Dataset jobs (TensorBay Open API, section 2 of docs/jobs-api.md) over real HTTP.

Every test that changes repository state works on its own clone of ``demo-dataset`` (a test
control), so tests never see each other's jobs, drafts or commits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from jobwait_reference_service.process import ServiceProcess

ROOT = "/gatewayv2/tensorbay-open-api/v1"
TERMINAL = {"SUCCESS", "FAILED", "ABORTED"}
FAST = {"queuing_s": 0.05, "processing_s": 0.05}


class TensorBay:
    """Thin ``requests`` helper speaking section 2 for one dataset."""

    def __init__(self, service: ServiceProcess, dataset_id: str = "demo-dataset") -> None:
        self.service = service
        self.dataset_id = dataset_id
        self.headers = {"X-Token": service.api_key}

    @property
    def base(self) -> str:
        return f"{self.service.base_url}{ROOT}/datasets/{self.dataset_id}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=10, **kwargs)

    def test_call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.service.base_url}{ROOT}/_test/datasets{path}"
        return requests.request(method, url, headers=self.headers, timeout=10, **kwargs)

    def create(self, job_type: str = "squashAndMerge", arguments: dict[str, Any] | None = None, **extra: Any) -> str:
        body = {"title": "a job", "jobType": job_type, "arguments": arguments or {}, **extra}
        resp = self.call("POST", "/jobs", json=body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["jobId"])

    def merge(self, source: str, strategy: str = "abort", target: str = "main", **extra: Any) -> str:
        arguments = {"title": f"{source} into {target}", "sourceBranchName": source, "targetBranchName": target}
        return self.create(arguments={**arguments, "strategy": strategy}, **extra)

    def job(self, job_id: str) -> dict[str, Any]:
        resp = self.call("GET", f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 10) -> dict:
        until = until or (lambda job: job["status"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} stuck: {job}"
            time.sleep(0.02)

    def branch(self, name: str) -> dict[str, Any]:
        resp = self.test_call("GET", f"/{self.dataset_id}/branches/{name}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def draft(self, number: int) -> dict[str, Any]:
        resp = self.test_call("GET", f"/{self.dataset_id}/drafts/{number}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def commit(self, branch: str, files: dict[str, str | None]) -> str:
        resp = self.test_call("POST", f"/{self.dataset_id}/commits", json={"branchName": branch, "files": files})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["commitId"])


def assert_error(resp: requests.Response, status: int, code: str, *mentions: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    for word in mentions:
        assert word in body["message"], body


@pytest.fixture
def tb(service: ServiceProcess) -> TensorBay:
    """A fresh clone of ``demo-dataset`` for this test."""
    client = TensorBay(service)
    resp = client.test_call("POST", "", json={"datasetId": f"ds-{uuid.uuid4().hex[:12]}"})
    assert resp.status_code == 200, resp.text
    client.dataset_id = resp.json()["datasetId"]
    return client


# --- auth and error shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-key"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/x"), ("POST", "/jobs/x/retry"), ("GET", "/drafts")],
)
def test_bad_or_missing_token_is_unauthorized(service: ServiceProcess, token: str | None, method: str, path: str):
    headers = {} if token is None else {"X-Token": token}
    url = f"{service.base_url}{ROOT}/datasets/demo-dataset{path}"
    assert_error(requests.request(method, url, headers=headers, timeout=10), 401, "Unauthorized", "X-Token")


def test_unknown_paths_and_methods_keep_the_tensorbay_error_shape(service: ServiceProcess):
    tb = TensorBay(service)
    assert_error(tb.call("GET", "/nothing-here"), 404, "ResourceNotExist")
    assert_error(tb.call("PUT", "/jobs"), 405, "Forbidden", "PUT")
    assert_error(
        requests.get(f"{service.base_url}{ROOT}/other", headers=tb.headers, timeout=10), 404, "ResourceNotExist"
    )


def test_unknown_dataset_is_resource_not_exist(service: ServiceProcess):
    tb = TensorBay(service, "no-such-dataset")
    assert_error(tb.call("GET", "/jobs"), 404, "ResourceNotExist", "no-such-dataset")
    assert_error(tb.call("GET", "/drafts"), 404, "ResourceNotExist", "no-such-dataset")
    body = {"title": "t", "jobType": "basicSearch", "arguments": {}}
    assert_error(tb.call("POST", "/jobs", json=body), 404, "ResourceNotExist", "no-such-dataset")


# --- create validation ----------------------------------------------------------------------------

_MERGE_ARGS = {"title": "d", "sourceBranchName": "feature", "targetBranchName": "main", "strategy": "abort"}


@pytest.mark.parametrize(
    ("body", "status", "code", "mention"),
    [
        ({"jobType": "squashAndMerge", "arguments": _MERGE_ARGS}, 400, "RequestParamsMissing", "title"),
        ({"title": "t", "arguments": _MERGE_ARGS}, 400, "RequestParamsMissing", "jobType"),
        ({"title": "t", "jobType": "squashAndMerge"}, 400, "RequestParamsMissing", "arguments"),
        ({"title": "t", "jobType": "rebase", "arguments": _MERGE_ARGS}, 400, "InvalidParamsValue", "jobType"),
        ({"title": 5, "jobType": "squashAndMerge", "arguments": _MERGE_ARGS}, 400, "InvalidParamsValue", "title"),
        ({"title": "t", "jobType": "squashAndMerge", "arguments": []}, 400, "InvalidParamsValue", "arguments"),
        (
            {"title": "t", "jobType": "squashAndMerge", "arguments": {**_MERGE_ARGS, "strategy": "yolo"}},
            400,
            "InvalidParamsValue",
            "strategy",
        ),
        (
            {"title": "t", "jobType": "squashAndMerge", "arguments": {**_MERGE_ARGS, "sourceBranchName": "nope"}},
            400,
            "InvalidParamsValue",
            "sourceBranchName",
        ),
        (
            {"title": "t", "jobType": "squashAndMerge", "arguments": {**_MERGE_ARGS, "targetBranchName": "nope"}},
            400,
            "InvalidParamsValue",
            "targetBranchName",
        ),
        (
            {"title": "t", "jobType": "squashAndMerge", "arguments": {"title": "d", "targetBranchName": "main"}},
            400,
            "RequestParamsMissing",
            "sourceBranchName",
        ),
        (
            {"title": "t", "jobType": "basicSearch", "arguments": {"conditions": {"filters": [["colour", "=", 1]]}}},
            400,
            "InvalidParamsValue",
            "filters[0]",
        ),
        (
            {"title": "t", "jobType": "basicSearch", "arguments": {"commit": "no-such-branch"}},
            400,
            "InvalidParamsValue",
            "commit",
        ),
    ],
)
def test_create_validates_by_hand(service: ServiceProcess, body: dict, status: int, code: str, mention: str):
    assert_error(TensorBay(service).call("POST", "/jobs", json=body), status, code, mention)


def test_create_rejects_a_body_that_is_not_a_json_object(service: ServiceProcess):
    tb = TensorBay(service)
    resp = tb.call("POST", "/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "InvalidParamsValue", "JSON")
    assert_error(tb.call("POST", "/jobs", json=[1, 2]), 400, "InvalidParamsValue", "object")
    assert_error(tb.call("POST", "/jobs"), 400, "RequestParamsMissing", "body")


# --- lifecycle ------------------------------------------------------------------------------------


def test_job_moves_queuing_processing_success_with_timestamps(tb: TensorBay):
    resp = tb.call(
        "POST",
        "/jobs",
        json={
            "title": "merge feature",
            "jobType": "squashAndMerge",
            "arguments": _MERGE_ARGS,
            "description": "why",
            "test": {"queuing_s": 0.6, "processing_s": 0.3},
        },
    )
    assert resp.status_code == 200, resp.text
    created = resp.json()
    assert {"jobId", "createdAt"} <= set(created)
    assert isinstance(created["createdAt"], int) and abs(created["createdAt"] - time.time()) < 5

    job = tb.job(created["jobId"])
    assert job["status"] == "QUEUING"
    assert job["errorMessage"] == "" and job["startedAt"] is None and job["finishedAt"] is None
    assert job["result"] is None and job["jobType"] == "squashAndMerge"
    assert job["title"] == "merge feature" and job["description"] == "why" and job["arguments"] == _MERGE_ARGS

    processing = tb.wait(job["jobId"], lambda j: j["status"] != "QUEUING")
    assert processing["status"] == "PROCESSING" and isinstance(processing["startedAt"], int)
    done = tb.wait(job["jobId"])
    assert done["status"] == "SUCCESS", done
    assert done["errorMessage"] == "" and isinstance(done["finishedAt"], int)
    assert done["createdAt"] <= done["startedAt"] <= done["finishedAt"]
    assert set(done["result"]) == {"draftNumber"}


def test_clean_merge_opens_a_draft_that_changes_the_target_branch(tb: TensorBay):
    main_before = tb.branch("main")
    feature = tb.branch("feature")
    job = tb.wait(tb.merge("feature", test=FAST))
    assert job["status"] == "SUCCESS", job
    number = job["result"]["draftNumber"]

    drafts = tb.call("GET", "/drafts", params={"status": "OPEN", "offset": 0, "limit": 128}).json()
    assert drafts["totalCount"] == 1 and drafts["recordSize"] == 1 and drafts["offset"] == 0
    draft = drafts["drafts"][0]
    assert set(draft) == {
        "number",
        "title",
        "branchName",
        "status",
        "parentCommitId",
        "author",
        "updatedAt",
        "description",
    }
    assert draft["number"] == number and draft["status"] == "OPEN" and draft["branchName"] == "main"
    assert draft["title"] == "feature into main" and draft["parentCommitId"] == main_before["commitId"]
    assert set(draft["author"]) == {"name", "date"}

    # The draft holds main plus feature's squashed changes; main's own README edit survives.
    files = tb.draft(number)["files"]
    assert files == {
        **main_before["files"],
        **{p: feature["files"][p] for p in ("data/0003.txt", "labels/catalog.json")},
    }
    assert files["README.md"] == main_before["files"]["README.md"]

    # Committing the draft (a test control) moves main onto the merged snapshot.
    resp = tb.test_call("POST", f"/{tb.dataset_id}/drafts/{number}/commit")
    assert resp.status_code == 200, resp.text
    main_after = tb.branch("main")
    assert main_after["commitId"] == resp.json()["commitId"] != main_before["commitId"]
    assert main_after["files"] == files
    assert tb.call("GET", "/drafts").json()["totalCount"] == 0
    assert tb.call("GET", "/drafts", params={"status": "COMMITTED"}).json()["drafts"][0]["number"] == number


def test_conflict_with_abort_fails_then_fix_and_retry_succeeds(tb: TensorBay):
    job_id = tb.merge("conflicting", "abort", test=FAST)
    failed = tb.wait(job_id)
    assert failed["status"] == "FAILED", failed
    assert "README.md" in failed["errorMessage"] and "conflict" in failed["errorMessage"]
    assert failed["result"] is None and isinstance(failed["finishedAt"], int)
    assert tb.call("GET", "/drafts").json()["totalCount"] == 0

    # Retrying against unchanged branches fails the same way.
    assert tb.call("POST", f"/jobs/{job_id}/retry", params={"jobType": "squashAndMerge"}).status_code == 200
    requeued = tb.job(job_id)
    assert requeued["status"] in {"QUEUING", "PROCESSING"} and requeued["errorMessage"] == ""
    assert requeued["finishedAt"] is None and requeued["result"] is None
    assert tb.wait(job_id)["status"] == "FAILED"

    # Resolve the conflict on the source branch (take main's README), retry: it merges.
    tb.commit("conflicting", {"README.md": tb.branch("main")["files"]["README.md"]})
    resp = tb.call("POST", f"/jobs/{job_id}/retry", params={"jobType": "squashAndMerge"})
    assert resp.status_code == 200 and resp.json() == {}
    done = tb.wait(job_id)
    assert done["status"] == "SUCCESS" and done["errorMessage"] == "", done
    files = tb.draft(done["result"]["draftNumber"])["files"]
    assert files["data/0004.txt"] == "fish" and files["README.md"] == tb.branch("main")["files"]["README.md"]


@pytest.mark.parametrize("strategy", ["override", "skip"])
def test_conflict_strategies_override_and_skip(tb: TensorBay, strategy: str):
    main, conflicting = tb.branch("main")["files"], tb.branch("conflicting")["files"]
    job = tb.wait(tb.merge("conflicting", strategy, test=FAST))
    assert job["status"] == "SUCCESS", job
    files = tb.draft(job["result"]["draftNumber"])["files"]
    winner = conflicting if strategy == "override" else main
    assert files["README.md"] == winner["README.md"]
    assert files["data/0004.txt"] == "fish"  # the non-conflicting change applies either way


def test_abort_while_queuing_and_while_processing(tb: TensorBay):
    queued = tb.merge("feature", test={"queuing_s": 30})
    resp = tb.call("POST", f"/jobs/{queued}/abort", params={"jobType": "squashAndMerge"})
    assert resp.status_code == 200 and resp.json() == {}
    job = tb.job(queued)
    assert job["status"] == "ABORTED" and isinstance(job["finishedAt"], int) and job["startedAt"] is None
    assert_error(tb.call("POST", f"/jobs/{queued}/abort"), 400, "InvalidParamsValue", "ABORTED")

    processing = tb.merge("feature", test={"queuing_s": 0, "processing_s": 30})
    tb.wait(processing, lambda j: j["status"] == "PROCESSING")
    assert tb.call("POST", f"/jobs/{processing}/abort").status_code == 200
    job = tb.job(processing)
    assert job["status"] == "ABORTED" and isinstance(job["startedAt"], int)
    time.sleep(0.1)  # the background pass must not resurrect an aborted job
    assert tb.job(processing)["status"] == "ABORTED"
    assert tb.call("GET", "/drafts").json()["totalCount"] == 0

    # An aborted job may be retried: back to QUEUING (then stop it again).
    assert tb.call("POST", f"/jobs/{queued}/retry").status_code == 200
    assert tb.job(queued)["status"] == "QUEUING"
    assert tb.call("POST", f"/jobs/{queued}/abort").status_code == 200


def test_retry_and_abort_refuse_the_wrong_states(tb: TensorBay):
    job_id = tb.merge("feature", test=FAST)
    assert_error(tb.call("POST", f"/jobs/{job_id}/retry"), 400, "InvalidParamsValue", "QUEUING")
    assert tb.wait(job_id)["status"] == "SUCCESS"
    assert_error(tb.call("POST", f"/jobs/{job_id}/retry"), 400, "InvalidParamsValue", "SUCCESS")
    assert_error(tb.call("POST", f"/jobs/{job_id}/abort"), 400, "InvalidParamsValue", "SUCCESS")


def test_delete_and_unknown_jobs(tb: TensorBay):
    job_id = tb.merge("feature", test=FAST)
    resp = tb.call("DELETE", f"/jobs/{job_id}", params={"jobType": "squashAndMerge"})
    assert resp.status_code == 200 and resp.json() == {}
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("DELETE", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/retry"),
        ("POST", f"/jobs/{job_id}/abort"),
    ]:
        assert_error(tb.call(method, path), 404, "ResourceNotExist", job_id)
    assert tb.call("GET", "/jobs").json()["totalCount"] == 0


def test_get_checks_job_type(tb: TensorBay):
    job_id = tb.merge("feature", test=FAST)
    assert tb.call("GET", f"/jobs/{job_id}", params={"jobType": "squashAndMerge"}).status_code == 200
    assert_error(tb.call("GET", f"/jobs/{job_id}", params={"jobType": "basicSearch"}), 404, "ResourceNotExist")
    assert_error(tb.call("GET", f"/jobs/{job_id}", params={"jobType": "bogus"}), 400, "InvalidParamsValue", "jobType")


def test_a_job_is_only_visible_in_its_own_dataset(tb: TensorBay, service: ServiceProcess):
    job_id = tb.merge("feature", test=FAST)
    assert_error(TensorBay(service).call("GET", f"/jobs/{job_id}"), 404, "ResourceNotExist")


def test_list_filters_and_pages(tb: TensorBay):
    merges = [tb.merge("feature", test={"queuing_s": 30}) for _ in range(3)]
    search = tb.create("basicSearch", {"conditions": {}}, test=FAST)
    tb.wait(search)

    everything = tb.call("GET", "/jobs").json()
    assert set(everything) == {"jobs", "offset", "recordSize", "totalCount"}
    assert everything["totalCount"] == 4 and everything["recordSize"] == 4
    assert {job["jobType"] for job in everything["jobs"]} == {"squashAndMerge", "basicSearch"}
    assert all("errorMessage" in job for job in everything["jobs"])

    page = tb.call("GET", "/jobs", params={"jobType": "squashAndMerge", "offset": 1, "limit": 1}).json()
    assert page["totalCount"] == 3 and page["recordSize"] == 1 and page["offset"] == 1
    assert page["jobs"][0]["jobId"] in merges

    done = tb.call("GET", "/jobs", params={"jobType": "basicSearch", "status": "SUCCESS"}).json()
    assert [job["jobId"] for job in done["jobs"]] == [search]
    assert isinstance(done["jobs"][0]["finishedAt"], int)  # unix seconds, as TensorBay's jobs say
    queuing = tb.call("GET", "/jobs", params={"status": "QUEUING"}).json()
    assert sorted(job["jobId"] for job in queuing["jobs"]) == sorted(merges)

    assert_error(tb.call("GET", "/jobs", params={"status": "DONE"}), 400, "InvalidParamsValue", "status")
    assert_error(tb.call("GET", "/jobs", params={"limit": 0}), 400, "InvalidParamsValue", "limit")
    assert_error(tb.call("GET", "/jobs", params={"limit": "many"}), 400, "InvalidParamsValue", "limit")
    assert_error(tb.call("GET", "/jobs", params={"offset": -1}), 400, "InvalidParamsValue", "offset")
    for job_id in merges:
        tb.call("POST", f"/jobs/{job_id}/abort")


def test_repeated_request_id_returns_the_same_job(tb: TensorBay):
    body = {"title": "t", "jobType": "squashAndMerge", "arguments": _MERGE_ARGS, "test": FAST}
    headers = {"X-Request-Id": uuid.uuid4().hex}
    first = tb.call("POST", "/jobs", json=body, headers=headers)
    second = tb.call("POST", "/jobs", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["jobId"] == second.json()["jobId"]
    assert first.json()["createdAt"] == second.json()["createdAt"]
    other = tb.call("POST", "/jobs", json=body, headers={"X-Request-Id": uuid.uuid4().hex})
    assert other.json()["jobId"] != first.json()["jobId"]
    assert tb.call("GET", "/jobs").json()["totalCount"] == 2


def test_basic_search_produces_a_search_result(tb: TensorBay):
    conditions = {"conjunction": "AND", "filters": [["path", "contains", "data/"], ["size", ">=", 3]]}
    job = tb.wait(tb.create("basicSearch", {"commit": "feature", "conditions": conditions}, test=FAST))
    assert job["status"] == "SUCCESS", job
    assert set(job["result"]) == {"searchResultId", "searchResultCommitId"}
    assert job["result"]["searchResultCommitId"] == tb.branch("feature")["commitId"]
    found = tb.test_call("GET", f"/{tb.dataset_id}/search-results/{job['result']['searchResultId']}").json()
    assert found["paths"] == ["data/0001.txt", "data/0002.txt", "data/0003.txt"]


def test_basic_search_accepts_the_public_client_arguments(tb: TensorBay):
    """The tensorbay client sends commit/conjunction/filters/unit at the top of ``arguments``."""
    arguments = {
        "commit": tb.branch("feature")["commitId"],
        "conjunction": "or",
        "filters": [
            {"key": "category", "operator": "in", "value": ["cat", "bird"], "title": "Category"},
            {"key": "keyword", "operator": "=", "value": "0002.txt", "title": "Data Name"},
        ],
        "unit": "file",
    }
    job = tb.wait(tb.create("basicSearch", arguments, test=FAST))
    assert job["status"] == "SUCCESS", job
    found = tb.test_call("GET", f"/{tb.dataset_id}/search-results/{job['result']['searchResultId']}").json()
    assert found["paths"] == ["data/0001.txt", "data/0002.txt", "data/0003.txt"]
    bad = {"title": "t", "jobType": "basicSearch", "arguments": {**arguments, "conjunction": "xor"}}
    assert_error(tb.call("POST", "/jobs", json=bad), 400, "InvalidParamsValue", "conjunction")


def test_test_control_can_force_a_failure(tb: TensorBay):
    job = tb.wait(tb.create("basicSearch", {}, test={**FAST, "outcome": "FAILED", "error_message": "boom"}))
    assert job["status"] == "FAILED" and job["errorMessage"] == "boom"


def test_drafts_filters(tb: TensorBay):
    first = tb.wait(tb.merge("feature", test=FAST))["result"]["draftNumber"]
    tb.test_call("POST", f"/{tb.dataset_id}/branches", json={"name": "release", "revision": "main"})
    second = tb.wait(tb.merge("feature", target="release", test=FAST))["result"]["draftNumber"]
    assert second == first + 1
    on_release = tb.call("GET", "/drafts", params={"branchName": "release"}).json()
    assert [d["number"] for d in on_release["drafts"]] == [second]
    assert tb.call("GET", "/drafts", params={"status": "ALL", "limit": 1}).json()["recordSize"] == 1
    assert tb.call("GET", "/drafts", params={"status": "CLOSED"}).json()["totalCount"] == 0
    assert_error(tb.call("GET", "/drafts", params={"status": "SHUT"}), 400, "InvalidParamsValue", "status")


def test_seed_dataset_shape(service: ServiceProcess):
    tb = TensorBay(service)
    main, feature, conflicting = (tb.branch(name) for name in ("main", "feature", "conflicting"))
    assert set(feature["files"]) - set(main["files"]) == {"data/0003.txt"}
    assert conflicting["files"]["README.md"] != main["files"]["README.md"]


def test_test_controls_validate_their_input(tb: TensorBay):
    resp = tb.test_call("POST", "", json={"datasetId": tb.dataset_id})
    assert_error(resp, 409, "NameConflict", tb.dataset_id)
    resp = tb.test_call("POST", f"/{tb.dataset_id}/commits", json={"branchName": "nope", "files": {}})
    assert_error(resp, 400, "InvalidParamsValue", "nope")
    resp = tb.test_call("POST", f"/{tb.dataset_id}/commits", json={"branchName": "main", "files": {"a": 1}})
    assert_error(resp, 400, "InvalidParamsValue", "files")


# --- persistence ----------------------------------------------------------------------------------


def test_restart_resumes_unfinished_jobs_and_test_routes_need_the_flag():
    """A crash (SIGKILL) mid-queue: the restarted service finishes the job from SQLite."""
    with ServiceProcess(api_key="restart-key") as proc:
        tb = TensorBay(proc)
        queued = tb.merge("feature")
        aborted = tb.merge("conflicting")
        assert tb.call("POST", f"/jobs/{aborted}/abort").status_code == 200
        proc.restart(kill=True)
        job = tb.wait(queued)
        assert job["status"] == "SUCCESS", job
        drafts = tb.call("GET", "/drafts").json()
        assert [d["number"] for d in drafts["drafts"]] == [job["result"]["draftNumber"]]
        assert tb.job(aborted)["status"] == "ABORTED"
        # Without --test-controls the _test routes do not exist, and "test" overrides are ignored.
        assert_error(tb.test_call("POST", "", json={}), 404, "ResourceNotExist")
        slow = tb.merge("feature", test={"queuing_s": 600})
        assert tb.wait(slow)["status"] == "SUCCESS"
