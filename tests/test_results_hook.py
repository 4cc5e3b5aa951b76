"""ResultsHook against the live reference service: every method, each documented refusal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_jobwait.client import results_store as api
from airflow_jobwait.client.http import HttpResponse
from airflow_jobwait.client.results_store import NotLockedError, UnknownWorksError
from airflow_jobwait.exceptions import ApiError, Conflict, InvalidResponse, JobWaitError, NotFound
from airflow_jobwait.hooks.results import ResultsHook
from airflow_jobwait.models import JobResults
from airflow_jobwait.models.results_store import Work, works_from_job_results
from tests._scripted_service import ScriptedService, scripted_service
from tests.conftest import CHIME_CONN


@pytest.fixture
def hook(jobwait_conn: str) -> ResultsHook:
    return ResultsHook(CHIME_CONN)


@pytest.fixture
def pipeline() -> str:
    return f"hook-{uuid.uuid4().hex[:12]}"


def work(pipeline: str, work_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A work payload as the public ``Work`` model serialises it."""
    payload: dict[str, Any] = {
        "id": work_id or f"{pipeline}-{uuid.uuid4().hex[:8]}",
        "pipeline": pipeline,
        "site": "local",
        "user": "tester",
        "function": "demo.analyse",
        "parameters": {"n": 1},
        "results": {"snr": 10.0},
        "products": ["/data/a.h5"],
        "plots": ["/data/a.png"],
        "tags": ["demo"],
        "event": [1],
        "creation": 1_700_000_000,
        "start": 1_700_000_001.5,
        "stop": 1_700_000_002.0,
        "attempt": 1,
        "status": "success",
        "priority": 3,
    }
    payload.update(fields)
    return payload


# ---- info, status, deposit, views -------------------------------------------------------------


def test_info_and_status(hook: ResultsHook, pipeline: str) -> None:
    assert hook.info().version
    assert pipeline not in hook.status()
    assert hook.deposit([work(pipeline), work(pipeline)]) == {pipeline: True}
    assert hook.status()[pipeline] == 2
    ok, message = hook.test_connection()
    assert ok and "results store" in message


def test_deposit_models_and_dicts_then_view_count(hook: ResultsHook, pipeline: str) -> None:
    model = Work(id=f"{pipeline}-model", pipeline=pipeline, status="failure", results=None, event=[2])
    plain = work(pipeline, f"{pipeline}-dict", event=[1, 2], extra_field={"kept": True})
    assert hook.deposit([model, plain]) == {pipeline: True}

    stored = hook.view(pipeline, {})
    assert [w.id for w in stored] == [model.id, plain["id"]]
    assert stored[0].status == "failure" and stored[0].results is None
    assert stored[1].to_wire() == plain  # whole, unknown fields and int/float kept as sent
    assert stored[1].model_extra == {"extra_field": {"kept": True}}
    assert hook.count(pipeline, {}) == 2
    assert hook.count(pipeline, {"event": 2}) == 2
    assert hook.count(pipeline, {"status": "failure"}) == 1
    # The pipeline argument wins over one in the query.
    assert hook.count(pipeline, {"pipeline": "some-other"}) == 2


def test_view_projection_skip_limit(hook: ResultsHook, pipeline: str) -> None:
    works = [work(pipeline, f"{pipeline}-{n:02d}", attempt=n) for n in range(12)]
    hook.deposit(works)
    ids = [w["id"] for w in works]
    assert [w.id for w in hook.view(pipeline, {}, skip=3, limit=4)] == ids[3:7]
    assert [w.id for w in hook.view(pipeline, {}, limit=-1)] == ids  # the public client's "no limit"
    assert [w.id for w in hook.view(pipeline, {}, limit=0)] == ids
    assert len(hook.view(pipeline, {})) == 12  # default limit 100
    assert [w.id for w in hook.view(pipeline, {}, limit=5)] == ids[:5]
    assert [w.attempt for w in hook.view(pipeline, {"attempt": {"$in": [1, 3, 5]}}, skip=1)] == [3, 5]
    (projected,) = hook.view(pipeline, {"id": ids[0]}, {"results.snr": True, "event": True})
    assert projected.to_wire() == {"id": ids[0], "results": {"snr": 10.0}, "event": [1]}
    assert projected.pipeline is None and "pipeline" not in projected.model_fields_set


