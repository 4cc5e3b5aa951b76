"""A safe interpreter for the subset of MongoDB filters and projections the results store serves.

Pure functions over JSON values: no I/O, nothing is ever evaluated as code, and every operator is
looked up in a fixed whitelist. A query is first bounded in depth and size (iteratively, so hostile
input cannot exhaust the stack), then compiled once into plain Python predicates that are run over
each stored document. Evaluation is linear in the size of the documents read (each field path
visits each node of a document at most once per path component) and counted against a per-query
step budget (``step_budget``), so no query can burn the CPU for long.

Semantics follow MongoDB where it matters to clients: implicit equality, dotted paths that descend
into arrays of documents, equality that also matches an array *containing* the value, ``null``
matching a missing field, and type-bracketed comparisons (numbers with numbers, strings with strings,
booleans with booleans, never across types). Two simplifications: embedded objects compare equal
regardless of key order, and comparison operators take only scalar operands.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jobwait_reference_service.json_body import MAX_DEPTH

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_PATH_PARTS",
    "MAX_QUERY_STEPS",
    "SUPPORTED_OPERATORS",
    "BudgetExceeded",
    "QueryError",
    "StepBudget",
    "apply_projection",
    "compile_projection",
    "compile_query",
    "matches",
    "step_budget",
    "validate_projection",
    "validate_query",
    "values_equal",
]

# MAX_DEPTH (imported): deepest nesting accepted in a query or projection, the same limit every
# request body has, so whatever can be deposited can be matched and projected.
MAX_NODES = 10_000
"""Most JSON values (objects, arrays, scalars) accepted in one query or projection."""
MAX_PATH_PARTS = 32
"""Most components in one dotted field path."""
MAX_QUERY_STEPS = 1_000_000
"""Most evaluation steps (field-path node visits and value comparisons) one query may take, over
all the works it reads: about half a second of CPU; a count over 100,000 works of a few fields
needs well under half of it."""


class QueryError(ValueError):
    """A query or projection outside the supported subset; the message names the operator or path."""


class BudgetExceeded(QueryError):
    """A query that ran out of its step budget; the message names the budget."""


class StepBudget:
    """Evaluation steps one query has used, refused past ``limit``.

    :param limit: Most steps allowed.
    """

    def __init__(self, limit: int = MAX_QUERY_STEPS) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, steps: int) -> None:
        """Count ``steps``; raise ``BudgetExceeded`` once over the limit."""
        self.used += steps
        if self.used > self.limit:
            raise BudgetExceeded(
                f"query exceeded its budget of {self.limit} evaluation steps (field-path lookups and value "
                "comparisons over the works it reads); narrow it, e.g. by pipeline or id, or compare fewer values"
            )


# The budget of the query being evaluated in this context; compiled predicates are plain closures
# reused across documents, so the budget travels beside them rather than through every call.
_BUDGET: ContextVar[StepBudget | None] = ContextVar("mongo_query_budget", default=None)


@contextmanager
def step_budget(limit: int = MAX_QUERY_STEPS) -> Iterator[StepBudget]:
    """Count every evaluation step run inside the block against one budget of ``limit`` steps.

    Outside such a block evaluation is not counted (direct library use on trusted input).
    """
    budget = StepBudget(limit)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _charge(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(steps)


class _Missing:
    """Marks a path that does not exist in a document (distinct from an explicit ``null``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

Document = Mapping[str, Any]
Predicate = Callable[[Any], bool]
"""Tests a whole document."""
ValuesTest = Callable[[list[Any]], bool]
"""Tests the values one field path resolves to in a document (``MISSING`` where absent)."""

_LOGICAL = ("$and", "$or", "$nor")


# --------------------------------------------------------------------------------------------------
# Shape checks
# --------------------------------------------------------------------------------------------------


def _check_shape(value: Any, what: str) -> None:
    """Bound depth and size and allow only JSON types, without recursion.

    :param value: The query or projection.
    :param what: Its name in error messages.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise QueryError(f"{what} is too large (more than {MAX_NODES} elements)")
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise QueryError(f"{what} is nested too deeply (deeper than {MAX_DEPTH} levels)")
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                if isinstance(node, dict) and not isinstance(key, str):
                    raise QueryError(f"{what} has a non-string key {key!r}")
                stack.append((child, depth + 1))
        elif node is not None and not isinstance(node, (str, bool, int, float)):
            raise QueryError(f"{what} holds a value of unsupported type {type(node).__name__}")


def _check_literal(value: Any, path: str) -> None:
    """Refuse ``$`` keys inside literal values, so no operator can hide where it would be ignored."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key.startswith("$"):
                    raise QueryError(f"unsupported query operator {key!r} inside a literal value (field {path!r})")
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)


