"""``HistoryPoller``: inference waits coalesced through Modzy's job history, which real services have.

The batch status and watch endpoints of ``client/coalesce.py`` are our reference service's
extensions; a real Modzy answers for many jobs at once only through its job history
(``docs/jobs-api.md`` §1, ``GET /api/jobs/history``: filtered by ``status`` and ``startDate``,
the submit time, paged, newest first). Jobs only ever enter the ``terminated`` listing, and once in
it they stay, so one listing per poll interval says which waited jobs ended:

- **First contact.** A new wait's job is read alone (``GET /api/jobs/{id}``, those arriving together
  at once): its status (a job already terminal ends the wait there, a 404 fails that wait only, as
  polled alone) and its ``submittedAt`` on the service's clock. A job without ``submittedAt`` is
  polled alone every round.
- **Rounds.** Every poll interval: ``status=terminated``, ``startDate`` = the oldest windowed
  job's ``submittedAt`` less ``MARGIN``, ``direction=desc``, paged (``PER_PAGE``) until a short page
  or ``MAX_PAGES``. A waited job listed there with a terminal status ends its wait with that entry's
  status, as a per-job read would (a Modzy ``Job`` carries no failure reason: status, native
  spelling and note are the whole outcome); one listed without a terminal status is read alone.
  Jobs not listed are running: no request for them.
- **Clock skew.** The filter is built from the service's own ``submittedAt`` values, never from
  our clock, so skew between the two does not matter; ``MARGIN`` covers the millisecond rounding
  of the times on the wire and a service that filters on a slightly different time.
- **Paging order.** A job ending while the pages are read is inserted before or after the page
  being read: entries only shift to later pages, so nothing already listed is skipped (one may be
  seen twice); one inserted before is seen next round. That holds for any fixed order, so
  ``direction`` is sent but not relied upon for completeness.
- **Bounds.** When ``MAX_PAGES`` pages did not exhaust the listing, only the jobs submitted after
  the last entry read were covered, if the entries came newest first (checked); every windowed
  job not covered leaves the window for good and is read alone each round, so the next round's
  window starts at a newer job and the listing fits again.
- **Probing, deadlines, errors**, as the batch poller: a 404/405/501 (or another client error, or
  three garbled 200s, before the history ever answered well) means no history: every wait is
  handed back (``None``) to poll alone, remembered for ``PROBE_TTL``. A round that fails after the
  client's retries counts one error against each windowed wait's own budget.

- **Audit.** "Not listed" is read as "running", which holds only if the history shows every job
  a lone read shows. Modzy's history is filtered by submitter (``user``, ``accessKey``), and what
  it shows by default of jobs that others submitted is not documented; a job the history never
  lists would otherwise wait until its deadline. So every windowed job is also read alone at
  least once per ``AUDIT_PERIOD``, spread evenly over the rounds (``N * poll / AUDIT_PERIOD``
  reads per round). A job the audit finds terminal although the listing covered it is logged, once
  per poller, as a history that does not show it.

N waits thus cost one history request per interval (more only when more than ``PER_PAGE``
terminated jobs were submitted since the oldest waited one), plus one read per new wait, plus the
audit's ``N * poll_interval / AUDIT_PERIOD`` reads per interval.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from airflow_jobwait.client import inference
from airflow_jobwait.client.coalesce import (
    END_SLICE,
    PROBE_TTL,
    BatchMissing,
    Registration,
    StatusPoller,
    _Capabilities,
    _loop_state,
    _PollerKey,
)
from airflow_jobwait.client.http import Call, ClientConfig
from airflow_jobwait.client.job_kinds import then
from airflow_jobwait.exceptions import JobWaitError
from airflow_jobwait.models.inference import HistoryEntry, Job, as_utc
from airflow_jobwait.models.status import JobState

log = logging.getLogger(__name__)

#: Subtracted from the oldest windowed job's ``submittedAt`` for the ``startDate`` filter.
MARGIN = timedelta(seconds=2)
#: Entries per history page.
PER_PAGE = inference.MAX_HISTORY_PER_PAGE
#: Pages of one round; past them, the older waited jobs are read alone.
MAX_PAGES = 10
#: Jobs read alone at once (first contacts, jobs out of the window); the pooled client has 32
#: connections.
ALONE_CONCURRENCY = 8
#: What a lone read answers: the job's status, and when the service took it (aware UTC; ``None``
#: when the reply does not say).
LoneRead = tuple[JobState, datetime | None]

#: Each windowed job is read alone at least this often (seconds), in case the history never lists
#: it: at 10,000 waits and a 5 s poll, 167 reads per round, under 1 % of polling each job alone.
AUDIT_PERIOD = 300.0


class HistoryPoller(StatusPoller):
    """Asks the job history which registered jobs ended; reads alone what it cannot cover.

    Use ``wait_coalesced`` with ``mode="history"`` (or ``auto`` against a service without batch
    status), not the constructor.
    """

    MODES = ("history",)
    #: What the log calls the jobs of this family.
    NOUN = "job"

    def __init__(self, key: _PollerKey, capabilities: _Capabilities) -> None:
        # Per job: when the service took it (aware UTC), once a first read told.
        self._submitted: dict[str, datetime] = {}
        # Jobs read alone every round: no submit time, or out of the history's reach.
        self._alone: set[str] = set()
        # Per windowed job, when it was last read alone (monotonic), oldest read first: the audit.
        self._last_read: OrderedDict[str, float] = OrderedDict()
        # Jobs the last listing covered without listing them (the audit checks its finds on these).
        self._covered_unlisted: set[str] = set()
        self._told_unlisted = False
        self.history_requests = 0  # for tests
        self.audit_reads = 0  # for tests
        super().__init__(key, capabilities)

    @classmethod
    def for_history(cls, conn_id: str, config: ClientConfig, poll_interval: float) -> HistoryPoller | None:
        """The running loop's history poller for this connection (created on first use), or
        ``None`` when the service was recently found to have no job history."""
        state = _loop_state()
        capabilities = state.capabilities.setdefault((conn_id, config.base_url), _Capabilities())
        if capabilities.history is False:
            if time.monotonic() - capabilities.history_missing_since < PROBE_TTL:
                return None
            capabilities.history = None  # probe again
        key = _PollerKey(conn_id, config, poll_interval, "history", inference.MAX_BATCH)
        poller = state.pollers.get(key)
        if poller is None:
            poller = state.pollers[key] = cls(key, capabilities)
        assert isinstance(poller, HistoryPoller)
        return poller

    def _drop(self, registration: Registration) -> None:
        super()._drop(registration)
        if registration.job_id not in self._waits:
            self._submitted.pop(registration.job_id, None)
            self._alone.discard(registration.job_id)
            self._last_read.pop(registration.job_id, None)
            self._covered_unlisted.discard(registration.job_id)

    @property
    def windowed(self) -> list[str]:
        """Jobs the history rounds watch for (for tests)."""
        return [job_id for job_id in self._waits if job_id in self._submitted and job_id not in self._alone]

    # ---- the poller task ------------------------------------------------------------------

    async def _round(self, ids: Sequence[str], full_round: bool) -> None:
        """First reads for new jobs; on a full round, one listing (``_listing``), then the lone reads."""
        if not ids:
            return
        first = [job_id for job_id in ids if job_id not in self._submitted and job_id not in self._alone]
        await self._read_all(first)
        if not full_round:
            return
        just_read = set(first)
        windowed = [job_id for job_id in self.windowed if job_id not in just_read]
        recheck = await self._listing(windowed) if windowed else []
        # _read_all skips jobs whose waits have gone meanwhile.
        alone = [job_id for job_id in ids if job_id in self._alone and job_id not in just_read]
        await self._read_all([*alone, *recheck])

    async def _listing(self, windowed: Sequence[str]) -> list[str]:
        """This round's listing, applied to the windowed jobs; answers the windowed jobs to read
        alone this round besides those out of the window (here: the audit's share)."""
        # None: failed (one error against each windowed wait) or no history (all handed back).
        listed = await self._list_terminated(windowed)
        if listed is not None:
            # The waits that just ended queue their events while the running ones are told.
            await self._apply_sliced(self._take(windowed, *listed))
        return self._audit_due()

    def _audit_due(self) -> list[str]:
        """The windowed jobs to read alone this round: those not read for ``AUDIT_PERIOD``, oldest
        read first, at most this round's share (``N * poll / AUDIT_PERIOD``, at least one)."""
        windowed = len(self._last_read)
        if not windowed:
            return []
        share = max(1, math.ceil(windowed * self.key.poll_interval / AUDIT_PERIOD))
        due_before = time.monotonic() - AUDIT_PERIOD
        due: list[str] = []
        left: list[str] = []  # out of the window since: read every round anyway, or gone
        for job_id, read_at in self._last_read.items():  # oldest read first
            if read_at > due_before or len(due) >= share:
                break
            if job_id in self._waits and job_id not in self._alone:
                due.append(job_id)
            else:
                left.append(job_id)
        for job_id in left:
            del self._last_read[job_id]
        self.audit_reads += len(due)
        return due

    async def _end_terminal(self, states: Iterable[tuple[str, JobState | None]]) -> None:
        """End now the windowed waits whose jobs a page lists as terminal, not once every page is
        read: pages are in order of submission, so a job that just ended is on any of them.
        ``END_SLICE`` at a time, so the first ones' events are queued while the later ones run."""
        ended = {
            job_id: state
            for job_id, state in states
            if state is not None
            and state.status.is_terminal
            and job_id in self._waits
            and job_id in self._submitted
            and job_id not in self._alone
        }
        if ended:
            await self._apply_sliced(ended, END_SLICE)

    def _take(
        self, windowed: Sequence[str], entries: dict[str, HistoryEntry], boundary: datetime | None
    ) -> dict[str, JobState]:
        """Apply a round's listing: terminal entries end their waits (those that ``_end_terminal``
        did not end as their page came); windowed jobs older than ``boundary`` (the listing did not
        reach them) are read alone from now on.

        :return: The covered jobs not listed, with their last known status, for the caller to
            apply (a successful poll of each: it ends the wait's run of errors).
        """
        ended: dict[str, JobState] = {}
        running: dict[str, JobState] = {}
        self._covered_unlisted = set()
        for job_id in windowed:
            if job_id not in self._waits:
                continue  # its wait left while the listing was read
            entry = entries.get(job_id)
            if entry is None and (boundary is None or self._submitted[job_id] > boundary):
                self._covered_unlisted.add(job_id)
            if entry is not None:
                state = entry.state
                if state is not None and state.status.is_terminal:
                    ended[job_id] = state
                else:
                    # Listed as terminated, yet no terminal status: read it alone (once per round).
                    self._alone.add(job_id)
            elif boundary is not None and self._submitted[job_id] <= boundary:
                self._alone.add(job_id)
            elif job_id in self._known:
                # Covered and not listed: still running, as last known. A successful poll of the
                # job all the same, which ends its run of errors (the budget counts them in a row).
                running[job_id] = self._known[job_id]
        if ended:
            self._apply(ended)
        return running

    async def _list_terminated(self, windowed: Sequence[str]) -> tuple[dict[str, HistoryEntry], datetime | None] | None:
        """Page through the terminated jobs submitted since the oldest windowed one.

        :return: The entries by job id, and the coverage boundary: ``None`` when the listing was
            read to its end, else the submit time at and before which jobs were not covered.
            ``None`` instead of the pair when a request failed or the service has no history.
        """
        assert self._client is not None
        since = min(self._submitted[job_id] for job_id in windowed) - MARGIN
        entries: dict[str, HistoryEntry] = {}
        previous: datetime | None = None
        newest_first = True
        for page in range(1, MAX_PAGES + 1):
            try:
                self.history_requests += 1
                listed = await self._client.call(
                    inference.history_entries("terminated", since, page, PER_PAGE),
                    on_retry=self._retry_teller(windowed),
                )
            except JobWaitError as err:
                if self.capabilities.missing("history", err):
                    self._no_history(err)
                else:
                    log.warning("job history on %r failed: %s", self.key.conn_id, err)
                    self._fail(windowed, err)
                return None
            except Exception as err:  # a bug must end these waits with an error, not kill the poller
                log.exception("job history on %r failed", self.key.conn_id)
                self._fail(windowed, JobWaitError(f"job history failed: {err!r}"))
                return None
            self.capabilities.found("history")
            await self._end_terminal((entry.job_identifier, entry.state) for entry in listed)
            for entry in listed:
                entries.setdefault(entry.job_identifier, entry)
                when = as_utc(entry.submitted_at)
                if when is None or (previous is not None and when > previous):
                    newest_first = False
                previous = when if when is not None else previous
            if len(listed) < PER_PAGE:
                return entries, None
        # Capped: covered are the jobs submitted after the last entry read, if newest came first;
        # otherwise none can be said to be covered.
        if newest_first and previous is not None:
            return entries, previous
        return entries, datetime.max.replace(tzinfo=since.tzinfo)

    async def _read_all(self, job_ids: Sequence[str]) -> None:
        """Read these jobs alone, a few at once."""
        if not job_ids:
            return
        gate = asyncio.Semaphore(ALONE_CONCURRENCY)

        async def one(job_id: str) -> None:
            async with gate:
                if job_id in self._waits:
                    await self._read_alone(job_id)

        await asyncio.gather(*(one(job_id) for job_id in job_ids))

    def _lone_read(self, job_id: str) -> Call[LoneRead]:
        """``GET /api/jobs/{id}``: its status, and its ``submittedAt``."""
        return then(inference.get_job(job_id), _status_and_submitted)

    async def _read_alone(self, job_id: str) -> None:
        """Read one job alone (``_lone_read``, the family's call): its status, and its submit time,
        which puts it in the window (a job without one is read alone every round)."""
        assert self._client is not None
        try:
            state, submitted = await self._client.call(self._lone_read(job_id), on_retry=self._retry_teller([job_id]))
        except JobWaitError as err:
            self._fail([job_id], err)
            return
        except Exception as err:  # a bug must end this wait with an error, not kill the poller
            log.exception("status of %s %s on %r failed", self.NOUN, job_id, self.key.conn_id)
            self._fail([job_id], JobWaitError(f"status poll failed: {err!r}"))
            return
        if job_id not in self._submitted and job_id not in self._alone:
            if submitted is None:
                self._alone.add(job_id)
            else:
                self._submitted[job_id] = submitted
        self._audit_read(job_id, state)
        self._apply({job_id: state})

    def _audit_read(self, job_id: str, state: JobState) -> None:
        """The audit's part of a lone read: when the job was last read alone, and a terminal job
        the last listing covered without listing (the history does not show it; said once)."""
        if job_id in self._submitted and job_id not in self._alone:
            self._last_read[job_id] = time.monotonic()
            self._last_read.move_to_end(job_id)
        if state.status.is_terminal and job_id in self._covered_unlisted and not self._told_unlisted:
            self._told_unlisted = True
            log.warning(
                "connection %r: job %s is %s, yet the job history did not list it; the history may not "
                "show jobs that other users submitted. Such jobs are found by a lone read at least every "
                "%.0f s; status_mode=per_job finds them within a poll interval.",
                self.key.conn_id,
                job_id,
                state.status.value,
                AUDIT_PERIOD,
            )

    def _no_history(self, error: JobWaitError) -> None:
        """The service has no job history: hand every wait back to poll alone."""
        self._endpoint_missing("history", BatchMissing(error, endpoint="job history"))


def _status_and_submitted(job: Job) -> LoneRead:
    return job.state, as_utc(job.submitted_at)
