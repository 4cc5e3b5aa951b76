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
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel

import airflow_jobwait.client as client_package
from airflow_jobwait.client.http import Call, HttpResponse
from airflow_jobwait.client.job_kinds import _KINDS
from airflow_jobwait.exceptions import ApiError, InvalidResponse, JobError, JobPendingError
from airflow_jobwait.models import InputResult, Job, JobResults, SubmitJobRequest
from airflow_jobwait.models.compute import ComputeError, ComputeJobRef, ComputeResults, ComputeStatus
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobList, Draft, DraftList
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
}
#: Helpers that take or return a ``Call`` but are not factories of one request.
NOT_FACTORIES = {"airflow_jobwait.client.job_kinds.then", "airflow_jobwait.client.http.json_model"}


def _factories() -> Iterator[tuple[str, Callable[..., Any]]]:
    for info in pkgutil.iter_modules(client_package.__path__):
        module = importlib.import_module(f"{client_package.__name__}.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            qualified = f"{module.__name__}.{name}"
            returns = inspect.signature(fn).return_annotation
            if (
                fn.__module__ == module.__name__
                and not name.startswith("_")
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
CANDIDATE_OK = (200, 201, 202, 204, 303)


def accepted_statuses(call: Call[Any]) -> list[int]:
    """The success statuses of ``call``: those its parser does not turn into an ``ApiError``."""
    accepted = []
    for status in CANDIDATE_OK:
        try:
            call.parse(HttpResponse(status, {}, b"null"))
        except ApiError:
            continue
        except Exception:  # any other outcome: the status got through to the payload
            pass
        accepted.append(status)
    return accepted


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
]


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
def mutated_docs(draw: st.DrawFn) -> Any:
    """A valid payload with up to three values replaced by arbitrary JSON, or dropped."""
    doc = copy.deepcopy(draw(st.sampled_from(VALID_DOCS)))
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
    names = set(CALLS)
    for expected in (
        "inference.get_job",
        "results_store.view",
        "datasets.list_drafts",
        "compute.submit",
        "job_kinds.status_call[dataset]",
    ):
        assert f"airflow_jobwait.client.{expected}" in names
    assert len(CALLS) >= 30
    for name, call in CALLS.items():
        assert accepted_statuses(call), f"{name} accepts no success status at all"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_success_status_parses_or_raises_invalid_response(name: str) -> None:
    call = CALLS[name]
    allowed = (InvalidResponse, *DOMAIN_ERRORS.get(name, ()))

    @PROPERTY
    @given(status=st.sampled_from(accepted_statuses(call)), body=bodies, extra=headers())
    def check(status: int, body: bytes, extra: dict[str, str]) -> None:
        with contextlib.suppress(*allowed):
            call.parse(HttpResponse(status, extra, body))

    check()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_error_status_raises_the_api_error(name: str) -> None:
    call = CALLS[name]

    @ERROR_PROPERTY
    @given(status=st.integers(400, 599), body=bodies, extra=headers())
    def check(status: int, body: bytes, extra: dict[str, str]) -> None:
        with pytest.raises(ApiError) as info:
            call.parse(HttpResponse(status, extra, body))
        assert info.value.status == status
        assert info.value.retry_after is None or info.value.retry_after >= 0
        assert str(info.value) and repr(info.value)  # describing the error must not fail either

    check()