def _parse_path(path: str, what: str = "field path") -> tuple[str, ...]:
    """Split a dotted path, refusing empty components and ``$`` components."""
    parts = tuple(path.split("."))
    if any(not part or part.startswith("$") for part in parts):
        raise QueryError(f"invalid {what} {path!r}")
    if len(parts) > MAX_PATH_PARTS:
        raise QueryError(f"{what} {path!r} has more than {MAX_PATH_PARTS} components")
    return parts


def _is_operator_object(cond: Any, path: str) -> bool:
    """Whether ``cond`` is ``{"$op": arg, ...}`` rather than a literal value."""
    if not isinstance(cond, dict) or not cond:
        return False
    dollar = [key.startswith("$") for key in cond]
    if any(dollar) and not all(dollar):
        raise QueryError(f"the condition on {path!r} mixes operators and field names")
    return all(dollar)


def _unsupported(op: str, path: str | None = None) -> QueryError:
    where = f" (field {path!r})" if path is not None else ""
    supported = ", ".join(SUPPORTED_OPERATORS)
    return QueryError(f"unsupported query operator {op!r}{where}; supported: {supported}")


# --------------------------------------------------------------------------------------------------
# Values: path resolution, equality, ordering
# --------------------------------------------------------------------------------------------------


def _resolve(doc: Any, parts: tuple[str, ...]) -> list[Any]:
    """Every value ``parts`` reaches in ``doc``, descending into arrays of documents as MongoDB does.

    A numeric component on an array is both an index and a field of its documents, so the same
    node can be reached by several routes; each ``(node, component)`` pair is expanded once, which
    keeps the walk linear in the size of ``doc`` (re-walking each route doubled the cost with every
    level of ``[{"0": [{"0": ...}]}]``). Iterative, so depth never meets the recursion limit.
    """
    found: list[Any] = []
    expanded: set[tuple[int, int]] = set()  # (id(container), index): documents are trees held alive by doc
    stack: list[tuple[Any, int]] = [(doc, 0)]
    steps = 0
    while stack:
        value, index = stack.pop()
        steps += 1
        if isinstance(value, (dict, list)):
            if (id(value), index) in expanded:
                continue
            expanded.add((id(value), index))
        if index == len(parts):
            found.append(value)
            continue
        part = parts[index]
        if isinstance(value, dict):
            if part in value:
                stack.append((value[part], index + 1))
            else:
                found.append(MISSING)
        elif isinstance(value, list):
            # Length guard: int() of a huge digit string is slow (and capped by Python).
            if part.isascii() and part.isdigit() and len(part) <= 9 and int(part) < len(value):
                stack.append((value[int(part)], index + 1))
            # "a.b" on an array of documents means "b" of any element.
            stack.extend((element, index) for element in value if isinstance(element, dict))
        # Below a scalar the path does not exist; an empty result becomes MISSING below.
    _charge(steps)
    return found or [MISSING]


def values_equal(left: Any, right: Any) -> bool:
    """JSON equality with MongoDB's types: ``1 == 1.0`` but ``1 != true``; object key order is ignored."""
    _charge(1)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(values_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(values_equal(v, right[k]) for k, v in left.items())
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bracket(value: Any) -> int | None:
    """MongoDB-style type bracket: values only order against values of the same bracket."""
    if value is None:
        return 0
    if _is_number(value):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, bool):
        return 3
    return None


def _equals_one(value: Any, literal: Any) -> bool:
    """Equality of one resolved value: ``null`` matches missing, arrays match by any element too."""
    if value is MISSING:
        return literal is None
    if values_equal(value, literal):
        return True
    return isinstance(value, list) and any(values_equal(element, literal) for element in value)


def _equals(literal: Any) -> ValuesTest:
    return lambda values: any(_equals_one(value, literal) for value in values)


# --------------------------------------------------------------------------------------------------
# Operators (the whitelist)
# --------------------------------------------------------------------------------------------------


def _op_eq(arg: Any, path: str) -> ValuesTest:
    _check_literal(arg, path)
    return _equals(arg)


def _op_ne(arg: Any, path: str) -> ValuesTest:
    test = _op_eq(arg, path)
    return lambda values: not test(values)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _op_compare(op: str) -> Callable[[Any, str], ValuesTest]:
    compare = _COMPARE[op]
    inclusive = op in ("$gte", "$lte")

    def build(arg: Any, path: str) -> ValuesTest:
        bracket = _bracket(arg)
        if bracket is None:
            raise QueryError(f"{op} on {path!r} needs a number, string, boolean or null, not {type(arg).__name__}")

        def one(candidate: Any) -> bool:
            if arg is None:
                # Only the equality half of $gte/$lte can hold against null (MongoDB bracketing).
                return inclusive and (candidate is None or candidate is MISSING)
            return _bracket(candidate) == bracket and compare(candidate, arg)

        def test(values: list[Any]) -> bool:
            for value in values:
                candidates = [value, *value] if isinstance(value, list) else [value]
                _charge(len(candidates))
                if any(one(candidate) for candidate in candidates):
                    return True
            return False

        return test

    return build


