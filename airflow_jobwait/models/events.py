"""What a wait ends with: the payload a ``JobTrigger`` fires and a blocking wait returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from airflow_jobwait.models.status import JobStatus


class WaitOutcome(BaseModel):
    """How a wait for one job ended.

    :param kind: ``terminal`` (the job reached a terminal status), ``timeout`` (the wait's
        deadline passed first) or ``error`` (the service refused or kept failing).
    :param job_id: The job waited on.
    :param status: The job's last known status.
    :param message: One human sentence, safe to log (no credentials); names the reason when known.
    :param reason: Why the job failed, as the service said it in the status the wait saw last
        (a dataset job's ``errorMessage``, a compute task's Error), so that nobody has to ask again.
    :param native_status: The last status as the service spelled it (``status`` is its mapping,
        ``docs/jobs-api.md`` §5), when a poll got one.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["terminal", "timeout", "error"]
    job_id: str
    status: JobStatus | None = None
    message: str
    reason: str | None = None
    native_status: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.kind == "terminal" and self.status is JobStatus.COMPLETED

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe payload for a ``TriggerEvent``."""
        return self.model_dump(mode="json")


class ResultsReference(BaseModel):
    """What goes to XCom instead of results too large for it: enough to fetch them downstream.

    Fetch them with ``JobsHook(conn_id).get_results(job_id)`` (inference), or the kind's hook.

    :param too_large: Always true: tells a downstream task this is a reference, not results.
    :param result_keys: The input (source) keys that have results.
    """

    too_large: Literal[True] = True
    job_id: str
    job_kind: str
    job_ref: dict[str, str]
    conn_id: str
    size_bytes: int
    result_keys: list[str]
