"""``JobsHook``: Modzy's inference jobs API, and the ``modzy`` connection type."""

from __future__ import annotations

from airflow_jobwait.client import inference as api
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.connection import MODZY
from airflow_jobwait.models import Job, JobResults, SubmitJobRequest


class JobsHook(JobWaitHook):
    """Submit, inspect, cancel and wait for inference jobs.

    Blocking calls (``submit_job``, ``get_job``, ...) use a pooled ``requests`` session; the
    ``a``-prefixed twins run in the triggerer over one ``aiohttp`` session shared by every trigger
    of the event loop that uses the same connection. The connection, ``call``/``acall`` and
    ``wait_for_job`` come from ``JobWaitHook``.

    :param jobwait_conn_id: Airflow connection of type ``modzy`` (default ``modzy_default``):
        Host = the API URL, with or without ``/api`` (``https://app.modzy.com/api``), Password =
        the API key (``<public key id>.<secret>``); extras ``timeout``, ``verify``,
        ``max_response_bytes``, ``job_url_template``, ``status_mode``, ``batch_size``.
    :param retry: Retry policy for transient failures (default: 5 attempts, full-jitter backoff).
    """

    connection_type = MODZY

    def check_connection(self) -> str:
        """``GET /api/models``: the model list, as the Modzy SDK checks its client."""
        models = self.client.call(api.list_models())
        return f"connected to Modzy at {self.client_config.base_url}: {len(models)} model(s) available"

    # ---- blocking calls (workers) -------------------------------------------------------

    def submit_job(self, request: SubmitJobRequest, idempotency_key: str | None = None) -> Job:
        """Submit a job.

        :param request: The job to run (model, inputs, explain).
        :param idempotency_key: Makes the submit safe to retry: the service returns the same job
            for the same key and body, and 409 for the same key with another body.
        """
        return self.call(api.submit_job(request, idempotency_key))

    def get_job(self, job_id: str) -> Job:
        """Return the job's current state."""
        return self.call(api.get_job(job_id))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a running job (409 ``Conflict`` if it is already terminal)."""
        return self.call(api.cancel_job(job_id))

    def get_results(self, job_id: str) -> JobResults:
        """Return the job's results (``NotFound`` until it starts producing them)."""
        return self.call(api.get_results(job_id))

    # ---- async twins (triggerer) --------------------------------------------------------

    async def aget_job(self, job_id: str) -> Job:
        return await self.acall(api.get_job(job_id))

    async def aget_results(self, job_id: str) -> JobResults:
        return await self.acall(api.get_results(job_id))

    async def acancel_job(self, job_id: str) -> Job:
        return await self.acall(api.cancel_job(job_id))