def _literal_list(op: str, arg: Any, path: str) -> list[Any]:
    if not isinstance(arg, list):
        raise QueryError(f"{op} on {path!r} needs an array")
    _check_literal(arg, path)
    return arg


def _op_in(arg: Any, path: str) -> ValuesTest:
    items = _literal_list("$in", arg, path)
    return lambda values: any(_equals_one(value, item) for value in values for item in items)


def _op_nin(arg: Any, path: str) -> ValuesTest:
    items = _literal_list("$nin", arg, path)
    return lambda values: not any(_equals_one(value, item) for value in values for item in items)


def _op_all(arg: Any, path: str) -> ValuesTest:
    items = _literal_list("$all", arg, path)
    # As in MongoDB, an empty $all matches nothing.
    return lambda values: bool(items) and all(any(_equals_one(v, item) for v in values) for item in items)


def _op_exists(arg: Any, path: str) -> ValuesTest:
    if not isinstance(arg, bool) and arg not in (0, 1):
        raise QueryError(f"$exists on {path!r} needs true or false")
    wanted = bool(arg)
    return lambda values: any(value is not MISSING for value in values) == wanted


def _op_size(arg: Any, path: str) -> ValuesTest:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
        raise QueryError(f"$size on {path!r} needs a non-negative integer")
    return lambda values: any(isinstance(value, list) and len(value) == arg for value in values)


def _op_elem_match(arg: Any, path: str) -> ValuesTest:
    if not isinstance(arg, dict) or not arg:
        raise QueryError(f"$elemMatch on {path!r} needs a non-empty object")
    element_test: Predicate
    if all(key.startswith("$") and key not in _LOGICAL for key in arg):
        # {"$gt": 1, "$lt": 5}: conditions on each element's own value.
        ops = _compile_operators(arg, path)
        element_test = lambda element: ops([element])  # noqa: E731
    else:
        # {"b": 1, ...}: a query each element (a document) must match.
        query = _compile_filter(arg, f"$elemMatch on {path!r}")
        element_test = lambda element: isinstance(element, dict) and query(element)  # noqa: E731
    return lambda values: any(isinstance(v, list) and any(element_test(e) for e in v) for v in values)


def _op_not(arg: Any, path: str) -> ValuesTest:
    if not _is_operator_object(arg, path):
        raise QueryError(f"$not on {path!r} needs an operator object such as {{'$gt': 1}}")
    inner = _compile_operators(arg, path)
    return lambda values: not inner(values)


_OPERATORS: dict[str, Callable[[Any, str], ValuesTest]] = {
    "$eq": _op_eq,
    "$ne": _op_ne,
    **{op: _op_compare(op) for op in _COMPARE},
    "$in": _op_in,
    "$nin": _op_nin,
    "$exists": _op_exists,
    "$not": _op_not,
    "$all": _op_all,
    "$size": _op_size,
    "$elemMatch": _op_elem_match,
}

SUPPORTED_OPERATORS: tuple[str, ...] = (*_LOGICAL, *_OPERATORS)


# --------------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------------


def _compile_operators(ops: dict[str, Any], path: str) -> ValuesTest:
    tests: list[ValuesTest] = []
    for op, arg in ops.items():
        build = _OPERATORS.get(op)
        if build is None:
            raise _unsupported(op, path)
        tests.append(build(arg, path))
    return lambda values: all(test(values) for test in tests)


def _compile_field(path: str, cond: Any) -> Predicate:
    parts = _parse_path(path)
    if _is_operator_object(cond, path):
        test = _compile_operators(cond, path)
    else:
        _check_literal(cond, path)
        test = _equals(cond)
    return lambda doc: test(_resolve(doc, parts))


def _compile_logical(op: str, clauses: Any) -> Predicate:
    if not isinstance(clauses, list) or not clauses:
        raise QueryError(f"{op} needs a non-empty array of query objects")
    preds = [_compile_filter(clause, f"each {op} clause") for clause in clauses]
    if op == "$and":
        return lambda doc: all(pred(doc) for pred in preds)
    if op == "$or":
        return lambda doc: any(pred(doc) for pred in preds)
    return lambda doc: not any(pred(doc) for pred in preds)


