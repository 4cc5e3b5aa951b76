"""``JobSensor``: wait for a remote job, in the triggerer by default."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue, XComArg
from airflow.triggers.base import StartTriggerArgs

from airflow_jobwait.client.job_kinds import kind_calls, status_call
from airflow_jobwait.client.poll_schedule import check_max_poll_interval
from airflow_jobwait.client.wait_loop import WaitLoop, check_poll_interval, check_timeout
from airflow_jobwait.hooks import hook_class
from airflow_jobwait.triggers.jobs import JobTrigger
from airflow_jobwait.version_compat import warn_unavailable
from airflow_jobwait.waiting import DEFAULT_MAX_XCOM_BYTES, JobWaitMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def as_template(value: Any) -> Any:
    """A job id the triggerer can render: an ``XComArg`` (``submit.output``) becomes its Jinja pull."""
    if isinstance(value, XComArg):
        task_id = value.operator.task_id  # type: ignore[attr-defined]
        key = getattr(value, "key", "return_value")
        # map_indexes: without it xcom_pull asks for a sequence slice, which the 3.3 triggerer cannot serve.
        return f"{{{{ ti.xcom_pull(task_ids={task_id!r}, key={key!r}, map_indexes=ti.map_index) }}}}"
    return value


class JobSensor(JobWaitMixin, BaseSensorOperator):
    """Wait until a job is terminal; push its results (JSON) to XCom when it ``COMPLETED``.

    ``TIMEDOUT``, ``CANCELED`` and ``FAILED`` fail the task with a message naming the job and
    status (``soft_fail=True`` skips instead). The sensor's ``timeout`` becomes the trigger's
    deadline and fails the task as a sensor timeout, which Airflow does not retry.

    :param job_id: The job to wait for (templated; e.g. ``submit.output``).
    :param conn_id: Airflow connection of the job kind's type (default: ``modzy_default``,
        ``tensorbay_default`` or ``evo_default``).
    :param poll_interval: Seconds between polls of the service (also the poke interval).
    :param max_poll_interval: Deferred and polled alone (compute, dataset, ``per_job``), let the
        delay between polls stretch with the time the job has been quiet, up to this; it falls
        back to ``poll_interval`` when the job changes (default ``None``: always
        ``poll_interval``). Poke mode keeps ``poke_interval`` (see ``exponential_backoff``).
    :param deferrable: Wait in the triggerer (default) rather than in a worker slot.
    :param max_xcom_bytes: Results larger than this (JSON) are not pushed whole: a
        ``ResultsReference`` (job id, result keys) is pushed instead (default 1 MB).
    :param cancel_on_kill: Cancel the remote job when a user marks or clears the waiting task.
    :param job_kind: ``inference`` (default), ``dataset`` or ``compute``; each kind's statuses map
        onto ``JobStatus`` in ``airflow_jobwait.client.job_kinds``.
    :param job_ref: The kind's other path parameters, e.g. ``{"dataset_id": ..., "job_type": ...}``
        (templated).
    :param start_from_trigger: Go straight to the triggerer and end there: the task never reaches a
        worker (the job id is rendered in the triggerer, the results are pushed from there; the
        sensor ``timeout`` becomes the trigger timeout).
    """

    template_fields: Sequence[str] = ("job_id", "job_ref")
    job_ref: dict[str, str] | None  # from the argument (templated); operators derive theirs
    ui_color = "#d8f0ff"
    wait_timeout_error = AirflowSensorTimeout

    def __init__(
        self,
        *,
        job_id: str,
        conn_id: str | None = None,
        poll_interval: float = 5.0,
        max_poll_interval: float | None = None,
        deferrable: bool = True,
        cancel_on_kill: bool = True,
        job_kind: str = "inference",
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        job_ref: dict[str, str] | None = None,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", check_poll_interval(poll_interval))
        if isinstance(kwargs.get("timeout"), int | float):  # a ValueError naming it on every Airflow
            check_timeout(kwargs["timeout"])
        super().__init__(**kwargs)
        kind_calls(job_kind)  # fail at parse time on an unknown kind
        self.job_id = job_id
        self.job_kind = job_kind
        self.job_ref = job_ref
        self.conn_id = conn_id or hook_class(job_kind).default_conn_name
        self.poll_interval = poll_interval
        self.max_poll_interval = check_max_poll_interval(max_poll_interval, check_poll_interval(poll_interval))
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.max_xcom_bytes = max_xcom_bytes
        if start_from_trigger and not warn_unavailable("start_from_trigger"):
            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=f"{JobTrigger.__module__}.{JobTrigger.__qualname__}",
                # The trigger ends the task itself: it never resumes on a worker.
                trigger_kwargs=self.trigger_kwargs(as_template(job_id), end_task=True),
                next_method="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )

    def execute(self, context: Context) -> Any:
        if getattr(self, "start_from_trigger", False) and getattr(self, "start_trigger_args", None) is not None:
            # A start_from_trigger task never reaches a worker; one that does was not started from
            # the triggerer. Airflow <= 3.3.2 does that to mapped tasks: a mapped operator takes
            # start_trigger_args only from partial() (which refuses them) or the class, never from
            # __init__ where this sensor builds them. The wait still works, on a worker then deferred.
            self.log.warning(
                "task %s runs on a worker although start_from_trigger=True: Airflow did not start it "
                "from the triggerer (mapped tasks, .expand(), never are up to Airflow 3.3.2); it "
                "waits the usual way, deferring from here. See docs/deployment-scale.md for a "
                "subclass that starts mapped waits in the triggerer.",
                self.task_id,
            )
        self.push_link(context, self.job_id)
        if not self.deferrable:
            return super().execute(context)
        # One look first: a job that is already terminal needs no trip through the triggerer.
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done:
            return done.xcom_value
        self.defer_until_done(self.job_id, self.timeout)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        state = self.hook.call(status_call(self.job_kind, self.job_id, self.job_ref))
        self.log.info("%s job %s is %s", self.job_kind, self.job_id, state.native_status)
        outcome = WaitLoop(self.job_id, self.poll_interval).on_state(state)
        if outcome is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.finish_wait(outcome))
