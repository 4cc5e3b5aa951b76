"""Operators for dataset jobs (TensorBay Open API): squash-and-merge, retry, abort."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_jobwait.client.datasets import JOB_TYPES
from airflow_jobwait.hooks.connection import TENSORBAY
from airflow_jobwait.hooks.datasets import DatasetJobsHook
from airflow_jobwait.lineage import dataset_job_event, declare_on_outlets
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.models.datasets import DatasetJob
from airflow_jobwait.operators.resumable import ResumableJobWaitOperator, instance_key

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

RETRYABLE = ("FAILED", "ABORTED")


def check_job_type(job_type: object) -> str:
    """:raises ValueError: Not a TensorBay job type (names ``job_type``), at DAG parse time."""
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}")
    return str(job_type)


class _DatasetOperator(ResumableJobWaitOperator):
    """Start a dataset job (``job_kind="dataset"``), wait, and on success return its draft
    (squash-and-merge) or the job itself as JSON; on failure fail with the job's ``errorMessage``.

    Asset ``outlets`` get an asset event whose ``extra["payload"]`` is the ``WatchEvent`` of the
    finished job (``airflow_jobwait.lineage``), as a ``DatasetJobsTrigger`` would report it.
    """

    job_kind = "dataset"
    job_type: str  # each subclass's; TensorBay wants it on every job call
    ui_color = "#e3d9f2"

    def __init__(
        self,
        *,
        dataset_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id

    @property
    def job_ref(self) -> dict[str, str]:  # the rendered dataset id, also after a deferral
        return {"dataset_id": self.dataset_id, "job_type": self.job_type}

    @cached_property
    def hook(self) -> DatasetJobsHook:
        return DatasetJobsHook(self.conn_id)

    def finish_wait(self, outcome: WaitOutcome) -> dict[str, Any]:
        if not outcome.succeeded:  # the outcome names the job's errorMessage, from its last status
            return super().finish_wait(outcome)
        self.log.info("%s", outcome.message)
        job = self.hook.get_job(self.dataset_id, outcome.job_id, self.job_type)
        # Lineage: asset outlets get the finished job, as a DatasetJobsTrigger would report it.
        declare_on_outlets(self, dataset_job_event(self.conn_id, self.dataset_id, self.job_type, job))
        if job.draft_number is not None:
            draft = self.hook.get_result_draft(self.dataset_id, job)
            self.log.info("job %s made draft #%d on branch %s", job.job_id, draft.number, draft.branch_name)
            return draft.to_xcom()
        return self.bounded_for_xcom(job.job_id, job.to_xcom())


class SquashAndMergeOperator(_DatasetOperator):
    """Squash ``source_branch`` onto ``target_branch`` as a draft; push the job id (key ``job_id``);
    wait (deferrable by default) and return the draft as JSON.

    The create carries an ``X-Request-Id`` derived from the task instance and the arguments, not
    the try number: a retry after a worker crash gets the crashed try's job, and a retry after the
    job failed (e.g. a conflict fixed since) retries that job on the service.

    :param dataset_id: The dataset (templated).
    :param title: Job title, and the draft's unless ``draft_title`` is given (templated).
    :param source_branch: Branch whose changes are squashed (templated).
    :param target_branch: Branch the draft is based on (templated).
    :param strategy: ``abort`` (a conflict fails the job), ``override`` (source wins), ``skip`` (target wins).
    :param draft_title: The draft's title (templated).
    :param draft_description: The draft's description (templated).
    :param wait_for_completion: Wait and return the draft; otherwise return the job id (default ``True``).
    :param extra_body: More top-level fields of the submit body (templated), for service options
        this provider does not model; may not replace a field the operator sets.
    :param kwargs: The wait options of ``ResumableJobWaitOperator`` (``conn_id``, ``deferrable``,
        ``poll_interval``, ``max_poll_interval``, ``wait_timeout``, ``cancel_on_kill``, ``soft_fail``,
        ``max_xcom_bytes``, ``durable``) and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "title",
        "source_branch",
        "target_branch",
        "strategy",
        "draft_title",
        "draft_description",
        "extra_body",
    )
    job_type = "squashAndMerge"

    def __init__(
        self,
        *,
        title: str,
        source_branch: str,
        target_branch: str,
        strategy: str = "abort",
        draft_title: str | None = None,
        draft_description: str | None = None,
        extra_body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.source_branch = source_branch
        self.target_branch = target_branch
        self.strategy = strategy
        self.draft_title = draft_title
        self.draft_description = draft_description
        self.extra_body = extra_body

    def before_submit(self, context: Context) -> None:
        self.squash_arguments()

    def squash_arguments(self) -> Any:
        return self.hook.squash_arguments(
            self.title, self.source_branch, self.target_branch, self.strategy, self.draft_title, self.draft_description
        )

    def find_earlier_submit(self, context: Context, age: float) -> str | None:
        """The dataset's job of this merge, created ``age`` seconds ago (``DatasetJobsHook.find_created``)."""
        wanted = {"title": self.title, "arguments": self.squash_arguments().to_wire(), "description": None}
        job = self.hook.find_created(self.dataset_id, self.job_type, wanted, age)
        return None if job is None or job.status in RETRYABLE else job.job_id

    def submit_new(self, context: Context) -> str:
        arguments = self.squash_arguments()
        request_id = instance_key(context, [self.dataset_id, self.title, arguments.to_wire()])
        job = self.hook.create_job(
            self.dataset_id,
            self.title,
            self.job_type,
            arguments.to_wire(),
            request_id=request_id,
            extra_body=self.extra_body,
        )
        job = self._retry_if_failed(job)
        self.log.info(
            "squash-and-merge job %s of %s into %s is %s",
            job.job_id,
            self.source_branch,
            self.target_branch,
            job.status,
        )
        return job.job_id

    def _retry_if_failed(self, job: DatasetJob) -> DatasetJob:
        """An earlier try's job (same request id) that failed is retried rather than reported again."""
        if job.status not in RETRYABLE:
            return job
        self.log.info("job %s of an earlier try is %s (%s); retrying it", job.job_id, job.status, job.error_message)
        self.hook.retry_job(self.dataset_id, job.job_id, self.job_type)
        return self.hook.get_job(self.dataset_id, job.job_id, self.job_type)


class RetryDatasetJobOperator(_DatasetOperator):
    """Retry a ``FAILED`` or ``ABORTED`` dataset job; optionally wait for it like ``SquashAndMergeOperator``.

    Returns the draft (squash-and-merge) or the job as JSON when waiting, else the job id.

    :param dataset_id: The dataset (templated).
    :param job_id: The job to retry (templated), e.g. ``{{ ti.xcom_pull(task_ids='merge', key='job_id') }}``.
    :param job_type: ``squashAndMerge`` or ``basicSearch`` (required: TensorBay's retry takes ``jobType``).
    """

    template_fields: Sequence[str] = ("dataset_id", "job_id")

    def __init__(self, *, job_id: str, job_type: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.job_type = check_job_type(job_type)

    def submit_new(self, context: Context) -> str:
        self.hook.retry_job(self.dataset_id, self.job_id, self.job_type)
        self.log.info("retrying dataset job %s", self.job_id)
        return self.job_id


class AbortDatasetJobOperator(BaseOperator):
    """Abort a ``QUEUING`` or ``PROCESSING`` dataset job.

    :param dataset_id: The dataset (templated).
    :param job_id: The job (templated).
    :param job_type: ``squashAndMerge`` or ``basicSearch`` (required: TensorBay's abort takes ``jobType``).
    :param conn_id: Airflow connection of type ``tensorbay`` (default ``tensorbay_default``).
    """

    template_fields: Sequence[str] = ("dataset_id", "job_id")
    ui_color = "#e3d9f2"

    def __init__(
        self,
        *,
        dataset_id: str,
        job_id: str,
        job_type: str,
        conn_id: str = TENSORBAY.default_conn_id,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.job_id = job_id
        self.job_type = check_job_type(job_type)
        self.conn_id = conn_id

    def execute(self, context: Context) -> str:
        DatasetJobsHook(self.conn_id).abort(self.dataset_id, self.job_id, self.job_type)
        self.log.info("aborted dataset job %s", self.job_id)
        return self.job_id
