"""Property: every response parser either parses what a service sends or raises ``InvalidResponse``.

Every ``Call`` factory of ``airflow_jobwait.client`` is found by scanning the package (public
functions annotated ``-> Call[...]``), built with sample arguments, and its ``parse`` is fed
``HttpResponse``s that no service should send: arbitrary JSON, valid payloads with fields replaced
or dropped, and bytes that are not JSON, with arbitrary ``Location`` and ``Retry-After`` headers.

- With a status the call accepts, ``parse`` returns or raises ``InvalidResponse`` (compute results
  may also raise the documented ``JobError``/``JobPendingError``); never anything else.
- With an error status, it raises the ``ApiError`` of that status; never anything else.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import pkgutil
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pytest_mock import MockerFixture

import airflow_jobwait.client as client_package
from airflow_jobwait.client import datasets, inference
from airflow_jobwait.client import http as http_module
from airflow_jobwait.client.http import Call, HttpResponse
from airflow_jobwait.client.job_kinds import _KINDS
from airflow_jobwait.client.retry import RetryPolicy
from airflow_jobwait.exceptions import ApiError, InvalidResponse, JobError, JobPendingError, RateLimited
from airflow_jobwait.models import InputResult, Job, JobResults, SubmitJobRequest
from airflow_jobwait.models.base import invalid_fields
from airflow_jobwait.models.compute import ComputeError, ComputeJobRef, ComputeResults, ComputeStatus
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobList, DatasetJobSummary, Draft, DraftList
from airflow_jobwait.models.results_store import ResultsStoreInfo, Work

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Error statuses take one path (``error_for``), the same for every call: fewer examples suffice.
ERROR_PROPERTY = settings(PROPERTY, max_examples=50)

ORG = str(uuid.UUID(int=7))
JOB = str(uuid.UUID(int=9))
COMPUTE_REF = ComputeJobRef(org_id=ORG, topic="demo", task="wordcount", job_id=JOB)
KIND_REFS = {
    "inference": {},
    "dataset": {"dataset_id": "demo-dataset", "job_type": "squashAndMerge"},
    "compute": COMPUTE_REF.job_ref,
}

# Sample values for the required parameters of the call factories, by parameter name.
SAMPLES: dict[str, Any] = {
    "body": SubmitJobRequest.model_validate(
        {"model": {"identifier": "echo", "version": "1.0"}, "input": {"sources": {"a": {"input.txt": "hi"}}}}
    ),
    "job_id": JOB,
    "job_ids": [JOB, "other-job"],
    "known": {JOB: "SUBMITTED"},
    "timeout": 5.0,
    "works": [{"id": "w1", "pipeline": "p", "status": "success", "results": {"x": 1}}],
    "pipeline": "p",
    "ids": ["w1", "w2"],
    "query": {"results.x": {"$gt": 0}},
    "dataset_id": "demo-dataset",
    "title": "t",
    "job_type": "squashAndMerge",
    "arguments": {"sourceBranchName": "feature", "targetBranchName": "main", "title": "t"},
    "request_id": "req-1",
    "branch_name": "main",
    "files": {"a.txt": "x", "gone.txt": None},
    "name": "main",
    "org_id": ORG,
    "topic": "demo",
    "task": "wordcount",
    "parameters": {"text": "a b"},
    "ref": COMPUTE_REF,
    "status": "terminated",
    "start_date": datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
}
#: Helpers that take or return a ``Call`` but are not factories of one request.
# Combinators over a call (a parser after it, a header beside its answer), not calls of the contract.
NOT_FACTORIES = {
    "airflow_jobwait.client.job_kinds.then",
    "airflow_jobwait.client.job_kinds.with_retry_after",
    "airflow_jobwait.client.http.json_model",
}


def _factories() -> Iterator[tuple[str, Callable[..., Any]]]:
    for info in pkgutil.iter_modules(client_package.__path__):
        module = importlib.import_module(f"{client_package.__name__}.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            qualified = f"{module.__name__}.{name}"
            returns = inspect.signature(fn).return_annotation
            if (
                fn.__module__ == module.__name__
                and not name.startswith("_")
                and "__mutmut_" not in name  # the mutant copies `make mutation` adds beside each function
                and isinstance(returns, str)
                and returns.startswith("Call[")
                and qualified not in NOT_FACTORIES
            ):
                yield qualified, fn


def _build(qualified: str, fn: Callable[..., Any]) -> list[tuple[str, Call[Any]]]:
    """The calls of one factory: one per job kind for the ``job_kinds`` ones."""
    params = inspect.signature(fn).parameters
    if "job_kind" in params:
        built = [(f"{qualified}[{kind}]", fn(kind, JOB, KIND_REFS[kind])) for kind in _KINDS]
        return [(name, call) for name, call in built if call is not None]
    missing = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty and p not in SAMPLES]
    assert not missing, f"add a sample for parameter(s) {missing} of {qualified} to SAMPLES"
    kwargs = {p: SAMPLES[p] for p, spec in params.items() if spec.default is inspect.Parameter.empty}
    return [(qualified, fn(**kwargs))]


CALLS: dict[str, Call[Any]] = dict(call for name, fn in _factories() for call in _build(name, fn))

# Outcomes a payload itself may announce, besides InvalidResponse: a failed or running compute job.
DOMAIN_ERRORS: dict[str, tuple[type[Exception], ...]] = {
    "airflow_jobwait.client.compute.get_results": (JobError, JobPendingError),
    "airflow_jobwait.client.job_kinds.results_call[compute]": (JobError, JobPendingError),
}
#: The success statuses of each call, from the contract (docs/jobs-api.md): Modzy takes any 2xx
#: (§1, §5 "Success codes: any 2xx"), our [ext] batch status and watch answer 200 (§1 table);
#: TensorBay 200 or 201 only (§2, §5); Evo compute exactly 303 on submit, 200 or 202 on status and
#: results, exactly 204 on cancel (§3); the Evo Workspaces list 200; the results store 200 (§4).
ANY_2XX = tuple(range(200, 300))
CONTRACT_OK: dict[str, tuple[int, ...]] = {
    "compute.cancel": (204,),
    "compute.get_results": (200, 202),
    "compute.get_status": (200, 202),
    "compute.list_workspaces": (200,),
    "compute.submit": (303,),
    "datasets.abort_job": (200, 201),
    "datasets.create_job": (200, 201),
    "datasets.delete_job": (200, 201),
    "datasets.get_job": (200, 201),
    "datasets.get_user": (200, 201),
    "datasets.list_drafts": (200, 201),
    "datasets.list_job_summaries": (200, 201),
    "datasets.list_jobs": (200, 201),
    "datasets.retry_job": (200, 201),
    "inference.batch_status": (200,),
    "inference.batch_statuses": (200,),
    "inference.cancel_job": ANY_2XX,
    "inference.get_job": ANY_2XX,
    "inference.get_results": ANY_2XX,
    "inference.history": ANY_2XX,
    "inference.history_entries": ANY_2XX,
    "inference.list_models": ANY_2XX,
    "inference.submit_job": ANY_2XX,
    "inference.watch": (200,),
    "inference.watch_statuses": (200,),
    "job_kinds.cancel_call[compute]": (204,),
    "job_kinds.cancel_call[dataset]": (200, 201),
    "job_kinds.cancel_call[inference]": ANY_2XX,
    "job_kinds.progress_call[inference]": ANY_2XX,
    "job_kinds.results_call[compute]": (200, 202),
    "job_kinds.results_call[dataset]": (200, 201),
    "job_kinds.results_call[inference]": ANY_2XX,
    "job_kinds.status_call[compute]": (200, 202),
    "job_kinds.status_call[dataset]": (200, 201),
    "job_kinds.status_call[inference]": ANY_2XX,
    "results_store.count": (200,),
    "results_store.delete": (200,),
    "results_store.deposit": (200,),
    "results_store.info": (200,),
    "results_store.status": (200,),
    "results_store.update": (200,),
    "results_store.view": (200,),
    "results_store.view_documents": (200,),
}


def accepted_statuses(name: str) -> tuple[int, ...]:
    """The success statuses of call ``name`` (qualified) as the contract states them."""
    return CONTRACT_OK[name.removeprefix("airflow_jobwait.client.")]


# ---- strategies ----------------------------------------------------------------------------------


def _field_names() -> list[str]:
    """Every field name the wire models know, in both spellings, plus the envelopes' keys."""
    names = {"jobs", "works", "datasetId", "code", "message", "detail", "locked", "results.json", "draftNumber"}
    for model in (
        Job,
        JobResults,
        InputResult,
        DatasetJob,
        DatasetJobList,
        Draft,
        DraftList,
        ComputeStatus,
        ComputeResults,
        ComputeError,
        Work,
        ResultsStoreInfo,
    ):
        for name in model.model_fields:
            names.update((name, to_camel(name)))
    return sorted(names)


