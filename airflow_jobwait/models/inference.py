"""Payloads of the inference jobs API (Modzy wire format, ``docs/jobs-api.md`` §1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from airflow_jobwait.models.base import WireModel, json_problem
from airflow_jobwait.models.native_statuses import MODZY
from airflow_jobwait.models.status import JobState, JobStatus


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
    """A job as the service reports it.

    :param status: The common status: every status the Modzy SDK knows is mapped as it treats it,
        any other one as ``FAILED`` (its wait ends there), a missing one as ``SUBMITTED`` (its
        ``Job`` default); see ``docs/jobs-api.md`` §5.
    :param native_status: ``status`` as the service spelled it (e.g. ``QUEUED`` from Modzy Edge).
    """

    job_identifier: str = Field(min_length=1)
    status: JobStatus = JobStatus.SUBMITTED
    native_status: str | None = None
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

    @model_validator(mode="before")
    @classmethod
    def _map_native_status(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # modzy/jobs.py Job.__init__: a reply without "status" is SUBMITTED.
        native = data.get("status", JobStatus.SUBMITTED.value)
        if not isinstance(native, str):
            return data  # not a status at all: validation names the field
        native = native.value if isinstance(native, JobStatus) else native
        mapped = {**data, "status": MODZY.to_common(native, "job")}
        if "nativeStatus" not in data and "native_status" not in data:
            mapped["nativeStatus"] = native
        return mapped

    @property
    def state(self) -> JobState:
        """The job's status for a wait (``note`` set for a native status beyond our contract)."""
        native = self.native_status or self.status.value
        return JobState(status=self.status, native_status=native, note=MODZY.note(native, self.status))


class HistoryEntry(WireModel):
    """A job as the shared history poller reads it from ``GET /api/jobs/history``: the fields a wait
    needs and its place in the listing; everything else in the Job is kept but not typed.

    :param status: As the service spelled it (native), mapped by ``state``; absent is ``None``
        (a history entry without a status says nothing about the job: it is read alone).
    :param submitted_at: When the service took the job (its clock), normalised to UTC (a naive
        time is UTC); the history's ``startDate`` filter and order are on it.
    """

    job_identifier: str = Field(min_length=1)
    status: str | None = None
    submitted_at: datetime | None = None

    @field_validator("submitted_at")
    @classmethod
    def _utc(cls, when: datetime | None) -> datetime | None:
        return as_utc(when)

    @property
    def state(self) -> JobState | None:
        """The entry's status for a wait, or ``None`` when the entry has none."""
        if self.status is None:
            return None
        status = MODZY.to_common(self.status, f"job {self.job_identifier}")
        return JobState(status=status, native_status=self.status, note=MODZY.note(self.status, status))


