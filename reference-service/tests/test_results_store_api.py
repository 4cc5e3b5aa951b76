"""The results store family (``/workflow``) over real HTTP against the reference service."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jobwait_reference_service.mongo_query import MAX_QUERY_STEPS
from jobwait_reference_service.process import ServiceProcess

TOKEN_HEADER = "x-access-token"


class Results:
    """The calls the public CHIME workflow ``Results`` client makes, built the same way."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.url = f"{base_url}/workflow"
        self.http = requests.Session()
        if token is not None:
            self.http.headers[TOKEN_HEADER] = token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.url}{path}", timeout=10, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def deposit(self, works: list[dict[str, Any]]) -> requests.Response:
        return self.call("POST", "/results", json=works)

    def update(self, works: list[dict[str, Any]]) -> requests.Response:
        return self.call("PUT", "/results", json=works)

    def delete_ids(self, pipeline: str, ids: list[str]) -> requests.Response:
        return self.call("DELETE", "/results", params=[(pipeline, work_id) for work_id in ids])

    def view(self, query: dict[str, Any], projection: Any = None, skip: int = 0, limit: int = 100) -> Any:
        body = {"query": query, "projection": projection or {}, "skip": skip, "limit": limit}
        return self.ok("POST", "/view", json=body)

    def count(self, pipeline: str, query: dict[str, Any]) -> int:
        return int(self.ok("POST", "/view/count", json={"query": {**query, "pipeline": pipeline}}))

    def get_by_id(self, pipeline: str, ids: list[str]) -> list[dict[str, Any]]:
        return self.view({"pipeline": pipeline, "id": {"$in": ids}}, limit=len(ids))

    def get_by_count(self, pipeline: str, count: int = 10) -> list[dict[str, Any]]:
        return self.view({"pipeline": pipeline}, limit=count)

    def get_by_event(self, pipeline: str, event_number: int) -> list[dict[str, Any]]:
        return self.view({"pipeline": pipeline, "event": [event_number]})

    def get_locked(self, pipeline: str, skip: int = 0, count: int = 10) -> list[dict[str, Any]]:
        projection = {"event": True, "plots": True, "products": True, "results": True}
        return self.view({"pipeline": pipeline, "results.locked": True}, projection, skip, count)

    def get_locked_count(self, pipeline: str) -> int:
        return self.count(pipeline, {"results.locked": True})

    def _set_lock(self, pipeline: str, ids: list[str], locked: bool) -> requests.Response:
        works = self.get_by_id(pipeline, ids)
        for work in works:
            work["results"]["locked"] = locked
        return self.update(works)

    def lock(self, pipeline: str, ids: list[str]) -> requests.Response:
        return self._set_lock(pipeline, ids, True)

    def unlock(self, pipeline: str, ids: list[str]) -> requests.Response:
        return self._set_lock(pipeline, ids, False)


@pytest.fixture(scope="module")
def results(service: ServiceProcess) -> Results:
    return Results(service.base_url, service.api_key)


@pytest.fixture
def pipeline() -> str:
    return f"pipe-{uuid.uuid4().hex[:12]}"