def test_client_helpers(hook: ResultsHook, pipeline: str) -> None:
    works = [work(pipeline, f"{pipeline}-{n}", event=[n]) for n in range(5)]
    works.append(work(pipeline, f"{pipeline}-pair", event=[3, 4]))
    hook.deposit(works)
    found = hook.get_by_id(pipeline, [works[4]["id"], works[1]["id"], "unknown"])
    assert [w.id for w in found] == [works[1]["id"], works[4]["id"]]
    assert hook.get_by_id(f"{pipeline}-other", [works[1]["id"]]) == []
    assert [w.id for w in hook.get_by_count(pipeline, 2)] == [works[0]["id"], works[1]["id"]]
    assert len(hook.get_by_count(pipeline)) == 6
    assert [w.id for w in hook.get_by_event(pipeline, 3)] == [works[3]["id"]]  # array equality
    assert hook.get_by_event(pipeline, 42) == []
    assert hook.get_locked(pipeline) == []
    assert hook.get_locked_count(pipeline) == 0


def test_helpers_past_the_default_view_limit(hook: ResultsHook, pipeline: str) -> None:
    # A view answers at most 100 works unless told otherwise (workflow-core view(limit=100)).
    # get_by_event answers every work of the event, and lock/unlock read their works by id
    # (get_by_id): neither may stop at 100. get_by_count and get_locked take count=10 by
    # default, as workflow-core's Results.get_by_count(pipeline, count=10) and
    # get_locked(pipeline, skip=0, count=10) do.
    works = [work(pipeline, f"{pipeline}-{n:03d}", event=[7]) for n in range(101)]
    assert hook.deposit(works) == {pipeline: True}
    ids = [w["id"] for w in works]
    assert [w.id for w in hook.get_by_event(pipeline, 7)] == ids
    assert [w.id for w in hook.view(pipeline, {})] == ids[:100]
    assert [w.id for w in hook.get_by_id(pipeline, ids)] == ids  # workflow-core get_by_id: limit=-1
    assert [w.id for w in hook.get_by_count(pipeline)] == ids[:10]
    assert hook.lock(pipeline, ids) is True
    assert hook.get_locked_count(pipeline) == 101
    assert [w.id for w in hook.get_locked(pipeline)] == ids[:10]
    assert [w.id for w in hook.get_locked(pipeline, skip=100)] == ids[100:]
    assert hook.unlock(pipeline, ids, force=True) is True
    assert hook.get_locked_count(pipeline) == 0


def test_works_from_job_results_deposit(hook: ResultsHook, pipeline: str) -> None:
    raw = {
        "jobIdentifier": "job-1",
        "submittedAt": "2026-01-01T00:00:00.000Z",
        "total": 2,
        "completed": 1,
        "failed": 1,
        "finished": True,
        "results": {
            "a": {"status": "SUCCESSFUL", "startTime": "2026-01-01T00:00:01.000+0000",
                  "endTime": "2026-01-01T00:00:02.500Z", "results.json": {"words": 3}},
        },
        "failures": {"b": {"status": "FAILED", "error": "model crashed"}},
    }  # fmt: skip
    works = works_from_job_results(raw, pipeline, site="local", tags=["t"])
    assert works == works_from_job_results(JobResults.model_validate(raw), pipeline, site="local", tags=["t"])
    assert Work.from_job_results(raw, pipeline, site="local", tags=["t"]) == works
    ok, failed = works
    assert (ok.id, ok.status, ok.results) == ("job-1:a", "success", {"results.json": {"words": 3}})
    assert (ok.creation, ok.start, ok.stop) == (1767225600.0, 1767225601.0, 1767225602.5)
    assert ok.parameters == {"job_id": "job-1", "source_key": "a"}
    assert (failed.id, failed.status, failed.results) == ("job-1:b", "failure", {"error": "model crashed"})
    assert hook.deposit(works) == {pipeline: True}
    assert [w.to_wire() for w in hook.get_by_id(pipeline, ["job-1:a", "job-1:b"])] == [w.to_wire() for w in works]

    with pytest.raises(ValueError, match="too large"):
        works_from_job_results({"too_large": True, "job_id": "job-1"}, pipeline)
    with pytest.raises(ValueError, match="pipeline"):
        works_from_job_results(raw, "")


# ---- refusals ---------------------------------------------------------------------------------


