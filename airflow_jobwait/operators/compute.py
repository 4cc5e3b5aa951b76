"""``SubmitComputeTaskOperator``: run a compute task (Seequent Evo Compute) and push its typed result."""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from airflow_jobwait.hooks.compute import ComputeHook
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.models.compute import ComputeJobRef
from airflow_jobwait.operators.resumable import ResumableJobWaitOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def resolve_model(result_model: type[BaseModel] | str | None) -> type[BaseModel] | None:
    """A pydantic model class from a class or a ``package.module.Class`` import path.

    :raises ValueError: The path does not import, or does not name a pydantic model.
    """
    if result_model is None or isinstance(result_model, type):
        model = result_model
    else:
        module, _, name = str(result_model).rpartition(".")
        try:
            model = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"result_model {result_model!r} does not import: {err}") from None
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ValueError(f"result_model must be a pydantic model class, got {model!r}")
    return model


class SubmitComputeTaskOperator(ResumableJobWaitOperator):
    """Submit a compute task; push its id (key ``job_id``) and ``job_ref``; wait (deferrable by
    default) and return its results, validated against ``result_model``, as JSON.

    The compute API takes no request key, so a retry relies on ``task_state_store`` alone: it
    resumes the stored task, and submits again only if that one failed (or was never stored
    because the worker died right after the submit).

    :param org_id: Organisation UUID (templated); default: the connection's extra ``org_id``.
    :param topic: Task topic, e.g. ``demo`` (templated).
    :param task: Task name, e.g. ``wordcount`` (templated).
    :param parameters: The task's parameters (templated).
    :param result_model: Pydantic model (class or import path) the results must fit; a mismatch
        fails the task naming the field.
    :param wait_for_completion: Wait and return the results; otherwise return
        ``{"job_id", **job_ref}`` (default ``True``).
    :param extra_body: More top-level fields of the submit body (templated), for service options
        this provider does not model; may not replace a field the operator sets.
    :param kwargs: The wait options of ``ResumableJobWaitOperator`` (``conn_id``, ``deferrable``,
        ``poll_interval``, ``max_poll_interval``, ``wait_timeout``, ``cancel_on_kill``, ``soft_fail``,
        ``max_xcom_bytes``, ``durable``) and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = ("org_id", "topic", "task", "parameters", "extra_body")
    template_fields_renderers = {"parameters": "json", "extra_body": "json"}
    ui_color = "#f2e6d9"
    job_kind = "compute"

    def __init__(
        self,
        *,
        org_id: str | None = None,
        topic: str,
        task: str,
        parameters: dict[str, Any],
        result_model: type[BaseModel] | str | None = None,
        extra_body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.org_id = org_id
        self.topic = topic
        self.task = task
        self.parameters = parameters
        self.result_model = result_model
        self.extra_body = extra_body

    @property
    def job_ref(self) -> dict[str, str]:  # from the rendered fields, also after a deferral
        org_id = self.hook.resolve_org_id(self.org_id)
        with contextlib.suppress(TypeError, ValueError):
            org_id = str(uuid.UUID(org_id))
        return {"org_id": org_id, "topic": self.topic, "task": self.task}

    @cached_property
    def hook(self) -> ComputeHook:
        return ComputeHook(self.conn_id)

    def before_submit(self, context: Context) -> None:
        resolve_model(self.result_model)  # fail before submitting if the path is wrong

    def submit_new(self, context: Context) -> str:
        ref = self.hook.submit(self.org_id, self.topic, self.task, self.parameters, self.extra_body)
        self.log.info("compute job %s of %s/%s submitted", ref.job_id, ref.topic, ref.task)
        return ref.job_id

    def submitted_result(self, job_id: str) -> dict[str, str]:
        return {"job_id": job_id, **self.job_ref}

    def finish_wait(self, outcome: WaitOutcome) -> dict[str, Any]:
        if not outcome.succeeded:  # the outcome names the task's Error, from its last status
            return super().finish_wait(outcome)
        self.log.info("%s", outcome.message)
        ref = ComputeJobRef(job_id=outcome.job_id, **self.job_ref)
        model = resolve_model(self.result_model)
        if model is None:
            return self.bounded_for_xcom(ref.job_id, self.hook.get_results(ref))
        typed = self.hook.get_results(ref, model)
        return self.bounded_for_xcom(ref.job_id, typed.model_dump(mode="json"))
