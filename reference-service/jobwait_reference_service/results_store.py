"""Results store family: the CHIME workflow Results backend (``docs/jobs-api.md`` section 4).

Works are JSON documents kept whole in one SQLite table; MongoDB filters are evaluated in Python by
the whitelist interpreter in ``mongo_query`` over the rows of the queried pipeline (narrowed in SQL
by pipeline and plain ids first). A ``locked`` column mirrors ``results.locked`` so the lock rule is
checked without parsing documents.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jobwait_reference_service import openapi
from jobwait_reference_service import results_wire as wire
from jobwait_reference_service.auth import key_header_scheme, require_api_key
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.db import Database
from jobwait_reference_service.detail_route import DetailRoute
from jobwait_reference_service.json_body import JsonBodyError, parse_json
from jobwait_reference_service.mongo_query import QueryError, compile_projection, compile_query, step_budget

VERSION = "1.0.0"
MAX_LIMIT = wire.MAX_LIMIT
DEPOSIT_STATUSES = ("success", "failure")
TABLE = "results_store_works"

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE,
    locked INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_pipeline_seq ON {TABLE} (pipeline, seq);
"""

# One bound parameter holding a JSON array, so id lists of any length stay parameterised.
_IN_IDS = "id IN (SELECT value FROM json_each(?))"