def test_duplicate_id_conflicts_and_nothing_is_stored(hook: ResultsHook, pipeline: str) -> None:
    taken = work(pipeline, f"{pipeline}-taken")
    hook.deposit([taken])
    fresh = work(pipeline, f"{pipeline}-fresh")
    with pytest.raises(Conflict) as info:
        hook.deposit([fresh, work(pipeline, taken["id"], event=[99])])
    assert info.value.status == 409
    assert taken["id"] in str(info.value) and fresh["id"] not in str(info.value)
    assert [w.to_wire() for w in hook.view(pipeline, {})] == [taken]


def test_deposit_with_bad_status_is_refused_before_any_request(hook: ResultsHook, pipeline: str) -> None:
    bad_id = f"{pipeline}-running"
    good = work(pipeline)
    for bad in (work(pipeline, bad_id, status="running"), Work(id=bad_id, pipeline=pipeline, status="queued")):
        with pytest.raises(ValueError, match=rf"{bad_id}.*status"):
            hook.deposit([good, bad])
    with pytest.raises(ValueError, match=rf"{bad_id}.*status None"):
        hook.deposit([{k: v for k, v in work(pipeline, bad_id).items() if k != "status"}])
    with pytest.raises(ValueError, match=rf"{bad_id}.*pipeline"):
        hook.deposit([{**work(pipeline, bad_id), "pipeline": ""}])
    with pytest.raises(ValueError, match=r"'event\.0'"):
        hook.deposit([work(pipeline, bad_id, event=["x"])])
    with pytest.raises(ValueError, match="non-empty list"):
        hook.deposit([])
    assert hook.count(pipeline, {}) == 0
    assert pipeline not in hook.status()


def test_unsupported_operator_is_a_400_naming_it(hook: ResultsHook, pipeline: str) -> None:
    with pytest.raises(ApiError) as info:
        hook.view(pipeline, {"$where": "sleep(100)"})
    assert info.value.status == 400 and "$where" in str(info.value)
    with pytest.raises(ApiError) as info:
        hook.count(pipeline, {"a": {"$regex": ".*"}})
    assert info.value.status == 400 and "$regex" in str(info.value)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda h, p: h.view(p, {}, skip=-1), "skip"),
        (lambda h, p: h.view(p, {}, skip=True), "skip"),
        (lambda h, p: h.view(p, {}, limit=-2), "limit"),
        (lambda h, p: h.view(p, {}, limit=10_001), "limit"),
        (lambda h, p: h.view(p, {}, limit=1.5), "limit"),
        (lambda h, p: h.view(p, [1]), "query"),
        (lambda h, p: h.view(p, {}, projection=["a"]), "projection"),
        (lambda h, p: h.view("", {}), "pipeline"),
        (lambda h, p: h.count(" ", {}), "pipeline"),
        (lambda h, p: h.get_by_id(p, []), "ids"),
        (lambda h, p: h.get_by_id(p, "one-id"), "ids"),
        (lambda h, p: h.get_by_id(p, ["ok", ""]), r"ids\[1\]"),
        # The argument is named as the public client names it: count, not limit.
        (
            lambda h, p: h.get_by_count(p, 10_001),
            r"^count must be an integer from 0 to 10000 \(0 or -1: no limit\), got 10001$",
        ),
        (
            lambda h, p: h.get_locked(p, count=10_001),
            r"^count must be an integer from 0 to 10000 \(0 or -1: no limit\), got 10001$",
        ),
        (lambda h, p: h.get_locked(p, skip=-1), "skip"),
        (lambda h, p: h.get_by_event(p, "3"), "event_number"),
        (lambda h, p: h.delete_ids(p, [None]), r"ids\[0\]"),
        (lambda h, p: h.update([{"priority": 1}]), "'id'"),
        (lambda h, p: h.update([{"id": "x", "status": "running"}]), "'running'"),
        (lambda h, p: h.lock(p, []), "ids"),
        (lambda h, p: h.update([{"id": "x"}, {"id": "x", "priority": 1}]), "'x' more than once"),
        (lambda h, p: h.deposit([work(p, "x"), work(p, "x")]), "'x' more than once"),
    ],
)
def test_bad_arguments_are_refused_client_side(
    hook: ResultsHook, pipeline: str, mocker: Any, call: Any, fragment: str
) -> None:
    send = mocker.spy(hook.client, "send")
    with pytest.raises(ValueError, match=fragment):
        call(hook, pipeline)
    assert send.call_count == 0


