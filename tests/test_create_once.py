"""Creates are never sent blindly twice: the real services ignore ``Idempotency-Key`` and
``X-Request-Id`` (reference-service extensions, docs/jobs-api.md §1 and §2), so a create whose answer
was lost is looked up before it is sent again.

The faults are the service's own: ``delay`` past the client's timeout (the service carries the
request out, the client never hears of it), ``truncate`` (the answer is cut: carried out), and
``status`` 503 (answered by the fault layer: nothing was carried out). Submits here send no
``Idempotency-Key``, as a client of a service without the extension would see it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import inference as api
from airflow_jobwait.client.datasets import MAX_PAGE
from airflow_jobwait.client.retry import RetryPolicy
from airflow_jobwait.exceptions import Conflict, RateLimited, ServerError, TransportError
from airflow_jobwait.hooks import DatasetJobsHook, JobsHook, ResultsHook
from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest
from tests import reference_datasets as reference
from tests._scripted_service import ScriptedService, scripted_service
from tests.conftest import set_connection

SUBMIT = {"path_prefix": "/api/jobs", "methods": ["POST"]}
HISTORY = {"path_prefix": "/api/jobs/history", "methods": ["GET"]}


def request(source: str) -> SubmitJobRequest:
    return SubmitJobRequest(
        model=ModelRef(identifier="echo", version="1.0"), input=JobInput(sources={source: {"input.txt": "x"}})
    )


def jobs_with_source(hook: JobsHook, source: str) -> list[str]:
    """Every job of the service whose only source key is ``source``, read from the history."""
    jobs = hook.client.call(api.history(per_page=1000, model="echo"))
    return [job.job_identifier for job in jobs if (job.job_inputs or {}).get("identifier") == [source]]


@pytest.fixture
def hook(jobwait_conn: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> JobsHook:
    set_connection(monkeypatch, service, "modzy", timeout=1)
    return JobsHook()


@pytest.fixture
def faults(service: ServiceProcess) -> FaultControl:
    return FaultControl(service.base_url, service.api_key)


def test_a_submit_whose_answer_timed_out_is_found_not_sent_again(
    hook: JobsHook, faults: FaultControl, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"lost-{uuid.uuid4().hex[:8]}"
    # The service holds the POST 1.5 s, then creates the job; the client gave up after 1 s.
    with faults.injected([{"kind": "delay", "delay_s": 1.5, "count": 1, **SUBMIT}]):
        job = hook.submit_job(request(source))
    assert jobs_with_source(hook, source) == [job.job_identifier]
    said = capsys.readouterr().out  # Airflow's logging writes the hook's lines to stdout
    assert "the answer was lost" in said and "not sent again" in said


def test_a_submit_whose_answer_was_cut_is_found(hook: JobsHook, faults: FaultControl) -> None:
    source = f"cut-{uuid.uuid4().hex[:8]}"
    with faults.injected([{"kind": "truncate", "count": 1, **SUBMIT}]):
        job = hook.submit_job(request(source))
    assert jobs_with_source(hook, source) == [job.job_identifier]


def test_a_submit_the_service_never_carried_out_is_sent_again(hook: JobsHook, faults: FaultControl) -> None:
    source = f"refused-{uuid.uuid4().hex[:8]}"
    with faults.injected([{"kind": "status", "status": 503, "count": 2, **SUBMIT}]) as control:
        job = hook.submit_job(request(source))
        assert control.stats()["injected"]["status"] == 2
    assert jobs_with_source(hook, source) == [job.job_identifier]


def test_a_submit_refused_for_its_rate_is_raised_without_a_lookup(
    hook: JobsHook, faults: FaultControl, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 429 says nothing was done (RFC 6585): the client retries it; once its policy gives up,
    the refusal is raised as it is, with no history lookup (there is nothing to find)."""
    hook = JobsHook(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    source = f"throttled-{uuid.uuid4().hex[:8]}"
    # The delay rule on the history only counts requests there.
    rules: list[dict[str, Any]] = [
        {"kind": "status", "status": 429, "retry_after": 0, **SUBMIT},
        {"kind": "delay", "delay_s": 0.01, **HISTORY},
    ]
    with faults.injected(rules) as control, pytest.raises(RateLimited):
        try:
            hook.submit_job(request(source))
        finally:
            injected = control.stats()["injected"]
    assert injected.get("status") == 2 and injected.get("delay", 0) == 0
    assert jobs_with_source(hook, source) == []
    assert "the answer was lost" not in capsys.readouterr().out


def test_when_the_lookup_fails_the_submit_is_not_sent_again(hook: JobsHook, faults: FaultControl) -> None:
    source = f"blind-{uuid.uuid4().hex[:8]}"
    rules: list[dict[str, Any]] = [
        {"kind": "delay", "delay_s": 1.5, "count": 1, **SUBMIT},
        {"kind": "status", "status": 500, **HISTORY},
    ]
    with faults.injected(rules), pytest.raises(TransportError) as info:
        hook.submit_job(request(source))
    assert isinstance(info.value.__cause__, ServerError)  # the lookup's failure is kept
    assert len(jobs_with_source(hook, source)) == 1  # the one the lost POST created, nothing more


def test_an_ambiguous_history_sends_again_and_says_why(
    hook: JobsHook, faults: FaultControl, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented limit: the same key submitted the same model on the same source keys
    within the window. The lost submit's job cannot be told apart: at most one duplicate."""
    source = f"twin-{uuid.uuid4().hex[:8]}"
    earlier = hook.submit_job(request(source))
    with faults.injected([{"kind": "delay", "delay_s": 1.5, "count": 1, **SUBMIT}]):
        job = hook.submit_job(request(source))
    created = jobs_with_source(hook, source)
    assert len(created) == 3 and earlier.job_identifier in created and job.job_identifier in created
    assert "cannot tell which one, if any, the lost create made" in capsys.readouterr().out


def test_jobs_like_it_around_a_lost_submit_are_not_taken_for_it(hook: JobsHook, faults: FaultControl) -> None:
    """Busy with submits of the same shape (a mapped DAG's tasks, say): a 503 before the service
    saw this submit, one like it made earlier and one while this one waits to look. Taking the
    later one would hand this task another's results: with others like it around, nothing is
    taken, and the submit is sent again and gets its own job. (A lone one in the same second as
    the lost submit cannot be told apart: docs/jobs-api.md §6.)"""
    source = f"neighbour-{uuid.uuid4().hex[:8]}"
    before = hook.submit_job(request(source))
    time.sleep(2.5)  # past the second the service's Date resolves
    later: list[str] = []
    # Submitted while this submit waits out its backoff (at least the 1 s request timeout).
    timer = threading.Timer(0.3, lambda: later.append(JobsHook().submit_job(request(source)).job_identifier))
    with faults.injected([{"kind": "status", "status": 503, "count": 1, **SUBMIT}]):
        timer.start()
        mine = hook.submit_job(request(source))
        timer.join()
    assert mine.job_identifier not in (before.job_identifier, *later)
    assert sorted(jobs_with_source(hook, source)) == sorted([before.job_identifier, *later, mine.job_identifier])


# ---- dataset jobs (TensorBay) and deposits (results store) -------------------------------------


def test_a_dataset_job_whose_answer_was_lost_is_found(
    jobwait_conn: str, service: ServiceProcess, faults: FaultControl, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    hook = DatasetJobsHook(set_connection(monkeypatch, service, "tensorbay", timeout=1))
    dataset = hook.call(reference.clone_dataset())
    rule = {"kind": "delay", "delay_s": 1.5, "count": 1, "path_prefix": "/gatewayv2/", "methods": ["POST"]}
    with faults.injected([rule]):
        job = hook.squash_and_merge(dataset, "lost answer", "feature", "main")
    assert "not sent again" in capsys.readouterr().out
    listed = hook.list_jobs(dataset, "squashAndMerge").jobs
    assert [j.job_id for j in listed] == [job.job_id] and job.title == "lost answer"


def test_a_deposit_whose_answer_was_lost_is_read_back_not_sent_again(
    jobwait_conn: str,
    service: ServiceProcess,
    faults: FaultControl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook = ResultsHook(set_connection(monkeypatch, service, "chime_results", timeout=1))
    pipeline = f"lost-{uuid.uuid4().hex[:8]}"
    works = [{"id": f"{pipeline}-{n}", "pipeline": pipeline, "status": "success", "results": {"n": n}} for n in (1, 2)]
    rule = {"kind": "delay", "delay_s": 1.5, "count": 1, "path_prefix": "/workflow/results", "methods": ["POST"]}
    with faults.injected([rule]):
        # Sent again, the deposit would be refused (409: the ids exist); read back, it succeeded.
        assert hook.deposit(works) == {pipeline: True}
    assert "deposit of 2 work(s): the answer was lost" in capsys.readouterr().out
    assert [w.id for w in hook.view(pipeline, {})] == [w["id"] for w in works]


def test_a_deposit_of_ids_held_by_other_works_is_still_refused(
    jobwait_conn: str, service: ServiceProcess, faults: FaultControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = ResultsHook(set_connection(monkeypatch, service, "chime_results", timeout=1))
    pipeline = f"taken-{uuid.uuid4().hex[:8]}"
    hook.deposit([{"id": f"{pipeline}-1", "pipeline": pipeline, "status": "failure", "results": {"n": 0}}])
    mine = [{"id": f"{pipeline}-1", "pipeline": pipeline, "status": "success", "results": {"n": 1}}]
    refused_once = [{"kind": "status", "status": 503, "count": 1, "path_prefix": "/workflow/results"}]
    with faults.injected(refused_once), pytest.raises(Conflict, match=f"{pipeline}-1"):
        hook.deposit(mine)  # read back: another work under the id, so sent again, and refused


# ---- which dataset jobs a lost create may have made (DatasetJobsHook.find_created) --------------


@pytest.fixture
def datasets(
    jobwait_conn: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> tuple[DatasetJobsHook, str]:
    hook = DatasetJobsHook(set_connection(monkeypatch, service, "tensorbay", timeout=1))
    return hook, hook.call(reference.clone_dataset())


def squash(title: str, strategy: str = "abort") -> dict[str, Any]:
    """What a squash-and-merge create sends as its arguments (as the tensorbay SDK sends them)."""
    return DatasetJobsHook.squash_arguments(title, "feature", "main", strategy).to_wire()


def test_a_dataset_job_made_before_the_create_is_not_taken_for_it(datasets: tuple[DatasetJobsHook, str]) -> None:
    """Adopted only if made no earlier than the create on the service's clock (its ``Date``, a
    second's resolution; ``createdAt`` in whole seconds)."""
    hook, dataset = datasets
    job = hook.create_job(dataset, "made before", "squashAndMerge", squash("made before"))
    wanted = {"title": "made before", "arguments": squash("made before"), "description": None}
    # The job is then at least 4 s older than a create sent now: the lookup allows a second for the
    # Date header's resolution, and uvicorn refreshes its Date once per main-loop tick (about a
    # second, more on a busy machine), so a shorter gap can still read as the same second.
    time.sleep(4.0)
    assert hook.find_created(dataset, "squashAndMerge", wanted, age=0.0) is None
    found = hook.find_created(dataset, "squashAndMerge", wanted, age=60.0)  # a create sent a minute ago
    assert found is not None and found.job_id == job.job_id


def test_dataset_jobs_unlike_the_create_are_not_candidates(datasets: tuple[DatasetJobsHook, str]) -> None:
    """Candidates have the create's job type, title, arguments and (when sent) description."""
    hook, dataset = datasets
    mine = hook.create_job(dataset, "mine", "squashAndMerge", squash("mine"), description="nightly")
    hook.create_job(dataset, "other title", "squashAndMerge", squash("mine"), description="nightly")
    hook.create_job(dataset, "mine", "squashAndMerge", squash("mine", strategy="override"), description="nightly")
    hook.create_job(dataset, "mine", "squashAndMerge", squash("mine"), description="weekly")
    wanted = {"title": "mine", "arguments": squash("mine"), "description": "nightly"}
    found = hook.find_created(dataset, "squashAndMerge", wanted, age=60.0)
    assert found is not None and found.job_id == mine.job_id
    # Sent without a description, any description matches: three candidates, none adopted.
    assert hook.find_created(dataset, "squashAndMerge", {**wanted, "description": None}, age=60.0) is None


def test_dataset_jobs_like_the_create_are_none_of_them_taken(
    datasets: tuple[DatasetJobsHook, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Several like it in the window: none is adopted, and the log names how many and (up to ten)
    which, newest first, as the list answers."""
    hook, dataset = datasets
    made = [hook.create_job(dataset, "twin", "squashAndMerge", squash("twin")).job_id for _ in range(11)]
    wanted = {"title": "twin", "arguments": squash("twin"), "description": None}
    assert hook.find_created(dataset, "squashAndMerge", wanted, age=60.0) is None
    newest_ten = ", ".join(reversed(made[1:]))
    assert (
        f"] 11 squashAndMerge jobs of dataset {dataset} with the same title and arguments within 120s of the lost "
        f"create ({newest_ten}): cannot tell which one, if any, the lost create made ["
    ) in capsys.readouterr().out


def test_a_dataset_job_past_the_first_page_is_found(datasets: tuple[DatasetJobsHook, str]) -> None:
    """The list is newest first, 128 a page (TensorBay's limit): a create followed by more than a
    page of others is on the second page."""
    hook, dataset = datasets
    mine = hook.create_job(dataset, "paged", "squashAndMerge", squash("paged"))
    for n in range(MAX_PAGE):
        hook.create_job(dataset, f"later {n}", "squashAndMerge", squash(f"later {n}"))
    assert hook.list_jobs(dataset, "squashAndMerge").total_count == MAX_PAGE + 1
    wanted = {"title": "paged", "arguments": squash("paged"), "description": None}
    found = hook.find_created(dataset, "squashAndMerge", wanted, age=60.0)
    assert found is not None and found.job_id == mine.job_id


# ---- what the Modzy lookup asks the history (a scripted service records it) --------------------

HISTORY_PATH = "/api/jobs/history"
ECHO = SubmitJobRequest(model=ModelRef(identifier="ed542963de", version="1.0.1"), input=JobInput(sources={"a": {}}))


def listed(job_id: str, submitted: datetime, access_key: str = "pubid", source: str = "a") -> dict[str, Any]:
    """A history entry as Modzy answers it (modzy-js ``blockUntilComplete`` seed's Job schema)."""
    return {
        "jobIdentifier": job_id,
        "status": "SUBMITTED",
        "model": {"identifier": "ed542963de", "version": "1.0.1"},
        "totalInputs": 1,
        "accessKey": access_key,
        "explain": False,
        "jobType": "batch",
        "accountIdentifier": "acct",
        "jobInputs": {"identifier": [source]},
        "submittedAt": submitted.isoformat(timespec="milliseconds"),
        "imageClassificationModel": False,
    }


@contextmanager
def scripted_connection(monkeypatch: pytest.MonkeyPatch, conn_type: str, password: str) -> Iterator[ScriptedService]:
    """A scripted service behind the connection ``scripted_<conn_type>``."""
    with scripted_service() as scripted:
        conn = {"conn_type": conn_type, "host": scripted.base_url, "password": password}
        monkeypatch.setenv(f"AIRFLOW_CONN_SCRIPTED_{conn_type.upper()}", json.dumps(conn))
        yield scripted


@pytest.fixture
def history(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[JobsHook, ScriptedService]]:
    """A Modzy connection whose key is ``<public id>.<secret>``, as Modzy issues them."""
    with scripted_connection(monkeypatch, "modzy", "pubid.s3cret") as scripted:
        yield JobsHook("scripted_modzy", retry=None), scripted


def test_the_lookup_asks_the_history_for_this_key_model_and_window(
    history: tuple[JobsHook, ScriptedService],
) -> None:
    """As the Modzy SDK's ``get_history`` filters (``accessKey`` = the key's public id, ``model``,
    ``startDate``), 100 a page, newest first, until a short page; candidates from every page."""
    hook, scripted = history
    now = datetime.now(UTC)
    page_1 = [listed("mine", now - timedelta(seconds=5))]
    page_1 += [listed(f"unlike-{n}", now, source="b") for n in range(99)]
    page_1[50] = listed("another-key", now - timedelta(seconds=5), access_key="otherid")
    scripted.play("GET", HISTORY_PATH, page_1, [listed("unlike-last", now, source="b")])
    before = datetime.now(UTC)
    found = hook.find_submitted(ECHO, age=30.0)
    after = datetime.now(UTC)
    assert found is not None and found.job_identifier == "mine"
    queries = [query for _, path, query in scripted.seen if path == HISTORY_PATH]
    assert [q["page"] for q in queries] == ["1", "2"]  # the second page was short: no third
    for query in queries:
        start = datetime.fromisoformat(query.pop("startDate"))
        # The window opens at the submit (age 30 s ago) less 300 s for clock skew, on our clock.
        assert before - timedelta(seconds=330, milliseconds=1) <= start <= after - timedelta(seconds=330)
        assert query == {"status": "all", "per-page": "100", "model": "ed542963de", "accessKey": "pubid", "page": ANY}


def test_a_key_without_a_public_id_is_not_sent_as_one(
    history: tuple[JobsHook, ScriptedService], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a Modzy key's part before the dot is its public id: a key without one is never put in
    the query (it would be the secret itself)."""
    _, scripted = history
    conn = {"conn_type": "modzy", "host": scripted.base_url, "password": "nodotsecret"}
    monkeypatch.setenv("AIRFLOW_CONN_SCRIPTED_MODZY", json.dumps(conn))
    scripted.play("GET", HISTORY_PATH, [])
    assert JobsHook("scripted_modzy", retry=None).find_submitted(ECHO, age=30.0) is None
    ((_, _, query),) = scripted.seen
    assert "accessKey" not in query and "nodotsecret" not in json.dumps(query)


def test_the_lookup_stops_at_a_job_older_than_its_window(history: tuple[JobsHook, ScriptedService]) -> None:
    hook, scripted = history
    now = datetime.now(UTC)
    page = [listed("mine", now - timedelta(seconds=5))]
    page += [listed(f"unlike-{n}", now, source="b") for n in range(98)]
    page.append(listed("long-ago", now - timedelta(hours=1), source="b"))
    scripted.play("GET", HISTORY_PATH, page)
    found = hook.find_submitted(ECHO, age=30.0)
    assert found is not None and found.job_identifier == "mine"
    assert len(scripted.seen) == 1  # a full page, but it reached past the window: no second one


def test_the_lookup_reads_at_most_ten_pages(history: tuple[JobsHook, ScriptedService]) -> None:
    hook, scripted = history
    now = datetime.now(UTC)
    scripted.play("GET", HISTORY_PATH, [listed(f"unlike-{n}", now, source="b") for n in range(100)])
    assert hook.find_submitted(ECHO, age=30.0) is None
    assert [query["page"] for _, _, query in scripted.seen] == [str(n) for n in range(1, 11)]


def test_a_job_submitted_before_the_lost_submit_is_not_taken_for_it(
    history: tuple[JobsHook, ScriptedService], capsys: pytest.CaptureFixture[str]
) -> None:
    """On the service's clock (its ``Date``), the lost submit went out 30 s ago: a like job
    submitted 90 s ago is someone else's (in the quiet window, so it also blocks adoption)."""
    hook, scripted = history
    now = datetime.now(UTC)
    scripted.play("GET", HISTORY_PATH, [listed("earlier", now - timedelta(seconds=90))])
    assert hook.find_submitted(ECHO, age=30.0) is None
    assert (
        "] 1 jobs of model ed542963de with the same source keys, submitted with this key within 120s of the lost "
        "create (earlier): cannot tell which one, if any, the lost create made ["
    ) in capsys.readouterr().out


# ---- what the TensorBay lookup reads (a scripted service answers the job list) ----------------

JOBS_PATH = "/gatewayv2/tensorbay-open-api/v1/datasets/ds-1/jobs"


def dataset_job(job_id: str, created: int | None, title: str = "mine") -> dict[str, Any]:
    """A job list entry as TensorBay answers it (tensorbay 1.24.2 ``client/job.py``: ``createdAt``
    in Unix seconds)."""
    entry: dict[str, Any] = {
        "jobId": job_id,
        "title": title,
        "jobType": "squashAndMerge",
        "arguments": squash(title),
        "status": "QUEUING",
        "errorMessage": "",
        "description": "",
    }
    if created is not None:
        entry["createdAt"] = created
    return entry


@pytest.fixture
def job_list(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DatasetJobsHook, ScriptedService]]:
    with scripted_connection(monkeypatch, "tensorbay", "ACCESSKEY-scripted") as scripted:
        yield DatasetJobsHook("scripted_tensorbay", retry=None), scripted


def page(jobs: list[dict[str, Any]], offset: int, total: int) -> dict[str, Any]:
    return {"jobs": jobs, "offset": offset, "recordSize": len(jobs), "totalCount": total}


def test_dataset_jobs_older_than_the_quiet_window_are_not_candidates_and_end_the_listing(
    job_list: tuple[DatasetJobsHook, ScriptedService],
) -> None:
    """Newest first: a job made more than ``LOOKUP_QUIET`` (120 s) before the create is neither a
    candidate nor followed by anything newer, so the listing stops there."""
    hook, scripted = job_list
    now = int(time.time())
    first = [dataset_job("mine", now - 5)] + [dataset_job(f"other-{n}", now, title="other") for n in range(126)]
    first.append(dataset_job("like-but-old", now - 3600))
    scripted.play("GET", JOBS_PATH, page(first, 0, 300))
    found = hook.find_created("ds-1", "squashAndMerge", WANTED, age=30.0)
    assert found is not None and found.job_id == "mine"
    assert len(scripted.seen) == 1  # a full page of 300, but it reached past the window


def test_a_dataset_job_without_created_at_may_be_the_creates(job_list: tuple[DatasetJobsHook, ScriptedService]) -> None:
    """A field the service leaves out rules nothing out; the listing ends at its ``totalCount``."""
    hook, scripted = job_list
    now = int(time.time())
    scripted.play(
        "GET",
        JOBS_PATH,
        page([dataset_job(f"other-{n}", now, title="other") for n in range(128)], 0, 129),
        page([dataset_job("mine", None)], 128, 129),
    )
    found = hook.find_created("ds-1", "squashAndMerge", WANTED, age=30.0)
    assert found is not None and found.job_id == "mine"
    assert [query["offset"] for _, _, query in scripted.seen] == ["0", "128"]  # no third, empty page


WANTED = {"title": "mine", "arguments": squash("mine"), "description": None}
