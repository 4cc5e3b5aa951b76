"""Every job kind's status vocabulary mapped onto ``JobStatus``, in one place.

A wait (``JobTrigger``, ``JobSensor``, ``JobsHook.wait_for_job``) knows a job by its kind, its id
and a small JSON-safe ``ref`` (the other path parameters the kind needs). This module turns those
into the calls that read its status, its results and cancel it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from airflow_jobwait.client import inference
from airflow_jobwait.client.http import Call
from airflow_jobwait.models import Job, JobResults, JobStatus

JobKind = Literal["inference", "dataset", "compute"]


@dataclass(frozen=True)
class JobState:
    """A job's status in the common vocabulary, with what the kind adds.

    :param status: The common status.
    :param native_status: The status as the kind's API spells it.
    :param message: Error or progress message, when the API gives one.
    :param progress: Percent done, when the API gives it.
    """

    status: JobStatus
    native_status: str
    message: str | None = None
    progress: float | None = None


@dataclass(frozen=True)
class KindCalls:
    """The calls a wait needs for one kind; ``progress`` (optional) describes a running job's inputs."""

    status: Callable[[str, Mapping[str, str]], Call[JobState]]
    results: Callable[[str, Mapping[str, str]], Call[dict[str, Any]]]
    cancel: Callable[[str, Mapping[str, str]], Call[Any]]
    progress: Callable[[str, Mapping[str, str]], Call[str]] | None = None


T = TypeVar("T")
U = TypeVar("U")


def then(call: Call[T], convert: Callable[[T], U]) -> Call[U]:
    """The same request, its parsed answer passed through ``convert``."""
    return Call(call.request, lambda response: convert(call.parse(response)))


def _inference_state(job: Job) -> JobState:
    return JobState(status=job.status, native_status=job.status.value)


def _inference_progress(results: JobResults) -> str:
    return f"{results.completed} completed, {results.failed} failed of {results.total} inputs"


_KINDS: dict[str, KindCalls] = {
    "inference": KindCalls(
        status=lambda job_id, ref: then(inference.get_job(job_id), _inference_state),
        results=lambda job_id, ref: then(inference.get_results(job_id), JobResults.to_xcom),
        cancel=lambda job_id, ref: inference.cancel_job(job_id),
        progress=lambda job_id, ref: then(inference.get_results(job_id), _inference_progress),
    ),
}


def kind_calls(job_kind: str) -> KindCalls:
    """:raises ValueError: Unknown kind (names it and the known ones)."""
    try:
        return _KINDS[job_kind]
    except KeyError:
        raise ValueError(f"job_kind must be one of {sorted(_KINDS)}, got {job_kind!r}") from None


def status_call(job_kind: str, job_id: str, ref: Mapping[str, str] | None = None) -> Call[JobState]:
    """The call that reads a job's status, mapped to ``JobState``."""
    return kind_calls(job_kind).status(job_id, ref or {})


def results_call(job_kind: str, job_id: str, ref: Mapping[str, str] | None = None) -> Call[dict[str, Any]]:
    """The call that reads a finished job's results as JSON-safe data for XCom."""
    return kind_calls(job_kind).results(job_id, ref or {})


def cancel_call(job_kind: str, job_id: str, ref: Mapping[str, str] | None = None) -> Call[Any]:
    """The call that cancels (aborts) a job."""
    return kind_calls(job_kind).cancel(job_id, ref or {})


def progress_call(job_kind: str, job_id: str, ref: Mapping[str, str] | None = None) -> Call[str] | None:
    """The call that describes a running job's progress, if the kind has one."""
    build = kind_calls(job_kind).progress
    return None if build is None else build(job_id, ref or {})