def test_update_merges_and_unknown_id_is_not_found(hook: ResultsHook, pipeline: str) -> None:
    stored = work(pipeline)
    hook.deposit([stored])
    assert hook.update([{"id": stored["id"], "priority": 1}]) is True
    assert hook.update([Work(id=stored["id"], notify={"slack": True})]) is True
    (after,) = hook.get_by_id(pipeline, [stored["id"]])
    assert after.to_wire() == {**stored, "priority": 1, "notify": {"slack": True}}
    with pytest.raises(NotFound, match="no-such-work"):
        hook.update([{"id": stored["id"], "priority": 9}, {"id": "no-such-work"}])
    assert hook.get_by_id(pipeline, [stored["id"]]) == [after]


def test_lock_cycle(hook: ResultsHook, pipeline: str) -> None:
    stored = work(pipeline, event=[77])
    other = work(pipeline, status="failure", results=None)
    hook.deposit([stored, other])
    work_id = stored["id"]

    assert hook.lock(pipeline, [work_id, other["id"]]) is True
    (locked, locked_other) = hook.get_by_id(pipeline, [work_id, other["id"]])
    assert locked.locked and locked.results == {"snr": 10.0, "locked": True}
    assert locked_other.locked and locked_other.results == {"locked": True}
    assert locked.to_wire() == {**stored, "results": {"snr": 10.0, "locked": True}}  # nothing else changed
    assert hook.get_locked_count(pipeline) == 2
    assert [w.to_wire() for w in hook.get_locked(pipeline, count=1)] == [
        {"id": work_id, "results": locked.results, "products": stored["products"], "plots": stored["plots"],
         "event": [77]}
    ]  # fmt: skip
    assert [w.id for w in hook.get_locked(pipeline, skip=1)] == [other["id"]]
    assert hook.lock(pipeline, [work_id]) is True  # locking again changes nothing

    # Update and delete of a locked work: 409 naming it, the work unchanged.
    with pytest.raises(Conflict) as info:
        hook.update([{"id": work_id, "priority": 1}])
    assert info.value.status == 409 and work_id in str(info.value)
    with pytest.raises(Conflict, match=work_id):
        hook.update([Work(id=work_id, results={"snr": 0.0, "locked": True})])
    with pytest.raises(Conflict, match=work_id):
        hook.delete_ids(pipeline, [work_id])
    assert hook.get_by_id(pipeline, [work_id]) == [locked]

    # Unlock needs force: a DAG cannot confirm.
    with pytest.raises(ValueError) as refused:
        hook.unlock(pipeline, [work_id])
    assert str(refused.value) == (
        f"refusing to unlock works [{work_id!r}] of pipeline {pipeline!r} without force=True: the public client "
        "asks a person to confirm an unlock, and a DAG cannot, so pass force=True"
    )
    assert hook.get_locked_count(pipeline) == 2

    assert hook.unlock(pipeline, [work_id, other["id"]], force=True) is True
    assert hook.get_locked_count(pipeline) == 0
    # Unlocking sets the flag false (results.locked is a bool), and changes nothing else.
    assert [w.to_wire() for w in hook.get_by_id(pipeline, [work_id, other["id"]])] == [
        {**stored, "results": {"snr": 10.0, "locked": False}},
        {**other, "results": {"locked": False}},
    ]
    assert hook.update([{"id": work_id, "priority": 1}]) is True
    assert hook.get_by_id(pipeline, [work_id])[0].priority == 1
    assert hook.delete_ids(pipeline, [work_id, other["id"], "never-stored"]) is True
    assert hook.count(pipeline, {}) == 0
    assert pipeline not in hook.status()


def test_lock_of_unknown_ids_names_them_and_locks_nothing(hook: ResultsHook, pipeline: str) -> None:
    stored = work(pipeline)
    hook.deposit([stored])
    with pytest.raises(UnknownWorksError, match="ghost-1") as info:
        hook.lock(pipeline, [stored["id"], "ghost-1"])
    assert info.value.ids == ["ghost-1"] and info.value.pipeline == pipeline
    assert str(info.value) == (
        f"cannot lock works of pipeline {pipeline!r}: no works with ids ['ghost-1'] in it; nothing was locked"
    )
    assert stored["id"] not in str(info.value)
    assert hook.get_locked_count(pipeline) == 0
    # Works of another pipeline are unknown here.
    with pytest.raises(UnknownWorksError, match=stored["id"]):
        hook.lock(f"{pipeline}-other", [stored["id"]])
    with pytest.raises(UnknownWorksError) as info:
        hook.unlock(pipeline, ["ghost-2"], force=True)
    assert str(info.value) == (
        f"cannot unlock works of pipeline {pipeline!r}: no works with ids ['ghost-2'] in it; nothing was unlocked"
    )


