"""Payloads of the inference family (Modzy API, ``docs/jobs-api.md`` §1) as pydantic models.

They describe the wire for the OpenAPI document (``openapi.py``); the routes still parse bodies
with ``json_body.parse_json`` and validate them in ``inference.py``, whose checks these schemas
mirror: a body valid here is one the service takes (beyond it: ``embedded`` values must decode,
the ``test`` field needs ``--test-controls``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from jobwait_reference_service.inference_models import MODELS, VERSION

#: Mirrors of ``inference.py``'s limits (imported there from here would make a cycle of nothing).
MAX_BATCH_IDS = 500
MAX_SOURCES = 10_000
MAX_WATCH_TIMEOUT_S = 60.0
MAX_IDEMPOTENCY_KEY = 255
MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000

JobStatus = Literal["SUBMITTED", "IN_PROGRESS", "COMPLETED", "TIMEDOUT", "CANCELED", "FAILED"]
NonEmpty = Annotated[str, Field(min_length=1)]
# A data URI (``data:<media type>[;base64],<data>``), as the public client's submit_embedded sends.
DataUri = Annotated[str, Field(pattern=r"^data:[^,]*,")]


class _Open(BaseModel):
    """Modzy adds fields over time; clients must take extra ones."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- requests


class ModelRef(BaseModel):
    identifier: str = Field(json_schema_extra={"enum": sorted(MODELS)}, description="A model this service runs.")
    version: str = Field(json_schema_extra={"enum": [VERSION]})


class TextInput(BaseModel):
    type: Literal["text"]
    sources: dict[NonEmpty, Annotated[dict[str, str], Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_SOURCES, description="{source key: {input name: text}}; a model reads the first."
    )


class EmbeddedInput(BaseModel):
    type: Literal["embedded"]
    sources: dict[NonEmpty, Annotated[dict[str, DataUri], Field(min_length=1)]] = Field(
        min_length=1,
        max_length=MAX_SOURCES,
        description="{source key: {input name: data URI}}; a base64 payload must decode to UTF-8 text (else 400).",
    )


class SubmitJob(_Open):
    """``POST /api/jobs``. Other top-level fields are ignored, except ``test`` [ext, test controls only]."""

    model: ModelRef
    explain: bool = False
    input: TextInput | EmbeddedInput = Field(discriminator="type")


class WatchJobs(BaseModel):
    """``POST /api/jobs:watch`` [ext]."""

    identifiers: list[NonEmpty] = Field(min_length=1, max_length=MAX_BATCH_IDS)
    timeout: float = Field(30.0, gt=0, le=MAX_WATCH_TIMEOUT_S, description="Seconds to wait at most.")
    known: dict[str, str] = Field(default_factory=dict, description="{job identifier: status the caller knows}")


# ---------------------------------------------------------------- answers


class JobModel(BaseModel):
    identifier: str
    name: str
    version: str


class Team(BaseModel):
    identifier: str


class User(BaseModel):
    identifier: str
    firstName: str
    lastName: str
    email: str


class Job(_Open):
    """A job, as every job route answers it."""

    jobIdentifier: str
    status: JobStatus
    model: JobModel
    totalInputs: int
    explain: bool
    jobType: str
    accountIdentifier: str
    team: Team
    user: User
    jobInputs: dict[str, list[str]]
    submittedAt: str
    updatedAt: str
    imageClassificationModel: bool
    accessKey: str = Field(description="The key's public identifier, never the secret.")


class Jobs(BaseModel):
    """Batch status and watch [ext]: ``{"jobs": [Job, ...]}``."""

    jobs: list[Job]


class JobList(RootModel[list[Job]]):
    """Job history: a bare array."""


class Voting(BaseModel):
    up: int
    down: int


class InputResult(_Open):
    """One input's result; a model's outputs sit next to these fields (e.g. ``results.json``)."""

    status: Literal["SUCCESSFUL", "FAILED"]
    engine: str
    startTime: str
    updateTime: str
    endTime: str
    elapsedTime: int
    voting: Voting
    modelLatency: float | None = None
    error: str | None = None


class Results(BaseModel):
    jobIdentifier: str
    accountIdentifier: str
    submittedByKey: str
    total: int
    completed: int
    failed: int
    finished: bool
    explained: bool
    submittedAt: str
    startingResultSummarizing: str | None
    resultSummarizing: str | None
    averageModelLatency: float
    totalModelLatency: float
    team: Team
    results: dict[str, InputResult]
    failures: dict[str, InputResult]


class ModelSummary(BaseModel):
    modelId: str
    latestVersion: str
    versions: list[str]


class ModelSummaries(RootModel[list[ModelSummary]]):
    pass


class ModelDetail(_Open):
    modelId: str
    identifier: str
    name: str
    description: str
    latestVersion: str
    versions: list[str]
    isActive: bool


class VersionDetail(_Open):
    version: str
    isActive: bool
    isAvailable: bool
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


class VersionDetails(RootModel[list[VersionDetail]]):
    pass


class Requirement(BaseModel):
    requirementId: int
    status: str
    cpuAmount: str
    memoryAmount: str


class Requirements(RootModel[list[Requirement]]):
    pass
