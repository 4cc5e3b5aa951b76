"""The one status vocabulary every wait speaks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class JobStatus(str, Enum):
    """Status of a remote job, as the inference API spells it.

    ``SUBMITTED`` and ``IN_PROGRESS`` are running; ``COMPLETED`` is success;
    ``TIMEDOUT``, ``CANCELED`` and ``FAILED`` are terminal failures.
    """

    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    TIMEDOUT = "TIMEDOUT"
    CANCELED = "CANCELED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change any more."""
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        return self is JobStatus.COMPLETED

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.TIMEDOUT, JobStatus.CANCELED, JobStatus.FAILED})


# Slots: the pollers keep one per waited job (the last status known, the last told), 10,000 at a time.
@dataclass(frozen=True, slots=True)
class JobState:
    """A job's status in the common vocabulary, with what the kind adds.

    :param status: The common status.
    :param native_status: The status as the kind's API spells it.
    :param message: Why a job failed (its error), or how far a running one got, when the API says.
    :param progress: Percent done, when the API gives it.
    :param note: Set when ``native_status`` is beyond our wire contract (``docs/jobs-api.md`` §5):
        one sentence saying what the service reported and how it was treated, for the task log.
    """

    status: JobStatus
    native_status: str
    message: str | None = None
    progress: float | None = None
    note: str | None = None
