"""``SubmitJobOperator``: submit an inference job, optionally wait for it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from pydantic import ValidationError

from airflow_jobwait.hooks.connection import DEFAULT_CONN_ID
from airflow_jobwait.models import Job, JobStatus, SubmitJobRequest
from airflow_jobwait.models.base import first_error
from airflow_jobwait.waiting import DEFAULT_MAX_XCOM_BYTES, JobWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

MAX_RESUBMISSIONS = 20
# Which operator argument feeds each top-level field of the submit body, for error messages.
_ARGUMENT_OF = {"model": "model_id/model_version", "input": "inputs/input_type", "explain": "explain",
                "test": "test_controls", "<root>": "arguments"}


class SubmitJobOperator(JobWaitMixin, BaseOperator):
    """Submit an inference job; push its id to XCom (key ``job_id``); optionally wait for it.

    The submit carries an ``Idempotency-Key`` derived from the task instance (DAG, task, run,
    map index) and the request body, not from the try number: a retry after a worker crash gets
    the job the crashed try submitted instead of a duplicate. If that job ended in failure, the
    retry submits a fresh one (keyed on the failed job), so retries really retry.

    :param model_id: Model identifier (templated).
    :param inputs: ``{source_key: {input_name: value}}``; one source per input (templated).
    :param model_version: Model version (templated).
    :param input_type: ``text``, ``embedded``, ... as the service accepts.
    :param explain: Ask the model for explanations.
    :param conn_id: Airflow connection of type ``jobwait``.
    :param wait_for_completion: Wait for the job and return its results; otherwise return the job id.
    :param deferrable: Wait in the triggerer (default) rather than in the worker.
    :param poll_interval: Seconds between polls while waiting.
    :param wait_timeout: Seconds to wait at most (``None``: no limit beyond ``execution_timeout``).
    :param max_xcom_bytes: Results larger than this (JSON) are not pushed whole: a
        ``ResultsReference`` (job id, result keys) is pushed instead (default 1 MB).
    :param cancel_on_kill: Cancel the job when the task is killed or marked by a user while waiting.
    :param soft_fail: Skip instead of failing when the job ends in failure.
    :param test_controls: Reference service only: override the job's ``duration_s``, ``outcome``
        and ``fail_inputs`` (``jobs-api.md`` [ext]) for demos and tests.
    """

    template_fields: Sequence[str] = ("model_id", "model_version", "inputs", "test_controls")
    template_fields_renderers = {"inputs": "json", "test_controls": "json"}
    ui_color = "#cfe8d8"

    def __init__(
        self,
        *,
        model_id: str,
        inputs: dict[str, dict[str, Any]],
        model_version: str = "1.0",
        input_type: str = "text",
        explain: bool = False,
        conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = False,
        deferrable: bool = True,
        poll_interval: float = 5.0,
        wait_timeout: float | None = None,
        cancel_on_kill: bool = True,
        soft_fail: bool = False,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        test_controls: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.model_version = model_version
        self.inputs = inputs
        self.input_type = input_type
        self.explain = explain
        self.conn_id = conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.cancel_on_kill = cancel_on_kill
        self.max_xcom_bytes = max_xcom_bytes
        self.soft_fail = soft_fail
        self.test_controls = test_controls
        self._job_id: str | None = None

    def build_request(self) -> SubmitJobRequest:
        """The submit body from the (rendered) arguments.

        :raises ValueError: An argument is malformed; the message names it.
        """
        try:
            json.dumps(self.inputs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"inputs must be JSON-serialisable: {err}") from None
        body = {
            "model": {"identifier": self.model_id, "version": self.model_version},
            "input": {"type": self.input_type, "sources": self.inputs},
            "explain": self.explain,
            "test": self.test_controls,
        }
        try:
            return SubmitJobRequest.model_validate(body)
        except ValidationError as err:
            where, why = first_error(err)
            raise ValueError(f"invalid job argument {where!r} ({_ARGUMENT_OF[where.split('.')[0]]}): {why}") from None

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        job = self.submit_once(request, idempotency_key(context, request))
        self._job_id = job.job_identifier
        context["ti"].xcom_push(key="job_id", value=job.job_identifier)
        self.log.info("job %s is %s", job.job_identifier, job.status.value)
        if not self.wait_for_completion:
            return job.job_identifier
        if self.deferrable:
            self.defer_until_done(job.job_identifier, self.wait_timeout)
        return self.finish_wait(self.hook.wait_for_job(job.job_identifier, self.poll_interval, self.wait_timeout))

    def submit_once(self, request: SubmitJobRequest, key: str) -> Job:
        """Submit under ``key``; if that key's job already ended in failure, submit a fresh one."""
        for _ in range(MAX_RESUBMISSIONS):
            job = self.hook.submit_job(request, idempotency_key=key)
            if not job.status.is_terminal or job.status is JobStatus.COMPLETED:
                return job
            self.log.info("job %s of an earlier try ended %s; submitting a new one", job.job_identifier, job.status)
            key = _digest(key, job.job_identifier)
        raise RuntimeError(f"gave up after {MAX_RESUBMISSIONS} failed jobs for this task instance")

    def on_kill(self) -> None:
        """Cancel the job a blocking wait is on (deferred waits cancel from the trigger)."""
        if self._job_id and self.wait_for_completion and self.cancel_on_kill:
            self.log.info("task killed: canceling job %s", self._job_id)
            self.hook.cancel_job(self._job_id)


def idempotency_key(context: Context, request: SubmitJobRequest) -> str:
    """Same task instance + same body → same key, whatever the try number."""
    ti = context["ti"]
    body = json.dumps(request.to_wire(), sort_keys=True, separators=(",", ":"))
    return _digest(ti.dag_id, ti.task_id, ti.run_id, str(ti.map_index), body)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
