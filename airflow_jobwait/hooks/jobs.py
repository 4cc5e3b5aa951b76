"""``JobsHook``: Modzy's inference jobs API, and the ``modzy`` connection type."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from airflow_jobwait.client import inference as api
from airflow_jobwait.hooks.base import LOOKUP_QUIET, JobWaitHook
from airflow_jobwait.hooks.connection import MODZY
from airflow_jobwait.models import Job, JobResults, SubmitJobRequest
from airflow_jobwait.models.inference import as_utc

#: How far before the submit the history is asked for: the service's clock may differ from ours.
LOOKUP_SKEW = timedelta(seconds=300)
LOOKUP_PAGE_SIZE = 100
LOOKUP_PAGES = 10


def _submitted_before(job: Job, when: datetime) -> bool:
    submitted = as_utc(job.submitted_at)
    return submitted is not None and submitted < when


def _may_have_created(request: SubmitJobRequest, job: Job, since: datetime, key_id: str | None) -> bool:
    """Could ``request`` have created ``job``? Fields the service leaves out do not rule it out."""
    if job.model is not None and (job.model.identifier, job.model.version) != (
        request.model.identifier,
        request.model.version,
    ):
        return False
    if job.access_key is not None and key_id is not None and job.access_key != key_id:
        return False
    if job.explain is not None and job.explain != request.explain:
        return False
    if _submitted_before(job, since):
        return False
    sources = (job.job_inputs or {}).get("identifier")
    return sources is None or sorted(sources) == sorted(request.input.sources)


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
        """Submit a job, never twice for one call.

        If the answer is lost (no answer, a 5xx, a garbled body), the job history is searched
        for the job this submit created before it is sent again; see ``find_submitted``.

        :param request: The job to run (model, inputs, explain).
        :param idempotency_key: Sent as ``Idempotency-Key``: the reference service [ext] returns
            the same job for the same key and body, and 409 for the same key with another body;
            Modzy ignores it.
        """
        started = time.monotonic()
        return self.create_once(
            api.submit_job(request, idempotency_key),
            lambda: self.find_submitted(request, time.monotonic() - started),
            f"submit of a {request.model.identifier} job",
        )

    def find_submitted(self, request: SubmitJobRequest, age: float) -> Job | None:
        """The job in the history that ``request``, sent ``age`` seconds ago, created, if only it can be.

        Candidates: submitted with this connection's key (Modzy keys are ``<public id>.<secret>``;
        the history shows the public id), for the same model and version, with the same source
        keys and ``explain``. Modzy lets a submit carry no marker, so a candidate is adopted only
        if it was submitted no earlier than the submit on the service's clock (its ``Date``, less
        ``age``, less a second for the header's resolution) and no other one was within
        ``LOOKUP_QUIET`` of it (``JobWaitHook.only_candidate``).
        """
        api_key = self.client_config.api_key
        key_id = api_key.partition(".")[0] if "." in api_key else None
        # Asked with a wide margin (our clock against the service's), then narrowed on its clock.
        wide = datetime.now(UTC) - timedelta(seconds=age) - LOOKUP_SKEW
        found: list[tuple[Job, str, bool]] = []
        for page in range(1, LOOKUP_PAGES + 1):
            call = api.history(
                per_page=LOOKUP_PAGE_SIZE, page=page, model=request.model.identifier, access_key=key_id, start_date=wide
            )
            jobs = self.client.call(call)
            since = self.service_time_of(age) or wide
            found += [
                (job, job.job_identifier, not _submitted_before(job, since))
                for job in jobs
                if _may_have_created(request, job, since - LOOKUP_QUIET, key_id)
            ]
            if len(jobs) < LOOKUP_PAGE_SIZE or any(_submitted_before(job, wide) for job in jobs):
                break  # newest first: nothing further is in the window
        what = f"jobs of model {request.model.identifier} with the same source keys, submitted with this key"
        return self.only_candidate(found, what)

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