class StoreError(Exception):
    """A request the store refuses; becomes ``{"detail": ...}`` with ``status``.

    :param status: HTTP status code.
    :param detail: Message naming the field, operator or ids at fault.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _name_ids(ids: Iterable[str], most: int = 20) -> str:
    """List ids for an error message, bounded so a huge batch cannot bloat the response."""
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:most])
    return f"[{shown}]" if len(ids) <= most else f"[{shown}, ... and {len(ids) - most} more]"


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _is_locked(work: dict[str, Any]) -> bool:
    results = work.get("results")
    return isinstance(results, dict) and results.get("locked") is True


def _without_lock(work: dict[str, Any]) -> str:
    """Canonical JSON of ``work`` minus ``results.locked``: what the lock rule freezes."""
    rest = dict(work)
    results = rest.get("results")
    if isinstance(results, dict):
        rest["results"] = {key: value for key, value in results.items() if key != "locked"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def _work_list(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise StoreError(400, "request body must be a JSON array of works")
    for index, work in enumerate(body):
        if not isinstance(work, dict):
            raise StoreError(400, f"work at index {index} must be an object")
    return body


def _work_id(work: dict[str, Any], index: int) -> str:
    if "id" not in work:
        raise StoreError(400, f"work at index {index} has no 'id'")
    work_id = work["id"]
    if not isinstance(work_id, str) or not work_id:
        raise StoreError(400, f"work at index {index}: 'id' must be a non-empty string")
    return work_id


def _unique_ids(works: list[dict[str, Any]]) -> list[str]:
    ids = [_work_id(work, index) for index, work in enumerate(works)]
    duplicates = [work_id for work_id, n in Counter(ids).items() if n > 1]
    if duplicates:
        raise StoreError(400, f"duplicate 'id' values in the batch: {_name_ids(duplicates)}")
    return ids


def _check_work(work: dict[str, Any]) -> None:
    """Check the fields the store relies on (``id`` already checked)."""
    work_id = work["id"]
    pipeline = work.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline:
        raise StoreError(400, f"work {work_id!r}: 'pipeline' must be a non-empty string")
    status = work.get("status")
    if status not in DEPOSIT_STATUSES:
        raise StoreError(400, f"work {work_id!r} has 'status' {status!r}; results need status 'success' or 'failure'")
    # null is what a work without results serialises to; anything else must be an object.
    if work.get("results") is not None and not isinstance(work["results"], dict):
        raise StoreError(400, f"work {work_id!r}: 'results' must be an object")


def _count(body: Any, name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0 is the integer 5 in JSON (and in JSON Schema)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StoreError(400, f"'{name}' must be a non-negative integer, not {value!r}")
    return value


def _plain_string(cond: Any) -> str | None:
    """The string a condition pins a field to (``"x"`` or ``{"$eq": "x"}``), if any."""
    if isinstance(cond, dict) and isinstance(cond.get("$eq"), str):
        return str(cond["$eq"])
    return cond if isinstance(cond, str) else None


def _narrowing(query: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """SQL conditions implied by ``query`` (a superset of its matches: the filter still runs)."""
    clauses: list[str] = []
    params: list[Any] = []
    pipeline = _plain_string(query.get("pipeline"))
    if pipeline is not None:
        clauses.append("pipeline = ?")
        params.append(pipeline)
    id_cond = query.get("id")
    ids: list[str] | None = None
    if (single := _plain_string(id_cond)) is not None:
        ids = [single]
    elif isinstance(id_cond, dict) and isinstance(id_cond.get("$in"), list):
        # Stored ids are strings, so only string members of $in can match.
        ids = [item for item in id_cond["$in"] if isinstance(item, str)]
    if ids is not None:
        clauses.append(_IN_IDS)
        params.append(json.dumps(ids))
    return clauses, params


class WorkStore:
    """The results table: deposit, update, delete and MongoDB-filtered reads.

    :param db: The service's database; the DDL must have run.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def status(self) -> dict[str, int]:
        """Number of stored works per pipeline."""
        rows = self.db.connection().execute(
            f"SELECT pipeline, COUNT(*) FROM {TABLE} GROUP BY pipeline ORDER BY pipeline"
        )
        return {pipeline: count for pipeline, count in rows}

    def deposit(self, body: Any) -> dict[str, bool]:
        """Store new works, all or none; 409 if any id exists already."""
        works = _work_list(body)
        ids = _unique_ids(works)
        for work in works:
            _check_work(work)
        with self.db.transaction() as conn:
            existing = [row[0] for row in conn.execute(f"SELECT id FROM {TABLE} WHERE {_IN_IDS}", [json.dumps(ids)])]
            if existing:
                raise StoreError(409, f"works already exist: {_name_ids(sorted(existing))}; nothing was stored")
            (last,) = conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {TABLE}").fetchone()
            conn.executemany(
                f"INSERT INTO {TABLE} (id, pipeline, seq, locked, doc) VALUES (?, ?, ?, ?, ?)",
                [
                    (work["id"], work["pipeline"], last + n, int(_is_locked(work)), _dumps(work))
                    for n, work in enumerate(works, start=1)
                ],
            )
        return dict.fromkeys((work["pipeline"] for work in works), True)

    def update(self, body: Any) -> bool:
        """Merge each work's top-level fields into the stored one, all or none (lock rule applies)."""
        works = _work_list(body)
        ids = _unique_ids(works)
        with self.db.transaction() as conn:
            stored = {
                row["id"]: (json.loads(row["doc"]), bool(row["locked"]))
                for row in conn.execute(f"SELECT id, locked, doc FROM {TABLE} WHERE {_IN_IDS}", [json.dumps(ids)])
            }
            unknown = [work_id for work_id in ids if work_id not in stored]
            if unknown:
                raise StoreError(404, f"no works with ids {_name_ids(unknown)}; nothing was updated")
            merged: list[dict[str, Any]] = []
            refused: list[str] = []
            for work in works:
                old, locked = stored[work["id"]]
                new = {**old, **work}
                _check_work(new)
                if locked and _without_lock(new) != _without_lock(old):
                    refused.append(work["id"])
                merged.append(new)
            if refused:
                raise StoreError(
                    409,
                    f"works are locked: {_name_ids(refused)}; only 'results.locked' may change, nothing was updated",
                )
            conn.executemany(
                f"UPDATE {TABLE} SET pipeline = ?, locked = ?, doc = ? WHERE id = ?",
                [(new["pipeline"], int(_is_locked(new)), _dumps(new), new["id"]) for new in merged],
            )
        return True

    def delete(self, targets: list[tuple[str, str]]) -> bool:
        """Delete ``(pipeline, id)`` pairs, all or none; unknown pairs are ignored (a retry is harmless)."""
        if not targets:
            return True
        ids = sorted({work_id for _, work_id in targets})
        with self.db.transaction() as conn:
            rows = {
                row["id"]: (row["pipeline"], bool(row["locked"]))
                for row in conn.execute(f"SELECT id, pipeline, locked FROM {TABLE} WHERE {_IN_IDS}", [json.dumps(ids)])
            }
            found = sorted({i for p, i in targets if i in rows and rows[i][0] == p})
            locked = [work_id for work_id in found if rows[work_id][1]]
            if locked:
                raise StoreError(
                    409, f"works are locked and cannot be deleted: {_name_ids(locked)}; nothing was deleted"
                )
            conn.execute(f"DELETE FROM {TABLE} WHERE {_IN_IDS}", [json.dumps(found)])
        return True

    def view(self, body: Any) -> list[dict[str, Any]]:
        """Works matching ``body["query"]``, projected, in insertion order, after ``skip``, at most ``limit``.

        :raises StoreError: 400 for a bad query, or one that exceeds its step budget.
        """
        query, predicate = self._query(body)
        skip = _count(body, "skip", 0)
        limit = _count(body, "limit", 0)
        if limit > MAX_LIMIT:
            raise StoreError(400, f"'limit' must be at most {MAX_LIMIT} (0 means no limit), not {limit}")
        try:
            project = compile_projection(body.get("projection"))
        except QueryError as exc:
            raise StoreError(400, str(exc)) from exc
        found: list[dict[str, Any]] = []
        with self._budget(), closing(self._matching(query, predicate)) as docs:
            for doc in docs:
                if skip:
                    skip -= 1
                    continue
                found.append(project(doc))
                if limit and len(found) >= limit:
                    break
        return found

    def count(self, body: Any) -> int:
        """Number of works matching ``body["query"]``.

        :raises StoreError: 400 for a bad query, or one that exceeds its step budget.
        """
        query, predicate = self._query(body)
        with self._budget(), closing(self._matching(query, predicate)) as docs:
            return sum(1 for _ in docs)

    @staticmethod
    @contextmanager
    def _budget() -> Iterator[None]:
        """One step budget for the whole query: its end is a 400 naming the budget."""
        try:
            with step_budget():
                yield
        except QueryError as exc:
            raise StoreError(400, str(exc)) from exc

    @staticmethod
    def _query(body: Any) -> tuple[dict[str, Any], Callable[[Any], bool]]:
        if not isinstance(body, dict):
            raise StoreError(400, "request body must be an object with a 'query'")
        query = body.get("query", {})
        if query is None:
            query = {}
        if not isinstance(query, dict):
            raise StoreError(400, "'query' must be an object")
        try:
            return query, compile_query(query)
        except QueryError as exc:
            raise StoreError(400, str(exc)) from exc

    def _matching(
        self, query: dict[str, Any], predicate: Callable[[Any], bool]
    ) -> Generator[dict[str, Any], None, None]:
        clauses, params = _narrowing(query)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self.db.connection().execute(f"SELECT doc FROM {TABLE}{where} ORDER BY seq", params)
        try:
            for (text,) in cursor:
                doc = json.loads(text)
                if predicate(doc):
                    yield doc
        finally:
            # An unfinished SELECT would keep its read snapshot open on this thread's connection.
            cursor.close()


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise HTTPException(status_code=400, detail="request body is empty; expected JSON")
    try:
        # Strict, and bounded in depth: no work deeper than a query or projection can reach is stored.
        return parse_json(raw)
    except JsonBodyError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


