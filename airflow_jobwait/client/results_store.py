"""Calls of the results store (CHIME workflow Results API, ``docs/jobs-api.md`` §4).

Paths are relative to the results base URL, as workflow-core's ``Results`` client takes it
(``https://frb.chimenet.ca/workflow/results``, ``http://localhost:8005``).

One builder per wire call. Inputs are checked here, before any request, with errors naming the
field; MongoDB queries themselves are checked by the service (400 naming the operator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from airflow_jobwait.client.http import (
    AuthScheme,
    Call,
    HttpRequest,
    HttpResponse,
    decode_json,
    expect,
    json_model,
    validate,
)
from airflow_jobwait.exceptions import InvalidResponse, JobWaitError
from airflow_jobwait.models.base import first_error, json_problem
from airflow_jobwait.models.results_store import DEPOSIT_STATUSES, ResultsStoreInfo, Work

AUTH = AuthScheme("x-access-token")
#: Largest ``limit`` of a view; ``0`` means no limit (the public client's ``-1``).
MAX_LIMIT = 10_000
NO_LIMIT = 0

WorkLike = Work | Mapping[str, Any]


class UnknownWorksError(JobWaitError, LookupError):
    """Works asked for by id (to lock or unlock) are not in the pipeline.

    :param pipeline: The pipeline searched.
    :param ids: The ids not found.
    """

    def __init__(self, message: str, pipeline: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.ids = list(ids)


class NotLockedError(JobWaitError):
    """Works asked to be unlocked are not locked: nobody locked them, so there is nothing to undo.

    :param pipeline: The pipeline searched.
    :param ids: The ids of the works that are not locked.
    """

    def __init__(self, message: str, pipeline: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.ids = list(ids)


class _WorkList(BaseModel):
    works: list[Work] = Field(default_factory=list)


class _Status(BaseModel):
    counts: dict[str, int]


class _Deposited(BaseModel):
    pipelines: dict[str, bool]


# ---- input checks -------------------------------------------------------------------------------


def check_pipeline(pipeline: object, name: str = "pipeline") -> str:
    """``pipeline`` if it is a non-empty string.

    :raises ValueError: Naming ``name``.
    """
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise ValueError(f"{name} must be a non-empty string, got {pipeline!r}"[:300])
    return pipeline


def check_ids(ids: object, name: str = "ids") -> list[str]:
    """``ids`` as a list of at least one non-empty string.

    :raises ValueError: Naming ``name`` and the offending entry.
    """
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise ValueError(f"{name} must be a list of work ids, got {type(ids).__name__}: {ids!r}"[:300])
    if not ids:
        raise ValueError(f"{name} must list at least one work id")
    for index, work_id in enumerate(ids):
        if not isinstance(work_id, str) or not work_id:
            raise ValueError(f"{name}[{index}] must be a non-empty string, got {work_id!r}"[:300])
    return list(ids)


def check_skip(skip: object, name: str = "skip") -> int:
    """``skip`` if it is an integer ≥ 0.

    :raises ValueError: Naming ``name``.
    """
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {skip!r}")
    return skip


def check_limit(limit: object, name: str = "limit") -> int:
    """The wire ``limit``: 1..10000, or ``0`` for no limit (``-1``, the public client's "no limit", maps to 0).

    :raises ValueError: Naming ``name``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not -1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_LIMIT} (0 or -1: no limit), got {limit!r}")
    return NO_LIMIT if limit == -1 else limit


def check_query(query: object, name: str = "query") -> dict[str, Any]:
    """``query`` if it is a JSON object (its operators are the service's to judge).

    :raises ValueError: Naming ``name``.
    """
    if not isinstance(query, Mapping):
        raise ValueError(
            f"{name} must be a MongoDB filter (a JSON object), got {type(query).__name__}: {query!r}"[:300]
        )
    return dict(query)


