"""``ComputeHook``: Seequent Evo compute tasks, and the ``evo`` connection type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from airflow_jobwait.client import compute as api
from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.connection import EVO, evo_org_id
from airflow_jobwait.models.base import first_error
from airflow_jobwait.models.compute import ComputeJobRef, ComputeStatus

R = TypeVar("R", bound=BaseModel)


class ComputeHook(JobWaitHook):
    """Submit compute tasks, read their status and (typed) results, cancel them.

    A connection of type ``evo`` (default ``evo_default``): Host = the hub URL
    (``https://350mt.api.seequent.com``), extra ``org_id`` = the organisation. Credentials: Login =
    an OAuth2 client ID and Password = its secret (client-credentials tokens from the extra
    ``token_url``, default Seequent's, with the extra ``scopes``; refreshed before they expire and
    once on a 401), or Login empty and Password = an access token. The token is sent as
    ``Authorization: Bearer``; extra ``api_preview`` sends ``API-Preview: opt-in``. Wait for a job
    with ``wait_for_job(ref.job_id, job_kind="compute", job_ref=ref.job_ref)``.
    """

    connection_type = EVO

    @property
    def org_id(self) -> str | None:
        """The connection's organisation (extra ``org_id``), ``None`` if it names none."""
        return evo_org_id(self.jobwait_conn_id, self.extra)

    def resolve_org_id(self, org_id: str | None) -> str:
        """``org_id``, or the connection's.

        :raises ValueError: Neither names one.
        """
        resolved = org_id or self.org_id
        if not resolved:
            raise ValueError(
                f"org_id is not set: pass org_id, or set the extra 'org_id' of connection {self.jobwait_conn_id!r}"
            )
        return resolved

    def check_connection(self) -> str:
        """``GET /workspace/orgs/{org_id}/workspaces?limit=1``: the hub, the organisation and the token
        (fetched first with client credentials) in one read."""
        org_id = self.resolve_org_id(None)
        self.client.call(api.list_workspaces(org_id, limit=1))
        return f"connected to Seequent Evo at {self.client_config.base_url}, organisation {org_id}"

    def submit(
        self,
        org_id: str | None,
        topic: str,
        task: str,
        parameters: Mapping[str, Any],
        extra_body: Mapping[str, Any] | None = None,
    ) -> ComputeJobRef:
        """Submit a task; the job is read from the 303's ``Location`` (which is not followed).

        :param org_id: The organisation; ``None``: the connection's extra ``org_id``.
        :param extra_body: More top-level fields of the submit body, for service options this
            provider does not model; may not replace ``parameters``.
        :raises InvalidResponse: No 303 ``Location``, or one not naming a job (field ``Location``).
        """
        return self.call(api.submit(self.resolve_org_id(org_id), topic, task, parameters, extra_body))

    def get_status(self, ref: ComputeJobRef) -> ComputeStatus:
        """The job's native status, progress, message and error."""
        return self.call(api.get_status(ref))

    async def aget_status(self, ref: ComputeJobRef) -> ComputeStatus:
        """``get_status`` in the triggerer, over the pooled async client."""
        return await self.acall(api.get_status(ref))

    @overload
    def get_results(self, ref: ComputeJobRef, result_model: None = None) -> dict[str, Any]: ...

    @overload
    def get_results(self, ref: ComputeJobRef, result_model: type[R]) -> R: ...

    def get_results(self, ref: ComputeJobRef, result_model: type[R] | None = None) -> dict[str, Any] | R:
        """The results of a succeeded job, validated against ``result_model`` if given.

        :raises JobPendingError: Still running.
        :raises JobError: Failed or cancelled (names the Error's title and detail).
        :raises InvalidResponse: The results do not fit ``result_model`` (names the field).
        """
        results = self.call(api.get_results(ref))
        return results if result_model is None else validate_results(results, result_model, ref.job_id)

    def cancel(self, ref: ComputeJobRef) -> None:
        """Ask the job to cancel (204; a terminal job stays as it is)."""
        self.call(api.cancel(ref))


def validate_results(results: Any, result_model: type[R], job_id: str) -> R:
    """``results`` as ``result_model``; :raises InvalidResponse: naming the first bad field."""
    try:
        return result_model.model_validate(results)
    except ValidationError as err:
        where, why = first_error(err)
        raise InvalidResponse(
            f"results of compute job {job_id} do not fit {result_model.__name__}: field {where!r}: {why}",
            field=where,
        ) from None
