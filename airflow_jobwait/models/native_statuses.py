"""Every status a family's public SDK knows, mapped onto ``JobStatus`` as that SDK treats it.

The tables and the SDK files they come from are written down in ``docs/jobs-api.md`` §5. A status
our contract (§1-§3) names maps silently; one beyond it maps too, and ``note`` says so in one
sentence for the task log, because an operator reading "FAILED" should learn the service said
something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow_jobwait.exceptions import UnknownJobStatus
from airflow_jobwait.models.status import JobStatus

_S = JobStatus


@dataclass(frozen=True)
class StatusTable:
    """One family's native statuses.

    :param service: The service's name, for messages.
    :param known: Every native status its SDK knows, and what it means here.
    :param contract: The natives ``docs/jobs-api.md`` §1-§3 name (no note for these).
    :param otherwise: What a status unknown to the SDK too means; ``None``: the SDK rejects the
        reply, so do we (``UnknownJobStatus``, which ends a wait at once, as the SDK's does).
    :param otherwise_why: Why ``otherwise``, for the note.
    """

    service: str
    known: Mapping[str, JobStatus]
    contract: frozenset[str]
    otherwise: JobStatus | None
    otherwise_why: str

    def to_common(self, native: str, what: str) -> JobStatus:
        """The common status of ``native``.

        :param what: What reported it (e.g. ``"compute job 42"``), for the error.
        :raises UnknownJobStatus: Unknown to the SDK, which rejects such a reply.
        """
        status = self.known.get(native, self.otherwise)
        if status is None:
            raise UnknownJobStatus(
                f"{what} reported status {native!r}, unknown to the {self.service} SDK, which "
                f"{self.otherwise_why} (known: {', '.join(self.known)})",
                field="status",
            )
        return status

    def note(self, native: str, status: JobStatus) -> str | None:
        """The log sentence for a native status beyond our contract; ``None`` within it."""
        if native in self.contract:
            return None
        why = "" if native in self.known else f" ({self.otherwise_why})"
        return f"native status {native!r} ({self.service}), treated as {status.value}{why}"


MODZY = StatusTable(
    service="Modzy",
    known={
        # modzy/jobs.py Jobs.status; block_until_complete polls while SUBMITTED or IN_PROGRESS.
        "SUBMITTED": _S.SUBMITTED,
        "IN_PROGRESS": _S.IN_PROGRESS,
        "COMPLETED": _S.COMPLETED,
        "CANCELED": _S.CANCELED,
        "TIMEDOUT": _S.TIMEDOUT,
        # modzy/edge/proto/jobs/v1/job_pb2.py JobStatus (UNKNOWN, QUEUED, IN_PROGRESS, COMPLETE,
        # CANCELED, FAILED) and inferences_pb2.py InferenceStatus (adds FETCHING); the edge
        # client (edge/jobs.py, edge/inferences.py) polls until COMPLETE, CANCEL(L)ED or FAILED.
        "FAILED": _S.FAILED,
        "QUEUED": _S.SUBMITTED,
        "UNKNOWN": _S.SUBMITTED,
        "UNKNOWN_INFERENCE_STATUS": _S.SUBMITTED,
        "FETCHING": _S.IN_PROGRESS,
        "COMPLETE": _S.COMPLETED,
        "CANCELLED": _S.CANCELED,
    },
    contract=frozenset({"SUBMITTED", "IN_PROGRESS", "COMPLETED", "TIMEDOUT", "CANCELED", "FAILED"}),
    # modzy/jobs.py block_until_complete returns on any status but SUBMITTED/IN_PROGRESS, and its
    # samples then take only COMPLETED as success.
    otherwise=_S.FAILED,
    otherwise_why="its wait ends on any status but SUBMITTED and IN_PROGRESS; only COMPLETED is success",
)

TENSORBAY = StatusTable(
    service="TensorBay",
    known={
        # tensorbay/client/job.py _JOB_NOT_COMPLETE_STATUS = {"QUEUING", "PROCESSING"};
        # client/version.py _list_jobs documents SUCCESS, FAILED, ABORTED (SquashAndMerge.list_jobs
        # spells the last two FAIL and ABORT); BasicSearchJob.result reads results only on SUCCESS.
        "QUEUING": _S.SUBMITTED,
        "PROCESSING": _S.IN_PROGRESS,
        "SUCCESS": _S.COMPLETED,
        "FAILED": _S.FAILED,
        "ABORTED": _S.CANCELED,
        "FAIL": _S.FAILED,
        "ABORT": _S.CANCELED,
    },
    contract=frozenset({"QUEUING", "PROCESSING", "SUCCESS", "FAILED", "ABORTED"}),
    otherwise=_S.FAILED,
    otherwise_why="its Job.update(until_complete=True) ends on any status but QUEUING and PROCESSING; "
    "only SUCCESS has a result",
)

EVO_COMPUTE = StatusTable(
    service="Evo compute",
    known={
        # evo/compute/endpoints/models.py JobStatusEnum; client.py wait_for_results polls until
        # succeeded, failed or cancelled.
        "requested": _S.SUBMITTED,
        "in progress": _S.IN_PROGRESS,
        "cancelling": _S.IN_PROGRESS,
        "succeeded": _S.COMPLETED,
        "failed": _S.FAILED,
        "cancelled": _S.CANCELED,
        # The same file's JobStatusOngoing / JobStatusCompleted spell these with one "l".
        "canceling": _S.IN_PROGRESS,
        "canceled": _S.CANCELED,
    },
    contract=frozenset({"requested", "in progress", "cancelling", "succeeded", "failed", "cancelled"}),
    # JobStatusResponse.status is that enum: any other value fails validation (UnknownResponseError),
    # which wait_for_results does not retry.
    otherwise=None,
    otherwise_why="rejects the reply (JobStatusResponse validation), ending its wait",
)
