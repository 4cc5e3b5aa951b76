"""Dataset jobs and drafts (TensorBay Open API wire format, ``docs/jobs-api.md`` §2)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from airflow_jobwait.models.base import WireModel

#: Native statuses: ``QUEUING``/``PROCESSING`` are running; ``SUCCESS``, ``FAILED``, ``ABORTED`` terminal.
DATASET_JOB_STATUSES = ("QUEUING", "PROCESSING", "SUCCESS", "FAILED", "ABORTED")
DatasetJobType = Literal["squashAndMerge", "basicSearch"]
MergeStrategy = Literal["abort", "override", "skip"]


class DatasetJobSummary(WireModel):
    """What a wait reads of a dataset job: its id, when it was created, its status and why it failed.

    ``DatasetJob`` is this and the rest of the job. Parsed alone, for the job list's entries that
    the job-list poller reads every round (``client/coalesce_datasets.py``), the other fields are
    skipped unread (``extra="ignore"``): they cost most of the parsing and the poller has no use
    for them.

    :param job_id: The job's id (``jobId``).
    :param created_at: Unix seconds.
    :param status: Native status (``QUEUING``, ``PROCESSING``, ``SUCCESS``, ``FAILED``, ``ABORTED``).
        Kept as the service spells it; ``client.job_kinds`` maps it onto ``JobStatus``
        (``docs/jobs-api.md`` §5: any other status is a terminal failure, as in the SDK).
    :param error_message: Why the job failed (``""`` when it did not, and when the reply omits it,
        as the tensorbay SDK defaults it: client/job.py ``Job.error_message``; ``model_fields_set``
        tells the two apart).
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    created_at: int | None = None
    status: str | None = None
    error_message: str | None = ""


class DatasetJob(DatasetJobSummary):
    """One dataset job: ``DatasetJobSummary``'s fields and the rest (unknown fields kept).

    :param job_type: ``squashAndMerge`` or ``basicSearch``.
    :param started_at: Unix seconds; ``started_at``/``finished_at`` are ``None`` until set.
    :param description: ``""`` when omitted (the same SDK default as ``error_message``).
    :param result: squashAndMerge: ``{"draftNumber": int}``; basicSearch:
        ``{"searchResultId", "searchResultCommitId"}``; ``None`` until it succeeds.
    """

    model_config = ConfigDict(extra="allow")

    job_type: str | None = None
    title: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    started_at: int | None = None
    finished_at: int | None = None
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


class DatasetJobSummaryList(WireModel):
    """One page of ``GET /jobs`` as the job-list poller reads it: each entry's ``DatasetJobSummary``
    only, nothing else of the page (its paging fields are skipped as well)."""

    model_config = ConfigDict(extra="ignore")

    jobs: list[DatasetJobSummary] = Field(default_factory=list)


class DraftList(WireModel):
    """One page of ``GET /drafts``."""

    drafts: list[Draft] = Field(default_factory=list)
    offset: int = 0
    record_size: int = 0
    total_count: int = 0
