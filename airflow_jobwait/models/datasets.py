"""Dataset jobs and drafts (TensorBay Open API wire format, ``docs/jobs-api.md`` §2)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from airflow_jobwait.models.base import WireModel

#: Native statuses: ``QUEUING``/``PROCESSING`` are running; ``SUCCESS``, ``FAILED``, ``ABORTED`` terminal.
DATASET_JOB_STATUSES = ("QUEUING", "PROCESSING", "SUCCESS", "FAILED", "ABORTED")
DatasetJobType = Literal["squashAndMerge", "basicSearch"]
MergeStrategy = Literal["abort", "override", "skip"]


class DatasetJob(WireModel):
    """One dataset job.

    :param job_id: The job's id (``jobId``).
    :param job_type: ``squashAndMerge`` or ``basicSearch``.
    :param created_at: Unix seconds; ``started_at``/``finished_at`` are ``None`` until set.
    :param status: Native status (``QUEUING``, ``PROCESSING``, ``SUCCESS``, ``FAILED``, ``ABORTED``).
        Kept as the service spells it; ``client.job_kinds`` maps it onto ``JobStatus``
        (``docs/jobs-api.md`` §5: any other status is a terminal failure, as in the SDK).
    :param error_message: Why the job failed (``""`` when it did not, and when the reply omits it,
        as the tensorbay SDK defaults it: client/job.py ``Job.error_message``).
    :param description: ``""`` when omitted (the same SDK default).
    :param result: squashAndMerge: ``{"draftNumber": int}``; basicSearch:
        ``{"searchResultId", "searchResultCommitId"}``; ``None`` until it succeeds.
    """

    job_id: str
    job_type: str | None = None
    title: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    status: str | None = None
    error_message: str | None = ""
    result: dict[str, Any] | None = None
    description: str | None = ""

    @property
    def draft_number(self) -> int | None:
        """The draft a successful squash-and-merge produced, if any."""
        number = (self.result or {}).get("draftNumber")
        return number if isinstance(number, int) and not isinstance(number, bool) else None


class DraftAuthor(WireModel):
    """Who created a draft, and when (unix seconds)."""

    name: str | None = None
    date: int | None = None


class Draft(WireModel):
    """An uncommitted snapshot on top of a branch (a squash-and-merge's result).

    :param status: ``OPEN``, ``CLOSED`` or ``COMMITTED``.
    """

    number: int
    title: str | None = None
    branch_name: str | None = None
    status: str | None = None
    parent_commit_id: str | None = None
    author: DraftAuthor | None = None
    updated_at: int | None = None
    description: str | None = None


class SquashAndMergeArguments(WireModel):
    """``arguments`` of a squashAndMerge job: squash ``source`` onto ``target`` as a draft titled ``title``.

    :param strategy: On a conflicting path: ``abort`` fails the job, ``override`` takes the
        source's version, ``skip`` keeps the target's.
    """

    title: str = Field(min_length=1)
    source_branch_name: str = Field(min_length=1)
    target_branch_name: str = Field(min_length=1)
    strategy: MergeStrategy = "abort"
    description: str | None = None


class DatasetJobList(WireModel):
    """One page of ``GET /jobs``."""

    jobs: list[DatasetJob] = Field(default_factory=list)
    offset: int = 0
    record_size: int = 0
    total_count: int = 0


class DraftList(WireModel):
    """One page of ``GET /drafts``."""

    drafts: list[Draft] = Field(default_factory=list)
    offset: int = 0
    record_size: int = 0
    total_count: int = 0
