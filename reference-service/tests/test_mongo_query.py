"""Unit tests of the whitelist MongoDB filter/projection interpreter (no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobwait_reference_service.json_body import MAX_DEPTH as BODY_MAX_DEPTH
from jobwait_reference_service.mongo_query import (
    MAX_DEPTH,
    MAX_PATH_PARTS,
    SUPPORTED_OPERATORS,
    BudgetExceeded,
    QueryError,
    apply_projection,
    compile_query,
    matches,
    step_budget,
    validate_projection,
    validate_query,
    values_equal,
)

DOC: dict[str, Any] = {
    "id": "w1",
    "pipeline": "p",
    "status": "success",
    "event": [5, 7],
    "tags": ["x", "y"],
    "results": {"locked": True, "snr": 12.5, "name": "frb"},
    "plots": [],
    "products": [{"name": "a", "size": 3}, {"name": "b", "size": 10}],
    "attempt": 1,
    "flag": False,
    "nothing": None,
    "nested": {"arr": [[1, 2], [3]]},
}

MATCH_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    # implicit equality
    ({"id": "w1"}, True),
    ({"id": "w2"}, False),
    ({"id": "w1", "pipeline": "p"}, True),
    ({"id": "w1", "pipeline": "q"}, False),
    # arrays: whole-array equality, or any element
    ({"event": [5, 7]}, True),
    ({"event": [5]}, False),
    ({"event": [7, 5]}, False),
    ({"event": 5}, True),
    ({"event": 6}, False),
    ({"tags": "x"}, True),
    ({"tags": ["x"]}, False),
    ({"tags": ["x", "y"]}, True),
    ({"nested.arr": [3]}, True),
    ({"nested.arr": 3}, False),  # one level of array expansion only
    ({"plots": []}, True),
    # type-aware equality
    ({"results.locked": True}, True),
    ({"results.locked": 1}, False),
    ({"attempt": True}, False),
    ({"attempt": 1.0}, True),
    ({"attempt": "1"}, False),
    ({"flag": 0}, False),
    ({"flag": False}, True),
    # dotted paths, into arrays of documents and by index
    ({"products.name": "b"}, True),
    ({"products.name": "c"}, False),
    ({"products.0.name": "a"}, True),
    ({"products.1.name": "a"}, False),
    ({"event.1": 7}, True),
    ({"event.2": {"$exists": True}}, False),
    ({"id.x": None}, True),  # below a scalar a path is missing
    # null and missing
    ({"missing": None}, True),
    ({"nothing": None}, True),
    ({"flag": None}, False),
    ({"products.color": None}, True),
    ({"products.name": None}, False),
    ({"missing": {"$exists": False}}, True),
    ({"missing": {"$exists": True}}, False),
    ({"nothing": {"$exists": True}}, True),
    ({"products.size": {"$exists": 1}}, True),
    # embedded documents compare whole (key order ignored)
    ({"results": {"name": "frb", "snr": 12.5, "locked": True}}, True),
    ({"results": {"locked": True}}, False),
    # comparisons, bracketed by type
    ({"results.snr": {"$gte": 12.5}}, True),
    ({"results.snr": {"$gt": 12.5}}, False),
    ({"results.snr": {"$lt": 13}}, True),
    ({"results.snr": {"$lte": 12}}, False),
    ({"results.snr": {"$gt": "1"}}, False),
    ({"results.name": {"$gt": "a"}}, True),
    ({"results.name": {"$gt": 1}}, False),
    ({"results.name": {"$lt": "frc"}}, True),
    ({"attempt": {"$lt": True}}, False),
    ({"flag": {"$lt": True}}, True),
    ({"attempt": {"$gt": 0, "$lt": 2}}, True),
    ({"attempt": {"$gt": 1, "$lt": 2}}, False),
    ({"missing": {"$gte": None}}, True),
    ({"nothing": {"$lte": None}}, True),
    ({"missing": {"$gt": None}}, False),
    ({"attempt": {"$gte": None}}, False),
    ({"missing": {"$lt": 5}}, False),
    ({"event": {"$gt": 6}}, True),
    ({"event": {"$gt": 7}}, False),
    ({"products.size": {"$gt": 5}}, True),
    ({"products.size": {"$gt": 50}}, False),
    # $eq / $ne
    ({"id": {"$eq": "w1"}}, True),
    ({"event": {"$eq": [5, 7]}}, True),
    ({"id": {"$ne": "w1"}}, False),
    ({"tags": {"$ne": "z"}}, True),
    ({"tags": {"$ne": "x"}}, False),
    ({"missing": {"$ne": None}}, False),
    ({"nothing": {"$ne": 1}}, True),
    # $in / $nin
    ({"id": {"$in": ["w0", "w1"]}}, True),
    ({"id": {"$in": []}}, False),
    ({"tags": {"$in": ["z", "y"]}}, True),
    ({"missing": {"$in": [None]}}, True),
    ({"event": {"$in": [[5, 7]]}}, True),
    ({"id": {"$nin": ["w1"]}}, False),
    ({"id": {"$nin": []}}, True),
    ({"tags": {"$nin": ["q"]}}, True),
    # $all
    ({"tags": {"$all": ["y", "x"]}}, True),
    ({"tags": {"$all": ["x", "z"]}}, False),
    ({"tags": {"$all": []}}, False),
    ({"id": {"$all": ["w1"]}}, True),
    # $size
    ({"event": {"$size": 2}}, True),
    ({"plots": {"$size": 0}}, True),
    ({"event": {"$size": 3}}, False),
    ({"id": {"$size": 2}}, False),
    # $elemMatch: one element must satisfy every condition
    ({"products": {"$elemMatch": {"name": "b", "size": {"$gte": 10}}}}, True),
    ({"products": {"$elemMatch": {"name": "a", "size": 10}}}, False),
    ({"products.name": "a", "products.size": 10}, True),  # without $elemMatch: any elements
    ({"products": {"$elemMatch": {"$or": [{"name": "z"}, {"size": 3}]}}}, True),
    ({"event": {"$elemMatch": {"$gt": 5, "$lt": 8}}}, True),
    ({"event": {"$elemMatch": {"$gt": 7}}}, False),
    ({"tags": {"$elemMatch": {"name": "x"}}}, False),
    ({"id": {"$elemMatch": {"$eq": "w1"}}}, False),
    # $not
    ({"attempt": {"$not": {"$gt": 5}}}, True),
    ({"attempt": {"$not": {"$lt": 5}}}, False),
    ({"missing": {"$not": {"$gt": 5}}}, True),
    ({"tags": {"$not": {"$size": 2}}}, False),
    # logical
    ({"$and": [{"id": "w1"}, {"attempt": 1}]}, True),
    ({"$and": [{"id": "w1"}, {"attempt": 2}]}, False),
    ({"$or": [{"id": "w2"}, {"attempt": 1}]}, True),
    ({"$or": [{"id": "w2"}, {"attempt": 2}]}, False),
    ({"$nor": [{"id": "w2"}, {"attempt": 2}]}, True),
    ({"$nor": [{"id": "w1"}]}, False),
    ({"$and": [{"$or": [{"tags": "z"}, {"event": 7}]}, {"$nor": [{"flag": True}]}], "pipeline": "p"}, True),
]


@pytest.mark.parametrize(("query", "expected"), MATCH_CASES, ids=[str(q) for q, _ in MATCH_CASES])
def test_matches(query: dict[str, Any], expected: bool) -> None:
    validate_query(query)
    assert matches(DOC, query) is expected


@pytest.mark.parametrize(("query", "expected"), MATCH_CASES[:40], ids=[str(q) for q, _ in MATCH_CASES[:40]])
def test_nor_and_not_invert(query: dict[str, Any], expected: bool) -> None:
    if query:
        assert matches(DOC, {"$nor": [query]}) is not expected


def test_matches_does_not_mutate() -> None:
    before = copy.deepcopy(DOC)
    for query, _ in MATCH_CASES:
        matches(DOC, query)
    assert before == DOC


def test_compiled_query_is_reusable() -> None:
    predicate = compile_query({"event": {"$gt": 6}})
    assert [predicate({"event": n}) for n in (5, 7, [1, 9])] == [False, True, True]


def test_non_dict_document_has_no_fields() -> None:
    assert matches([1, 2], {"a": None})  # type: ignore[arg-type]
    assert not matches("doc", {"a": 1})  # type: ignore[arg-type]


def _nested(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"a": 1}
    for _ in range(levels - 1):
        query = {"a": query}
    return query


INVALID_CASES: list[tuple[Any, str]] = [
    ({"$where": "sleep(1000)"}, "$where"),
    ({"$expr": {"$gt": ["$a", 1]}}, "$expr"),
    ({"$function": {"body": "x"}}, "$function"),
    ({"a": {"$where": "1"}}, "$where"),
    ({"a": {"$regex": "^x"}}, "$regex"),
    ({"a": {"$function": {}}}, "$function"),
    ({"a": {"$accumulator": {}}}, "$accumulator"),
    ({"a": {"$x": 1}}, "$x"),
    ({"a": {"$options": "i"}}, "$options"),
    ({"$text": {"$search": "x"}}, "$text"),
    ({"$not": {"a": 1}}, "$not"),
    ({"a": {"$and": [{"b": 1}]}}, "$and"),
    ({"a": {"b": {"$where": "1"}}}, "$where"),
    ({"a": {"$eq": {"$where": "1"}}}, "$where"),
    ({"a": {"$in": [{"$regex": "x"}]}}, "$regex"),
    ({"a": {"$elemMatch": {"$where": "1"}}}, "$where"),
    ({"a": {"$elemMatch": {"b": {"$regex": "x"}}}}, "$regex"),
    ({"$or": [{"a": {"$expr": 1}}]}, "$expr"),
    ({"a": {"$not": {"$regex": "x"}}}, "$regex"),
    ({"$and": []}, "$and"),
    ({"$or": {"a": 1}}, "$or"),
    ({"$nor": [1]}, "$nor"),
    ({"a": {"$in": 1}}, "$in"),
    ({"a": {"$nin": "x"}}, "$nin"),
    ({"a": {"$all": {}}}, "$all"),
    ({"a": {"$exists": "yes"}}, "$exists"),
    ({"a": {"$size": -1}}, "$size"),
    ({"a": {"$size": 1.5}}, "$size"),
    ({"a": {"$size": True}}, "$size"),
    ({"a": {"$not": 5}}, "$not"),
    ({"a": {"$not": {}}}, "$not"),
    ({"a": {"$elemMatch": 1}}, "$elemMatch"),
    ({"a": {"$elemMatch": {}}}, "$elemMatch"),
    ({"a": {"$gt": [1]}}, "$gt"),
    ({"a": {"$lte": {"b": 1}}}, "$lte"),
    ({"a": {"$gt": 1, "b": 2}}, "mixes"),
    ({"": 1}, "invalid field path"),
    ({"a..b": 1}, "'a..b'"),
    ({"a.": 1}, "'a.'"),
    ({"a.$b": 1}, "'a.$b'"),
    ({"a" + ".a" * 40: 1}, "components"),
    ([], "must be an object"),
    ("x", "must be an object"),
    (None, "must be an object"),
    ({"a": object()}, "unsupported type"),
    ({"a": (1, 2)}, "unsupported type"),
    ({1: 2}, "non-string key"),
    (_nested(MAX_DEPTH + 1), "nested too deeply"),
    ({"a": {"$in": list(range(20_000))}}, "too large"),
]


@pytest.mark.parametrize(("query", "fragment"), INVALID_CASES, ids=[str(i) for i in range(len(INVALID_CASES))])
def test_invalid_queries_name_the_problem(query: Any, fragment: str) -> None:
    with pytest.raises(QueryError, match=None) as info:
        validate_query(query)
    assert fragment in str(info.value)
    with pytest.raises(QueryError):
        matches(DOC, query)


def test_depth_limit_is_exact() -> None:
    validate_query(_nested(MAX_DEPTH))
    with pytest.raises(QueryError, match="nested too deeply"):
        validate_query(_nested(MAX_DEPTH + 1))


def test_deeply_nested_logical_query_is_refused_without_recursion_error() -> None:
    query: dict[str, Any] = {"a": 1}
    for _ in range(5_000):
        query = {"$and": [query]}
    with pytest.raises(QueryError, match="nested too deeply"):
        validate_query(query)


def test_one_depth_limit_for_bodies_queries_and_projections() -> None:
    assert MAX_DEPTH == BODY_MAX_DEPTH


def _index_trap(levels: int) -> dict[str, Any]:
    """``x: [{"0": [{"0": ...}]}]``: each numeric component is an index *and* a field of the element."""
    trap: Any = 1
    for _ in range(levels):
        trap = [{"0": trap}]
    return {"id": "w", "pipeline": "p", "x": trap}


def _steps(docs: list[dict[str, Any]], query: dict[str, Any]) -> tuple[int, int]:
    """(matches, steps used); a small budget makes a regression fail fast instead of hanging."""
    predicate = compile_query(query)
    with step_budget(100_000) as budget:
        return sum(predicate(doc) for doc in docs), budget.used


def test_field_path_lookup_is_linear_in_the_document() -> None:
    # Issue 14's case: ten 357-byte works and a 101-byte count query took 35 s of CPU (the lookup
    # re-walked each level twice, growing like Fibonacci with the depth).
    query = {"pipeline": "p", "x" + ".0" * (MAX_PATH_PARTS - 1): 2}
    found, steps = _steps([_index_trap(31) for _ in range(10)], query)
    assert found == 0
    assert steps < 10_000  # about 835 per work
    # Twice the levels, at most about twice the steps (here: the path runs out halfway).
    _, half = _steps([_index_trap(15) for _ in range(10)], query)
    assert steps <= 2.5 * half
    # Still MongoDB's semantics: index 0 then field "0", level by level, reaches the leaf.
    assert _steps([_index_trap(15)], {"x" + ".0" * 30: 1})[0] == 1


def test_step_budget_is_per_query_and_named() -> None:
    predicate = compile_query({"event": {"$in": list(range(-100, 0))}})
    doc = {"event": list(range(50))}
    with step_budget(10_000) as budget:
        assert not predicate(doc)
    assert 5_000 <= budget.used <= 10_000  # 100 values x 50 elements
    with pytest.raises(BudgetExceeded, match="budget of 10000 evaluation steps"), step_budget(10_000):
        predicate(doc)
        predicate(doc)  # the second document read by the same query crosses it
    assert matches(doc, {"event": 49})  # outside a budget block nothing is counted


def test_supported_operators_are_the_whitelist() -> None:
    assert set(SUPPORTED_OPERATORS) == {
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
        "$and", "$or", "$nor", "$not", "$all", "$size", "$elemMatch",
    }  # fmt: skip


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1.0, True),
        (1, True, False),
        (0, False, False),
        (None, None, True),
        (None, 0, False),
        ("1", 1, False),
        ([1, [2]], [1.0, [2]], True),
        ([1, 2], [2, 1], False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ({"a": True}, {"a": 1}, False),
    ],
)
def test_values_equal(left: Any, right: Any, equal: bool) -> None:
    assert values_equal(left, right) is equal


# --------------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------------

PROJECTION_CASES: list[tuple[Any, dict[str, Any]]] = [
    ({}, DOC),
    (None, DOC),
    ({"id": 0}, DOC),
    ({"id": 1}, {"id": "w1"}),
    ({"event": True, "results.locked": 1}, {"id": "w1", "event": [5, 7], "results": {"locked": True}}),
    ({"id": False, "tags": True}, {"id": "w1", "tags": ["x", "y"]}),
    ({"products.name": 1}, {"id": "w1", "products": [{"name": "a"}, {"name": "b"}]}),
    ({"results.missing": 1}, {"id": "w1", "results": {}}),
    ({"nope": 1, "id.x": 1}, {"id": "w1"}),
    ({"tags.x": 1}, {"id": "w1", "tags": []}),
    ({"_id": 0, "attempt": 1}, {"id": "w1", "attempt": 1}),
    ({"_id": False}, DOC),
    (
        {"event": 1, "plots": 1, "products": 1, "results": 1},
        {k: DOC[k] for k in ("id", "event", "results", "plots", "products")},
    ),
]


@pytest.mark.parametrize(("projection", "expected"), PROJECTION_CASES, ids=[str(p) for p, _ in PROJECTION_CASES])
def test_inclusion_projection(projection: Any, expected: dict[str, Any]) -> None:
    assert apply_projection(DOC, projection) == expected


def test_inclusion_keeps_id_first() -> None:
    assert next(iter(apply_projection({"a": 1, "id": "z"}, {"a": 1}))) == "id"


def test_exclusion_projection() -> None:
    projected = apply_projection(DOC, {"results": 0, "products.size": False, "id": 0, "event.0": 0})
    expected = {k: v for k, v in DOC.items() if k != "results"}
    expected["products"] = [{"name": "a"}, {"name": "b"}]
    assert projected == expected


def test_projection_does_not_mutate() -> None:
    before = copy.deepcopy(DOC)
    apply_projection(DOC, {"products.size": 0})
    apply_projection(DOC, {"products.size": 1})
    assert before == DOC


@pytest.mark.parametrize(
    ("projection", "fragment"),
    [
        ({"a": 1, "b": 0}, "mixes"),
        ({"a": 2}, "'a'"),
        ({"a": "yes"}, "'a'"),
        ({"a": None}, "'a'"),
        ({"a": 1, "a.b": 1}, "collide"),
        ({"a.b": 0, "a": 0}, "collide"),
        ({"$where": 1}, "$where"),
        ({"a..b": 1}, "a..b"),
        ([], "object"),
        ("a", "object"),
    ],
)
def test_invalid_projection(projection: Any, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        validate_projection(projection)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

FIELDS = ["a", "b", "a.b", "a.0", "a.1.b", "tags", "event", "results.locked", "x.y.z"]
KEYS = st.sampled_from([*FIELDS, *SUPPORTED_OPERATORS, "$where", "$regex", "$x", "", "a..b", "0"]) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
DOC_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "0", "1", "x"]), inner),
    max_leaves=12,
)
DOCS = st.dictionaries(st.sampled_from(["id", "a", "b", "tags", "event", "results", "x"]), DOC_VALUES, max_size=6)

PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    max_leaves=6,
)
OP_CONDS = st.one_of(
    st.builds(lambda v: {"$eq": v}, PLAIN),
    st.builds(lambda v: {"$ne": v}, PLAIN),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), SCALARS),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$in", "$nin", "$all"]), st.lists(PLAIN, max_size=3)),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
    st.builds(lambda v: {"$size": v}, st.integers(min_value=0, max_value=4)),
    st.builds(lambda v: {"$not": {"$gt": v}}, SCALARS),
    st.builds(lambda v: {"$elemMatch": {"$gte": v}}, SCALARS),
    st.builds(lambda v: {"$elemMatch": {"b": v}}, PLAIN),
)
CLAUSES = st.dictionaries(st.sampled_from(FIELDS), PLAIN | OP_CONDS, max_size=3)
VALID_QUERIES = st.recursive(
    CLAUSES,
    lambda inner: st.builds(
        lambda op, qs: {op: qs}, st.sampled_from(["$and", "$or", "$nor"]), st.lists(inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)
PROP_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROP_SETTINGS
@given(query=JSON, doc=DOCS)
def test_random_queries_validate_or_raise_query_error(query: Any, doc: dict[str, Any]) -> None:
    try:
        validate_query(query)
    except QueryError:
        return
    assert isinstance(matches(doc, query), bool)


@PROP_SETTINGS
@given(query=VALID_QUERIES, doc=DOCS)
def test_random_docs_never_crash_matches(query: dict[str, Any], doc: dict[str, Any]) -> None:
    # Every query here is in the documented subset (docs/jobs-api.md §4, MongoDB filter syntax):
    # the validator must accept it, so one that refuses everything fails here.
    validate_query(query)
    result = matches(doc, query)
    assert isinstance(result, bool)
    assert matches(doc, {"$nor": [query]}) is not result
    assert matches(doc, {"$and": [query, query]}) is result


@PROP_SETTINGS
@given(projection=st.dictionaries(KEYS, JSON, max_size=4), doc=DOCS)
def test_random_projections_project_or_raise_query_error(projection: Any, doc: dict[str, Any]) -> None:
    try:
        projected = apply_projection(doc, projection)
    except QueryError:
        return
    assert isinstance(projected, dict)
    if "id" in doc:
        assert projected["id"] == doc["id"]


#: Top-level fields of a work that no other listed path is a prefix of (MongoDB refuses path
#: collisions such as ``a`` with ``a.b`` in one projection).
DISJOINT_FIELDS = ["a", "b", "tags", "event", "x"]


@PROP_SETTINGS
@given(
    fields=st.lists(st.sampled_from(DISJOINT_FIELDS), min_size=1, max_size=4, unique=True),
    include=st.sampled_from([True, False, 1, 0]),
    doc=DOCS,
)
def test_valid_projections_are_accepted_and_applied(fields: list[str], include: Any, doc: dict[str, Any]) -> None:
    # Inclusion or exclusion of distinct fields is a valid MongoDB projection (docs/jobs-api.md §4):
    # the validator must take it, so one that refuses everything fails here.
    projection = dict.fromkeys(fields, include)
    validate_projection(projection)
    projected = apply_projection(doc, projection)
    if include:
        assert set(projected) == {key for key in doc if key in fields or key == "id"}
    else:
        assert set(projected) == {key for key in doc if key not in fields}
    assert all(projected[key] == doc[key] for key in projected)
