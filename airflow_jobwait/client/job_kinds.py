"""Every job kind's status vocabulary mapped onto ``JobStatus``, in one place.

A wait (``JobTrigger``, ``JobSensor``, ``JobsHook.wait_for_job``) knows a job by its kind, its id
and a small JSON-safe ``ref`` (the other path parameters the kind needs). This module turns those
into the calls that read its status, its results and cancel it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from airflow_jobwait.client import compute, datasets, inference
from airflow_jobwait.client.http import Call, retry_after_seconds
from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.models import Job, JobResults
from airflow_jobwait.models.compute import ComputeJobRef, ComputeStatus
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobSummary
from airflow_jobwait.models.native_statuses import EVO_COMPUTE, TENSORBAY
from airflow_jobwait.models.status import JobState

__all__ = [
    "JobKind",
    "JobState",
    "KindCalls",
    "cancel_call",
    "dataset_state",
    "kind_calls",
    "progress_call",
    "results_call",
    "status_call",
    "with_retry_after",
]

JobKind = Literal["inference", "dataset", "compute"]


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


def with_retry_after(call: Call[T]) -> Call[tuple[T, float | None]]:
    """The same call, with its successful answer's ``Retry-After`` (seconds, or ``None``): a
    service's hint of when to poll a job again (``client/poll_schedule.py``)."""
    return Call(call.request, lambda response: (call.parse(response), retry_after_seconds(response)))


def _inference_state(job: Job) -> JobState:
    return job.state


def _inference_progress(results: JobResults) -> str:
    return f"{results.completed} completed, {results.failed} failed of {results.total} inputs"


def _require(ref: Mapping[str, str], kind: str, *keys: str) -> list[str]:
    """The values of ``keys`` in a kind's ``ref``; :raises ValueError: one is missing (names it)."""
    missing = [key for key in keys if not ref.get(key)]
    if missing:
        raise ValueError(f"job_ref of a {kind} job needs {', '.join(repr(k) for k in missing)}; got {dict(ref)!r}")
    return [ref[key] for key in keys]


def _dataset_args(job_id: str, ref: Mapping[str, str]) -> tuple[str, str, str]:
    # The tensorbay SDK sends jobType on every job call (client/version.py JobMixin): no default.
    dataset_id, job_type = _require(ref, "dataset", "dataset_id", "job_type")
    return dataset_id, job_id, job_type


def dataset_state(job: DatasetJobSummary, known: JobState | None = None) -> JobState:
    """A dataset job's status (a whole job's, or a job list entry's) in the common vocabulary; a
    status beyond the contract is a failure, as in the SDK (``docs/jobs-api.md`` §5).

    :param known: The state this job was last read in. It is answered as it is when the job still
        reads the same (its status and message): a job list poller reads most jobs unchanged in
        most rounds, and need not build their states again.
    :raises InvalidResponse: It has no status (names the field).
    """
    message = job.error_message or None
    if known is not None and known.native_status == job.status and known.message == message:
        return known
    if job.status is None:  # the SDK reads job_info["status"] unguarded (client/job.py Job.update)
        raise InvalidResponse(f"dataset job {job.job_id} has no status", field="status")
    status = TENSORBAY.to_common(job.status, f"dataset job {job.job_id}")
    note = TENSORBAY.note(job.status, status)
    return JobState(status=status, native_status=job.status, message=message, note=note)


def _compute_ref(job_id: str, ref: Mapping[str, str]) -> ComputeJobRef:
    org_id, topic, task = _require(ref, "compute", "org_id", "topic", "task")
    return ComputeJobRef(org_id=org_id, topic=topic, task=task, job_id=job_id)


def _compute_state(job_id: str) -> Callable[[ComputeStatus], JobState]:
    def convert(body: ComputeStatus) -> JobState:
        status = EVO_COMPUTE.to_common(body.status, f"compute job {job_id}")
        # A failed or cancelled job's Error says why; a running job's message says how far it got.
        message = body.error.describe() if body.error else body.message
        note = EVO_COMPUTE.note(body.status, status)
        return JobState(status=status, native_status=body.status, message=message, progress=body.progress, note=note)

    return convert


_KINDS: dict[str, KindCalls] = {
    "inference": KindCalls(
        status=lambda job_id, ref: then(inference.get_job(job_id), _inference_state),
        results=lambda job_id, ref: then(inference.get_results(job_id), JobResults.to_xcom),
        cancel=lambda job_id, ref: inference.cancel_job(job_id),
        progress=lambda job_id, ref: then(inference.get_results(job_id), _inference_progress),
    ),
    # TensorBay dataset jobs; ref: {"dataset_id", "job_type"}. Results are the whole job (with ``result``).
    "dataset": KindCalls(
        status=lambda job_id, ref: then(datasets.get_job(*_dataset_args(job_id, ref)), dataset_state),
        results=lambda job_id, ref: then(datasets.get_job(*_dataset_args(job_id, ref)), DatasetJob.to_xcom),
        cancel=lambda job_id, ref: datasets.abort_job(*_dataset_args(job_id, ref)),
    ),
    # Evo compute tasks; ref: {"org_id", "topic", "task"}. Results are the task's results object.
    "compute": KindCalls(
        status=lambda job_id, ref: then(compute.get_status(_compute_ref(job_id, ref)), _compute_state(job_id)),
        results=lambda job_id, ref: compute.get_results(_compute_ref(job_id, ref)),
        cancel=lambda job_id, ref: compute.cancel(_compute_ref(job_id, ref)),
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
