"""Submit once, wait, survive retries: what every submitting operator shares."""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

# Below Airflow 3.3 (no task_state_store) compat's stand-in submits on every try; the request
# key (instance_key) still gets a retry its first try's job where the service dedupes.
from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin

from airflow_jobwait.client.job_kinds import cancel_call, status_call
from airflow_jobwait.client.poll_schedule import check_max_poll_interval
from airflow_jobwait.client.wait_loop import check_poll_interval, check_timeout
from airflow_jobwait.exceptions import Conflict, JobWaitError, NotFound
from airflow_jobwait.hooks import hook_class
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.version_compat import warn_unavailable
from airflow_jobwait.waiting import DEFAULT_MAX_XCOM_BYTES, JobWaitMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: What ``get_job_status`` reports for a stored job the service no longer knows: resubmit.
MISSING = "MISSING"
#: ``task_state_store`` key: when this task instance last began a submit (epoch seconds). The
#: next try reads it to find a job an earlier one submitted but died before storing the id of.
SUBMIT_MARK = "submit_started_at"
_ACTIVE = frozenset(status.value for status in JobStatus if not status.is_terminal)
_UNSET: Any = object()


def instance_key(context: Context, payload: Any) -> str:
    """A request key for this task instance and payload: the same on every try of the instance.

    Derived from DAG, task, run and map index, not the try number, so the service can tell a
    retry's submit from a new job.
    """
    ti = context["ti"]
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return chained_key(ti.dag_id, ti.task_id, ti.run_id, str(ti.map_index), body)