def test_unlock_of_works_nobody_locked_names_them_and_unlocks_nothing(hook: ResultsHook, pipeline: str) -> None:
    locked, free = work(pipeline), work(pipeline)
    hook.deposit([locked, free])
    assert hook.lock(pipeline, [locked["id"]]) is True
    with pytest.raises(NotLockedError) as info:
        hook.unlock(pipeline, [locked["id"], free["id"]], force=True)
    assert str(info.value) == (
        f"cannot unlock works of pipeline {pipeline!r}: works [{free['id']!r}] are not locked "
        "(nobody locked them); nothing was unlocked"
    )
    assert (info.value.pipeline, info.value.ids) == (pipeline, [free["id"]])
    assert hook.get_locked_count(pipeline) == 1
    assert [w.to_wire() for w in hook.get_by_id(pipeline, [free["id"]])] == [free]  # no flag written into it


def test_long_id_lists_in_messages_stop_after_20_ids(hook: ResultsHook, pipeline: str) -> None:
    # 20 is our choice: enough to find the works, short enough for a batch of thousands.
    ids = [f"w{n:02d}" for n in range(22)]
    with pytest.raises(ValueError) as info:
        hook.unlock(pipeline, ids)
    assert str(info.value).startswith(f"refusing to unlock works {str(ids[:20])[:-1]}, ... and 2 more] of pipeline")
    with pytest.raises(ValueError) as info:
        hook.unlock(pipeline, ids[:20])
    assert str(info.value).startswith(f"refusing to unlock works {ids[:20]} of pipeline {pipeline!r} without")


def test_delete_ignores_other_pipelines(hook: ResultsHook, pipeline: str) -> None:
    works = [work(pipeline) for _ in range(3)]
    hook.deposit(works)
    assert hook.delete_ids(f"{pipeline}-other", [works[0]["id"]]) is True
    assert hook.delete_ids(pipeline, [works[1]["id"]]) is True
    assert [w.id for w in hook.view(pipeline, {})] == [works[0]["id"], works[2]["id"]]


# ---- calls without the service ----------------------------------------------------------------


def test_wire_requests() -> None:
    # Paths are relative to the results base URL, as workflow-core 1.12.3 http/results.py sends
    # them: f"{self.baseurl}/results", f"{self.baseurl}/version", ...
    delete = api.delete("p", ["a", "b&c"]).request
    assert (delete.method, delete.path, delete.params) == ("DELETE", "/results", (("p", "a"), ("p", "b&c")))
    assert delete.auth.render("k") == {"x-access-token": "k"}
    view = api.view("p", {"pipeline": "x", "a": 1}, limit=-1).request
    assert view.json_body == {"query": {"a": 1, "pipeline": "p"}, "projection": {}, "skip": 0, "limit": 0}
    assert api.count("p", {}).request.json_body == {"query": {"pipeline": "p"}}
    assert not api.deposit([work("p")]).request.idempotent
    assert api.update([{"id": "a"}]).request.method == "PUT"
    assert api.info().request.path == "/version"


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (api.count("p", {}), b"true"),
        (api.count("p", {}), b"-1"),
        (api.view("p", {}), b'[{"id": "x", "event": "nope"}]'),
        (api.view("p", {}), b'{"id": "x"}'),
        (api.update([{"id": "a"}]), b"1"),
        (api.status(), b'{"p": "many"}'),
        (api.deposit([work("p")]), b"[]"),
    ],
)
def test_garbled_answers_are_invalid_responses(call: Any, body: bytes) -> None:
    with pytest.raises(InvalidResponse):
        call.parse(HttpResponse(200, {}, body))


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedService]:
    with scripted_service() as service:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SCRIPTED_CHIME", json.dumps({"conn_type": "chime_results", "host": service.base_url})
        )
        yield service


def test_lock_of_a_work_whose_results_is_not_an_object_names_it(scripted: ScriptedService) -> None:
    # Another writer may have stored a work whose results is not an object (the contract says
    # it is one): the flag cannot be set in it, and nothing is written.
    scripted.play("POST", "/view", [{"id": "w1", "pipeline": "p", "results": ["snr", 10.0]}])
    with pytest.raises(JobWaitError) as info:
        ResultsHook("scripted_chime").lock("p", ["w1"])
    assert str(info.value) == "work 'w1' has 'results' that is not an object; cannot lock it"
    assert [(method, path) for method, path, _ in scripted.seen] == [("POST", "/view")]
