"""``DatasetListPoller``: dataset waits coalesced through TensorBay's job list of each dataset.

TensorBay has no batch status; it lists a dataset's jobs of one ``jobType``
(``docs/jobs-api.md`` §2, ``GET /datasets/{id}/jobs?jobType=&status=&offset=&limit=``, newest
first, ``limit`` up to 128). One poller serves the waits of one connection + dataset + job type
(a group), with the registry, registrations, notices, deadline timers, error budgets and probing
of the other pollers (``client/coalesce.py``, ``client/coalesce_history.py``):

- **First contact.** A new wait's job is read alone (``GET …/jobs/{id}``, those arriving together
  at once): its status (a job already terminal ends the wait; a 404 fails that wait only, as
  polled alone) and its ``createdAt`` (unix seconds, the service's clock). A job without
  ``createdAt`` is read alone every round.
- **Rounds.** Every poll interval, one listing of the group, **unfiltered by status**: the list
  takes one status per request (no "terminal" group), so filtering would cost three requests
  (``SUCCESS``, ``FAILED``, ``ABORTED``) where one unfiltered page carries the true status of
  every waited job among the newest ``PER_PAGE``. Pages are read until an entry created more than
  ``MARGIN_S`` before the oldest windowed job (newest first: nothing older follows), a short page,
  or ``MAX_PAGES``.
- **Outcome.** A listed entry carries what a per-job read tells a wait: its status ends the wait
  (or is told, if running) exactly as a per-job read would, failure reason (``errorMessage``)
  included. A ``FAILED`` entry without ``errorMessage``, or an entry without ``status``, is read
  alone. Each entry is read for that only (``datasets.list_job_summaries``: ``jobId``,
  ``createdAt``, ``status``, ``errorMessage``, parsed straight from the body; the rest of the job
  is skipped unread, and only these fields can make a page garbled): every waited job is listed
  again each round, and parsing whole jobs was most of a round's cost.
- **Not listed.** A windowed job the listing reached past and did not list (deleted, or skipped
  by a deletion shifting the offsets) is read alone that round. When ``MAX_PAGES`` pages did not
  reach back to it (entries newest first, checked), it leaves the window for good and is read
  alone each round, so the listing stays short.
- **Paging.** Offsets shift later when jobs are created while the pages are read: an entry may be
  seen twice, never skipped; only deletions shift them earlier, and a job missed that way is read
  alone (above).
- **Probing, deadlines, errors.** A 404/405/501 (or another client error, or three garbled
  200s, before the list ever answered well) hands the group's waits back (``None``) to poll
  alone; the connection is remembered as such for ``PROBE_TTL``, unless the 404 says the dataset
  does not exist (``ResourceNotExist``): only that group's waits are handed back. A round that
  fails after the client's retries counts one error against each windowed wait's own budget.

N waits on one dataset and job type thus cost one list request per interval (while they are among
its newest ``PER_PAGE`` jobs), plus one read per new wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from airflow_jobwait.client import datasets, inference
from airflow_jobwait.client.coalesce import (
    PROBE_TTL,
    BatchMissing,
    NoticeCallback,
    Ticker,
    _Capabilities,
    _loop_state,
    _PollerKey,
    wait_in,
)
from airflow_jobwait.client.coalesce_history import HistoryPoller, LoneRead
from airflow_jobwait.client.http import Call, ClientConfig
from airflow_jobwait.client.job_kinds import dataset_state, then
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import ApiError, JobWaitError
from airflow_jobwait.models import WaitOutcome
from airflow_jobwait.models.datasets import DatasetJob, DatasetJobSummary
from airflow_jobwait.models.status import JobState, JobStatus

log = logging.getLogger(__name__)

#: An entry created this many seconds before the oldest windowed job ends the paging (``createdAt``
#: is whole seconds; the margin also covers a service ordering by something close to it).
MARGIN_S = 2
#: Entries per list page (the API's maximum).
PER_PAGE = datasets.MAX_PAGE
#: Pages of one round; past them, the older waited jobs are read alone.
MAX_PAGES = 10
#: Status modes whose dataset waits go through the job list (``batch`` means batch status only,
#: which TensorBay lacks: those waits poll alone).
MODES = ("auto", "history")


@dataclass(frozen=True)
class _GroupKey(_PollerKey):
    """A poller's key: the connection and settings, and the group's dataset and job type."""

    dataset_id: str = ""
    job_type: str = ""


def wait_dataset_coalesced(
    conn_id: str,
    config: ClientConfig,
    dataset_id: str,
    job_type: str,
    job_id: str,
    wait_loop: WaitLoop,
    mode: str = "auto",
    on_notice: NoticeCallback | None = None,
    ticker: Ticker | None = None,
) -> Coroutine[None, None, WaitOutcome | None]:
    """Wait for a dataset job through the loop's shared list poller for its dataset and job type.
    A plain function that returns the wait's coroutine, as ``wait_coalesced``: await the result.

    :param mode: The connection's ``status_mode``: ``auto`` and ``history`` use the job list; any
        other answers ``None`` at once.
    :param on_notice: As ``wait_coalesced``'s.
    :param ticker: As ``wait_coalesced``'s.
    :return: How the wait ended, or ``None`` when it must poll its job alone (same ``wait_loop``).
    """
    poller = None
    if mode in MODES:
        poller = DatasetListPoller.for_group(conn_id, config, wait_loop.poll_interval, dataset_id, job_type)
    return wait_in(poller, job_id, wait_loop, on_notice, ticker)


class DatasetListPoller(HistoryPoller):
    """Lists one dataset's jobs of one type per round; reads alone what the list cannot cover.

    Use ``wait_dataset_coalesced``, not the constructor.
    """

    MODES = ("dataset_list",)
    NOUN = "dataset job"

    def __init__(self, key: _GroupKey, capabilities: _Capabilities) -> None:
        self.group = key
        self.list_requests = 0  # for tests
        super().__init__(key, capabilities)

    @classmethod
    def for_group(
        cls, conn_id: str, config: ClientConfig, poll_interval: float, dataset_id: str, job_type: str
    ) -> DatasetListPoller | None:
        """The running loop's poller for this group (created on first use), or ``None`` when the
        service was recently found to have no job list."""
        state = _loop_state()
        capabilities = state.capabilities.setdefault((conn_id, config.base_url), _Capabilities())
        if capabilities.dataset_list is False:
            if time.monotonic() - capabilities.dataset_list_missing_since < PROBE_TTL:
                return None
            capabilities.dataset_list = None  # probe again
        key = _GroupKey(conn_id, config, poll_interval, "dataset_list", inference.MAX_BATCH, dataset_id, job_type)
        poller = state.pollers.get(key)
        if poller is None:
            poller = state.pollers[key] = cls(key, capabilities)
        assert isinstance(poller, DatasetListPoller)
        return poller

    async def _listing(self, windowed: Sequence[str]) -> list[str]:
        """One listing of the group (paged), applied; answers the jobs it could not tell about."""
        listed = await self._list(windowed)
        if listed is None:
            return []
        states, recheck = self._take_listing(windowed, *listed)
        # The waits that the pages ended queue their events while the running ones are told.
        await self._apply_sliced(states)
        return recheck

    def _take_listing(
        self,
        windowed: Sequence[str],
        entries: set[str],
        told: dict[str, JobState],
        boundary: int | None,
    ) -> tuple[dict[str, JobState], list[str]]:
        """Read a round's listing: what it tells the windowed waits still running (for the
        caller to apply), and the windowed jobs to read alone this round.

        :param entries: The ids of the listed entries.
        :param told: What the listed entries of waited jobs tell (``_end_listed``): only those
            that tell all a per-job read would.
        :param boundary: ``None`` when every windowed job was covered, else the ``createdAt`` at
            and before which jobs were not (they are read alone from now on).
        """
        states: dict[str, JobState] = {}
        recheck: list[str] = []
        for job_id in windowed:
            if job_id not in self._waits:
                continue  # its wait left while the listing was read (or a page ended it)
            if job_id not in entries:
                created = self._submitted[job_id].timestamp()
                if boundary is not None and created <= boundary:
                    self._alone.add(job_id)
                else:
                    recheck.append(job_id)  # covered, yet not listed: deleted, or shifted past
                continue
            state = told.get(job_id)
            if state is None:  # listed without a status, or failed without its reason
                recheck.append(job_id)
                continue
            states[job_id] = state
        return states, recheck

    async def _list(self, windowed: Sequence[str]) -> tuple[set[str], dict[str, JobState], int | None] | None:
        """Page through the group's jobs, newest first, back to the oldest windowed one.

        :return: The ids of the listed entries, what they tell the waits and the coverage boundary
            (see ``_take_listing``); ``None`` when a request failed or the service has no job list.
        """
        oldest = min(int(self._submitted[job_id].timestamp()) for job_id in windowed)
        entries: set[str] = set()
        told: dict[str, JobState] = {}
        previous: int | None = None
        newest_first = True
        for page in range(MAX_PAGES):
            created = await self._read_page(page, windowed, entries, told)
            if created is None:
                return None
            for when in created:
                if when is None or (previous is not None and when > previous):
                    newest_first = False
                previous = when if when is not None else previous
            if len(created) < PER_PAGE:
                return entries, told, None
            if newest_first and previous is not None and previous < oldest - MARGIN_S:
                return entries, told, None
        if newest_first and previous is not None:
            return entries, told, previous
        # Not in order: nothing unlisted can be said to be covered.
        return entries, told, 2**62

    async def _read_page(
        self, page: int, windowed: Sequence[str], entries: set[str], told: dict[str, JobState]
    ) -> list[int | None] | None:
        """Request one page of the listing and take from it what the round needs: its entries' ids
        into ``entries``, what they tell into ``told`` (a job listed twice, offsets shifted: the
        first that told). The page's models die with this call, before the next page is asked
        for: a round of 10,000 waits reads ~80 pages, and entries kept for the whole round outlive
        the young generations and bring the process's full collections (~0.4 s at 10,000 waits)
        several times as often.

        :return: Each entry's ``createdAt``, in the page's order; ``None`` when the request failed
            or the service has no job list (the waits are told, see ``_fail`` and ``_no_list``).
        """
        assert self._client is not None
        call = datasets.list_job_summaries(self.group.dataset_id, self.group.job_type, page * PER_PAGE, PER_PAGE)
        try:
            self.list_requests += 1
            listed = await self._client.call(call, on_retry=self._retry_teller(windowed))
        except JobWaitError as err:
            if self.capabilities.missing("dataset_list", err):
                self._no_list(err)
            else:
                log.warning("job list of %s on %r failed: %s", self.group.dataset_id, self.key.conn_id, err)
                self._fail(windowed, err)
            return None
        except Exception as err:  # a bug must end these waits with an error, not kill the poller
            log.exception("job list of %s on %r failed", self.group.dataset_id, self.key.conn_id)
            self._fail(windowed, JobWaitError(f"job list failed: {err!r}"))
            return None
        self.capabilities.found("dataset_list")
        for job_id, state in (await self._end_listed(listed.jobs)).items():
            told.setdefault(job_id, state)
        entries.update(entry.job_id for entry in listed.jobs)
        return [entry.created_at for entry in listed.jobs]

    async def _end_listed(self, page: Sequence[DatasetJobSummary]) -> dict[str, JobState]:
        """``_end_terminal`` for a page of the job list (a round of 1,000 jobs is 8 pages, one after
        another): its entries that tell all a per-job read would.

        :return: What those entries tell, by job id (running ones too, for ``_take_listing``).
        """
        states: dict[str, JobState] = {}
        for entry in page:
            if entry.status is None or entry.job_id not in self._waits:
                continue
            state = dataset_state(entry, self._known.get(entry.job_id))
            if _complete(state, entry):
                states[entry.job_id] = state
        await self._end_terminal(states.items())
        return states

    def _lone_read(self, job_id: str) -> Call[LoneRead]:
        """``GET …/jobs/{id}``: its status, and its ``createdAt``."""
        return then(datasets.get_job(self.group.dataset_id, job_id, self.group.job_type), _status_and_created)

    def _audit_read(self, job_id: str, state: JobState) -> None:
        """No audit: a job the list covered and did not show is read alone that very round."""

    def _no_list(self, error: JobWaitError) -> None:
        """No job list here: hand this group's waits back to poll alone. A dataset that does not
        exist says nothing about the service; any other such answer is remembered for it."""
        log.warning(
            "connection %r: no job list of %s (%s); waits poll alone", self.key.conn_id, self.group.dataset_id, error
        )
        if not (isinstance(error, ApiError) and getattr(error, "code", None) == "ResourceNotExist"):
            self.capabilities.lost("dataset_list")
        self._hand_back(BatchMissing(error, endpoint="job list"))


def _complete(state: JobState, entry: DatasetJobSummary) -> bool:
    """Does the list entry say all a per-job read would? Not a failure without its reason."""
    return not (state.status is JobStatus.FAILED and "error_message" not in entry.model_fields_set)


def _status_and_created(job: DatasetJob) -> LoneRead:
    return dataset_state(job), None if job.created_at is None else datetime.fromtimestamp(job.created_at, UTC)
