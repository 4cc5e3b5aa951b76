"""Event triggers (issue 17) against the live reference service, run by Airflow's own ``TriggerRunner``.

The runner here is Airflow's (``run_trigger``, its ``SharedStreamManager`` in ack mode); the
test plays the supervisor's part: it takes the events the runner queues, "stores" them, and
confirms each one persisted (``confirm_persisted``) as the supervisor does once the event is in
the metadata DB, or, to stand for a kill -9 before the DB write, does not. The asset state store
is Airflow's own ``AssetStateStoreAccessors`` over a stand-in for the supervisor channel that keeps
values in a dict (the channel's messages are Airflow's). A restart is a new runner and a trigger
built from the serialized kwargs, over the same store.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import ErrorResponse
from airflow.triggers.base import BaseEventTrigger
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.event_watermarks import Watermark
from airflow_jobwait.hooks import DatasetJobsHook, JobsHook, ResultsHook
from airflow_jobwait.models import JobInput, ModelRef, SubmitJobRequest
from airflow_jobwait.models.watch_events import WatchEvent
from airflow_jobwait.triggers.events import (
    DatasetJobsTrigger,
    InferenceJobsTrigger,
    JobWaitEventTrigger,
    NewWorksTrigger,
    ScanProducer,
)
from airflow_jobwait.version_compat import AIRFLOW_V_3_3_PLUS

if AIRFLOW_V_3_3_PLUS:  # the asset state store's messages and accessors arrived in 3.3
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import (
        AssetStateStoreResult,
        GetAssetStateStoreByName,
        SetAssetStateStoreByName,
    )
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors
from tests import reference_datasets as reference
from tests._liveness import LIVENESS_S
from tests.conftest import API_KEY, CHIME_CONN, FAMILIES, TENSORBAY_CONN
from tests.test_job_trigger import submit


def import_string(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


POLL = 0.2
needs_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="asset state store and shared streams: Airflow 3.3")


# ---- Airflow's parts, and the supervisor's played here ---------------------------------------------


class StateChannel:
    """The supervisor's side of the asset state store messages, kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.writes = 0

    async def asend(self, msg: Any) -> Any:
        return self.send(msg)

    def send(self, msg: Any) -> Any:
        if isinstance(msg, GetAssetStateStoreByName):
            if (msg.name, msg.key) in self.values:
                return AssetStateStoreResult(value=self.values[msg.name, msg.key])
            return ErrorResponse(error=ErrorType.ASSET_STORE_NOT_FOUND)
        if isinstance(msg, SetAssetStateStoreByName):
            self.values[msg.name, msg.key] = msg.value
            self.writes += 1
            return None
        raise AssertionError(f"unexpected message {msg!r}")

    def watermark(self, asset: str, trigger: JobWaitEventTrigger) -> Watermark | None:
        return Watermark.from_store(self.values.get((asset, trigger.watermark_key())))


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> StateChannel:
    found = StateChannel()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", found, raising=False)
    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")  # run_trigger's sync bridge: not used
    return found


def watched(trigger: JobWaitEventTrigger, *assets: str) -> JobWaitEventTrigger:
    """What the triggerer does for a watcher: give it the state store of the assets it feeds."""
    trigger.asset_state_store = AssetStateStoreAccessors(inlets=[Asset(name=name) for name in assets])
    return trigger


def restarted(trigger: JobWaitEventTrigger, *assets: str) -> JobWaitEventTrigger:
    """The same watcher on a new triggerer: built from its serialized kwargs (as JSON) alone."""
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))
    return watched(rebuilt, *assets)