FIELD_NAMES = _field_names()
STATUS_WORDS = [
    "SUBMITTED",
    "IN_PROGRESS",
    "COMPLETED",
    "FAILED",
    "QUEUING",
    "SUCCESS",
    "succeeded",
    "failed",
    "in progress",
    "requested",
    "cancelled",
    "success",
    "running",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(STATUS_WORDS)
)
keys = st.text(max_size=12) | st.sampled_from(FIELD_NAMES)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)

_WORK = {"id": "w1", "pipeline": "p", "status": "success", "results": {"locked": True, "x": 1.5}, "event": [1]}
_JOB = {
    "jobIdentifier": JOB,
    "status": "COMPLETED",
    "model": {"identifier": "echo", "version": "1.0"},
    "totalInputs": 1,
    "submittedAt": "2026-01-01T00:00:00Z",
    "accessKey": "pub",
}
_DATASET_JOB = {
    "jobId": JOB,
    "jobType": "squashAndMerge",
    "status": "SUCCESS",
    "errorMessage": "",
    "createdAt": 1,
    "result": {"draftNumber": 2},
    "arguments": {},
}
#: A job-list page as TensorBay sends it: docs/jobs-api.md §2 ("list": jobs, each with its own
#: jobType, offset, recordSize, totalCount), every key tensorbay 1.24.2 reads of an entry
#: (client/job.py Job.from_response_body) and of the page (client/version.py _generate_jobs).
_LISTED_JOBS = {
    "jobs": [
        {
            "title": "merge feature",
            "jobId": JOB,
            "jobType": "squashAndMerge",
            "arguments": {"title": "t", "sourceBranchName": "feature", "targetBranchName": "main", "strategy": "abort"},
            "createdAt": 1764417600,
            "startedAt": 1764417601,
            "finishedAt": 1764417605,
            "status": "FAILED",
            "errorMessage": "merge conflict on a.txt",
            "result": None,
            "description": "",
        },
        {
            "title": "search",
            "jobId": "other-job",
            "jobType": "basicSearch",
            "arguments": {},
            "createdAt": 1764417500,
            "startedAt": None,
            "finishedAt": None,
            "status": "QUEUING",
            "errorMessage": "",
            "result": None,
            "description": "",
        },
    ],
    "offset": 0,
    "recordSize": 2,
    "totalCount": 2,
}
_ERROR = {"status": 500, "type": "about:blank", "title": "Boom", "detail": "it broke"}
VALID_DOCS: list[Any] = [
    _JOB,
    [_JOB],
    {"jobs": [_JOB]},
    {
        "jobIdentifier": JOB,
        "total": 1,
        "completed": 1,
        "failed": 0,
        "finished": True,
        "results": {"a": {"status": "SUCCESSFUL", "results.json": {"words": 1}}},
        "failures": {"b": {"status": "FAILED", "error": "bad"}},
    },
    [{"modelId": "echo", "latestVersion": "1.0", "versions": ["1.0"]}],
    _DATASET_JOB,
    {"jobs": [_DATASET_JOB], "offset": 0, "recordSize": 1, "totalCount": 1},
    {
        "drafts": [{"number": 2, "title": "t", "status": "OPEN", "author": {"name": "a", "date": 1}}],
        "offset": 0,
        "recordSize": 1,
        "totalCount": 1,
    },
    {"status": "in progress", "progress": 50, "message": "half", "error": None},
    {"status": "succeeded", "results": {"words": 3}, "error": None},
    {"status": "failed", "results": None, "error": _ERROR},
    {"p": 3, "q": 0},
    {"p": True},
    [_WORK],
    {"version": "1.0.0"},
    True,
    7,
    {"datasetId": "copy"},
    {"code": "ResourceNotExist", "message": "gone"},
    _LISTED_JOBS,
]