async def _call(fn: Callable[..., Any], *args: Any) -> JSONResponse:
    """Run a blocking store call off the event loop and answer its result as JSON."""
    try:
        result = await run_in_threadpool(fn, *args)
    except StoreError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    return JSONResponse(content=result)


class ResultsStoreFamily:
    """The results store's routes, under ``/workflow`` (``ext``) or ``/workflow/results`` (``real``,
    where CHIME's gateway mounts it); no background work.

    :param config: Service settings (the API key, the profile).
    :param db: The service's database.
    """

    def __init__(self, config: ServiceConfig, db: Database) -> None:
        self.config = config
        self.store = WorkStore(db)
        self.router = self._routes(config.api_key)

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def stop(self) -> None:
        """Nothing to flush: every write commits before its response."""

    def _routes(self, api_key: str) -> APIRouter:
        store = self.store
        router = APIRouter(prefix=self.config.results_mount, tags=["results store"], route_class=DetailRoute)
        auth = [
            key_header_scheme("ChimeAccessToken", "x-access-token", "The API key as it is."),
            Depends(require_api_key(api_key, "x-access-token")),
        ]
        rate_limited = self.config.rate_limit is not None

        def errors(body: bool = False, **statuses: str) -> dict[int | str, dict[str, Any]]:
            own = {int(code[1:]): why for code, why in statuses.items()}
            own[401] = "Missing or wrong `x-access-token`."
            return openapi.error_answers(openapi.Detail, own, body=body, rate_limited=rate_limited)

        bad_body = "A body that is not strict JSON, or a work the store refuses (named)."
        bad_query = "A body that is not strict JSON, or a query or projection the store refuses (named)."

        # The public client probes /version (HEAD) before it authenticates. One function per method,
        # so each operation has an id of its own.
        version_answers = {
            **openapi.answers(wire.Version, {200: "What this backend is."}),
            **openapi.error_answers(openapi.Detail, {}, rate_limited=rate_limited),
        }

        def version_body() -> dict[str, str]:
            return {"version": VERSION, "backend": "results", "service": "airflow-jobwait reference service"}

        @router.get("/version", response_model=None, responses=version_answers)
        def version() -> dict[str, str]:
            return version_body()

        # HEAD answers the headers of a GET, no body to describe.
        head_answers = {200: {"description": "What GET would answer, without the body."}}
        head_answers.update(openapi.error_answers(openapi.Detail, {}, rate_limited=rate_limited))

        @router.head("/version", response_model=None, responses=head_answers)
        def version_head() -> dict[str, str]:
            return version_body()

        @router.get(
            "/status",
            dependencies=auth,
            response_model=None,
            responses={**openapi.answers(wire.Counts, {200: "Works per pipeline."}), **errors()},
        )
        async def status() -> JSONResponse:
            return await _call(store.status)

        @router.post(
            "/results",
            dependencies=auth,
            response_model=None,
            responses={
                **openapi.answers(wire.Deposited, {200: "Stored, all of them."}),
                **errors(True, e400=bad_body, e409="A work of that id exists already; nothing was stored."),
            },
            openapi_extra=openapi.json_body(wire.Works, "Works to store (ids unique within the batch)."),
        )
        async def deposit(request: Request) -> JSONResponse:
            return await _call(store.deposit, await _json_body(request))

        @router.put(
            "/results",
            dependencies=auth,
            response_model=None,
            responses={
                **openapi.answers(wire.Done, {200: "Updated, all of them."}),
                **errors(
                    True,
                    e400=bad_body,
                    e404="No work of some id; nothing was updated.",
                    e409="A locked work would change beyond `results.locked`; nothing was updated.",
                ),
            },
            openapi_extra=openapi.json_body(wire.WorkUpdates, "Works to update, by id (unique within the batch)."),
        )
        async def update(request: Request) -> JSONResponse:
            return await _call(store.update, await _json_body(request))

        @router.delete(
            "/results",
            dependencies=auth,
            response_model=None,
            responses={
                **openapi.answers(wire.Done, {200: "Deleted (unknown ones ignored)."}),
                **errors(e409="A work is locked; nothing was deleted."),
            },
            openapi_extra={
                "parameters": [
                    {
                        # Any name is a pipeline and any value an id: no query string is refused.
                        **openapi.parameter("pipeline", "query", Any, "`<pipeline>=<id>` pairs, repeated as needed."),
                        "style": "form",
                        "explode": True,
                    }
                ]
            },
        )
        async def delete(request: Request) -> JSONResponse:
            return await _call(store.delete, list(request.query_params.multi_items()))

        @router.post(
            "/view",
            dependencies=auth,
            response_model=None,
            responses={
                **openapi.answers(wire.Found, {200: "Works matching, in deposit order."}),
                **errors(True, e400=bad_query),
            },
            openapi_extra=openapi.json_body(wire.View, "Query, projection, skip and limit."),
        )
        async def view(request: Request) -> JSONResponse:
            return await _call(store.view, await _json_body(request))

        @router.post(
            "/view/count",
            dependencies=auth,
            response_model=None,
            responses={**openapi.answers(wire.Total, {200: "How many works match."}), **errors(True, e400=bad_query)},
            openapi_extra=openapi.json_body(wire.Count, "The query."),
        )
        async def count(request: Request) -> JSONResponse:
            return await _call(store.count, await _json_body(request))

        return router


def create(config: ServiceConfig, db: Database) -> ResultsStoreFamily:
    """Create the results store family (runs its DDL).

    :param config: Service settings.
    :param db: The service's database.
    """
    db.migrate(DDL)
    return ResultsStoreFamily(config, db)