def _compile_filter(query: Any, what: str) -> Predicate:
    if not isinstance(query, dict):
        raise QueryError(f"{what} must be an object")
    preds: list[Predicate] = []
    for key, cond in query.items():
        if key.startswith("$"):
            if key not in _LOGICAL:
                raise _unsupported(key)
            preds.append(_compile_logical(key, cond))
        else:
            preds.append(_compile_field(key, cond))
    return lambda doc: all(pred(doc) for pred in preds)


def compile_query(query: Any) -> Callable[[Document], bool]:
    """Validate ``query`` once and return a predicate over documents.

    :param query: A MongoDB filter (JSON object) in the supported subset.
    :raises QueryError: Naming the offending operator or path.
    """
    _check_shape(query, "query")
    return _compile_filter(query, "query")


def validate_query(query: Any) -> None:
    """Raise ``QueryError`` (naming the operator or path) unless ``query`` is in the supported subset."""
    compile_query(query)


def matches(doc: Document, query: Any) -> bool:
    """Whether ``doc`` matches the MongoDB filter ``query``.

    :param doc: A JSON document.
    :param query: A MongoDB filter; validated first (``QueryError`` if unsupported).
    """
    return compile_query(query)(doc)


# --------------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------------

_Tree = dict[str, Any]
"""Projection paths as a tree: a leaf is ``True``, an inner node another tree."""

ID_FIELD = "id"


def _path_tree(paths: list[str]) -> _Tree:
    tree: _Tree = {}
    for path in paths:
        node = tree
        parts = _parse_path(path, "projection path")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            child = node.get(part)
            if child is True or (last and child is not None):
                raise QueryError(f"projection paths collide at {path!r}")
            if last:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    return tree


def _include(value: Any, tree: _Tree) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            branch = tree.get(key)
            if branch is True:
                out[key] = child
            elif branch is not None:
                kept = _include(child, branch)
                if kept is not MISSING:
                    out[key] = kept
        return out
    if isinstance(value, list):
        # Dotted inclusion through an array keeps only its documents (and nested arrays), as MongoDB.
        return [_include(element, tree) for element in value if isinstance(element, (dict, list))]
    return MISSING


def _exclude(value: Any, tree: _Tree) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            branch = tree.get(key)
            if branch is not True:
                out[key] = child if branch is None else _exclude(child, branch)
        return out
    if isinstance(value, list):
        return [_exclude(element, tree) for element in value]
    return value


def compile_projection(projection: Any) -> Callable[[Document], dict[str, Any]]:
    """Validate ``projection`` once and return a function that projects a document.

    Inclusion (``{"a": true, "b.c": 1}``) or exclusion (``{"a": false}``), never both; ``id`` is
    always kept. An empty projection returns the whole document.

    :param projection: ``{path: true | false | 1 | 0}``.
    :raises QueryError: Naming the offending path.
    """
    if projection is None:
        projection = {}
    if not isinstance(projection, dict):
        raise QueryError("projection must be an object")
    _check_shape(projection, "projection")
    for path, flag in projection.items():
        # 1.0 is the number 1 in JSON (and in JSON Schema), so it counts as 1.
        if not isinstance(flag, bool) and not (isinstance(flag, int | float) and flag in (0, 1)):
            raise QueryError(f"projection of {path!r} must be true/false or 1/0, not {flag!r}")
    fields = {path: bool(flag) for path, flag in projection.items() if path != ID_FIELD}
    if fields.get("_id") is False and any(fields.values()):
        # MongoDB's habitual {"_id": 0, ...} next to inclusions: there is no _id here to drop.
        del fields["_id"]
    if len(set(fields.values())) > 1:
        included = sorted(path for path, flag in fields.items() if flag)
        excluded = sorted(path for path, flag in fields.items() if not flag)
        raise QueryError(f"projection mixes inclusion {included} and exclusion {excluded}")
    tree = _path_tree(list(fields))
    tree.pop(ID_FIELD, None)  # only reachable through "id.x": id is always kept whole
    inclusive = any(fields.values()) or (not fields and bool(projection.get(ID_FIELD)))

    def project(doc: Document) -> dict[str, Any]:
        if not isinstance(doc, dict):
            return {}
        if not inclusive:
            return _exclude(doc, tree) if tree else dict(doc)
        out = {ID_FIELD: doc[ID_FIELD]} if ID_FIELD in doc else {}
        out.update((key, value) for key, value in _include(doc, tree).items() if key != ID_FIELD)
        return out

    return project


def validate_projection(projection: Any) -> None:
    """Raise ``QueryError`` (naming the path) unless ``projection`` is a valid projection."""
    compile_projection(projection)


def apply_projection(doc: Document, projection: Any) -> dict[str, Any]:
    """Project ``doc`` as MongoDB would (``id`` always kept).

    :param doc: A JSON document.
    :param projection: ``{path: true | false | 1 | 0}``; inclusion or exclusion, not both.
    """
    return compile_projection(projection)(doc)