def work(pipeline: str, work_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A work payload as the public ``Work`` model serialises it."""
    payload: dict[str, Any] = {
        "id": work_id or uuid.uuid4().hex,
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
        "creation": 1_700_000_000.0,
        "start": 1_700_000_001.0,
        "stop": 1_700_000_002.0,
        "attempt": 1,
        "status": "success",
        "priority": 3,
    }
    payload.update(fields)
    return payload


def deposit_ok(results: Results, works: list[dict[str, Any]]) -> None:
    response = results.deposit(works)
    assert response.status_code == 200, response.text


def detail(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["detail"]
    assert isinstance(message, str)
    return message


# --------------------------------------------------------------------------------------------------
# Info and authentication
# --------------------------------------------------------------------------------------------------


def test_version_answers_without_a_token(service: ServiceProcess) -> None:
    anonymous = Results(service.base_url, None)
    body = anonymous.ok("GET", "/version")
    assert isinstance(body["version"], str) and body["version"]
    head = anonymous.call("HEAD", "/version")
    assert head.status_code == 200
    assert head.content == b""


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/status", None),
        ("POST", "/results", []),
        ("PUT", "/results", []),
        ("DELETE", "/results?p=x", None),
        ("POST", "/view", {"query": {}}),
        ("POST", "/view/count", {"query": {}}),
    ],
)
@pytest.mark.parametrize("token", [None, "wrong-key"])
def test_everything_else_needs_the_key(
    service: ServiceProcess, method: str, path: str, body: Any, token: str | None
) -> None:
    client = Results(service.base_url, token)
    assert "x-access-token" in detail(client.call(method, path, json=body), 401)


def test_other_auth_headers_are_not_accepted(service: ServiceProcess) -> None:
    response = requests.get(
        f"{service.base_url}/workflow/status", headers={"Authorization": f"Bearer {service.api_key}"}, timeout=10
    )
    assert response.status_code == 401


# --------------------------------------------------------------------------------------------------
# Deposit, status, view, count
# --------------------------------------------------------------------------------------------------


def test_deposit_then_status_view_and_count(results: Results, pipeline: str) -> None:
    works = [work(pipeline, f"{pipeline}-{n}", event=[n]) for n in range(3)]
    response = results.deposit(works)
    assert response.status_code == 200
    assert response.json() == {pipeline: True}
    assert results.ok("GET", "/status")[pipeline] == 3
    assert results.view({"pipeline": pipeline}) == works  # stored whole, in insertion order
    assert results.count(pipeline, {}) == 3
    assert results.count(pipeline, {"event": {"$gte": 1}}) == 2


def test_deposit_answers_per_pipeline(results: Results) -> None:
    first, second = f"pipe-{uuid.uuid4().hex[:8]}", f"pipe-{uuid.uuid4().hex[:8]}"
    response = results.deposit([work(first), work(second), work(first)])
    assert response.json() == {first: True, second: True}
    status = results.ok("GET", "/status")
    assert (status[first], status[second]) == (2, 1)


def test_deposit_accepts_failure_and_null_results(results: Results, pipeline: str) -> None:
    deposit_ok(results, [work(pipeline, status="failure", results=None)])
    assert results.count(pipeline, {"status": "failure", "results": None}) == 1


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda w: w.pop("id"), ["'id'"]),
        (lambda w: w.update(id=""), ["'id'"]),
        (lambda w: w.update(id=7), ["'id'"]),
        (lambda w: w.update(status="running"), ["'running'", "'bad-work'", "status"]),
        (lambda w: w.pop("status"), ["'bad-work'", "status"]),
        (lambda w: w.update(results=[1]), ["'results'", "'bad-work'"]),
        (lambda w: w.update(pipeline=""), ["'pipeline'"]),
        (lambda w: w.pop("pipeline"), ["'pipeline'"]),
    ],
)
def test_deposit_validation_stores_nothing(results: Results, pipeline: str, mutate: Any, fragments: list[str]) -> None:
    good = work(pipeline)
    bad = work(pipeline, "bad-work")
    mutate(bad)
    message = detail(results.deposit([good, bad]), 400)
    for fragment in fragments:
        assert fragment in message
    assert results.count(pipeline, {}) == 0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b'{"id": "x"}', "array"),
        (b"[1]", "index 0"),
        (b"[NaN]", "NaN"),
    ],
)
def test_deposit_rejects_malformed_bodies(results: Results, raw: bytes, fragment: str) -> None:
    response = results.call("POST", "/results", data=raw, headers={"Content-Type": "application/json"})
    assert fragment in detail(response, 400)


def test_deposit_rejects_duplicate_ids_in_one_batch(results: Results, pipeline: str) -> None:
    dup = f"{pipeline}-dup"
    assert dup in detail(results.deposit([work(pipeline, dup), work(pipeline, dup)]), 400)
    assert results.count(pipeline, {}) == 0


def test_existing_id_conflicts_and_nothing_in_the_batch_is_stored(results: Results, pipeline: str) -> None:
    taken = work(pipeline, f"{pipeline}-taken")
    deposit_ok(results, [taken])
    fresh = work(pipeline, f"{pipeline}-fresh")
    message = detail(results.deposit([fresh, work(pipeline, taken["id"], event=[99])]), 409)
    assert taken["id"] in message and fresh["id"] not in message
    assert results.view({"pipeline": pipeline}) == [taken]


def test_concurrent_deposits_of_one_id_store_it_once(results: Results, service: ServiceProcess, pipeline: str) -> None:
    payload = [work(pipeline, f"{pipeline}-race")]
    codes: list[int] = []

    def attempt() -> None:
        codes.append(Results(service.base_url, service.api_key).deposit(payload).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] + [409] * 7
    assert results.count(pipeline, {}) == 1


def test_ids_are_data_not_sql(results: Results, pipeline: str) -> None:
    nasty = "x'); DROP TABLE results_store_works; --"
    deposit_ok(results, [work(pipeline, nasty)])
    assert [w["id"] for w in results.get_by_id(pipeline, [nasty])] == [nasty]
    assert results.delete_ids(pipeline, [nasty]).json() is True
    assert results.count(pipeline, {}) == 0


# --------------------------------------------------------------------------------------------------
# Views and the public client's helpers
# --------------------------------------------------------------------------------------------------


def test_client_helpers(results: Results, pipeline: str) -> None:
    works = [work(pipeline, f"{pipeline}-{n}", event=[n], tags=["odd" if n % 2 else "even"]) for n in range(6)]
    deposit_ok(results, works)
    ids = [works[4]["id"], works[1]["id"], "unknown"]
    assert [w["id"] for w in results.get_by_id(pipeline, ids)] == [works[1]["id"], works[4]["id"]]
    assert results.get_by_count(pipeline, 2) == works[:2]
    assert results.get_by_event(pipeline, 3) == [works[3]]
    assert results.get_by_event(pipeline, 42) == []
    assert results.get_locked(pipeline) == []
    assert results.get_locked_count(pipeline) == 0


def test_array_equality_and_membership(results: Results, pipeline: str) -> None:
    single, double = work(pipeline, event=[5]), work(pipeline, event=[5, 6])
    deposit_ok(results, [single, double])
    assert results.view({"pipeline": pipeline, "event": [5]}) == [single]
    assert results.view({"pipeline": pipeline, "event": 5}) == [single, double]
    assert results.view({"pipeline": pipeline, "event": {"$size": 2}}) == [double]


def test_view_skip_limit_and_stable_order(results: Results, pipeline: str) -> None:
    works = [work(pipeline, f"{pipeline}-{n:02d}", attempt=n) for n in range(12)]
    deposit_ok(results, works)
    # An update keeps a work's place in the order.
    assert results.update([{"id": works[0]["id"], "attempt": 100}]).status_code == 200
    ids = [w["id"] for w in works]
    assert [w["id"] for w in results.view({"pipeline": pipeline}, limit=0)] == ids
    assert [w["id"] for w in results.view({"pipeline": pipeline}, skip=3, limit=4)] == ids[3:7]
    assert [w["id"] for w in results.view({"pipeline": pipeline}, skip=10, limit=0)] == ids[10:]
    assert results.view({"pipeline": pipeline}, skip=50) == []
    odd = results.view({"pipeline": pipeline, "attempt": {"$in": [1, 3, 5, 7]}}, skip=1, limit=2)
    assert [w["attempt"] for w in odd] == [3, 5]


def test_view_across_pipelines(results: Results) -> None:
    first, second = f"pipe-{uuid.uuid4().hex[:8]}", f"pipe-{uuid.uuid4().hex[:8]}"
    a, b = work(first), work(second)
    deposit_ok(results, [a, b])
    assert results.view({"pipeline": {"$in": [first, second]}}) == [a, b]
    assert results.view({"id": b["id"]}) == [b]  # no pipeline: every pipeline is searched
    assert results.view({"pipeline": first, "id": b["id"]}) == []


def test_operators_over_http(results: Results, pipeline: str) -> None:
    low = work(pipeline, results={"snr": 5.0, "classes": [{"name": "rfi", "p": 0.9}]}, tags=["a", "b"])
    high = work(pipeline, results={"snr": 50.0, "classes": [{"name": "frb", "p": 0.8}]}, tags=["b"])
    deposit_ok(results, [low, high])

    def ids(query: dict[str, Any]) -> list[str]:
        return [w["id"] for w in results.view({"pipeline": pipeline, **query})]

    assert ids({"results.snr": {"$gt": 10}}) == [high["id"]]
    assert ids({"results.snr": {"$gt": "10"}}) == []  # no cross-type ordering
    assert ids({"results.classes.name": "frb"}) == [high["id"]]
    assert ids({"results.classes": {"$elemMatch": {"name": "rfi", "p": {"$gte": 0.5}}}}) == [low["id"]]
    assert ids({"tags": {"$all": ["a", "b"]}}) == [low["id"]]
    assert ids({"$or": [{"tags": {"$size": 1}}, {"results.snr": {"$lt": 1}}]}) == [high["id"]]
    assert ids({"$nor": [{"tags": "a"}]}) == [high["id"]]
    assert ids({"results.snr": {"$not": {"$gt": 10}}, "notify": {"$exists": False}}) == [low["id"]]
    assert ids({"config": None, "status": {"$ne": "failure"}}) == [low["id"], high["id"]]


def test_view_projection(results: Results, pipeline: str) -> None:
    stored = work(pipeline, results={"snr": 9.0, "locked": False})
    deposit_ok(results, [stored])
    included = results.view({"pipeline": pipeline}, {"results.snr": True, "event": 1})
    assert included == [{"id": stored["id"], "results": {"snr": 9.0}, "event": [1]}]
    excluded = results.view({"pipeline": pipeline}, {"parameters": False, "results": 0})
    assert excluded == [{k: v for k, v in stored.items() if k not in ("parameters", "results")}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": {"$where": "sleep(100)"}}, "$where"),
        ({"query": {"a": {"$regex": ".*"}}}, "$regex"),
        ({"query": {"a": {"$function": {"body": "x"}}}}, "$function"),
        ({"query": {"$expr": {"$eq": [1, 1]}}}, "$expr"),
        ({"query": {"a": {"$accumulator": {}}}}, "$accumulator"),
        ({"query": {"a": {"$bogus": 1}}}, "$bogus"),
        ({"query": [1]}, "'query'"),
        ({"query": "x"}, "'query'"),
        ({"query": {}, "skip": -1}, "'skip'"),
        ({"query": {}, "skip": "1"}, "'skip'"),
        ({"query": {}, "skip": True}, "'skip'"),
        ({"query": {}, "limit": -1}, "'limit'"),
        ({"query": {}, "limit": 10_001}, "'limit'"),
        ({"query": {}, "limit": 1.5}, "'limit'"),
        ({"query": {}, "projection": {"a": 2}}, "projection"),
        ({"query": {}, "projection": {"a": 1, "b": 0}}, "mixes"),
        ({"query": {}, "projection": []}, "projection"),
        ([{"query": {}}], "object"),
    ],
)
def test_view_validation(results: Results, body: Any, fragment: str) -> None:
    assert fragment in detail(results.call("POST", "/view", json=body), 400)


def test_count_validation(results: Results) -> None:
    assert "$where" in detail(results.call("POST", "/view/count", json={"query": {"$where": "1"}}), 400)
    assert "'query'" in detail(results.call("POST", "/view/count", json={"query": 3}), 400)


def test_too_deep_query_is_refused(results: Results, pipeline: str) -> None:
    query: dict[str, Any] = {"a": 1}
    for _ in range(30):
        query = {"$or": [query]}
    assert "nested too deeply" in detail(results.call("POST", "/view", json={"query": query}), 400)


def _index_trap(pipeline: str, work_id: str, levels: int) -> dict[str, Any]:
    """``x: [{"0": [{"0": ...}]}]``: a numeric path component is both an index and a field here,
    which made the old field-path lookup re-walk every level twice (issue 14: 35 s of CPU)."""
    trap: Any = 1
    for _ in range(levels):
        trap = [{"0": trap}]
    return {"id": work_id, "pipeline": pipeline, "status": "success", "results": {}, "x": trap}


def test_index_trap_works_cost_linear_time_or_are_refused(results: Results, pipeline: str) -> None:
    # The case: ten such works of 31 levels in one deposit; now deeper than any body may be.
    too_deep = [_index_trap(pipeline, f"deep-{n}", 31) for n in range(10)]
    assert "nested too deeply" in detail(results.deposit(too_deep), 400)
    # As deep as a deposit may be (the body array and the work are levels 1 and 2: 2 + 2 * 15 = 32).
    deposit_ok(results, [_index_trap(pipeline, f"trap-{n}", 15) for n in range(10)])
    # One small count query with a path of the most components allowed: answered at once.
    path = "x" + ".0" * 31
    assert results.count(pipeline, {path: 1}) == 0
    assert results.count(pipeline, {"x" + ".0" * 30: 1}) == 10


def test_a_query_over_its_step_budget_is_refused_naming_it(results: Results, pipeline: str) -> None:
    # Each of the 101 $in values is compared with each of 10,000 elements: just over the budget.
    deposit_ok(results, [work(pipeline, "long", event=list(range(10_000)))])
    query = {"pipeline": pipeline, "event": {"$in": [-n for n in range(1, 102)]}}
    response = results.call("POST", "/view/count", json={"query": query})
    assert f"budget of {MAX_QUERY_STEPS} evaluation steps" in detail(response, 400)
    # The same session goes on; a query under the budget is answered.
    assert results.count(pipeline, {"event": {"$in": [-1, 9_999]}}) == 1


def test_limit_at_the_maximum_is_accepted(results: Results, pipeline: str) -> None:
    assert results.view({"pipeline": pipeline}, limit=10_000) == []


# --------------------------------------------------------------------------------------------------
# Update, delete and the lock rule
# --------------------------------------------------------------------------------------------------


def test_update_merges_top_level_fields(results: Results, pipeline: str) -> None:
    stored = work(pipeline, results={"snr": 1.0, "extra": True})
    deposit_ok(results, [stored])
    response = results.update([{"id": stored["id"], "results": {"snr": 2.0}, "notify": {"slack": True}}])
    assert response.status_code == 200 and response.json() is True
    (after,) = results.get_by_id(pipeline, [stored["id"]])
    assert after == {**stored, "results": {"snr": 2.0}, "notify": {"slack": True}}


def test_update_unknown_id_changes_nothing(results: Results, pipeline: str) -> None:
    stored = work(pipeline)
    deposit_ok(results, [stored])
    message = detail(results.update([{"id": stored["id"], "priority": 1}, {"id": "no-such-work"}]), 404)
    assert "no-such-work" in message
    assert results.get_by_id(pipeline, [stored["id"]]) == [stored]


def test_update_validation(results: Results, pipeline: str) -> None:
    stored = work(pipeline)
    deposit_ok(results, [stored])
    assert "'id'" in detail(results.update([{"priority": 1}]), 400)
    assert "'running'" in detail(results.update([{"id": stored["id"], "status": "running"}]), 400)
    assert "'results'" in detail(results.update([{"id": stored["id"], "results": "x"}]), 400)
    assert stored["id"] in detail(results.update([{"id": stored["id"]}, {"id": stored["id"]}]), 400)
    assert results.get_by_id(pipeline, [stored["id"]]) == [stored]


def test_lock_rule_sequence(results: Results, pipeline: str) -> None:
    stored = work(pipeline, event=[77])
    deposit_ok(results, [stored])
    work_id = stored["id"]

    # lock: only results.locked changes, so the update is allowed
    assert results.lock(pipeline, [work_id]).json() is True
    (locked,) = results.get_by_id(pipeline, [work_id])
    assert locked["results"] == {"snr": 10.0, "locked": True}
    assert results.get_locked_count(pipeline) == 1
    assert results.get_locked(pipeline) == [
        {"id": work_id, "results": locked["results"], "products": stored["products"], "plots": stored["plots"],
         "event": [77]}
    ]  # fmt: skip

    # any other change is refused, and nothing changes
    assert work_id in detail(results.update([{**locked, "priority": 1}]), 409)
    assert work_id in detail(results.update([{"id": work_id, "results": {"snr": 0.0, "locked": True}}]), 409)
    assert results.get_by_id(pipeline, [work_id]) == [locked]

    # delete is refused
    assert work_id in detail(results.delete_ids(pipeline, [work_id]), 409)
    assert results.count(pipeline, {}) == 1

    # unlock, then update and delete work
    assert results.unlock(pipeline, [work_id]).json() is True
    assert results.get_locked_count(pipeline) == 0
    assert results.update([{"id": work_id, "priority": 1}]).json() is True
    assert results.get_by_id(pipeline, [work_id])[0]["priority"] == 1
    response = results.delete_ids(pipeline, [work_id])
    assert response.status_code == 200 and response.json() is True
    assert results.count(pipeline, {}) == 0
    assert pipeline not in results.ok("GET", "/status")


def test_locked_work_in_a_batch_blocks_the_whole_batch(results: Results, pipeline: str) -> None:
    free, frozen = work(pipeline), work(pipeline, results={"locked": True})
    deposit_ok(results, [free, frozen])  # deposited already locked
    message = detail(results.update([{"id": free["id"], "priority": 9}, {"id": frozen["id"], "priority": 9}]), 409)
    assert frozen["id"] in message and free["id"] not in message
    assert results.view({"pipeline": pipeline}) == [free, frozen]

    assert frozen["id"] in detail(results.delete_ids(pipeline, [free["id"], frozen["id"]]), 409)
    assert results.count(pipeline, {}) == 2
    # Setting locked to the value it has, or sending the work unchanged, is not a change.
    assert results.update([frozen]).status_code == 200


def test_delete_several_and_ignore_unknown(results: Results, pipeline: str) -> None:
    works = [work(pipeline) for _ in range(4)]
    deposit_ok(results, works)
    other = f"pipe-{uuid.uuid4().hex[:8]}"
    # A pair names a pipeline and an id: the id under another pipeline is not touched.
    assert results.delete_ids(other, [works[3]["id"]]).json() is True
    response = results.delete_ids(pipeline, [works[0]["id"], works[2]["id"], "never-stored"])
    assert response.status_code == 200 and response.json() is True
    assert results.view({"pipeline": pipeline}) == [works[1], works[3]]
    # Deleting again (a retried request) is harmless.
    assert results.delete_ids(pipeline, [works[0]["id"]]).json() is True


# --------------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def own_service(tmp_path: Any) -> Iterator[ServiceProcess]:
    with ServiceProcess(api_key="results-restart-key", db_path=tmp_path / "results.sqlite") as proc:
        yield proc


def test_works_and_locks_survive_a_restart(own_service: ServiceProcess) -> None:
    client = Results(own_service.base_url, own_service.api_key)
    stored = [work("survivor", f"s-{n}") for n in range(3)]
    deposit_ok(client, stored)
    assert client.lock("survivor", ["s-1"]).status_code == 200
    own_service.restart(kill=True)
    client = Results(own_service.base_url, own_service.api_key)
    assert [w["id"] for w in client.view({"pipeline": "survivor"})] == ["s-0", "s-1", "s-2"]
    assert client.delete_ids("survivor", ["s-1"]).status_code == 409
    deposit_ok(client, [work("survivor", "s-3")])
    assert [w["id"] for w in client.view({"pipeline": "survivor"})][-1] == "s-3"
