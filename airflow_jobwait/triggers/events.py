"""Event triggers: schedule DAGs on what happens at the job services (``AssetWatcher``).

Three ``BaseEventTrigger``\\ s, each firing JSON a downstream task reads from
``triggering_asset_events`` (``models.watch_events.WatchEvent``):

- ``NewWorksTrigger``: new works in the CHIME results store matching a query (pipeline, status,
  time), one event per work or one per poll (``batch=True``);
- ``DatasetJobsTrigger``: dataset jobs (e.g. squash-and-merge) of a TensorBay dataset reaching a
  terminal status;
- ``InferenceJobsTrigger``: inference jobs of a Modzy model (optionally one version) reaching a
  terminal status, through the job history.

Design (``docs/event-triggers.md`` has the guarantees):

- **Watermark.** Each watcher keeps what it has reported (``event_watermarks.Watermark``) in
  Airflow's asset state store (Airflow ≥ 3.3), under a key of its own on every asset it feeds: a
  restarted, killed or moved trigger resumes from it. Polls scan overlapping windows on the
  service's clock and dedupe by id, so equal timestamps and late-visible items are not missed.
- **Fire, then commit.** A watermark is written only once Airflow has stored the events it
  covers: the triggers use Airflow 3.3's shared streams in ack mode, whose producer
  (``ScanProducer.advance``) is called for a poll only after every watcher that got it has moved
  past it and the supervisor has confirmed each event it derived persisted. A crash before that
  fires the poll's events again after the restart (duplicates), never loses them.
- **One poll for many watchers.** Watchers of one source (connection and resource: pipeline and
  query, dataset and job type, model) with the same ``lookback`` and ``poll_interval`` share one
  ``shared_stream_key``: the triggerer runs one ``ScanProducer`` for all of them, each watcher
  filters the shared scans with its own options (statuses, version, batch) and its own watermark.

On Airflow 3.1/3.2 (no asset state store, no shared streams) each trigger polls alone through
``run`` and keeps its watermark in memory: see ``docs/event-triggers.md``, "Airflow 3.1 and 3.2".
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_jobwait import hooks
from airflow_jobwait.client import datasets as datasets_api
from airflow_jobwait.client import inference as inference_api
from airflow_jobwait.client import results_store as results_api
from airflow_jobwait.client.wait_loop import check_poll_interval
from airflow_jobwait.event_watermarks import (
    DEFAULT_MAX_SEEN,
    Scan,
    SourceItem,
    Watermark,
    earliest,
    merge_items,
    state_key,
)
from airflow_jobwait.exceptions import ApiError, JobWaitError
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.models.status import JobStatus
from airflow_jobwait.models.watch_events import (
    WatchedItem,
    WatchEvent,
    WatchKind,
    dataset_job_item,
    inference_job_item,
    work_item,
)
from airflow_jobwait.version_compat import warn_unavailable

try:  # Airflow >= 3.3: shared streams with an ack channel
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

    _ProducerBase: type = SharedStreamProducer
except ImportError:  # Airflow 3.1/3.2: ``run`` drives the producer itself
    _ProducerBase = object
    if TYPE_CHECKING:
        from airflow.triggers.shared_stream import AdvanceItem

#: Items per page of a scan, and at most this many pages per scan (a runaway window is an error).
PAGE_SIZES = {"results": 1000, "inference": 100, "dataset": datasets_api.MAX_PAGE}
MAX_PAGES = 200
#: Items per event of a batch: a larger poll fires several events.
MAX_BATCH_ITEMS = 1000
#: The results store's time fields a watch can window on (``docs/jobs-api.md`` §4).
WORK_TIME_FIELDS = ("creation", "start", "stop")
WORK_STATUSES = ("success", "failure")


def _epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _check_seconds(value: object, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a number of seconds of at least {minimum:g}, got {value!r}")
    return float(value)


def _check_statuses(statuses: Sequence[str] | None, allowed: Sequence[str], name: str = "statuses") -> list[str] | None:
    """``statuses`` as a list of allowed values (``None``: every one)."""
    if statuses is None:
        return None
    if isinstance(statuses, str) or not isinstance(statuses, Sequence) or not statuses:
        raise ValueError(f"{name} must be a non-empty list of {', '.join(allowed)} (or None), got {statuses!r}")
    wrong = [status for status in statuses if status not in allowed]
    if wrong:
        raise ValueError(f"{name} must name only {', '.join(allowed)}, got {wrong!r}")
    return list(statuses)


class WatermarkStore:
    """A watcher's watermark, kept under its key on every asset the watcher feeds.

    Airflow (≥ 3.3) gives a watcher an ``asset_state_store`` for the assets it feeds. The copies
    are written together; read back, the one with the oldest horizon wins (``earliest``), so a
    write that reached only some assets can duplicate events but never skip one. Without a store
    (Airflow 3.1/3.2, or a trigger run outside an ``AssetWatcher``) it is kept in memory only.

    :param accessors: One ``AssetStateStoreAccessor`` per asset (empty: memory only).
    :param key: The watcher's key (``state_key``).
    """

    def __init__(self, accessors: Sequence[Any], key: str) -> None:
        self.accessors = list(accessors)
        self.key = key
        self.memory: Watermark | None = None

    @classmethod
    def of(cls, trigger: BaseEventTrigger, key: str) -> WatermarkStore:
        """The store Airflow injected into ``trigger`` (``asset_state_store``), if any."""
        stores = getattr(trigger, "asset_state_store", None)
        if stores is None:
            warn_unavailable("asset_state_store")
            return cls([], key)
        # AssetStateStoreAccessors offers no iteration: a watcher may feed several assets, and
        # each keeps a copy, so its per-asset accessors are read from the two maps it is built of.
        by_name: Mapping[str, Any] = getattr(stores, "_by_name", {}) or {}
        by_uri: Mapping[str, Any] = getattr(stores, "_by_uri", {}) or {}
        return cls([*by_name.values(), *by_uri.values()], key)

    @property
    def persistent(self) -> bool:
        return bool(self.accessors)

    async def load(self) -> Watermark:
        """The stored watermark (a fresh one if none is stored)."""
        if not self.accessors:
            return self.memory or Watermark()
        marks = [Watermark.from_store(await accessor.aget(self.key)) for accessor in self.accessors]
        return earliest(*marks) or Watermark()

    async def save(self, mark: Watermark) -> None:
        """Write ``mark`` on every asset (in memory without a store)."""
        self.memory = mark
        value = mark.to_store()
        for accessor in self.accessors:
            await accessor.aset(self.key, value)


class _Commit:
    """One watcher's watermark after one scan, written once Airflow stored that scan's events."""

    def __init__(self, watcher: JobWaitEventTrigger, store: WatermarkStore, mark: Watermark) -> None:
        self.watcher = watcher
        self.store = store
        self.mark = mark

    async def __call__(self) -> None:
        await self.store.save(self.mark)
        self.watcher.committed = self.mark


async def run_commits(scan: Scan) -> None:
    """Write the watermarks the watchers registered on ``scan``, in the order they did."""
    for commit in scan.commits:
        await commit()


class ScanProducer(_ProducerBase):  # type: ignore[misc]
    """The one poll loop of a shared stream: scans the source every ``poll_interval``.

    On Airflow ≥ 3.3 the triggerer drives it (ack mode): ``open_stream`` yields each scan to every
    watcher of the group; ``advance`` gets a scan back once every watcher that got it has moved
    past it and Airflow has stored each event it fired for it, and only then writes the
    watermarks the watchers registered on it (fire, then commit). A scan a watcher failed on (an
    ack timeout: its events were not confirmed stored) commits nothing: the next scan's
    watermarks cover it, and until then a restart fires it again.

    :param source: A watcher of the group (its kwargs decide the scan: only the fields of the
        shared stream key are used).
    """

    def __init__(self, source: JobWaitEventTrigger) -> None:
        self.source = source
        self.cursor: float | None = None

    async def next_scan(self) -> Scan:
        """Scan the window after the last scan; transient failures wait a poll and try again.

        :raises ApiError: The service refused the scan with 400 (e.g. a query operator it does not
            support): it will not get better, so the watchers fail with the service's reason.
        """
        while True:
            # The first window reaches back a lookback from now; watchers resumed from an older
            # watermark read the gap themselves (``Watermark.needs_catch_up``).
            since = (self.cursor if self.cursor is not None else time.time()) - self.source.lookback
            try:
                scan = await self.source.scan(since)
            except ApiError as err:
                if err.status == 400:
                    raise
                self._log_failure(err)
            except JobWaitError as err:
                self._log_failure(err)
            else:
                self.cursor = scan.until
                return scan
            await asyncio.sleep(self.source.poll_interval)

    def _log_failure(self, err: JobWaitError) -> None:
        source = self.source
        source.log.warning("poll of %s failed: %s; trying again in %gs", source.describe(), err, source.poll_interval)

    async def open_stream(self) -> AsyncIterator[tuple[Scan, Scan]]:
        """Yield ``(scan, scan)``: the scan is both the raw event and what ``advance`` gets back."""
        while True:
            scan = await self.next_scan()
            yield scan, scan
            await asyncio.sleep(self.source.poll_interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Commit the watermarks of scans whose events Airflow has stored."""
        for item in batch:
            scan: Scan = item.broker_payload
            outcome = item.outcome
            if outcome.failed or outcome.rejected:
                # We cannot tell which watcher failed: commit none; the next clean scan carries
                # every surviving watcher's watermark (each is cumulative).
                self.source.log.warning(
                    "poll of %s: %d watcher(s) did not confirm their events; their watermarks wait for the next poll",
                    self.source.describe(),
                    outcome.failed + outcome.rejected,
                )
                continue
            await run_commits(scan)

    async def aclose(self) -> None:
        """Nothing to close: the hooks' pooled client is leased per request."""