def chained_key(*parts: str) -> str:
    """A key derived from ``parts`` (e.g. an earlier key and the failed job it produced)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class ResumableJobWaitOperator(JobWaitMixin, ResumableJobMixin, BaseOperator):
    """Base of the submitting operators: submit a job, remember its id in ``task_state_store``,
    wait for it; on a retry, resume.

    Airflow's ``ResumableJobMixin`` drives the retry: a stored job that still runs is waited on
    again, one that completed gives its results without a new submit, one that ended in failure
    (or that the service no longer knows) is replaced by a new submit. A worker that dies between
    the submit and storing the id: its retry looks the job up (``submit_job``) where the API can
    list jobs; subclasses also send a request key (``instance_key``), which only the reference
    service honours.

    Subclasses implement ``submit_new(context) -> job id`` (and ``find_earlier_submit`` where
    their API can list jobs); the wait options below are theirs too (and, like every operator
    argument, may come from ``default_args``).

    :param conn_id: Airflow connection of the job kind's type (default: ``modzy_default``,
        ``tensorbay_default`` or ``evo_default``).
    :param wait_for_completion: Wait for the job and return what it produced; otherwise return
        right after the submit (default: the operator's ``waits_by_default``).
    :param deferrable: Wait in the triggerer (default) rather than in the worker.
    :param poll_interval: Seconds between polls while waiting.
    :param max_poll_interval: Let the delay between polls stretch with the time the job has been
        quiet, up to this, back to ``poll_interval`` when it changes (per-job polling: compute,
        dataset, inference in ``per_job`` mode, and the blocking wait). ``None`` (default): every
        delay is ``poll_interval``.
    :param wait_timeout: Seconds to wait at most (``None``: no limit beyond ``execution_timeout``).
    :param cancel_on_kill: Cancel the job when the task is killed, or marked by a user, while waiting.
    :param soft_fail: Skip instead of failing when the job ends in failure.
    :param max_xcom_bytes: Results larger than this (JSON) are not pushed whole: a
        ``ResultsReference`` (job id, result keys) is pushed instead (default 1 MB).
    :param durable: Keep the job id in ``task_state_store`` to resume on retry (default ``True``).
    :raises ValueError: ``poll_interval``, ``max_poll_interval`` or ``wait_timeout`` is out of range (named), at parse
        time: never after a job was submitted.
    """

    external_id_key = "job_id"
    #: ``wait_for_completion`` when the DAG does not say.
    waits_by_default = True

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        wait_for_completion: bool | None = None,
        deferrable: bool = True,
        poll_interval: float = 5.0,
        max_poll_interval: float | None = None,
        wait_timeout: float | None = None,
        cancel_on_kill: bool = True,
        soft_fail: bool = False,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or hook_class(self.job_kind).default_conn_name
        self.wait_for_completion = self.waits_by_default if wait_for_completion is None else wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check_poll_interval(poll_interval)
        self.max_poll_interval = check_max_poll_interval(max_poll_interval, self.poll_interval)
        self.wait_timeout = check_timeout(wait_timeout, "wait_timeout")
        self.cancel_on_kill = cancel_on_kill
        self.soft_fail = soft_fail
        self.max_xcom_bytes = max_xcom_bytes
        self._job_id: str | None = None
        self._result: Any = _UNSET

    def execute(self, context: Context) -> Any:
        self.before_submit(context)
        warn_unavailable("task_state_store")  # logs once, on an Airflow without it
        return self.execute_resumable(context)

    def before_submit(self, context: Context) -> None:
        """Validate the arguments before anything reaches the service (raise ``ValueError``)."""

    def submit_job(self, context: Context) -> str:
        """Submit the job (``ResumableJobMixin``'s hook), closing the window between the service's
        answer and ``task_state_store`` keeping the job id.

        The submit's start is kept first; a later try that finds that mark but no job id (the
        worker died in between) looks the job up with ``find_earlier_submit`` and resumes it
        rather than submitting again: the real services ignore the request key.
        """
        store = context.get("task_state_store") if self.durable else None
        if store is not None:
            started = store.get(SUBMIT_MARK)
            if isinstance(started, int | float):
                found = self.find_earlier_submit(context, max(0.0, time.time() - started))
                if found is not None:
                    self.log.warning(
                        "an earlier try submitted %s job %s but died before keeping its id: resuming it",
                        self.job_kind,
                        found,
                    )
                    return found
            store.set(SUBMIT_MARK, time.time())
        return self.submit_new(context)

    def submit_new(self, context: Context) -> str:
        """Submit a new job; answer its id."""
        raise NotImplementedError

    def find_earlier_submit(self, context: Context, age: float) -> str | None:
        """The job an earlier try submitted ``age`` seconds ago, if the service can show it and it
        did not fail (a failed one is replaced). ``None`` by default: the API lists no jobs."""
        return None

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            return self.hook.call(status_call(self.job_kind, str(external_id), self.job_ref)).status.value
        except NotFound:
            self.log.warning("the stored %s job %s is unknown to the service", self.job_kind, external_id)
            return MISSING

    def is_job_active(self, status: str) -> bool:
        return status in _ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == JobStatus.COMPLETED.value

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Wait for the job (defer by default); return what the task returns."""
        job_id = self.track(str(external_id), context)
        if not self.wait_for_completion:
            self._result = self.submitted_result(job_id)
            return self._result
        if self.deferrable:
            self.defer_until_done(job_id, self.wait_timeout)
        outcome = self.hook.wait_for_job(
            job_id,
            self.poll_interval,
            self.wait_timeout,
            job_kind=self.job_kind,
            job_ref=self.job_ref,
            max_poll_interval=self.max_poll_interval,
        )
        self._result = self.finish_wait(outcome)
        return self._result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self._result is not _UNSET:  # the blocking wait just fetched them
            return self._result
        job_id = self.track(str(external_id), context)
        if not self.wait_for_completion:
            return self.submitted_result(job_id)
        message = f"{self.job_kind} job {job_id} of an earlier try had completed; not submitting again"
        return self.finish_wait(
            WaitOutcome(kind="terminal", job_id=job_id, status=JobStatus.COMPLETED, message=message)
        )

    def submitted_result(self, job_id: str) -> Any:
        """What the task returns when it does not wait: the job id."""
        return job_id

    def track(self, job_id: str, context: Context) -> str:
        """Remember the job for ``on_kill``; push its id (key ``job_id``), the kind's other
        references (key ``job_ref``, if any) and its "Job" link."""
        self._job_id = job_id
        ti = context["ti"]
        ti.xcom_push(key="job_id", value=job_id)
        if self.job_ref:
            ti.xcom_push(key="job_ref", value=self.job_ref)
        self.push_link(context, job_id)
        return job_id

    def on_kill(self) -> None:
        """Cancel the job a blocking wait is on (deferred waits cancel from the trigger)."""
        if not (self._job_id and self.wait_for_completion and self.cancel_on_kill):
            return
        self.log.info("task killed: canceling %s job %s", self.job_kind, self._job_id)
        try:
            self.hook.call(cancel_call(self.job_kind, self._job_id, self.job_ref))
        except Conflict:
            self.log.info("job %s was already terminal; nothing to cancel", self._job_id)
        except JobWaitError as err:
            self.log.warning("could not cancel job %s: %s", self._job_id, err)