def as_utc(when: datetime | None) -> datetime | None:
    """``when`` as an aware UTC time (a naive one is taken as UTC, as the reference service does)."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


#: Keys of a per-input result that describe the run, not the model's output. The Modzy SDK's own
#: sample-output document (modzy/_util.py, the sample output it uploads) lists the first group
#: beside the output "results.json"; then the timing fields the Modzy API adds, and ``voting``
#: (``docs/jobs-api.md`` §1).
RESULT_METADATA_KEYS = frozenset(
    {
        "model",
        "userIdentifier",
        "status",
        "engine",
        "error",
        "startTime",
        "endTime",
        "updateTime",
        "inputSize",
        "accessKey",
        "teamIdentifier",
        "accountIdentifier",
        "timeMeters",
        "datasourceCompletedTime",
        "elapsedTime",
        "inputFetching",
        "outputUploading",
        "modelLatency",
        "queueTime",
        "voting",
    }
)


class Voting(WireModel):
    up: int = 0
    down: int = 0


class InputResult(WireModel):
    """The result of one input (source key): metadata fields plus the model's named outputs.

    Every key of ``RESULT_METADATA_KEYS`` is a field (``metadata`` has the ones sent); every other
    key is an output (``outputs``). The SDK types none of them, so neither do we beyond the few
    the wait reads.
    """

    status: str | None = None
    engine: Any = None
    start_time: Any = None
    update_time: Any = None
    end_time: Any = None
    elapsed_time: Any = None
    voting: Voting | None = None
    error: str | None = None
    model: Any = None
    user_identifier: Any = None
    input_size: Any = None
    access_key: Any = None
    team_identifier: Any = None
    account_identifier: Any = None
    time_meters: Any = None
    datasource_completed_time: Any = None
    input_fetching: Any = None
    output_uploading: Any = None
    model_latency: Any = None
    queue_time: Any = None

    @property
    def outputs(self) -> dict[str, Any]:
        """The model's outputs, by output name (e.g. ``"results.json"``): no metadata key."""
        return dict(self.model_extra or {})

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata keys the service sent, in wire spelling (``startTime``, ``engine``, ...)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude=set(self.model_extra or ()))

    def outputs_of(self, source_key: str) -> dict[str, Any]:
        """``outputs``, unwrapped from the legacy double nesting ``{source_key: {outputs}}`` the
        Modzy SDK still reads (modzy/results.py ``Result.get_source_outputs``)."""
        outputs = self.outputs
        nested = outputs.get(source_key)
        return dict(nested) if isinstance(nested, dict) else outputs

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

    @model_validator(mode="before")
    @classmethod
    def _from_xcom(cls, data: Any) -> Any:
        """Read back what ``to_xcom`` wrote: each input's metadata joins its outputs again, so a
        downstream task (e.g. a deposit) sees the input's times and status as the service sent them."""
        if not isinstance(data, dict) or not isinstance(data.get("resultsMetadata"), dict):
            return data
        metadata, results = data["resultsMetadata"], data.get("results")
        if isinstance(results, dict):
            results = {
                key: {**meta, **outputs}
                if isinstance(outputs, dict) and isinstance(meta := metadata.get(key), dict)
                else outputs
                for key, outputs in results.items()
            }
        return {**{k: v for k, v in data.items() if k != "resultsMetadata"}, "results": results}

    def get_source_outputs(self, source_key: str) -> dict[str, Any]:
        """Return the outputs of one input, as Modzy's ``Result.get_source_outputs``.

        :param source_key: The input's key, as given at submit.
        :raises KeyError: The input failed (the message carries its error) or is unknown.
        """
        if source_key in self.results:
            return self.results[source_key].outputs_of(source_key)
        if source_key in self.failures:
            raise KeyError(f"input {source_key!r} failed: {self.failures[source_key].error or 'no error given'}")
        raise KeyError(f"no result for input {source_key!r}; inputs with results: {sorted(self.results)}")

    def get_first_outputs(self) -> dict[str, Any]:
        """Return the outputs of the first input with a result (Modzy's ``get_first_outputs``).

        :raises KeyError: No input has a result.
        """
        for key, result in self.results.items():
            return result.outputs_of(key)
        raise KeyError(f"job {self.job_identifier} has no input results (failed: {sorted(self.failures)})")

    @property
    def outputs_by_source(self) -> dict[str, dict[str, Any]]:
        """Every successful input's outputs, by source key."""
        return {key: result.outputs_of(key) for key, result in self.results.items()}

    @property
    def metadata_by_source(self) -> dict[str, dict[str, Any]]:
        """Every successful input's metadata (status, engine, times, ...), by source key."""
        return {key: result.metadata for key, result in self.results.items()}

    def to_xcom(self) -> dict[str, Any]:
        """The results for XCom: ``results`` holds each input's outputs only, so a downstream task
        reads ``results[key]["results.json"]`` without tripping over run metadata, which moves to
        ``resultsMetadata`` (same keys); ``failures`` stay whole (their ``error`` is the point)."""
        data = super().to_xcom()
        data["results"] = self.outputs_by_source
        data["resultsMetadata"] = self.metadata_by_source
        return data
