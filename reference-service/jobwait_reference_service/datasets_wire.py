"""Payloads of the dataset-job family (TensorBay Open API, ``docs/jobs-api.md`` §2) as pydantic models.

For the OpenAPI document (``openapi.py``); ``datasets.py`` parses and checks bodies itself. Beyond
these schemas the service refuses (400 ``InvalidParamsValue``) what depends on the dataset: a
branch or commit it does not have, a source branch equal to the target, a search filter it does
not know (``datasets_repo.parse_search``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

JobType = Literal["squashAndMerge", "basicSearch"]
JobStatus = Literal["QUEUING", "PROCESSING", "SUCCESS", "FAILED", "ABORTED"]
MAX_PAGE = 128
# A title must hold something besides white space.
Title = Annotated[str, Field(pattern=r"\S")]

ERROR_CODES = Literal[
    "AccessDenied",
    "Forbidden",
    "InvalidParamsValue",
    "NameConflict",
    "RequestParamsMissing",
    "ResourceNotExist",
    "InternalServerError",
    "Unauthorized",
]


class TensorBayError(BaseModel):
    """Every error of the family: the public client picks its exception from ``code``."""

    code: ERROR_CODES
    message: str


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SquashArguments(_Open):
    title: str
    sourceBranchName: str = Field(description="A branch of the dataset, not the target.")
    targetBranchName: str = Field(description="A branch of the dataset.")
    strategy: Literal["abort", "override", "skip"] | None = Field(None, description="On conflicts; default abort.")
    description: str | None = None


class SearchArguments(_Open):
    """As the public client sends them (``datasets_repo.parse_search``): ``commit`` (a branch or
    commit id, default ``main``), ``conjunction``, ``filters``, ``unit``, or ``conditions``."""

    commit: str | None = None


class SquashAndMergeJob(_Open):
    title: Title
    jobType: Literal["squashAndMerge"]
    arguments: SquashArguments
    description: str | None = None


class BasicSearchJob(_Open):
    title: Title
    jobType: Literal["basicSearch"]
    arguments: SearchArguments
    description: str | None = None


class CreateJob(RootModel[SquashAndMergeJob | BasicSearchJob]):
    """``POST /jobs``: a squash-and-merge or a basic search."""


class DatasetJob(BaseModel):
    jobId: str
    jobType: JobType
    title: str
    arguments: dict[str, Any]
    createdAt: int = Field(description="Unix seconds.")
    startedAt: int | None
    finishedAt: int | None
    status: JobStatus
    errorMessage: str = Field(description='"" when none.')
    result: dict[str, Any] | None
    results: dict[str, Any] | None = Field(description="A copy of `result` (what the public client reads).")
    description: str


class DatasetJobs(BaseModel):
    jobs: list[DatasetJob]
    offset: int
    recordSize: int
    totalCount: int


class Author(BaseModel):
    name: str
    date: int


class Draft(BaseModel):
    number: int
    title: str
    branchName: str
    status: Literal["OPEN", "CLOSED", "COMMITTED"]
    parentCommitId: str | None
    author: Author
    updatedAt: int
    description: str


class Drafts(BaseModel):
    drafts: list[Draft]
    offset: int
    recordSize: int
    totalCount: int


class Empty(BaseModel):
    """``{}``."""

    model_config = ConfigDict(extra="forbid")


class UserInfo(_Open):
    nickname: str
    email: str | None
    mobile: str | None
    description: str
    team: Any


# Query parameters; an empty value reads as absent.
Offset = Annotated[int, Field(ge=0)] | Literal[""]
Limit = Annotated[int, Field(ge=1, le=MAX_PAGE)] | Literal[""]
JobTypeParam = JobType | Literal[""]
