"""``DatasetJobsHook``: TensorBay dataset jobs (Open API), and the ``tensorbay`` connection type."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from airflow_jobwait.client import datasets as api
from airflow_jobwait.exceptions import InvalidResponse
from airflow_jobwait.hooks.base import LOOKUP_QUIET, JobWaitHook
from airflow_jobwait.hooks.connection import TENSORBAY
from airflow_jobwait.models.base import first_error
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobList, Draft, DraftList, SquashAndMergeArguments


def _sent(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """The stored arguments hold what was sent (a service may add defaults of its own)."""
    return all(stored.get(key) == value for key, value in sent.items())


class DatasetJobsHook(JobWaitHook):
    """Create, inspect, retry, abort and delete dataset jobs; find a merge's draft.

    A connection of type ``tensorbay`` (default ``tensorbay_default``): Password = the AccessKey
    (sent as ``X-Token``); Host = the site URL, empty for the key's own (``ACCESSKEY-…``:
    https://gas.graviti.com, ``Accesskey-…``: https://gas.graviti.cn), as the TensorBay SDK does.
    Errors carry TensorBay's ``code`` and ``message`` (``err.code``). Wait for a job with
    ``wait_for_job(job_id, job_kind="dataset", job_ref={"dataset_id": ..., "job_type": ...})``.

    Every job call takes the job's ``job_type`` (``squashAndMerge`` or ``basicSearch``): TensorBay's
    own client sends ``jobType`` on each of them and has no default for it.
    """

    connection_type = TENSORBAY

    def check_connection(self) -> str:
        """``GET /users``: whose key this is (the TensorBay SDK's ``get_user``)."""
        name = self.call(api.get_user())
        return f"connected to TensorBay at {self.client_config.base_url} as {name!r}"

    def create_job(
        self,
        dataset_id: str,
        title: str,
        job_type: str,
        arguments: Mapping[str, Any],
        description: str | None = None,
        request_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> DatasetJob:
        """Create a job, never twice for one call.

        If the answer is lost (no answer, a 5xx, a garbled body), the dataset's jobs are searched
        for the job this create made before it is sent again; see ``find_created``.

        :param request_id: Sent as ``X-Request-Id`` (default a fresh uuid4): the reference service
            [ext] returns the same job for the same id; TensorBay uses it for tracing only.
        :param extra_body: More top-level fields of the create body, for service options this
            provider does not model; may not replace a field it sets.
        """
        request_id = request_id or str(uuid.uuid4())
        call = api.create_job(dataset_id, title, job_type, arguments, request_id, description, extra_body)
        started = time.monotonic()
        wanted = {"title": title, "arguments": dict(arguments), "description": description}
        return self.create_once(
            call,
            lambda: self.find_created(dataset_id, job_type, wanted, time.monotonic() - started),
            f"create of a {job_type} job in dataset {dataset_id}",
        )

    def find_created(self, dataset_id: str, job_type: str, wanted: Mapping[str, Any], age: float) -> DatasetJob | None:
        """The dataset's job a create sent ``age`` seconds ago made, if only it can be.

        Candidates: of ``job_type``, with the ``title``, ``arguments`` and ``description`` sent.
        One is adopted only if it was created no earlier than the create on the service's clock
        (its ``Date`` less ``age`` and a second; ``createdAt`` is in whole seconds) and no other
        one was within ``LOOKUP_QUIET`` of it (``JobWaitHook.only_candidate``).

        :param wanted: ``title``, ``arguments`` and ``description`` (``None``: not sent) as sent.
        """
        found: list[tuple[DatasetJob, str, bool]] = []
        offset = 0
        while True:
            page = self.list_jobs(dataset_id, job_type, offset=offset)
            since = self.service_time_of(age)
            floor = int(since.timestamp()) if since is not None else None
            quiet = int((since - LOOKUP_QUIET).timestamp()) if since is not None else None
            for job in page.jobs:
                made = job.created_at
                if quiet is not None and made is not None and made < quiet:
                    continue
                if (
                    job.title == wanted["title"]
                    and _sent(job.arguments, wanted["arguments"])
                    and (wanted["description"] is None or job.description == wanted["description"])
                ):
                    found.append((job, job.job_id, floor is None or made is None or made >= floor))
            offset += len(page.jobs)
            older = quiet is not None and any(j.created_at is not None and j.created_at < quiet for j in page.jobs)
            if older or not page.jobs or offset >= page.total_count:
                break  # newest first: nothing further is in the window
        what = f"{job_type} jobs of dataset {dataset_id} with the same title and arguments"
        return self.only_candidate(found, what)

    def squash_and_merge(
        self,
        dataset_id: str,
        title: str,
        source_branch: str,
        target_branch: str,
        strategy: str = "abort",
        draft_title: str | None = None,
        draft_description: str | None = None,
        request_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> DatasetJob:
        """Squash ``source_branch`` onto ``target_branch`` into a new draft.

        :param title: The job's title (and the draft's, unless ``draft_title`` is given).
        :param strategy: ``abort`` (a conflict fails the job), ``override`` (source wins) or ``skip`` (target wins).
        :raises ValueError: An argument is malformed (names it).
        """
        arguments = self.squash_arguments(title, source_branch, target_branch, strategy, draft_title, draft_description)
        return self.create_job(
            dataset_id,
            title,
            "squashAndMerge",
            arguments.to_wire(),
            request_id=request_id,
            extra_body=extra_body,
        )

    @staticmethod
    def squash_arguments(
        title: str,
        source_branch: str,
        target_branch: str,
        strategy: str = "abort",
        draft_title: str | None = None,
        draft_description: str | None = None,
    ) -> SquashAndMergeArguments:
        """The squashAndMerge ``arguments``; :raises ValueError: naming the bad field."""
        try:
            return SquashAndMergeArguments(
                title=draft_title or title,
                source_branch_name=source_branch,
                target_branch_name=target_branch,
                strategy=strategy,  # type: ignore[arg-type]
                description=draft_description,
            )
        except ValidationError as err:
            where, why = first_error(err)
            raise ValueError(f"invalid squash-and-merge argument {where!r}: {why}") from None

    def basic_search(
        self,
        dataset_id: str,
        title: str,
        arguments: Mapping[str, Any],
        request_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> DatasetJob:
        """Create a basicSearch job; ``arguments``: ``commit``, ``conjunction``, ``filters`` as documented."""
        return self.create_job(
            dataset_id, title, "basicSearch", arguments, request_id=request_id, extra_body=extra_body
        )

    def get_job(self, dataset_id: str, job_id: str, job_type: str) -> DatasetJob:
        """Return the job's current state."""
        return self.call(api.get_job(dataset_id, job_id, job_type))

    async def aget_job(self, dataset_id: str, job_id: str, job_type: str) -> DatasetJob:
        """``get_job`` in the triggerer, over the pooled async client."""
        return await self.acall(api.get_job(dataset_id, job_id, job_type))

    def list_jobs(
        self,
        dataset_id: str,
        job_type: str,
        status: str | None = None,
        offset: int = 0,
        limit: int = api.MAX_PAGE,
    ) -> DatasetJobList:
        """One page of the dataset's jobs, newest first."""
        return self.call(api.list_jobs(dataset_id, job_type, status, offset, limit))

    def retry_job(self, dataset_id: str, job_id: str, job_type: str) -> None:
        """Run a ``FAILED`` or ``ABORTED`` job again (400 ``InvalidParamsValue`` otherwise).

        Named ``retry_job`` because ``JobWaitHook.retry`` is the hook's ``RetryPolicy``.
        """
        self.call(api.retry_job(dataset_id, job_id, job_type))

    def abort(self, dataset_id: str, job_id: str, job_type: str) -> None:
        """Abort a ``QUEUING`` or ``PROCESSING`` job (400 ``InvalidParamsValue`` otherwise)."""
        self.call(api.abort_job(dataset_id, job_id, job_type))

    def delete_job(self, dataset_id: str, job_id: str, job_type: str) -> None:
        """Delete a job."""
        self.call(api.delete_job(dataset_id, job_id, job_type))

    def list_drafts(
        self,
        dataset_id: str,
        status: str = "OPEN",
        branch_name: str | None = None,
        offset: int = 0,
        limit: int = api.MAX_PAGE,
    ) -> DraftList:
        """One page of the dataset's drafts (``status="ALL"`` for every status)."""
        return self.call(api.list_drafts(dataset_id, status, branch_name, offset, limit))

    def get_result_draft(self, dataset_id: str, job: DatasetJob) -> Draft:
        """The draft a successful squash-and-merge job produced.

        :raises ValueError: The job has no ``result.draftNumber`` (not a successful squash-and-merge).
        :raises InvalidResponse: The service does not list that draft.
        """
        number = job.draft_number
        if number is None:
            raise ValueError(
                f"dataset job {job.job_id} ({job.job_type}, {job.status}) has no result.draftNumber: "
                "only a successful squashAndMerge job has a draft"
            )
        branch = job.arguments.get("targetBranchName")
        offset = 0
        while True:
            page = self.list_drafts(dataset_id, "ALL", branch if isinstance(branch, str) else None, offset)
            for draft in page.drafts:
                if draft.number == number:
                    return draft
            offset += len(page.drafts)
            if not page.drafts or offset >= page.total_count:
                raise InvalidResponse(
                    f"draft #{number} of dataset job {job.job_id} is not listed in dataset {dataset_id}",
                    field="result.draftNumber",
                )