class Triggerer:
    """Airflow's ``TriggerRunner`` running watchers, with the supervisor played by ``_supervise``.

    :param confirm: Confirm each stored event persisted (the supervisor after its DB write);
        ``False`` stands for a triggerer killed between queueing events and storing them.
    """

    def __init__(self, confirm: bool = True) -> None:
        from airflow.jobs.triggerer_job_runner import TriggerRunner

        self.runner = TriggerRunner()
        self.confirm = confirm
        self.stored: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.tasks: list[asyncio.Task[None]] = []
        self.supervisor: asyncio.Task[None] | None = None
        self.stopped = False

    def start(self, trigger_id: int, trigger: BaseEventTrigger) -> None:
        self.runner.triggers[trigger_id] = {
            "task": None,
            "is_watcher": True,
            "name": f"watch {trigger_id}",
            "events": 0,
        }
        self.tasks.append(asyncio.create_task(self.runner.run_trigger(trigger_id, trigger)))
        if self.supervisor is None:
            self.supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            while self.runner.events:
                entry = self.runner.events.popleft()
                self.stored[entry.trigger_id].append(entry.event.payload)
                if self.confirm and entry.persist_seq is not None:
                    self.runner._shared_streams.confirm_persisted([entry.persist_seq])
            await asyncio.sleep(0.02)

    def ids(self, trigger_id: int) -> list[str]:
        return [work_id for payload in self.stored[trigger_id] for work_id in payload["ids"]]

    async def stop(self) -> None:
        """Stop every watcher at once (a triggerer going away); a failed one fails the test."""
        if self.stopped:
            return
        self.stopped = True
        for task in self.tasks:
            if task.done() and not task.cancelled():
                task.result()  # a watcher that ended by itself failed: say how
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.runner._shared_streams.stop_all()
        if self.supervisor is not None:
            self.supervisor.cancel()
            await asyncio.gather(self.supervisor, return_exceptions=True)


