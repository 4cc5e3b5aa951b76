"""The one status vocabulary every wait speaks."""

from __future__ import annotations

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
