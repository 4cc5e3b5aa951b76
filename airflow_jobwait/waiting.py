"""How a task waits for a job: shared by ``JobSensor`` and ``SubmitJobOperator``."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, BaseOperatorLink

from airflow_jobwait.client.job_kinds import results_call
from airflow_jobwait.hooks import hook_class
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.links import PUSHED_ATTR, RESUMED_ATTR, JobLink, job_url
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.triggers.jobs import JobTrigger, deadline_after
from airflow_jobwait.xcom_size import DEFAULT_MAX_XCOM_BYTES, fit_for_xcom, log_reference

__all__ = ["DEFAULT_MAX_XCOM_BYTES", "JobFailedError", "JobWaitMixin"]

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.types import Logger


# The scheduler's own deferral timeout is a backstop: it fires this long after the trigger's
# deadline, so the trigger's clearer timeout event normally wins.
DEFERRAL_TIMEOUT_GRACE = timedelta(seconds=60)


class JobFailedError(AirflowException):
    """The job ended ``TIMEDOUT``, ``CANCELED`` or ``FAILED``, or the wait could not go on."""


class JobWaitMixin:
    """Defer to ``JobTrigger`` and turn the wait's outcome into the task's result.

    Expects ``conn_id``, ``poll_interval``, ``cancel_on_kill`` and ``soft_fail`` on the task.
    """

    conn_id: str
    job_kind: str = "inference"
    poll_interval: float
    cancel_on_kill: bool
    soft_fail: bool
    #: Results larger than this (as JSON) are not pushed whole; a ``ResultsReference`` is.
    max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES
    #: The trigger logs the job's progress at most this often (seconds).
    progress_interval: float = 60.0
    #: Polled alone, the delay between polls may stretch up to this (``None``: ``poll_interval``).
    max_poll_interval: float | None = None
    #: Raised when the wait's deadline passes (sensors: ``AirflowSensorTimeout``, no retry).
    wait_timeout_error: type[AirflowException] = JobFailedError
    operator_extra_links: Collection[BaseOperatorLink] = (JobLink(),)

    if TYPE_CHECKING:

        def defer(self, *, trigger: Any, method_name: str, kwargs: Any = None, timeout: Any = None) -> NoReturn: ...

        execution_timeout: timedelta | None
        log: Logger  # BaseOperator's (a plain attribute, as ResumableJobMixin declares it)

        @property
        def job_ref(self) -> dict[str, str] | None:
            """The kind's other path parameters: an attribute (sensor) or a property (operators)."""

    else:
        job_ref: dict[str, str] | None = None

    @cached_property
    def hook(self) -> JobWaitHook:
        """The job kind's hook on the connection; the kind's calls go through its generic ``call``."""
        return hook_class(self.job_kind)(self.conn_id)

    def push_link(self, context: Context, job_id: str) -> None:
        """Push the "Job" link (empty without a ``job_url_template``): read back after every try."""
        url = job_url(self.conn_id, job_id, self.job_ref) or ""
        context["ti"].xcom_push(key=JobLink().xcom_key, value=url)
        setattr(self, PUSHED_ATTR, url)  # JobLink.get_link answers from it, without an XCom read

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after a deferral, noting that the link was pushed by the process that deferred."""
        setattr(self, RESUMED_ATTR, True)
        return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]

    def defer_until_done(self, job_id: str, timeout: float | None) -> NoReturn:
        """Hand the wait to the triggerer; the task resumes in ``execute_complete``.

        Airflow does not apply ``execution_timeout`` to deferred time, so the wait's deadline is
        the earlier of ``timeout`` and ``execution_timeout``.
        """
        limits = [t for t in (timeout, self.execution_timeout and self.execution_timeout.total_seconds()) if t]
        timeout = min(limits) if limits else None
        trigger = JobTrigger(**self.trigger_kwargs(job_id, deadline=deadline_after(timeout)))
        backstop = None if timeout is None else timedelta(seconds=timeout) + DEFERRAL_TIMEOUT_GRACE
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    def trigger_kwargs(self, job_id: str, *, deadline: float | None = None, end_task: bool = False) -> dict[str, Any]:
        """The ``JobTrigger`` kwargs of this task's wait, for a deferral or ``start_from_trigger``.

        :param job_id: The job, or a template the triggerer renders (``start_from_trigger``).
        :param deadline: Absolute epoch seconds when the wait gives up.
        :param end_task: The trigger ends the task itself (``start_from_trigger``).
        """
        return {
            "job_id": job_id,
            "conn_id": self.conn_id,
            "poll_interval": self.poll_interval,
            "deadline": deadline,
            "cancel_on_kill": self.cancel_on_kill,
            "job_kind": self.job_kind,
            "job_ref": self.job_ref,
            "progress_interval": self.progress_interval,
            "end_task": end_task,
            "soft_fail": self.soft_fail,
            "max_xcom_bytes": self.max_xcom_bytes,
            "max_poll_interval": self.max_poll_interval,
        }

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger fired: results on success, else the matching error."""
        return self.finish_wait(WaitOutcome.model_validate(event))

    def finish_wait(self, outcome: WaitOutcome) -> dict[str, Any]:
        """Return the job's results (JSON) if it completed; raise (or skip) otherwise."""
        if outcome.succeeded:
            self.log.info("%s", outcome.message)
            return self.bounded_for_xcom(
                outcome.job_id, self.hook.call(results_call(self.job_kind, outcome.job_id, self.job_ref))
            )
        if outcome.kind == "timeout":
            raise self.wait_timeout_error(outcome.message)
        if self.soft_fail:
            raise AirflowSkipException(f"{outcome.message} (soft_fail: skipping)")
        raise JobFailedError(outcome.message)

    def bounded_for_xcom(self, job_id: str, results: dict[str, Any]) -> dict[str, Any]:
        """``results`` if they fit in ``max_xcom_bytes``, else a reference to fetch them with."""
        pushed, size = fit_for_xcom(
            results,
            job_id=job_id,
            job_kind=self.job_kind,
            job_ref=self.job_ref,
            conn_id=self.conn_id,
            max_bytes=self.max_xcom_bytes,
        )
        if size is not None:
            log_reference(self.log, job_id, size, self.max_xcom_bytes, self.conn_id)
        return pushed