def as_work(work: WorkLike, index: int) -> Work:
    """A ``Work`` from a model or a dict.

    :raises ValueError: The dict is not a valid work; the message names the work and the field.
    """
    if isinstance(work, Work):
        return work
    if not isinstance(work, Mapping):
        raise ValueError(f"works[{index}] must be a Work or a dict, got {type(work).__name__}")
    try:
        return Work.model_validate(dict(work))
    except ValidationError as err:
        where, why = first_error(err)
        label = work.get("id") if isinstance(work.get("id"), str) and work.get("id") else f"works[{index}]"
        raise ValueError(f"work {label!r} is invalid at field {where!r}: {why}") from None


def deposit_payload(works: Sequence[WorkLike]) -> list[dict[str, Any]]:
    """The deposit body: every work complete enough to store, with status ``success`` or ``failure``.

    :raises ValueError: Naming the work id and the field at fault (status, pipeline, results).
    """
    if isinstance(works, (str, Mapping)) or not isinstance(works, Sequence) or not works:
        raise ValueError("works must be a non-empty list of works")
    payload = []
    for index, item in enumerate(works):
        work = as_work(item, index)
        if work.status not in DEPOSIT_STATUSES:
            raise ValueError(
                f"work {work.id!r} has status {work.status!r}: only works with status 'success' or 'failure' "
                "can be deposited"
            )
        if not work.pipeline or not work.pipeline.strip():
            raise ValueError(f"work {work.id!r} has no pipeline: 'pipeline' must be a non-empty string")
        payload.append(_checked_json(work.id, work.model_dump(exclude_unset=True), work.to_wire()))
    _check_unique(payload)
    return payload


def update_payload(works: Sequence[WorkLike]) -> list[dict[str, Any]]:
    """The update body: each work's ``id`` and the fields to change (dicts may be partial).

    :raises ValueError: Naming the work and the field at fault.
    """
    if isinstance(works, (str, Mapping)) or not isinstance(works, Sequence) or not works:
        raise ValueError("works must be a non-empty list of works")
    payload = []
    for index, item in enumerate(works):
        work = as_work(item, index)  # checks id and field types, dicts included
        raw = work.model_dump(exclude_unset=True) if isinstance(item, Work) else dict(item)
        body = _checked_json(work.id, raw, work.to_wire() if isinstance(item, Work) else raw)
        if "status" in body and body["status"] not in DEPOSIT_STATUSES:
            raise ValueError(
                f"work {work.id!r} would get status {body['status']!r}: stored works must have status "
                "'success' or 'failure'"
            )
        payload.append(body)
    _check_unique(payload)
    return payload


def _checked_json(work_id: str, raw: dict[str, Any], wire: dict[str, Any]) -> dict[str, Any]:
    """``wire`` once ``raw`` (the work before JSON dumping, which turns NaN into null) is strict JSON.

    :raises ValueError: Naming the work and the field that is not JSON.
    """
    problem = json_problem(raw)
    if problem is not None:
        where, why = problem
        raise ValueError(f"work {work_id!r} is not JSON at field {where!r}: {why}")
    return wire


