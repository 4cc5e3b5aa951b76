"""``ResultsHook``: the CHIME results store (workflow Results API), and its ``chime_results`` connection type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_jobwait.client import results_store as api
from airflow_jobwait.client.results_store import NotLockedError, UnknownWorksError, WorkLike
from airflow_jobwait.exceptions import JobWaitError
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.connection import CHIME_RESULTS
from airflow_jobwait.models.results_store import ResultsStoreInfo, Work

#: Fields ``get_locked`` returns (``id`` is always kept), as the public client asks for them.
LOCKED_PROJECTION: dict[str, bool] = {"event": True, "plots": True, "products": True, "results": True}


class ResultsHook(JobWaitHook):
    """Deposit, query, lock, unlock, update and delete works in the results store.

    A connection of type ``chime_results`` (default ``chime_results_default``): Host = the results
    base URL as workflow-core takes it (``https://frb.chimenet.ca/workflow/results``,
    ``http://localhost:8005``), Password = the token, sent as ``x-access-token`` (optional, as in
    workflow-core). The methods follow the public CHIME workflow ``Results`` client, with
    typed answers: views return ``Work`` models. The service's refusals raise the usual errors:
    ``Conflict`` (409: an id exists already, or a work is locked; the message names the ids),
    ``NotFound`` (404: update of unknown ids) and ``ApiError`` with status 400 (a query operator
    outside the supported subset, named). Bad arguments raise ``ValueError`` before any request.

    :param jobwait_conn_id: Airflow connection of type ``chime_results``.
    :param retry: Retry policy for transient failures.
    """

    connection_type = CHIME_RESULTS

    def info(self) -> ResultsStoreInfo:
        """The version of the results store (``GET {base}/version``)."""
        return self.call(api.info())

    def status(self) -> dict[str, int]:
        """The number of works per pipeline."""
        return self.call(api.status())

    def count(self, pipeline: str, query: Mapping[str, Any]) -> int:
        """The number of works of ``pipeline`` matching ``query``.

        :param pipeline: Name of the pipeline.
        :param query: MongoDB filter (``{}``: every work of the pipeline).
        """
        return self.call(api.count(pipeline, query))

    def view(
        self,
        pipeline: str,
        query: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> list[Work]:
        """Works of ``pipeline`` matching ``query``, in the order they were deposited.

        :param pipeline: Name of the pipeline (set in the query; it wins over a ``pipeline`` there).
        :param query: MongoDB filter.
        :param projection: ``{field: true}`` to keep only those fields, ``{field: false}`` to drop
            them (``id`` is always kept); ``None`` or ``{}``: whole works.
        :param skip: Number of matching works to skip (≥ 0).
        :param limit: At most this many works, 1..10000; ``0`` or ``-1``: no limit.
        """
        return self.call(api.view(pipeline, query, projection, skip, limit))

    def get_by_id(self, pipeline: str, ids: Sequence[str]) -> list[Work]:
        """The works of ``pipeline`` with these ids (unknown ids are left out).

        :param pipeline: Name of the pipeline.
        :param ids: The ids of the works.
        """
        return self.view(pipeline, {"id": {"$in": api.check_ids(ids)}}, limit=api.NO_LIMIT)

    def get_by_count(self, pipeline: str, count: int = 10) -> list[Work]:
        """The first ``count`` works of ``pipeline``.

        :param pipeline: Name of the pipeline.
        :param count: Number of works (``0`` or ``-1``: all).
        """
        return self.view(pipeline, {}, limit=api.check_limit(count, "count"))

    def get_by_event(self, pipeline: str, event_number: int) -> list[Work]:
        """The works of ``pipeline`` whose ``event`` is exactly ``[event_number]``.

        :param pipeline: Name of the pipeline.
        :param event_number: The event number.
        """
        if isinstance(event_number, bool) or not isinstance(event_number, int):
            raise ValueError(f"event_number must be an integer, got {event_number!r}")
        return self.view(pipeline, {"event": [event_number]}, limit=api.NO_LIMIT)

    def get_locked(self, pipeline: str, skip: int = 0, count: int = 10) -> list[Work]:
        """Locked works of ``pipeline``, with only ``id``, ``event``, ``plots``, ``products`` and ``results``.

        :param pipeline: Name of the pipeline.
        :param skip: Number of locked works to skip.
        :param count: At most this many works (``0`` or ``-1``: all).
        """
        return self.view(
            pipeline, {"results.locked": True}, LOCKED_PROJECTION, api.check_skip(skip), api.check_limit(count, "count")
        )

    def get_locked_count(self, pipeline: str) -> int:
        """The number of locked works of ``pipeline``.

        :param pipeline: Name of the pipeline.
        """
        return self.count(pipeline, {"results.locked": True})

    def deposit(self, works: Sequence[WorkLike]) -> dict[str, bool]:
        """Store new works, all or none; answers ``{pipeline: True}`` per pipeline deposited to.

        :param works: ``Work`` models or dicts; each needs ``id``, ``pipeline`` and status
            ``success`` or ``failure`` (else ``ValueError`` naming the work, before any request).
        :raises Conflict: A work with one of these ids exists (named); nothing was stored.

        Never sent twice blindly: if the answer is lost (no answer, a 5xx, a garbled body), the
        works are read back by id first; all stored as sent means the deposit happened.
        """
        call = api.deposit(works)
        sent: list[dict[str, Any]] = call.request.json_body
        return self.create_once(call, lambda: self._deposited(sent), f"deposit of {len(sent)} work(s)")

    def _deposited(self, sent: Sequence[Mapping[str, Any]]) -> dict[str, bool] | None:
        """``{pipeline: True}`` if every work of ``sent`` is stored as sent, else ``None``."""
        by_pipeline: dict[str, list[Mapping[str, Any]]] = {}
        for work in sent:
            by_pipeline.setdefault(str(work["pipeline"]), []).append(work)
        for pipeline, works in by_pipeline.items():
            stored = {w.id: w.to_wire() for w in self.get_by_id(pipeline, [str(w["id"]) for w in works])}
            for work in works:
                held = stored.get(str(work["id"]))
                # Deposits are all or none: a work missing, or another under the id, means not ours.
                if held is None or any(held.get(key) != value for key, value in work.items() if value is not None):
                    return None
        return dict.fromkeys(by_pipeline, True)

    def update(self, works: Sequence[WorkLike]) -> bool:
        """Change stored works, matched by ``id``: the fields given replace the stored ones.

        :param works: ``Work`` models or dicts (a dict may hold just ``id`` and the fields to change).
        :raises NotFound: An id is not stored (named); nothing was updated.
        :raises Conflict: A locked work would change in more than ``results.locked`` (named);
            nothing was updated.
        """
        return self.call(api.update(works))

    def delete_ids(self, pipeline: str, ids: Sequence[str]) -> bool:
        """Delete works of ``pipeline`` (unknown ids are ignored, so a retry is harmless).

        :param pipeline: Name of the pipeline.
        :param ids: The ids of the works.
        :raises Conflict: Some of the works are locked (named); nothing was deleted.
        """
        return self.call(api.delete(pipeline, ids))

    def lock(self, pipeline: str, ids: Sequence[str]) -> bool:
        """Lock works: a locked work cannot be deleted, nor changed but for unlocking.

        :param pipeline: Name of the pipeline.
        :param ids: The ids of the works.
        :raises UnknownWorksError: Some ids are not works of ``pipeline`` (named); nothing was locked.
        """
        return self._set_lock(pipeline, ids, True)

    def unlock(self, pipeline: str, ids: Sequence[str], force: bool = False) -> bool:
        """Unlock works.

        The public client asks a person to confirm an unlock unless ``force`` is set; a DAG cannot
        answer, so here ``force=True`` is required.

        :param pipeline: Name of the pipeline.
        :param ids: The ids of the works.
        :param force: Must be ``True``.
        :raises ValueError: ``force`` is not ``True`` (no request is sent).
        :raises UnknownWorksError: Some ids are not works of ``pipeline`` (named); nothing was unlocked.
        :raises NotLockedError: Some works are not locked (named): nobody locked them, and unlocking
            would write ``results.locked`` into them; nothing was unlocked.
        """
        pipeline = api.check_pipeline(pipeline)
        ids = api.check_ids(ids)
        if force is not True:
            raise ValueError(
                f"refusing to unlock works {_shown(ids)} of pipeline {pipeline!r} without force=True: the public "
                "client asks a person to confirm an unlock, and a DAG cannot, so pass force=True"
            )
        return self._set_lock(pipeline, ids, False)

    def _set_lock(self, pipeline: str, ids: Sequence[str], locked: bool) -> bool:
        """get_by_id, set ``results.locked``, update: only ``id`` and ``results`` are sent back.

        The documents are read and written as raw JSON so nothing but the flag can change.
        """
        pipeline = api.check_pipeline(pipeline)
        ids = api.check_ids(ids)
        docs = self.call(api.view_documents(pipeline, {"id": {"$in": ids}}, limit=api.NO_LIMIT))
        found = {doc["id"] for doc in docs}
        missing = [work_id for work_id in dict.fromkeys(ids) if work_id not in found]
        verb = "lock" if locked else "unlock"
        if missing:
            raise UnknownWorksError(
                f"cannot {verb} works of pipeline {pipeline!r}: no works with ids {_shown(missing)} in it; "
                f"nothing was {verb}ed",
                pipeline,
                missing,
            )
        if not locked:
            unlocked = [doc["id"] for doc in docs if not _is_locked(doc)]
            if unlocked:
                raise NotLockedError(
                    f"cannot unlock works of pipeline {pipeline!r}: works {_shown(unlocked)} are not locked "
                    "(nobody locked them); nothing was unlocked",
                    pipeline,
                    unlocked,
                )
        changes = []
        for doc in docs:
            results = doc.get("results")
            if results is not None and not isinstance(results, dict):
                raise JobWaitError(f"work {doc['id']!r} has 'results' that is not an object; cannot {verb} it")
            changes.append({"id": doc["id"], "results": {**(results or {}), "locked": locked}})
        return self.update(changes)

    def check_connection(self) -> str:
        """``GET {base}/status``: the works per pipeline (the store's ``version`` needs no token)."""
        pipelines = self.status()
        return f"connected to the CHIME results store at {self.client_config.base_url}: {len(pipelines)} pipeline(s)"


def _is_locked(doc: Mapping[str, Any]) -> bool:
    results = doc.get("results")
    return isinstance(results, dict) and results.get("locked") is True


def _shown(ids: Sequence[str], most: int = 20) -> str:
    """Ids for an error message, bounded so a huge batch cannot bloat it."""
    shown = ", ".join(repr(work_id) for work_id in ids[:most])
    return f"[{shown}]" if len(ids) <= most else f"[{shown}, ... and {len(ids) - most} more]"
