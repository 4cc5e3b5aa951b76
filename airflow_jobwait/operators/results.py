"""Operators of the results store: deposit, query, lock, unlock and delete works."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_jobwait.client import results_store as api
from airflow_jobwait.exceptions import Conflict
from airflow_jobwait.hooks.connection import CHIME_RESULTS
from airflow_jobwait.hooks.jobs import JobsHook
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.lineage import declare_on_outlets, works_event
from airflow_jobwait.models.results_store import Work, works_from_job_results

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: XCom key under which ``DepositResultsOperator`` pushes the ids it deposited.
WORK_IDS_KEY = "work_ids"


class _ResultsStoreOperator(BaseOperator):
    """Shared by the results store operators: the connection and the hook."""

    ui_color = "#f0e4d0"

    def __init__(self, *, conn_id: str = CHIME_RESULTS.default_conn_id, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @cached_property
    def hook(self) -> ResultsHook:
        return ResultsHook(self.conn_id)


def _as_int(value: Any, name: str) -> int:
    """A rendered integer argument (a Jinja template renders to a string)."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _as_json(value: Any, name: str) -> Any:
    """A rendered object/list argument: a JSON string (from a Jinja template) is decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"{name} must be a list or object (or its JSON), got {value[:200]!r}") from None
    return value


class DepositResultsOperator(_ResultsStoreOperator):
    """Deposit works into the results store; return ``{pipeline: True}``.

    Give either ``works`` or ``job_results`` (the results of an inference job, e.g. a
    ``JobSensor``'s ``.output``: one work per input, see ``works_from_job_results``). The ids
    deposited are pushed to XCom under ``work_ids`` (``deposit.output["work_ids"]``).

    A retried task does not fail on its own earlier deposit: when the service answers 409 and every
    work is already stored exactly as this task would store it (``results.locked`` aside), the
    deposit counts as done. Any other clash fails the task, naming the ids.

    :param works: ``Work`` models or dicts, each with ``id``, ``pipeline`` and status ``success``
        or ``failure`` (templated).
    :param job_results: ``JobResults`` or its XCom JSON (templated). If it is a ``ResultsReference``
        (results too large for XCom), the results are fetched from the service.
    :param pipeline: Pipeline of the works made from ``job_results`` (templated; required with it).
    :param site: ``site`` of the works made from ``job_results`` (templated).
    :param user: ``user`` of the works made from ``job_results`` (templated).
    :param function: ``function`` of the works made from ``job_results`` (templated).
    :param tags: ``tags`` of the works made from ``job_results`` (templated).
    :param event: ``event`` of the works made from ``job_results`` (templated).
    :param conn_id: Airflow connection of type ``chime_results`` (default ``chime_results_default``).
    """

    template_fields: Sequence[str] = ("works", "job_results", "pipeline", "site", "user", "function", "tags", "event")
    template_fields_renderers = {"works": "json", "job_results": "json"}

    def __init__(
        self,
        *,
        works: Sequence[Work | Mapping[str, Any]] | None = None,
        job_results: Any = None,
        pipeline: str | None = None,
        site: str | None = None,
        user: str | None = None,
        function: str | None = None,
        tags: list[str] | None = None,
        event: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (works is None) == (job_results is None):
            raise ValueError(f"{kwargs.get('task_id')}: give exactly one of works= or job_results=")
        if job_results is not None and pipeline is None:
            raise ValueError(f"{kwargs.get('task_id')}: job_results= needs pipeline=, the pipeline of the works")
        self.works = works
        self.job_results = job_results
        self.pipeline = pipeline
        self.site = site
        self.user = user
        self.function = function
        self.tags = tags
        self.event = event

    def build_works(self) -> list[Work]:
        """The works to deposit, from the rendered arguments.

        :raises ValueError: An argument is malformed; the message names it.
        """
        if self.works is not None:
            works = _as_json(self.works, "works")
            if isinstance(works, (str, Mapping)) or not isinstance(works, Sequence):
                raise ValueError(f"works must be a list of works, got {type(works).__name__}")
            return [api.as_work(work, index) for index, work in enumerate(works)]
        results = _as_json(self.job_results, "job_results")
        if isinstance(results, Mapping) and results.get("too_large") is True:
            self.log.info("results of job %s were too large for XCom: fetching them", results.get("job_id"))
            if results.get("job_kind", "inference") != "inference":
                raise ValueError(f"job_results must be inference job results, not {results.get('job_kind')!r}")
            # Read from the inference service the reference names (its connection, not the store's).
            inference_conn = str(results["conn_id"]) if results.get("conn_id") else None
            results = JobsHook(inference_conn).get_results(str(results["job_id"]))
        if not isinstance(results, Mapping) and not hasattr(results, "job_identifier"):
            raise ValueError(f"job_results must be inference job results, got {type(results).__name__}")
        return works_from_job_results(
            results,
            str(self.pipeline),
            site=self.site,
            user=self.user,
            function=self.function,
            tags=self.tags,
            event=self.event,
        )

    def execute(self, context: Context) -> dict[str, bool]:
        works = self.build_works()
        if not works:
            raise ValueError("there are no works to deposit (job_results has no inputs)")
        payload = api.deposit_payload(works)  # refuses a bad status before any request
        try:
            answer = self.hook.deposit(works)
        except Conflict:
            if not self._already_deposited(payload):
                raise
            answer = dict.fromkeys((work["pipeline"] for work in payload), True)
            self.log.info("the %d works were already deposited, as they are (an earlier try)", len(payload))
        context["ti"].xcom_push(key=WORK_IDS_KEY, value=[work["id"] for work in payload])
        self.log.info("deposited %d works: %s", len(payload), answer)
        # Lineage: asset outlets get the deposited ids, as a NewWorksTrigger would report them.
        declare_on_outlets(self, works_event(self.conn_id, works))
        return answer

    def _already_deposited(self, payload: list[dict[str, Any]]) -> bool:
        """Whether every work is stored exactly as in ``payload`` (``results.locked`` aside)."""
        by_pipeline: dict[str, list[dict[str, Any]]] = {}
        for work in payload:
            by_pipeline.setdefault(work["pipeline"], []).append(work)
        for pipeline, works in by_pipeline.items():
            ids = [work["id"] for work in works]
            stored = {
                doc["id"]: doc
                for doc in self.hook.call(api.view_documents(pipeline, {"id": {"$in": ids}}, limit=api.NO_LIMIT))
            }
            if any(work["id"] not in stored or _unlocked(stored[work["id"]]) != _unlocked(work) for work in works):
                return False
        return True


def _unlocked(work: Mapping[str, Any]) -> str:
    """Canonical JSON of a work without ``results.locked``."""
    rest = dict(work)
    if isinstance(rest.get("results"), dict):
        rest["results"] = {key: value for key, value in rest["results"].items() if key != "locked"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


class QueryResultsOperator(_ResultsStoreOperator):
    """View works of a pipeline; return them as a JSON list (``Work.to_xcom()`` of each).

    :param pipeline: Name of the pipeline (templated).
    :param query: MongoDB filter (templated; a JSON string is decoded).
    :param projection: ``{field: true|false}`` (templated); ``id`` is always kept.
    :param skip: Number of matching works to skip (templated).
    :param limit: At most this many works, 1..10000; ``0`` or ``-1``: no limit (templated).
    :param conn_id: Airflow connection of type ``chime_results`` (default ``chime_results_default``).
    """

    template_fields: Sequence[str] = ("pipeline", "query", "projection", "skip", "limit")
    template_fields_renderers = {"query": "json", "projection": "json"}

    def __init__(
        self,
        *,
        pipeline: str,
        query: Mapping[str, Any] | str | None = None,
        projection: Mapping[str, Any] | str | None = None,
        skip: int | str = 0,
        limit: int | str = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.query = query
        self.projection = projection
        self.skip = skip
        self.limit = limit

    def execute(self, context: Context) -> list[dict[str, Any]]:
        works = self.hook.view(
            self.pipeline,
            _as_json(self.query, "query") or {},
            _as_json(self.projection, "projection"),
            _as_int(self.skip, "skip"),
            _as_int(self.limit, "limit"),
        )
        self.log.info("%d works of pipeline %r match", len(works), self.pipeline)
        return [work.to_xcom() for work in works]


class _IdsOperator(_ResultsStoreOperator):
    """An operator acting on works of a pipeline named by id."""

    template_fields: Sequence[str] = ("pipeline", "ids")

    def __init__(self, *, pipeline: str, ids: Sequence[str] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.ids = ids

    def rendered_ids(self) -> list[str]:
        """The ids, a JSON string (from a Jinja template) decoded."""
        ids = self.ids
        if isinstance(ids, str) and ids.lstrip().startswith("["):
            ids = _as_json(ids, "ids")
        return api.check_ids(ids)


class LockResultsOperator(_IdsOperator):
    """Lock works: a locked work cannot be deleted, nor changed but for unlocking. Returns the ids.

    :param pipeline: Name of the pipeline (templated).
    :param ids: Ids of the works (templated; e.g. ``deposit.output["work_ids"]``).
    :param conn_id: Airflow connection of type ``chime_results`` (default ``chime_results_default``).
    """

    def execute(self, context: Context) -> list[str]:
        ids = self.rendered_ids()
        self.hook.lock(self.pipeline, ids)
        self.log.info("locked %d works of pipeline %r", len(ids), self.pipeline)
        return ids


class UnlockResultsOperator(_IdsOperator):
    """Unlock works; returns the ids. Needs ``force=True``: nobody can confirm the unlock in a DAG.

    :param pipeline: Name of the pipeline (templated).
    :param ids: Ids of the works (templated).
    :param force: Must be ``True``; otherwise the task fails, saying so.
    :param conn_id: Airflow connection of type ``chime_results`` (default ``chime_results_default``).
    """

    def __init__(self, *, pipeline: str, ids: Sequence[str] | str, force: bool = False, **kwargs: Any) -> None:
        super().__init__(pipeline=pipeline, ids=ids, **kwargs)
        self.force = force

    def execute(self, context: Context) -> list[str]:
        ids = self.rendered_ids()
        self.hook.unlock(self.pipeline, ids, force=self.force)
        self.log.info("unlocked %d works of pipeline %r", len(ids), self.pipeline)
        return ids


class DeleteResultsOperator(_IdsOperator):
    """Delete works (unknown ids are ignored; locked works fail the task, named). Returns the ids.

    :param pipeline: Name of the pipeline (templated).
    :param ids: Ids of the works (templated).
    :param conn_id: Airflow connection of type ``chime_results`` (default ``chime_results_default``).
    """

    def execute(self, context: Context) -> list[str]:
        ids = self.rendered_ids()
        self.hook.delete_ids(self.pipeline, ids)
        self.log.info("deleted %d works of pipeline %r", len(ids), self.pipeline)
        return ids