class JobWaitEventTrigger(BaseEventTrigger):
    """Base of the event triggers: watermark, shared stream, events; the subclasses scan.

    :param conn_id: The Airflow connection of the source (the family's default when ``None``).
    :param poll_interval: Seconds between polls.
    :param lookback: Overlap of consecutive windows (seconds): an item becoming visible (deposited,
        terminal) up to this long after its own time is reported; items later than that are not.
    :param batch: One event per poll with every new item, instead of one event per item.
    :param start: A new watcher (no watermark yet) reports items from this time on (seconds since
        the epoch); ``None``: only items that appear after it started.
    :param max_seen: Bound of the dedupe set (ids of one window).
    """

    kind: ClassVar[WatchKind]
    hook_name: ClassVar[str]
    #: The kwargs that decide what a scan reads: watchers equal in these share one poll.
    shared_fields: ClassVar[tuple[str, ...]]
    #: Names of the constructor's kwargs (``serialize`` keeps every one).
    kwarg_names: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        conn_id: str | None = None,
        poll_interval: float = 60.0,
        lookback: float = 600.0,
        batch: bool = False,
        start: float | None = None,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.hook_class().default_conn_name
        self.poll_interval = check_poll_interval(poll_interval)
        self.lookback = _check_seconds(lookback, "lookback", 1.0)
        self.batch = bool(batch)
        self.start = None if start is None else _check_seconds(start, "start")
        if isinstance(max_seen, bool) or not isinstance(max_seen, int) or max_seen < 1:
            raise ValueError(f"max_seen must be a positive integer, got {max_seen!r}")
        self.max_seen = max_seen
        #: The last watermark written (set by ``_Commit``); ``None`` until the first write.
        self.committed: Watermark | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kwarg_names = tuple(inspect.signature(cls.__init__).parameters)[1:]

    # ---- what each source defines ---------------------------------------------------------

    @classmethod
    def hook_class(cls) -> type[JobWaitHook]:
        hook: type[JobWaitHook] = getattr(hooks, cls.hook_name)
        return hook

    def source(self) -> dict[str, str]:
        """What is watched, as the events name it."""
        raise NotImplementedError

    async def scan(self, since: float) -> Scan:
        """Every item whose time is at least ``since``, with the service's clock when it answered."""
        raise NotImplementedError

    def accepts(self, item: SourceItem) -> bool:
        """This watcher's own filter over the shared scan (statuses, version)."""
        return True

    # ---- shared by all -------------------------------------------------------------------

    @property
    def hook(self) -> JobWaitHook:
        return self.hook_class()(self.conn_id)

    def describe(self) -> str:
        fields = ", ".join(f"{name}={value}" for name, value in self.source().items())
        return f"{self.kind} ({fields}) on connection {self.conn_id!r}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Every constructor argument under its own name, all JSON: the connection id, never a secret.
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            name: getattr(self, name) for name in self.kwarg_names
        }

    def watermark_key(self) -> str:
        """This watcher's key in the asset state store."""
        classpath, kwargs = self.serialize()
        return state_key(classpath, kwargs)

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of one source with the same window and pace share one poll (Airflow ≥ 3.3)."""
        classpath, kwargs = self.serialize()
        shared = {name: kwargs[name] for name in ("conn_id", *self.shared_fields, "lookback", "poll_interval")}
        return (classpath, json.dumps(shared, sort_keys=True))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> ScanProducer:
        """Ack mode: one ``ScanProducer`` per group, built from one watcher's kwargs."""
        return ScanProducer(cls(**kwargs))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll alone: Airflow 3.1/3.2 (no shared streams), or a triggerer that could not share.

        Airflow tells a lone trigger nothing of when its events are stored: a scan's watermark
        is written once the triggerer asks for the next events, i.e. has taken these into its
        queue (the weaker guarantee, ``docs/event-triggers.md``).
        """
        warn_unavailable("shared_streams")
        producer = ScanProducer(self)

        async def scans() -> AsyncIterator[Scan]:
            while True:
                scan = await producer.next_scan()
                yield scan
                await run_commits(scan)
                await asyncio.sleep(self.poll_interval)

        async for event in self.filter_shared_stream(scans()):
            yield event

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's events from the shared scans, deduped by its watermark.

        Each event is yielded before the watermark that covers it is registered on the scan
        (``_Commit``): ``ScanProducer.advance`` writes it once Airflow has stored the events.
        """
        store = WatermarkStore.of(self, self.watermark_key())
        mark = await store.load()
        if not mark.fresh:
            self.committed = mark
            self.log.info("%s: resuming from its watermark (%d id(s) remembered)", self.describe(), len(mark.seen))
        first = True
        async for scan in shared_stream:
            items = scan.items
            if first:
                first = False
                since = mark.needs_catch_up(self.lookback, scan, self.start)
                if since is not None:
                    # A resumed watcher's gap (or a new one's ``start``) before the shared window.
                    caught = await self._catch_up(since)
                    items = merge_items(caught.items, items)
            ours = Scan(scan.since, scan.until, [item for item in items if not item.ready or self.accepts(item)])
            new, mark, dropped = mark.advance(ours, self.lookback, self.start, self.max_seen)
            if dropped:
                self.log.warning(
                    "%s: more than %d ids in one window; forgot the %d oldest "
                    "(late items older than them are not reported)",
                    self.describe(),
                    self.max_seen,
                    dropped,
                )
            for event in self.events_for(new):
                yield event
            if self._worth_writing(mark, new):
                scan.commits.append(_Commit(self, store, mark))

    async def _catch_up(self, since: float) -> Scan:
        """Scan from ``since`` alone; transient failures are retried each poll interval."""
        while True:
            try:
                return await self.scan(since)
            except ApiError as err:
                if err.status == 400:
                    raise
                failure: JobWaitError = err
            except JobWaitError as err:
                failure = err
            self.log.warning(
                "catch-up of %s failed: %s; trying again in %gs", self.describe(), failure, self.poll_interval
            )
            await asyncio.sleep(self.poll_interval)

    def _worth_writing(self, mark: Watermark, new: Sequence[SourceItem]) -> bool:
        """Write when something was reported since the last write, else now and then.

        Every poll moves the horizon; writing it each time would cost one metadata DB write per
        watcher per poll. A horizon written late only widens the catch-up after a restart.
        """
        last = self.committed
        if new or last is None or last.horizon is None or mark.horizon is None:
            return True
        if any(key not in last.seen for key in mark.seen):
            return True  # reported under a scan whose commit did not happen (a failed sibling)
        return mark.horizon - last.horizon >= max(self.lookback / 4, self.poll_interval)

    def events_for(self, items: Sequence[SourceItem]) -> list[TriggerEvent]:
        """One event per item, or per poll (in chunks of ``MAX_BATCH_ITEMS``) with ``batch``."""
        groups = (
            [list(items[at : at + MAX_BATCH_ITEMS]) for at in range(0, len(items), MAX_BATCH_ITEMS)]
            if self.batch
            else [[item] for item in items]
        )
        events = []
        for group in groups:
            event = WatchEvent(
                kind=self.kind,
                conn_id=self.conn_id,
                source=self.source(),
                ids=[item.id for item in group],
                items=[WatchedItem.model_validate(dict(item.payload)) for item in group],
            )
            self.log.info("%s: %s", self.describe(), _summary(event))
            events.append(TriggerEvent(event.to_payload()))
        return events

    async def _paged(
        self,
        since: float,
        page: Callable[[int], Any],
        items_of: Callable[[Any], Sequence[SourceItem]],
        done: Callable[[Any, Sequence[SourceItem]], bool],
    ) -> Scan:
        """Read pages until ``done``; ``until`` is the service's clock at the first answer.

        :param page: The call for the page at this index (0-based).
        :param items_of: The items of one answer.
        :param done: Whether the answer was the last page needed.
        """
        hook = self.hook
        until: float | None = None
        collected: list[SourceItem] = []
        for index in range(MAX_PAGES):
            answer, date = await hook.acall_dated(page(index))
            if until is None:
                # The service's clock (its Date, whole seconds) when the first page was read:
                # anything listed later has a time at or after it, or is in the next window.
                until = _epoch(date) or time.time()
            found = items_of(answer)
            collected += found
            if done(answer, found):
                return Scan(since, until, merge_items(collected))
        raise JobWaitError(
            f"{self.describe()}: more than {MAX_PAGES} pages in one window (since {since:.0f}); "
            "narrow the query or shorten lookback"
        )