def _check_unique(payload: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for work in payload:
        if work["id"] in seen:
            raise ValueError(f"works name id {work['id']!r} more than once; each work of a batch needs its own id")
        seen.add(work["id"])


# ---- calls --------------------------------------------------------------------------------------


def info() -> Call[ResultsStoreInfo]:
    """``GET {base}/version`` (answers without a key too)."""
    return json_model(HttpRequest("GET", "/version", AUTH), ResultsStoreInfo, "results store version", (200,))


def status() -> Call[dict[str, int]]:
    """``GET {base}/status``: number of works per pipeline."""
    request = HttpRequest("GET", "/status", AUTH)

    def parse(response: HttpResponse) -> dict[str, int]:
        expect(request, response, (200,))
        what = "results store status"
        return validate(_Status, {"counts": decode_json(response, what)}, what).counts

    return Call(request, parse)


def deposit(works: Sequence[WorkLike]) -> Call[dict[str, bool]]:
    """``POST {base}/results``: store new works, all or none (409 naming ids that exist).

    Not retried after a lost answer: the first attempt may have stored the works, and a second one
    would then be a 409.
    """
    request = HttpRequest("POST", "/results", AUTH, json_body=deposit_payload(works), idempotent=False)

    def parse(response: HttpResponse) -> dict[str, bool]:
        expect(request, response, (200,))
        return validate(_Deposited, {"pipelines": decode_json(response, "deposit answer")}, "deposit answer").pipelines

    return Call(request, parse)


def update(works: Sequence[WorkLike]) -> Call[bool]:
    """``PUT {base}/results``: merge each work's fields into the stored one, matched by ``id``.

    404 naming unknown ids; 409 naming locked works changed in anything but ``results.locked``.
    """
    return _bool_call(HttpRequest("PUT", "/results", AUTH, json_body=update_payload(works)), "update answer")


def delete(pipeline: str, ids: Sequence[str]) -> Call[bool]:
    """``DELETE {base}/results?<pipeline>=<id>&...``: unknown ids are ignored; 409 naming locked ones."""
    pipeline = check_pipeline(pipeline)
    params = tuple((pipeline, work_id) for work_id in check_ids(ids))
    return _bool_call(HttpRequest("DELETE", "/results", AUTH, params=params), "delete answer")


def view_body(
    pipeline: str,
    query: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    skip: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """The body of a view: ``query`` with ``pipeline`` set (the argument wins), projection, skip, limit."""
    query = {**check_query(query), "pipeline": check_pipeline(pipeline)}
    if projection is not None and not isinstance(projection, Mapping):
        raise ValueError(f"projection must be an object {{field: bool}}, got {type(projection).__name__}")
    return {"query": query, "projection": dict(projection or {}), "skip": check_skip(skip), "limit": check_limit(limit)}


def view(
    pipeline: str,
    query: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    skip: int = 0,
    limit: int = 100,
) -> Call[list[Work]]:
    """``POST {base}/view``: works of ``pipeline`` matching ``query``, in insertion order.

    :param limit: 1..10000; 0 or -1: no limit.
    """
    request = HttpRequest("POST", "/view", AUTH, json_body=view_body(pipeline, query, projection, skip, limit))

    def parse(response: HttpResponse) -> list[Work]:
        expect(request, response, (200,))
        return validate(_WorkList, {"works": decode_json(response, "view answer")}, "view answer").works

    return Call(request, parse)


def view_documents(
    pipeline: str,
    query: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    skip: int = 0,
    limit: int = 100,
) -> Call[list[dict[str, Any]]]:
    """``view`` answering the stored JSON documents as they are, for changes that must not alter them."""
    request = HttpRequest("POST", "/view", AUTH, json_body=view_body(pipeline, query, projection, skip, limit))

    def parse(response: HttpResponse) -> list[dict[str, Any]]:
        expect(request, response, (200,))
        data = decode_json(response, "view answer")
        if not isinstance(data, list) or not all(
            isinstance(doc, dict) and isinstance(doc.get("id"), str) for doc in data
        ):
            raise InvalidResponse("view answer must be a JSON array of works with string ids")
        return data

    return Call(request, parse)


def count(pipeline: str, query: Mapping[str, Any]) -> Call[int]:
    """``POST {base}/view/count``: number of works of ``pipeline`` matching ``query``."""
    body = {"query": {**check_query(query), "pipeline": check_pipeline(pipeline)}}
    request = HttpRequest("POST", "/view/count", AUTH, json_body=body)

    def parse(response: HttpResponse) -> int:
        expect(request, response, (200,))
        data = decode_json(response, "count answer")
        if isinstance(data, bool) or not isinstance(data, int) or data < 0:
            raise InvalidResponse(f"count answer must be a non-negative integer, got {data!r}"[:300])
        return data

    return Call(request, parse)


def _bool_call(request: HttpRequest, what: str) -> Call[bool]:
    def parse(response: HttpResponse) -> bool:
        expect(request, response, (200,))
        data = decode_json(response, what)
        if not isinstance(data, bool):
            raise InvalidResponse(f"{what} must be true or false, got {data!r}"[:300])
        return data

    return Call(request, parse)
