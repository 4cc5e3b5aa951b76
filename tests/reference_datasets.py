"""The reference service's own dataset test endpoints (``--test-controls`` only): clone a seed
dataset, commit files onto a branch, read a branch. Tests and test DAGs use them to set up
datasets; the provider has no such calls, because no real service has these endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_jobwait.client.datasets import API_ROOT, AUTH, expect_ok
from airflow_jobwait.client.http import Call, HttpRequest, HttpResponse, json_object, path_segment
from airflow_jobwait.exceptions import InvalidResponse

TEST_PREFIX = f"{API_ROOT}/_test/datasets"


def clone_dataset(source: str = "demo-dataset", dataset_id: str | None = None) -> Call[str]:
    """Clone ``source`` (commits and branches); answers the new dataset id."""
    body: dict[str, Any] = {"from": source}
    if dataset_id is not None:
        body["datasetId"] = dataset_id
    request = HttpRequest("POST", TEST_PREFIX, AUTH, json_body=body, idempotent=False)

    def parse(response: HttpResponse) -> str:
        expect_ok(request, response)
        dataset_id = json_object(response, "cloned dataset").get("datasetId")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise InvalidResponse(f"cloned dataset has no string 'datasetId', got {dataset_id!r}"[:300], "datasetId")
        return dataset_id

    return Call(request, parse)


def commit(dataset_id: str, branch_name: str, files: Mapping[str, str | None]) -> Call[dict[str, Any]]:
    """Commit ``files`` (``None`` deletes a path) onto a branch."""
    body = {"branchName": branch_name, "files": dict(files)}
    path = f"{TEST_PREFIX}/{path_segment(dataset_id, 'dataset_id')}/commits"
    request = HttpRequest("POST", path, AUTH, json_body=body, idempotent=False)

    def parse(response: HttpResponse) -> dict[str, Any]:
        expect_ok(request, response)
        return json_object(response, f"commit on branch {branch_name!r}")

    return Call(request, parse)


def branch(dataset_id: str, name: str) -> Call[dict[str, Any]]:
    """A branch's head commit and files ``{"name", "commitId", "files"}``."""
    path = f"{TEST_PREFIX}/{path_segment(dataset_id, 'dataset_id')}/branches/{path_segment(name, 'name')}"
    request = HttpRequest("GET", path, AUTH)

    def parse(response: HttpResponse) -> dict[str, Any]:
        expect_ok(request, response)
        return json_object(response, f"branch {name!r}")

    return Call(request, parse)