def _dump(item: WatchedItem) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _summary(event: WatchEvent) -> str:
    shown = ", ".join(event.ids[:5]) + (f", ... ({len(event.ids)} in all)" if len(event.ids) > 5 else "")
    what = "new work(s)" if event.kind == "results_store.works" else "job(s) ended"
    return f"{what}: {shown}"


class NewWorksTrigger(JobWaitEventTrigger):
    """New works in the CHIME results store that match a query.

    A work is *new* once it is stored; its ``time_field`` (set by whoever made the work) orders
    it into the watch's windows: a work deposited more than ``lookback`` seconds after that time
    (or with that field missing) is not reported.

    :param pipeline: The pipeline watched.
    :param query: A MongoDB filter the results store evaluates (``{}``: every work of the pipeline).
    :param statuses: Only works with these statuses (``success``, ``failure``); ``None``: both.
    :param time_field: ``creation`` (default), ``start`` or ``stop``.
    """

    kind = "results_store.works"
    hook_name = "ResultsHook"
    shared_fields = ("pipeline", "query", "time_field")

    def __init__(
        self,
        pipeline: str,
        query: dict[str, Any] | None = None,
        statuses: list[str] | None = None,
        time_field: str = "creation",
        conn_id: str | None = None,
        poll_interval: float = 60.0,
        lookback: float = 600.0,
        batch: bool = False,
        start: float | None = None,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> None:
        super().__init__(conn_id, poll_interval, lookback, batch, start, max_seen)
        self.pipeline = results_api.check_pipeline(pipeline)
        self.query = results_api.check_query(query or {})
        self.statuses = _check_statuses(statuses, WORK_STATUSES)
        if time_field not in WORK_TIME_FIELDS:
            raise ValueError(f"time_field must be one of {', '.join(WORK_TIME_FIELDS)}, got {time_field!r}")
        self.time_field = time_field

    def source(self) -> dict[str, str]:
        return {"pipeline": self.pipeline}

    def accepts(self, item: SourceItem) -> bool:
        return self.statuses is None or item.payload.get("status") in self.statuses

    async def scan(self, since: float) -> Scan:
        window = {self.time_field: {"$gte": since}}
        # The user's own conditions stay whole (even on the time field): both must hold.
        query = {"$and": [self.query, window]} if self.query else window
        projection = {"status": True, self.time_field: True}
        size = PAGE_SIZES["results"]

        def page(index: int) -> Any:
            return results_api.view(self.pipeline, query, projection, skip=index * size, limit=size)

        def items_of(works: Any) -> list[SourceItem]:
            found = []
            for work in works:
                item = work_item(work, self.time_field)
                if item.time is None:
                    continue  # the query asked for it; a service that sends it anyway is not windowed
                found.append(SourceItem(key=work.id, id=work.id, time=item.time, ready=True, payload=_dump(item)))
            return found

        return await self._paged(since, page, items_of, lambda works, _: len(works) < size)


class DatasetJobsTrigger(JobWaitEventTrigger):
    """Dataset jobs of a TensorBay dataset reaching a terminal status (``SUCCESS``, ``FAILED``,
    ``ABORTED``, or any other as the SDK reads it).

    The job list is read newest first (``createdAt``) down to the window's start: a job that ends
    more than ``lookback`` seconds after it was created is not reported, so set ``lookback`` to
    the longest job you want to hear of (default one day). A retried job that ends again is
    reported again (its ``finishedAt`` differs).

    :param dataset_id: The dataset.
    :param job_type: ``squashAndMerge`` (default) or ``basicSearch``.
    :param statuses: Only jobs ending so (common statuses: ``COMPLETED``, ``FAILED``, ``CANCELED``, ...).
    """

    kind = "dataset.jobs"
    hook_name = "DatasetJobsHook"
    shared_fields = ("dataset_id", "job_type")

    def __init__(
        self,
        dataset_id: str,
        job_type: str = "squashAndMerge",
        statuses: list[str] | None = None,
        conn_id: str | None = None,
        poll_interval: float = 60.0,
        lookback: float = 86400.0,
        batch: bool = False,
        start: float | None = None,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> None:
        super().__init__(conn_id, poll_interval, lookback, batch, start, max_seen)
        datasets_api.list_jobs(dataset_id, job_type)  # validates the id and type now, not at the first poll
        self.dataset_id = dataset_id
        self.job_type = job_type
        self.statuses = _check_statuses(statuses, [status.value for status in JobStatus if status.is_terminal])

    def source(self) -> dict[str, str]:
        return {"dataset_id": self.dataset_id, "job_type": self.job_type}

    def accepts(self, item: SourceItem) -> bool:
        return self.statuses is None or item.payload.get("job_status") in self.statuses

    async def scan(self, since: float) -> Scan:
        size = PAGE_SIZES["dataset"]

        def page(index: int) -> Any:
            return datasets_api.list_jobs(self.dataset_id, self.job_type, offset=index * size, limit=size)

        def items_of(answer: Any) -> list[SourceItem]:
            found = []
            for job in answer.jobs:
                item = dataset_job_item(job, self.job_type)
                if item.time is not None and item.time < since:
                    continue
                ready = item.job_status is not None and item.job_status.is_terminal
                # A job without createdAt is windowed as of now: seen for one lookback.
                when = item.time if item.time is not None else time.time()
                key = f"{job.job_id}@{job.finished_at}"
                found.append(SourceItem(key=key, id=job.job_id, time=when, ready=ready, payload=_dump(item)))
            return found

        def done(answer: Any, _: Sequence[SourceItem]) -> bool:
            # Newest first: a page reaching before the window, or a short one, is the last needed.
            jobs = answer.jobs
            oldest = min((job.created_at for job in jobs if job.created_at is not None), default=None)
            return len(jobs) < size or (oldest is not None and oldest < since)

        return await self._paged(since, page, items_of, done)


class InferenceJobsTrigger(JobWaitEventTrigger):
    """Inference jobs of a Modzy model (optionally one version) reaching a terminal status.

    Reads the job history (``GET /api/jobs/history?status=terminated&model=&startDate=``), whose
    window is on ``submittedAt``: a job that ends more than ``lookback`` seconds after it was
    submitted is not reported, so set ``lookback`` to the longest job you want to hear of
    (default one day).

    :param model: The model's identifier.
    :param version: Only jobs of this version (``None``: every version).
    :param statuses: Only jobs ending so (``COMPLETED``, ``FAILED``, ``CANCELED``, ``TIMEDOUT``).
    """

    kind = "inference.jobs"
    hook_name = "JobsHook"
    shared_fields = ("model",)

    def __init__(
        self,
        model: str,
        version: str | None = None,
        statuses: list[str] | None = None,
        conn_id: str | None = None,
        poll_interval: float = 60.0,
        lookback: float = 86400.0,
        batch: bool = False,
        start: float | None = None,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> None:
        super().__init__(conn_id, poll_interval, lookback, batch, start, max_seen)
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise ValueError(f"version must be None or a non-empty string, got {version!r}")
        self.model = model
        self.version = version
        self.statuses = _check_statuses(statuses, [status.value for status in JobStatus if status.is_terminal])

    def source(self) -> dict[str, str]:
        return {"model": self.model} | ({"version": self.version} if self.version is not None else {})

    def accepts(self, item: SourceItem) -> bool:
        if self.version is not None and item.payload.get("details", {}).get("version") != self.version:
            return False
        return self.statuses is None or item.payload.get("job_status") in self.statuses

    async def scan(self, since: float) -> Scan:
        size = PAGE_SIZES["inference"]
        start_date = datetime.fromtimestamp(since, UTC)

        def page(index: int) -> Any:
            return inference_api.history(
                status="terminated", per_page=size, page=index + 1, model=self.model, start_date=start_date
            )

        def items_of(jobs: Any) -> list[SourceItem]:
            found = []
            for job in jobs:
                item = inference_job_item(job, self.model)
                if item.time is not None and item.time < since:
                    continue
                when = item.time if item.time is not None else time.time()
                ready = job.status.is_terminal
                found.append(
                    SourceItem(
                        key=job.job_identifier, id=job.job_identifier, time=when, ready=ready, payload=_dump(item)
                    )
                )
            return found

        return await self._paged(since, page, items_of, lambda jobs, _: len(jobs) < size)
