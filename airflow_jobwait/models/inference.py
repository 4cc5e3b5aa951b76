"""Payloads of the inference jobs API (Modzy wire format, ``docs/jobs-api.md`` §1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from airflow_jobwait.models.base import WireModel, json_problem
from airflow_jobwait.models.status import JobStatus


class ModelRef(WireModel):
    """The model a job runs: ``identifier`` and ``version`` (``name`` is filled in by the service)."""

    identifier: str = Field(min_length=1)
    version: str = Field(min_length=1)
    name: str | None = None


class Team(WireModel):
    identifier: str


class User(WireModel):
    identifier: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class JobInput(WireModel):
    """The ``input`` of a submit: ``sources`` maps each source key to ``{input_name: value}``."""

    type: str = "text"
    sources: dict[str, dict[str, Any]] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _sources_are_json(cls, sources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # Checked here: dumping would silently turn NaN into null, and fail on other values
        # without naming the input.
        problem = json_problem(sources)
        if problem is not None:
            where, why = problem
            raise ValueError(f"input {where!r} is not JSON-serialisable: {why}")
        return sources


class SubmitJobRequest(WireModel):
    """Body of ``POST /api/jobs``."""

    model: ModelRef
    input: JobInput
    explain: bool = False


class Job(WireModel):
    """A job as the service reports it."""

    job_identifier: str = Field(min_length=1)
    status: JobStatus
    model: ModelRef | None = None
    total_inputs: int | None = None
    explain: bool | None = None
    job_type: str | None = None
    account_identifier: str | None = None
    team: Team | None = None
    user: User | None = None
    job_inputs: dict[str, list[str]] | None = None
    submitted_at: datetime | None = None
    image_classification_model: bool | None = None
    access_key: str | None = None


class Voting(WireModel):
    up: int = 0
    down: int = 0


class InputResult(WireModel):
    """The result of one input (source key): metadata fields plus the model's named outputs."""

    status: str | None = None
    engine: str | None = None
    start_time: str | None = None
    update_time: str | None = None
    end_time: str | None = None
    elapsed_time: float | None = None
    voting: Voting | None = None
    error: str | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        """The model's outputs, by output name (e.g. ``"results.json"``)."""
        return dict(self.model_extra or {})

    @property
    def succeeded(self) -> bool:
        return self.error is None and (self.status or "SUCCESSFUL").upper() == "SUCCESSFUL"


class JobResults(WireModel):
    """Results of a job: per-input outputs under ``results``, failed inputs under ``failures``."""

    job_identifier: str
    account_identifier: str | None = None
    submitted_by_key: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    finished: bool = False
    explained: bool | None = None
    submitted_at: datetime | None = None
    starting_result_summarizing: datetime | None = None
    result_summarizing: datetime | None = None
    average_model_latency: float | None = None
    total_model_latency: float | None = None
    team: Team | None = None
    results: dict[str, InputResult] = Field(default_factory=dict)
    failures: dict[str, InputResult] = Field(default_factory=dict)

    def get_source_outputs(self, source_key: str) -> dict[str, Any]:
        """Return the outputs of one input, as Modzy's ``Result.get_source_outputs``.

        :param source_key: The input's key, as given at submit.
        :raises KeyError: The input failed (the message carries its error) or is unknown.
        """
        if source_key in self.results:
            return self.results[source_key].outputs
        if source_key in self.failures:
            raise KeyError(f"input {source_key!r} failed: {self.failures[source_key].error or 'no error given'}")
        raise KeyError(f"no result for input {source_key!r}; inputs with results: {sorted(self.results)}")

    def get_first_outputs(self) -> dict[str, Any]:
        """Return the outputs of the first input with a result (Modzy's ``get_first_outputs``).

        :raises KeyError: No input has a result.
        """
        for result in self.results.values():
            return result.outputs
        raise KeyError(f"job {self.job_identifier} has no input results (failed: {sorted(self.failures)})")

    @property
    def outputs_by_source(self) -> dict[str, dict[str, Any]]:
        """Every successful input's outputs, by source key."""
        return {key: result.outputs for key, result in self.results.items()}
