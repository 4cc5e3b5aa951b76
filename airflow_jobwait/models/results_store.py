"""Payloads of the results store (CHIME workflow Results API, ``docs/jobs-api.md`` §4).

Unlike the other families, the results store spells its fields as plain snake_case names on the
wire (``pipeline``, ``results``, ``event`` ...), so these models do not camelize.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from airflow_jobwait.models.base import WireModel
from airflow_jobwait.models.inference import InputResult, JobResults

WorkStatus = Literal["created", "queued", "running", "success", "failure"]
#: The statuses a work must have to be deposited (the service refuses the others).
DEPOSIT_STATUSES: tuple[str, ...] = ("success", "failure")

Number = int | float
"""Numbers keep their JSON type (``3`` stays ``3``): a locked work must read back byte-for-byte."""


class Work(WireModel):
    """One work: a unit of a pipeline, with its results, products and plots.

    Only ``id`` is required, because views with a projection answer partial works (``id`` is
    always kept). Fields the service did not send stay unset and are not sent back
    (``to_wire``/``to_xcom`` dump the fields that were set, explicit ``null`` included). Unknown
    fields are kept.

    :param id: Unique id of the work, across pipelines.
    :param pipeline: Name of the pipeline the work belongs to.
    :param results: The work's results; ``results["locked"]`` is the lock flag.
    :param event: Event numbers the work is about (matched as a whole by ``get_by_event``).
    :param creation: Unix seconds the work was created; ``start`` and ``stop`` likewise.
    :param status: ``created``, ``queued``, ``running``, ``success`` or ``failure``; only the last
        two can be deposited.
    """

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="allow", frozen=True)

    id: str = Field(min_length=1)
    pipeline: str | None = None
    site: str | None = None
    user: str | None = None
    function: str | None = None
    parameters: dict[str, Any] | None = None
    command: list[str] | str | None = None
    results: dict[str, Any] | None = None
    products: list[Any] | None = None
    plots: list[Any] | None = None
    tags: list[str] | None = None
    event: list[int] | None = None
    creation: Number | None = None
    start: Number | None = None
    stop: Number | None = None
    attempt: int | None = None
    status: WorkStatus | None = None
    timeout: Number | None = None
    retries: int | None = None
    priority: int | None = None
    config: dict[str, Any] | None = None
    notify: dict[str, Any] | None = None

    @property
    def locked(self) -> bool:
        """Whether ``results.locked`` is true (a locked work cannot be deleted or changed)."""
        return isinstance(self.results, dict) and self.results.get("locked") is True

    def to_wire(self) -> dict[str, Any]:
        """The work as the service stores it: the fields that were set, plain names."""
        return self.model_dump(mode="json", exclude_unset=True)

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe dict for XCom: the same as ``to_wire``."""
        return self.to_wire()

    @classmethod
    def from_job_results(
        cls,
        results: JobResults | Mapping[str, Any],
        pipeline: str,
        *,
        site: str | None = None,
        user: str | None = None,
        function: str | None = None,
        tags: Sequence[str] | None = None,
        event: Sequence[int] | None = None,
    ) -> list[Work]:
        """Same as ``works_from_job_results``."""
        return works_from_job_results(
            results, pipeline, site=site, user=user, function=function, tags=tags, event=event
        )


class ResultsStoreInfo(WireModel):
    """Answer of ``GET {base}/version``: ``version`` and whatever else the service says."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="allow", frozen=True)

    version: str


def work_id_for(job_id: str, source_key: str) -> str:
    """The id of the work holding one input's result: ``"<job id>:<source key>"``."""
    return f"{job_id}:{source_key}"


def works_from_job_results(
    results: JobResults | Mapping[str, Any],
    pipeline: str,
    *,
    site: str | None = None,
    user: str | None = None,
    function: str | None = None,
    tags: Sequence[str] | None = None,
    event: Sequence[int] | None = None,
) -> list[Work]:
    """One work per input of an inference job, ready to deposit.

    Ids are ``"<job id>:<source key>"``, so depositing the same job twice is a 409, and each run of
    a DAG (a new job) deposits new ids. Successful inputs become ``success`` works whose
    ``results`` are the input's outputs; failed inputs become ``failure`` works whose ``results``
    hold ``error``. ``parameters`` records ``job_id`` and ``source_key``; ``creation`` is the job's
    submit time and ``start``/``stop`` the input's, in unix seconds. Everything is derived from
    the results, so the works are the same on every try of a task.

    :param results: ``JobResults``, or its XCom JSON (what ``JobSensor`` pushes).
    :param pipeline: Pipeline the works go to.
    :param site: ``site`` of every work.
    :param user: ``user`` of every work.
    :param function: ``function`` of every work.
    :param tags: ``tags`` of every work.
    :param event: ``event`` of every work.
    :raises ValueError: ``results`` is a ``ResultsReference`` (results too large for XCom) or not
        job results; or ``pipeline`` is empty.
    """
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise ValueError(f"pipeline must be a non-empty string, got {pipeline!r}")
    if isinstance(results, Mapping) and results.get("too_large") is True:
        raise ValueError(
            f"the results of job {results.get('job_id')!r} were too large for XCom and a reference was pushed "
            "instead; fetch them with JobsHook(conn_id).get_results(job_id) first"
        )
    parsed = results if isinstance(results, JobResults) else JobResults.model_validate(results)
    job_id = parsed.job_identifier
    common: dict[str, Any] = {"pipeline": pipeline}
    for name, value in (("site", site), ("user", user), ("function", function)):
        if value is not None:
            common[name] = value
    if tags is not None:
        common["tags"] = list(tags)
    if event is not None:
        common["event"] = list(event)
    if parsed.submitted_at is not None:
        common["creation"] = parsed.submitted_at.timestamp()

    works: list[Work] = []
    for outcome, entries in (("success", parsed.results), ("failure", parsed.failures)):
        for source_key, entry in entries.items():
            if outcome == "success":
                work_results = entry.outputs
            else:
                work_results = {**entry.outputs, "error": entry.error or "no error given"}
            fields = {
                "id": work_id_for(job_id, source_key),
                "status": outcome,
                "results": work_results,
                "parameters": {"job_id": job_id, "source_key": source_key},
                **common,
                **_times(entry),
            }
            works.append(Work.model_validate(fields))
    return works


_HHMM_OFFSET = re.compile(r"([+-]\d\d)(\d\d)$")


def _unix(value: str | None) -> float | None:
    """Unix seconds of an ISO-8601 time (``Z``, ``+00:00`` or Modzy's ``+0000``); ``None`` if unreadable."""
    if not value:
        return None
    text = _HHMM_OFFSET.sub(r"\1:\2", value.strip().replace("Z", "+00:00"))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _times(entry: InputResult) -> dict[str, float]:
    times = {"start": _unix(entry.start_time), "stop": _unix(entry.end_time)}
    return {name: value for name, value in times.items() if value is not None}