async def until(condition: Callable[[], bool], what: str, limit: float = LIVENESS_S) -> None:
    """Wait for ``condition`` (a liveness bound, not a timing expectation)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:g}s: {what}")
        await asyncio.sleep(0.05)


async def settle(polls: int = 4) -> None:
    """Let a few polls go by (for "nothing more is reported")."""
    await asyncio.sleep(polls * POLL + 0.3)


@pytest.fixture
async def triggerers() -> AsyncIterator[list[Triggerer]]:
    made: list[Triggerer] = []
    yield made
    for triggerer in made:
        await triggerer.stop()


def new_triggerer(made: list[Triggerer], confirm: bool = True) -> Triggerer:
    triggerer = Triggerer(confirm)
    made.append(triggerer)
    return triggerer


# ---- the results store -----------------------------------------------------------------------------


@pytest.fixture
def results(jobwait_conn: str) -> ResultsHook:
    return ResultsHook(CHIME_CONN)


@pytest.fixture
def pipeline() -> str:
    return f"watch-{uuid.uuid4().hex[:8]}"


def deposit(
    hook: ResultsHook, pipeline: str, count: int, status: str = "success", when: float | None = None
) -> list[str]:
    ids = [f"{pipeline}-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    created = time.time() if when is None else when
    hook.deposit([{"id": i, "pipeline": pipeline, "status": status, "results": {}, "creation": created} for i in ids])
    return ids


def works_watch(pipeline: str, **kwargs: Any) -> NewWorksTrigger:
    return NewWorksTrigger(pipeline, conn_id=CHIME_CONN, poll_interval=POLL, lookback=30, **kwargs)


@needs_3_3
async def test_new_works_fire_once_each_and_a_restart_resumes_from_the_watermark(
    results: ResultsHook, pipeline: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    before = deposit(results, pipeline, 2)  # there before the watcher: its baseline, never reported
    trigger = watched(works_watch(pipeline), "works")
    first = new_triggerer(triggerers)
    first.start(1, trigger)
    await until(lambda: channel.watermark("works", trigger) is not None, "the baseline is committed")
    fresh = deposit(results, pipeline, 3)
    await until(lambda: len(first.ids(1)) >= 3, "the three new works are reported")
    await settle()
    assert sorted(first.ids(1)) == sorted(fresh)  # each once, the baseline's none
    assert all(len(payload["ids"]) == 1 for payload in first.stored[1])  # one event per work
    event = WatchEvent.from_asset_event({"from_trigger": True, "payload": first.stored[1][0]})
    assert event.kind == "results_store.works" and event.source == {"pipeline": pipeline}
    assert event.items[0].status == "success" and event.items[0].id == event.ids[0]
    await until(lambda: set(fresh) <= set(channel.watermark("works", trigger).seen), "the watermark covers them")
    await first.stop()

    # Deposited while no triggerer ran (one with an older creation time, within the lookback).
    while_down = deposit(results, pipeline, 2) + deposit(results, pipeline, 1, when=time.time() - 10)
    second = new_triggerer(triggerers)
    second.start(7, restarted(trigger, "works"))
    await until(lambda: len(second.ids(7)) >= 3, "the works deposited while down are reported")
    await settle()
    assert sorted(second.ids(7)) == sorted(while_down)  # once each; nothing of before or fresh again
    assert not set(second.ids(7)) & set(before + fresh)


@needs_3_3
async def test_events_not_confirmed_stored_fire_again_after_a_restart_never_lost(
    results: ResultsHook, pipeline: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    """Fire, then commit: the watermark moves only once Airflow confirmed the events stored."""
    trigger = watched(works_watch(pipeline), "works")
    killed = new_triggerer(triggerers, confirm=False)  # events queued, never written to the DB
    killed.start(1, trigger)
    await until(lambda: channel.watermark("works", trigger) is not None, "the baseline is committed")
    lost = deposit(results, pipeline, 2)
    await until(lambda: len(killed.ids(1)) == 2, "the works are fired")
    await settle()
    mark = channel.watermark("works", trigger)
    assert mark is not None and not set(lost) & set(mark.seen)  # not committed: nothing confirmed stored
    await killed.stop()

    again = new_triggerer(triggerers)
    again.start(2, restarted(trigger, "works"))
    await until(lambda: len(again.ids(2)) >= 2, "the unconfirmed works fire again")
    await until(lambda: set(lost) <= set(channel.watermark("works", trigger).seen), "now committed")
    await again.stop()

    third = new_triggerer(triggerers)
    third.start(3, restarted(trigger, "works"))
    late = deposit(results, pipeline, 1)
    await until(lambda: len(third.ids(3)) >= 1, "a later work is reported")
    await settle()
    assert third.ids(3) == late  # the confirmed ones are not fired a third time


@needs_3_3
async def test_batch_status_and_query_filters(
    results: ResultsHook, pipeline: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    batch = watched(works_watch(pipeline, batch=True), "all")
    failures = watched(works_watch(pipeline, statuses=["failure"]), "failures")
    tagged = watched(works_watch(pipeline, query={"tags": "gold"}), "gold")
    triggerer = new_triggerer(triggerers)
    for trigger_id, trigger in enumerate((batch, failures, tagged), start=1):
        triggerer.start(trigger_id, trigger)
    await until(lambda: all(channel.watermark(a, t) for a, t in (("all", batch), ("failures", failures))), "baselines")
    await until(lambda: channel.watermark("gold", tagged) is not None, "baseline")
    ok = deposit(results, pipeline, 3)
    failed = deposit(results, pipeline, 2, status="failure")
    gold = f"{pipeline}-gold"
    results.deposit(
        [
            {
                "id": gold,
                "pipeline": pipeline,
                "status": "success",
                "results": {},
                "creation": time.time(),
                "tags": ["gold"],
            }
        ]
    )
    deposit(results, f"{pipeline}-other", 2)  # another pipeline: nobody's
    await until(lambda: len(triggerer.ids(1)) >= 6 and len(triggerer.ids(2)) >= 2 and triggerer.ids(3), "reported")
    await settle()
    assert sorted(triggerer.ids(1)) == sorted([*ok, *failed, gold])
    assert len(triggerer.stored[1]) < 6  # batched: one event per poll, not one per work
    assert sorted(triggerer.ids(2)) == sorted(failed)
    assert triggerer.ids(3) == [gold]


@needs_3_3
async def test_hundred_watchers_of_one_results_store_cost_one_request_per_poll(
    results: ResultsHook,
    pipeline: str,
    service: ServiceProcess,
    channel: StateChannel,
    triggerers: list[Triggerer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans: list[float] = []
    real_scan = ScanProducer.next_scan

    async def counted(self: ScanProducer) -> Any:
        scan = await real_scan(self)
        scans.append(scan.until)
        return scan

    monkeypatch.setattr(ScanProducer, "next_scan", counted)
    view = FAMILIES["chime_results"][1] + "/view"
    # A counting rule: a delay too short to matter; the service counts the requests it matched.
    rule = {"kind": "delay", "delay_s": 0.001, "path_prefix": view, "methods": ["POST"]}
    triggerer = new_triggerer(triggerers)
    watchers = [watched(works_watch(pipeline, statuses=["success"] if n % 2 else None), f"w{n}") for n in range(100)]
    faults = FaultControl(service.base_url, API_KEY)
    with faults.injected([rule]):
        for n, trigger in enumerate(watchers):
            triggerer.start(n, trigger)
        await until(lambda: all(channel.watermark(f"w{n}", t) for n, t in enumerate(watchers)), "100 baselines")
        ids = deposit(results, pipeline, 1)
        await until(lambda: all(triggerer.ids(n) for n in range(100)), "every watcher reports the work")
        await settle(3)
        requests = faults.state()["rules"][0]["fired"]
        polls = len(scans)
    assert all(triggerer.ids(n) == ids for n in range(100))  # each watcher, once
    assert polls >= 2
    # One view per poll for all 100 (each window fits in one page), not one per watcher; a poll
    # may be in flight when the counts are read.
    assert polls <= requests <= polls + 1, (requests, polls)
    assert len({trigger.shared_stream_key() for trigger in watchers}) == 1


@needs_3_3
async def test_a_work_visible_late_is_reported_once_within_the_lookback_and_equal_times_are_kept(
    results: ResultsHook, pipeline: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    trigger = watched(works_watch(pipeline), "works")
    triggerer = new_triggerer(triggerers)
    triggerer.start(1, trigger)
    await until(lambda: channel.watermark("works", trigger) is not None, "baseline")
    now = time.time()
    same = deposit(results, pipeline, 2, when=now)  # equal timestamps, across polls
    await until(lambda: len(triggerer.ids(1)) >= 2, "first")
    same += deposit(results, pipeline, 2, when=now)
    late = deposit(results, pipeline, 1, when=now - 20)  # older than the last scans, within lookback
    too_late = deposit(results, pipeline, 1, when=now - 120)  # beyond lookback: documented miss
    await until(lambda: len(triggerer.ids(1)) >= 5, "the late and equal-time works")
    await settle()
    assert sorted(triggerer.ids(1)) == sorted(same + late)
    assert not set(too_late) & set(triggerer.ids(1))


# ---- dataset jobs and inference jobs ----------------------------------------------------------------

FAST = {"queuing_s": 0.05, "processing_s": 0.1}


@needs_3_3
async def test_dataset_jobs_reaching_a_terminal_status(
    jobwait_conn: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    hook = DatasetJobsHook(TENSORBAY_CONN)
    dataset = hook.call(reference.clone_dataset())
    every = watched(DatasetJobsTrigger(dataset, conn_id=TENSORBAY_CONN, poll_interval=POLL, lookback=60), "merges")
    failed_only = watched(
        DatasetJobsTrigger(dataset, statuses=["FAILED"], conn_id=TENSORBAY_CONN, poll_interval=POLL, lookback=60),
        "failed",
    )
    triggerer = new_triggerer(triggerers)
    triggerer.start(1, every)
    triggerer.start(2, failed_only)
    await until(lambda: channel.watermark("merges", every) and channel.watermark("failed", failed_only), "baselines")
    merged = hook.squash_and_merge(dataset, "merge", "feature", "main", extra_body={"test": FAST})
    conflict = hook.squash_and_merge(dataset, "clash", "conflicting", "main", extra_body={"test": FAST})
    await until(lambda: len(triggerer.ids(1)) >= 2 and triggerer.ids(2), "both jobs end")
    await settle()
    assert sorted(triggerer.ids(1)) == sorted([merged.job_id, conflict.job_id])
    assert triggerer.ids(2) == [conflict.job_id]
    by_id = {p["ids"][0]: WatchEvent.model_validate(p).items[0] for p in triggerer.stored[1]}
    assert by_id[merged.job_id].status == "SUCCESS" and by_id[merged.job_id].job_status == "COMPLETED"
    assert isinstance(by_id[merged.job_id].details["draftNumber"], int)
    assert by_id[conflict.job_id].status == "FAILED" and by_id[conflict.job_id].details["errorMessage"]
    assert triggerer.stored[1][0]["source"] == {"dataset_id": dataset, "job_type": "squashAndMerge"}


@needs_3_3
async def test_inference_jobs_of_a_model_reaching_a_terminal_status(
    jobwait_conn: str, channel: StateChannel, triggerers: list[Triggerer]
) -> None:
    hook = JobsHook(jobwait_conn)
    common = {"conn_id": jobwait_conn, "poll_interval": POLL, "lookback": 60}
    echo = watched(InferenceJobsTrigger("echo", **common), "echo")
    other_version = watched(InferenceJobsTrigger("echo", version="9.9", **common), "echo-9.9")
    triggerer = new_triggerer(triggerers)
    triggerer.start(1, echo)
    triggerer.start(2, other_version)
    await until(lambda: channel.watermark("echo", echo) and channel.watermark("echo-9.9", other_version), "baselines")
    jobs = [submit(hook, duration_s=0.3) for _ in range(3)]
    await until(lambda: set(jobs) <= set(triggerer.ids(1)), "the echo jobs end")
    await settle()
    assert sorted(set(triggerer.ids(1)) & set(jobs)) == sorted(jobs)
    assert len(triggerer.ids(1)) == len(set(triggerer.ids(1)))  # each once
    assert triggerer.ids(2) == []  # no job of version 9.9
    item = WatchEvent.model_validate(triggerer.stored[1][0]).items[0]
    assert item.job_status == "COMPLETED" and item.details == {"model": "echo", "version": "1.0"}


# ---- without Airflow's help: the 3.1/3.2 path, and the pieces ---------------------------------------


async def test_run_alone_without_a_state_store_reports_new_works(results: ResultsHook, pipeline: str) -> None:
    """Airflow 3.1/3.2: no shared stream, no state store; ``run`` polls alone, watermark in memory."""
    trigger = works_watch(pipeline)
    events = trigger.run()
    got: list[str] = []

    async def collect() -> None:
        async for event in events:
            got.extend(event.payload["ids"])

    task = asyncio.create_task(collect())
    try:
        await asyncio.sleep(3 * POLL)  # the baseline poll
        ids = deposit(results, pipeline, 2)
        await until(lambda: len(got) >= 2, "reported by run()")
        await settle()
        assert sorted(got) == sorted(ids)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_kwargs_are_json_without_secrets_and_shared_keys_group_by_source(jobwait_conn: str) -> None:
    works = NewWorksTrigger("p", query={"tags": "x"}, statuses=["success"], conn_id=CHIME_CONN, start=5.0)
    classpath, kwargs = works.serialize()
    assert API_KEY not in json.dumps(kwargs) and "s3cr3t" not in json.dumps(kwargs)
    assert import_string(classpath)(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)
    BaseEventTrigger.hash(classpath, kwargs)  # Airflow can identify the watcher by its kwargs
    same_source = NewWorksTrigger("p", query={"tags": "x"}, batch=True, conn_id=CHIME_CONN)
    assert works.shared_stream_key() == same_source.shared_stream_key()
    assert works.watermark_key() != same_source.watermark_key()
    assert works.shared_stream_key() != NewWorksTrigger("q", conn_id=CHIME_CONN).shared_stream_key()
    jobs = InferenceJobsTrigger("echo", version="1.0")
    assert jobs.shared_stream_key() == InferenceJobsTrigger("echo", statuses=["FAILED"]).shared_stream_key()
    with pytest.raises(ValueError, match="time_field"):
        NewWorksTrigger("p", time_field="updated")
    with pytest.raises(ValueError, match="statuses"):
        DatasetJobsTrigger("d", statuses=["SUCCESS"])  # common statuses: COMPLETED, FAILED, ...


def test_watermark_dedupes_rescanned_items_forgets_below_the_window_and_stays_bounded() -> None:
    from airflow_jobwait.event_watermarks import Scan, SourceItem

    def items(*spec: tuple[str, float]) -> list[SourceItem]:
        return [SourceItem(key=k, id=k, time=t, ready=True) for k, t in spec]

    mark = Watermark()
    new, mark, _ = mark.advance(Scan(90, 100, items(("a", 95))), lookback=10)
    assert new == [] and mark.horizon == 100  # baseline
    new, mark, _ = mark.advance(Scan(90, 110, items(("a", 95), ("b", 100), ("c", 100))), lookback=10)
    assert [i.id for i in new] == ["b", "c"]
    new, mark, _ = mark.advance(Scan(100, 120, items(("b", 100), ("c", 100), ("d", 100))), lookback=10)
    assert [i.id for i in new] == ["d"]  # an equal time, seen late: once; b and c not again
    assert "a" not in mark.seen and mark.floor == 110  # below the next window: forgotten
    new, mark, dropped = mark.advance(
        Scan(110, 121, items(*[(f"x{n}", 115 + n / 10) for n in range(5)])), 10, max_seen=3
    )
    assert len(new) == 5 and dropped == 2 and len(mark.seen) == 3
    new, mark, _ = mark.advance(Scan(111, 122, items(*[(f"x{n}", 115 + n / 10) for n in range(5)])), 10, max_seen=3)
    assert new == []  # the dropped keys are below the raised floor: not reported again


@needs_3_3
async def test_a_watcher_of_two_assets_keeps_a_copy_on_each_and_resumes_from_the_older(channel: StateChannel) -> None:
    """A write that reached one asset's store and not the other's (a crash between the two) must
    cost duplicates, never a miss: the copy with the older horizon wins."""
    from airflow_jobwait.triggers.events import WatermarkStore

    trigger = watched(works_watch("p"), "a", "b")
    store = WatermarkStore.of(trigger, trigger.watermark_key())
    assert store.persistent and len(store.accessors) == 2
    older = Watermark(horizon=100.0, floor=70.0, seen={"w1": 90.0})
    await store.save(older)
    assert channel.watermark("a", trigger) == older and channel.watermark("b", trigger) == older
    newer = Watermark(horizon=200.0, floor=170.0, seen={"w2": 190.0})
    await store.accessors[0].aset(store.key, newer.to_store())  # only the first copy moved on
    assert await WatermarkStore.of(restarted(trigger, "a", "b"), trigger.watermark_key()).load() == older


@pytest.mark.parametrize("feature", ["asset_state_store", "shared_streams"])
def test_what_31_and_32_lack_is_named_once(feature: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_jobwait import version_compat

    monkeypatch.setattr(version_compat, "_logged", set())
    assert version_compat.warn_unavailable(feature) is (not AIRFLOW_V_3_3_PLUS)
    assert "3.3" in version_compat.UNAVAILABLE_BEFORE_3_3[feature]


@needs_3_3
@pytest.mark.parametrize("kind", ["dataset", "inference"])
async def test_jobs_ending_while_no_triggerer_ran_fire_once_on_resume(
    kind: str, jobwait_conn: str, channel: StateChannel, triggerers: list[Triggerer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several pages per scan too (pages of 2): the catch-up and the shared scans read them all."""
    from airflow_jobwait.triggers import events

    monkeypatch.setitem(events.PAGE_SIZES, kind, 2)
    common: dict[str, Any] = {"poll_interval": POLL, "lookback": 60}
    if kind == "dataset":
        datasets = DatasetJobsHook(TENSORBAY_CONN)
        dataset = datasets.call(reference.clone_dataset())

        def make_jobs(count: int) -> list[str]:
            made = [
                datasets.squash_and_merge(dataset, f"m{n}", "feature", "main", extra_body={"test": FAST}).job_id
                for n in range(count)
            ]
            for job_id in made:  # ended before the watcher looks again
                datasets.wait_for_job(
                    job_id,
                    0.05,
                    LIVENESS_S,
                    job_kind="dataset",
                    job_ref={"dataset_id": dataset, "job_type": "squashAndMerge"},
                )
            return made

        trigger: JobWaitEventTrigger = DatasetJobsTrigger(dataset, conn_id=TENSORBAY_CONN, **common)
    else:
        jobs_hook = JobsHook(jobwait_conn)
        model = "wordcount"  # a model no other test of this file submits to

        def make_jobs(count: int) -> list[str]:
            made = [
                jobs_hook.submit_job(
                    SubmitJobRequest(
                        model=ModelRef(identifier=model, version="1.0"),
                        input=JobInput(sources={"a": {"input.txt": "one two"}}),
                    )
                ).job_identifier
                for _ in range(count)
            ]
            for job_id in made:
                jobs_hook.wait_for_job(job_id, 0.05, LIVENESS_S)
            return made

        trigger = InferenceJobsTrigger(model, conn_id=jobwait_conn, **common)
    first = new_triggerer(triggerers)
    first.start(1, watched(trigger, "jobs"))
    await until(lambda: channel.watermark("jobs", trigger) is not None, "baseline")
    seen_live = make_jobs(3)
    await until(lambda: set(seen_live) <= set(first.ids(1)), "the jobs ending while it runs")
    # Dataset jobs are remembered by id and finishedAt (a retried job ends again), jobs by id.
    await until(lambda: set(seen_live) <= {k.split("@")[0] for k in channel.watermark("jobs", trigger).seen}, "kept")
    await first.stop()

    while_down = make_jobs(3)
    second = new_triggerer(triggerers)
    second.start(2, restarted(trigger, "jobs"))
    await until(lambda: set(while_down) <= set(second.ids(2)), "the jobs that ended while down")
    await settle()
    assert sorted(second.ids(2)) == sorted(while_down)  # once each, none of before again
    assert len(first.ids(1)) == len(set(first.ids(1)))
