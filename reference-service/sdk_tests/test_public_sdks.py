"""Each public SDK's own request code works against the reference service, in both profiles:
the service speaks the real wire formats (docs/jobs-api.md §1-§4), and the real profile leaves
out only our extensions, which no SDK uses."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from jobwait_reference_service.process import ServiceProcess

from sdk_tests.conftest import API_KEY, CLIENT_ID, CLIENT_SECRET

ORG = uuid.UUID(int=0x5D)


@pytest.mark.parametrize("suffix", ["/api", ""])  # the SDK adds /api itself when it is missing
def test_modzy_sdk_submits_waits_and_reads_results(service: ServiceProcess, suffix: str) -> None:
    from modzy import ApiClient

    client = ApiClient(base_url=service.base_url + suffix, api_key=API_KEY)
    job = client.jobs.submit_text("wordcount", "1.0", {"review": {"input.txt": "a b c"}})
    result = client.results.block_until_complete(job, timeout=60, poll_interval=0.2)
    assert client.jobs.get(job.job_identifier).status == "COMPLETED"
    assert result.get_source_outputs("review")["results.json"] == {"words": 3}
    history = client.jobs.get_history(model="wordcount", status="terminated", per_page=50)
    assert job.job_identifier in [h.job_identifier for h in history]


def test_tensorbay_sdk_squashes_and_merges(service: ServiceProcess) -> None:
    from tensorbay import GAS
    from tensorbay.client.status import Status
    from tensorbay.client.version import SquashAndMerge

    gas = GAS(API_KEY)  # the .com site, from the key's prefix
    # The SDK takes only https site URLs; its Open API root is pointed at the loopback service.
    gas._client._open_api = f"{service.base_url}/gatewayv2/tensorbay-open-api/v1/"
    status = Status("main", commit_id="main-head")  # a branch to merge onto; the target is named below
    squash = SquashAndMerge(gas._client, "demo-dataset", status, draft_getter=lambda number: number)
    job = squash.create_job(
        draft_title=f"sdk {uuid.uuid4().hex[:6]}", source_branch_name="feature", target_branch_name="main"
    )
    assert job.status == "QUEUING"
    job.update(until_complete=True)
    assert job.status == "SUCCESS" and job.error_message == ""
    assert job.job_id in [listed.job_id for listed in squash.list_jobs()]


def test_evo_sdk_runs_a_compute_task_with_client_credentials(service: ServiceProcess) -> None:
    from evo.aio import AioTransport
    from evo.common import APIConnector
    from evo.compute.client import JobClient
    from evo.oauth import ClientCredentialsAuthorizer, OAuthConnector

    async def run() -> dict[str, object]:
        transport = AioTransport(user_agent="jobwait-sdk-tests")
        oauth = OAuthConnector(transport, CLIENT_ID, CLIENT_SECRET, base_uri=service.base_url)
        connector = APIConnector(service.base_url, transport, ClientCredentialsAuthorizer(oauth, "evo.compute"))
        job = await JobClient.submit(connector, ORG, "demo", "wordcount", {"text": "one two"})
        return await job.wait_for_results(polling_interval_seconds=0.2)

    assert asyncio.run(run()) == {"words": 2}


def test_workflow_core_results_client_deposits_and_views(service: ServiceProcess) -> None:
    from workflow.http.results import Results

    # The token is read by its settings alias (WORKFLOW_HTTP_TOKEN, as from the environment).
    results = Results(baseurl=service.family_url("chime_results"), WORKFLOW_HTTP_TOKEN=API_KEY)
    pipeline = f"sdk-{uuid.uuid4().hex[:8]}"
    work = {"id": f"{pipeline}-1", "pipeline": pipeline, "status": "success", "results": {"snr": 9.5}}
    assert results.deposit([work]) == {pipeline: True}
    assert results.count(pipeline, {}) == 1
    assert [w["id"] for w in results.get_by_id(pipeline, [work["id"]])] == [work["id"]]
    assert results.lock(pipeline, [work["id"]]) is True
    assert results.get_locked_count(pipeline) == 1