_COMPUTE_STATUS = {"status": "in progress", "progress": 50, "message": "half", "error": None}
_COMPUTE_RESULTS = {"status": "succeeded", "results": {"words": 3}, "error": None}
_INFERENCE_RESULTS = VALID_DOCS[3]
_DRAFTS = VALID_DOCS[7]
_CANCELED = {**_JOB, "status": "CANCELED"}
#: One contract-shaped answer per call (status, headers, JSON body or raw bytes): each must parse.
VALID_RESPONSES: dict[str, tuple[int, dict[str, str], Any]] = {
    "compute.cancel": (204, {}, b""),
    "compute.get_results": (200, {}, _COMPUTE_RESULTS),
    "compute.get_status": (200, {}, _COMPUTE_STATUS),
    "compute.list_workspaces": (200, {}, {"results": [{"id": JOB, "name": "w"}], "links": {}}),
    "compute.submit": (303, {"location": f"/compute/orgs/{ORG}/demo/wordcount/{JOB}/status"}, b""),
    "datasets.abort_job": (200, {}, b""),
    "datasets.create_job": (200, {}, {"jobId": JOB, "createdAt": 1}),
    "datasets.delete_job": (200, {}, b""),
    "datasets.get_job": (200, {}, _DATASET_JOB),
    "datasets.get_user": (200, {}, {"nickname": "ada"}),
    "datasets.list_drafts": (200, {}, _DRAFTS),
    "datasets.list_job_summaries": (200, {}, _LISTED_JOBS),
    "datasets.list_jobs": (200, {}, {"jobs": [_DATASET_JOB], "offset": 0, "recordSize": 1, "totalCount": 1}),
    "datasets.retry_job": (200, {}, b""),
    "inference.batch_status": (200, {}, {"jobs": [_JOB]}),
    "inference.batch_statuses": (200, {}, {"jobs": [_JOB]}),
    "inference.cancel_job": (200, {}, _CANCELED),
    "inference.get_job": (200, {}, _JOB),
    "inference.get_results": (200, {}, _INFERENCE_RESULTS),
    "inference.history": (200, {}, [_JOB]),
    "inference.history_entries": (200, {}, [_JOB]),
    "inference.list_models": (200, {}, [{"modelId": "echo", "latestVersion": "1.0", "versions": ["1.0"]}]),
    "inference.submit_job": (200, {}, {**_JOB, "status": "SUBMITTED"}),
    "inference.watch": (200, {}, {"jobs": [_JOB]}),
    "inference.watch_statuses": (200, {}, {"jobs": [_JOB]}),
    "job_kinds.cancel_call[compute]": (204, {}, b""),
    "job_kinds.cancel_call[dataset]": (200, {}, b""),
    "job_kinds.cancel_call[inference]": (200, {}, _CANCELED),
    "job_kinds.progress_call[inference]": (200, {}, _INFERENCE_RESULTS),
    "job_kinds.results_call[compute]": (200, {}, _COMPUTE_RESULTS),
    "job_kinds.results_call[dataset]": (200, {}, _DATASET_JOB),
    "job_kinds.results_call[inference]": (200, {}, _INFERENCE_RESULTS),
    "job_kinds.status_call[compute]": (200, {}, _COMPUTE_STATUS),
    "job_kinds.status_call[dataset]": (200, {}, _DATASET_JOB),
    "job_kinds.status_call[inference]": (200, {}, _JOB),
    "results_store.count": (200, {}, 7),
    "results_store.delete": (200, {}, True),
    "results_store.deposit": (200, {}, {"p": True}),
    "results_store.info": (200, {}, {"version": "1.0.0"}),
    "results_store.status": (200, {}, {"p": 3, "q": 0}),
    "results_store.update": (200, {}, True),
    "results_store.view": (200, {}, [_WORK]),
    "results_store.view_documents": (200, {}, [_WORK]),
}


