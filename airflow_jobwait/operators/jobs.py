"""``SubmitJobOperator``: submit an inference job, optionally wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from airflow_jobwait.hooks.jobs import JobsHook
from airflow_jobwait.models import Job, JobStatus, SubmitJobRequest
from airflow_jobwait.models.base import first_error, with_extra_fields
from airflow_jobwait.operators.resumable import ResumableJobWaitOperator, chained_key, instance_key

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

MAX_RESUBMISSIONS = 20
# Which operator argument feeds each top-level field of the submit body, for error messages.
_ARGUMENT_OF = {
    "model": "model_id/model_version",
    "input": "inputs/input_type",
    "explain": "explain",
    "<root>": "arguments",
}


class SubmitJobOperator(ResumableJobWaitOperator):
    """Submit an inference job; push its id to XCom (key ``job_id``); optionally wait for it.

    Retries never duplicate a job. The job id is kept in ``task_state_store``: a retry waits
    again on a job that still runs and returns a completed job's results without submitting.
    The submit carries an ``Idempotency-Key`` derived from the task instance (DAG, task, run,
    map index) and the request body, not from the try number, so a worker that dies between
    the submit and storing the id still gets the same job back. A job that ended in failure is
    replaced by a fresh submit (keyed on the failed job), so retries really retry. The "Job"
    extra link points at the job's page when the connection has a ``job_url_template``.

    :param model_id: Model identifier (templated).
    :param inputs: ``{source_key: {input_name: value}}``; one source per input (templated).
    :param model_version: Model version (templated).
    :param input_type: ``text``, ``embedded``, ... as the service accepts.
    :param explain: Ask the model for explanations.
    :param wait_for_completion: Wait for the job and return its results; otherwise return the job
        id (default ``False``).
    :param extra_body: More top-level fields of the submit body (templated), for service options
        this provider does not model; may not replace a field the operator sets.
    :param kwargs: The wait options of ``ResumableJobWaitOperator`` (``conn_id``, ``deferrable``,
        ``poll_interval``, ``max_poll_interval``, ``wait_timeout``, ``cancel_on_kill``, ``soft_fail``,
        ``max_xcom_bytes``, ``durable``) and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = ("model_id", "model_version", "inputs", "extra_body")
    template_fields_renderers = {"inputs": "json", "extra_body": "json"}
    ui_color = "#cfe8d8"
    waits_by_default = False

    def __init__(
        self,
        *,
        model_id: str,
        inputs: dict[str, dict[str, Any]],
        model_version: str = "1.0",
        input_type: str = "text",
        explain: bool = False,
        extra_body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.model_version = model_version
        self.inputs = inputs
        self.input_type = input_type
        self.explain = explain
        self.extra_body = extra_body

    def build_request(self) -> SubmitJobRequest:
        """The submit body from the (rendered) arguments.

        :raises ValueError: An argument is malformed; the message names it.
        """
        body = {
            "model": {"identifier": self.model_id, "version": self.model_version},
            "input": {"type": self.input_type, "sources": self.inputs},
            "explain": self.explain,
        }
        try:
            return SubmitJobRequest.model_validate(with_extra_fields(body, self.extra_body))
        except ValidationError as err:
            where, why = first_error(err)
            raise ValueError(
                f"invalid job argument {where!r} ({_ARGUMENT_OF.get(where.split('.')[0], 'extra_body')}): {why}"
            ) from None

    @cached_property
    def hook(self) -> JobsHook:
        return JobsHook(self.conn_id)

    def before_submit(self, context: Context) -> None:
        self.build_request()

    def find_earlier_submit(self, context: Context, age: float) -> str | None:
        """The job history's job of this request, submitted ``age`` seconds ago (``JobsHook.find_submitted``)."""
        job = self.hook.find_submitted(self.build_request(), age)
        return None if job is None or (job.status.is_terminal and not job.status.is_success) else job.job_identifier

    def submit_new(self, context: Context) -> str:
        request = self.build_request()
        job = self.submit_once(request, instance_key(context, request.to_wire()))
        self.log.info("job %s is %s", job.job_identifier, job.status.value)
        return job.job_identifier

    def submit_once(self, request: SubmitJobRequest, key: str) -> Job:
        """Submit under ``key``; if that key's job already ended in failure, submit a fresh one."""
        for _ in range(MAX_RESUBMISSIONS):
            job = self.hook.submit_job(request, idempotency_key=key)
            if not job.status.is_terminal or job.status is JobStatus.COMPLETED:
                return job
            self.log.info("job %s of an earlier try ended %s; submitting a new one", job.job_identifier, job.status)
            key = chained_key(key, job.job_identifier)
        raise RuntimeError(f"gave up after {MAX_RESUBMISSIONS} failed jobs for this task instance")