def valid_response(name: str, status: int | None = None) -> HttpResponse:
    """The contract-shaped answer of call ``name`` (qualified), with ``status`` if given."""
    code, found, body = VALID_RESPONSES[name.removeprefix("airflow_jobwait.client.")]
    raw = body if isinstance(body, bytes) else _dumps(body)
    return HttpResponse(code if status is None else status, found, raw)


def _containers(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """``(path, key)`` of every value inside ``doc``'s objects and arrays."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield path, key
            yield from _containers(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield path, index
            yield from _containers(value, (*path, index))


@st.composite
def mutated_docs(draw: st.DrawFn, docs: list[Any] | None = None) -> Any:
    """A valid payload (of ``docs``, default ``VALID_DOCS``) with up to three values replaced by
    arbitrary JSON, or dropped."""
    doc = copy.deepcopy(draw(st.sampled_from(docs or VALID_DOCS)))
    for _ in range(draw(st.integers(0, 3))):
        spots = list(_containers(doc))
        if not spots:
            return draw(json_values)
        path, key = draw(st.sampled_from(spots))
        parent = doc
        for part in path:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(json_values)
    return doc


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


bodies = st.one_of(
    json_values.map(_dumps),
    mutated_docs().map(_dumps),
    st.binary(max_size=64),
    st.sampled_from([b"", b"NaN", b"[1,", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b"1" * 5000]),
)
locations = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda org, job, topic, tail: f"/compute/orgs/{org}/{topic}/wordcount/{job}/status{tail}",
        st.uuids().map(str) | st.text(max_size=10),
        st.uuids().map(str) | st.text(max_size=10),
        st.text(max_size=8),
        st.sampled_from(["", "?x=1", "#f", "/more"]),
    ),
    st.sampled_from(["http://[::1/compute", "http://[bad", "//host/compute/orgs/x", "\x00"]),
)
retry_afters = st.one_of(
    st.text(max_size=30),
    st.integers(0, 10**9).map(str),
    st.floats().map(repr),
    st.sampled_from(
        ["Wed, 21 Oct 2015 07:28:00 -0000", "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 99 Foo 2015", "1e999", "-5", "nan"]
    ),
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    found: dict[str, str] = {}
    if draw(st.booleans()):
        found["location"] = draw(locations)
    if draw(st.booleans()):
        found["retry-after"] = draw(retry_afters)
    return found


# ---- the properties --------------------------------------------------------------------------------


def test_every_call_factory_is_covered() -> None:
    names = {name.removeprefix("airflow_jobwait.client.") for name in CALLS}
    for expected in (
        "inference.get_job",
        "results_store.view",
        "datasets.list_drafts",
        "compute.submit",
        "job_kinds.status_call[dataset]",
    ):
        assert expected in names
    assert len(CALLS) >= 30
    # A new call needs its success statuses from the contract and a valid answer here.
    assert names == set(CONTRACT_OK) == set(VALID_RESPONSES)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_valid_answer_parses(name: str) -> None:
    """The contract-shaped answer parses, with every success status the contract gives the call."""
    call = CALLS[name]
    call.parse(valid_response(name))  # raises nothing
    for status in accepted_statuses(name):
        try:
            call.parse(valid_response(name, status))
        except JobPendingError:  # compute results with 202: the job still runs (docs/jobs-api.md §3)
            assert status == 202 and name in DOMAIN_ERRORS


@pytest.mark.parametrize("name", sorted(CALLS))
def test_statuses_outside_the_contract_are_api_errors(name: str) -> None:
    call = CALLS[name]
    for status in (*range(200, 208), 226, 300, 301, 302, 303, 304, 307, 308):
        if status in accepted_statuses(name):
            continue
        with pytest.raises(ApiError) as info:
            call.parse(valid_response(name, status))
        assert info.value.status == status


@pytest.mark.parametrize("name", sorted(CALLS))
def test_success_status_parses_or_raises_invalid_response(name: str) -> None:
    call = CALLS[name]
    allowed = (InvalidResponse, *DOMAIN_ERRORS.get(name, ()))
    # The property below would hold for a parser that refuses everything: the valid answer must parse.
    call.parse(valid_response(name))

    @PROPERTY
    @given(status=st.sampled_from(accepted_statuses(name)), body=bodies, extra=headers())
    def check(status: int, body: bytes, extra: dict[str, str]) -> None:
        with contextlib.suppress(*allowed):
            call.parse(HttpResponse(status, extra, body))

    check()


# ---- the job list's summaries: each entry read as the whole list reads it ------------------------

LIST_JOBS = datasets.list_jobs("demo-dataset", "squashAndMerge")
LIST_SUMMARIES = datasets.list_job_summaries("demo-dataset", "squashAndMerge")
#: What a summary reads of an entry, in both spellings.
SUMMARY_KEYS = {name for field in DatasetJobSummary.model_fields for name in (field, to_camel(field))}
_LISTINGS = [_LISTED_JOBS, VALID_RESPONSES["datasets.list_jobs"][2]]


def _read_entries(call: Call[Any], body: bytes) -> Any:
    """Per entry, what a wait reads of it (``errorMessage`` given or defaulted told apart); or the error."""
    try:
        page = call.parse(HttpResponse(200, {}, body))
    except InvalidResponse as err:
        return err
    return [
        (j.job_id, j.created_at, j.status, j.error_message, "error_message" in j.model_fields_set) for j in page.jobs
    ]


def _malformed(err: InvalidResponse) -> list[str]:
    """Every field the whole list's parse found malformed, in pydantic's order (its message names
    the first one only)."""
    if isinstance(err.__cause__, ValidationError):
        return [path for path, _ in invalid_fields(err.__cause__)]
    return [str(err.field)]


def _summary_field(field: str) -> bool:
    """The field is one a summary reads (or the page or an entry as a whole)."""
    parts = field.split(".")
    return field == "<root>" or (parts[0] == "jobs" and (len(parts) <= 2 or parts[2] in SUMMARY_KEYS))


@PROPERTY
@given(body=st.one_of(mutated_docs(_LISTINGS).map(_dumps), bodies))
def test_the_job_list_summaries_read_each_entry_as_the_whole_list_reads_it(body: bytes) -> None:
    whole, summaries = _read_entries(LIST_JOBS, body), _read_entries(LIST_SUMMARIES, body)
    if not isinstance(whole, InvalidResponse):
        assert summaries == whole
    elif whole.field is None:  # not JSON: the same error, word for word
        assert isinstance(summaries, InvalidResponse) and str(summaries) == str(whole)
    elif read := [field for field in _malformed(whole) if _summary_field(field)]:
        # The first malformed field a summary reads (the whole list may name a skipped one first).
        assert isinstance(summaries, InvalidResponse) and summaries.field == read[0]
    else:  # only what a summary skips is malformed
        assert not isinstance(summaries, InvalidResponse), summaries


@pytest.mark.parametrize(
    "body",
    [
        # JSON only to the standard library (or not at all): pydantic's parser refuses these, the
        # summaries take decode_json's way.
        b'\xef\xbb\xbf{"jobs": [{"jobId": "j1", "status": "QUEUING"}]}',
        '{"jobs": [{"jobId": "j1", "status": "QUEUING"}]}'.encode("utf-16"),
        b'{"jobs": [{"jobId": "\\ud800", "status": "QUEUING"}]}',
        b'{"jobs": [{"jobId": "j1", "createdAt": NaN}]}',
        b'{"jobs": [{"jobId": "j1", "arguments": {"x": NaN}, "status": "FAILED"}]}',
        b'{"jobs": [{"jobId": "j1", "arguments": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}]}",
        b'{"jobs": []} trailing',
        b"\xff\xfe",
        b"",
        # Repeated keys: the last one counts, as json.loads has it.
        b'{"jobs": [{"jobId": "j1", "status": "QUEUING", "status": "FAILED", "errorMessage": "x"}]}',
        b'{"jobs": [{"jobId": "j1"}], "jobs": []}',
    ],
)
def test_the_job_list_summaries_take_what_the_standard_library_takes(body: bytes) -> None:
    whole, summaries = _read_entries(LIST_JOBS, body), _read_entries(LIST_SUMMARIES, body)
    if isinstance(whole, InvalidResponse):
        assert isinstance(summaries, InvalidResponse) and str(summaries) == str(whole)
    else:
        assert summaries == whole


def test_a_malformed_job_list_entry_is_named_and_the_rest_of_a_job_is_not_read() -> None:
    entry = {"jobId": "j1", "createdAt": 1764417600, "status": "QUEUING", "errorMessage": ""}
    with pytest.raises(InvalidResponse) as info:
        LIST_SUMMARIES.parse(
            HttpResponse(200, {}, _dumps({"jobs": [entry, {"jobId": "j2", "createdAt": "yesterday"}]}))
        )
    assert info.value.field == "jobs.1.createdAt"
    assert str(info.value).startswith("job list of dataset demo-dataset is invalid at field 'jobs.1.createdAt': ")
    # What a wait does not read may be anything: not checked, not kept.
    odd = {**entry, "title": 5, "arguments": [1], "result": "none", "results": {"x": [1, {}]}, "more": None}
    page = LIST_SUMMARIES.parse(HttpResponse(200, {}, _dumps({"jobs": [odd], "totalCount": "many", "x": 1})))
    assert [(j.job_id, j.created_at, j.status, j.error_message) for j in page.jobs] == [
        ("j1", 1764417600, "QUEUING", "")
    ]
    assert page.jobs[0].model_extra is None and page.model_extra is None


@pytest.mark.parametrize(
    "encode",
    [lambda text: b"\xef\xbb\xbf" + text.encode(), lambda text: text.encode("utf-16")],
    ids=["utf-8-bom", "utf-16"],
)
def test_a_malformed_entry_is_named_alike_in_json_only_the_standard_library_reads(
    encode: Callable[[str], bytes],
) -> None:
    # pydantic's JSON parser refuses these bodies (RFC 8259 §8.1 allows a reader to take them, and
    # json.loads does): the entry must be named with the same words as in plain UTF-8.
    body = encode(json.dumps({"jobs": [{"jobId": "j2", "createdAt": "yesterday"}]}))
    with pytest.raises(InvalidResponse) as info:
        LIST_SUMMARIES.parse(HttpResponse(200, {}, body))
    assert info.value.field == "jobs.0.createdAt"
    assert str(info.value).startswith("job list of dataset demo-dataset is invalid at field 'jobs.0.createdAt': ")


_DIGITS = re.compile(r"[0-9]+")
_IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def rfc_retry_after(value: str | None, now: datetime) -> float | None:
    """RFC 9110 §10.2.3 for the values it defines: delay-seconds (1*DIGIT) or an IMF-fixdate HTTP-date
    (§5.6.7), a date in the past meaning no wait; field values have surrounding whitespace trimmed
    (§5.5). ``...`` (Ellipsis) for any other value: the RFC gives it no meaning."""
    if value is None:
        return None
    value = value.strip(" \t")
    if _DIGITS.fullmatch(value):
        return float(int(value))
    if _IMF_FIXDATE.fullmatch(value):
        try:
            when = datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        except ValueError:
            return ...  # type: ignore[return-value]
        return max(0.0, (when - now).total_seconds())
    return ...  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_error_status_raises_the_api_error(name: str) -> None:
    call = CALLS[name]

    @ERROR_PROPERTY
    @given(status=st.integers(400, 599), body=bodies, extra=headers())
    def check(status: int, body: bytes, extra: dict[str, str]) -> None:
        with pytest.raises(ApiError) as info:
            call.parse(HttpResponse(status, extra, body))
        assert info.value.status == status
        expected = rfc_retry_after(extra.get("retry-after"), datetime.now(UTC))
        if expected is not ...:  # the values RFC 9110 defines are read exactly
            assert info.value.retry_after == expected, extra
        assert str(info.value) and repr(info.value)  # describing the error must not fail either

    check()


NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)


def _at(mocker: MockerFixture, now: datetime) -> None:
    """The HTTP core reads its clock (``datetime.now(UTC)``) as ``now``."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return cls.fromtimestamp(now.timestamp(), tz=UTC)

    mocker.patch.object(http_module, "datetime", Fixed)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),  # "retry now": not one second
        ("120", 120.0),
        ("007", 7.0),
        (" 7 ", 7.0),  # OWS around a field value is not part of it (§5.5)
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),  # IMF-fixdate, one minute ahead
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: no wait
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 120.0),  # obsolete RFC 850 form, recipients MUST accept
        ("Wed Oct 21 07:30:00 2015", 180.0),  # obsolete asctime form, recipients MUST accept
        ("inf", None),
        ("Infinity", None),
        ("1e999", None),
        ("nan", None),
        ("", None),
        ("soon", None),
        ("Wed, 99 Foo 2015", None),
        ("-5", None),  # delay-seconds is 1*DIGIT (§10.2.3): no sign
        ("1.5", None),  # no fraction
        ("1e3", None),  # no exponent
        ("\u00b2", None),  # a Unicode digit is not DIGIT (RFC 5234 B.1: %x30-39)
        ("9" * 5000, 1e12),  # valid, longer than any wait: read as the longest (the policy caps it)
        ("Wed, 21 Oct 2015 07:28:00 -0000", None),  # an HTTP-date is in GMT (§5.6.7)
        ("Wed, 21 Oct 2015 07:28:00 +0200", None),
    ],
)
def test_retry_after_values_are_read_as_rfc_9110_says(
    mocker: MockerFixture, header: str, expected: float | None
) -> None:
    _at(mocker, NOW)
    with pytest.raises(RateLimited) as info:
        inference.get_job(JOB).parse(HttpResponse(429, {"retry-after": header}, b'{"detail": "slow down"}'))
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    "header",
    [
        "-5",
        "1.5",
        "nan",
        "inf",
        "soon",
        "",
    ],
)
def test_a_retry_after_the_rfc_does_not_define_leaves_our_own_backoff(mocker: MockerFixture, header: str) -> None:
    # Whatever the code reads from an undefined value, the wait must be our own backoff (0.5 s
    # with rng() = 1.0 for the first retry), never longer or shorter.
    _at(mocker, NOW)
    with pytest.raises(RateLimited) as info:
        inference.get_job(JOB).parse(HttpResponse(429, {"retry-after": header}, b"{}"))
    request = inference.get_job(JOB).request
    assert RetryPolicy().delay_before_retry(1, info.value, request, 0.0, rng=lambda: 1.0) == 0.5
