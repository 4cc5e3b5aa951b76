"""Base class for every payload on the wire."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


def _accept_camel_and_snake(name: str) -> AliasChoices:
    return AliasChoices(to_camel(name), name)


class WireModel(BaseModel):
    """A JSON payload: camelCase on the wire, snake_case in Python.

    Parsing accepts both spellings (the services' clients do); dumping with
    ``by_alias=True`` produces the wire spelling. Unknown fields are kept, because
    services add fields and a provider must not drop what it does not know.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_accept_camel_and_snake, serialization_alias=to_camel),
        populate_by_name=True,
        extra="allow",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON body as the service expects it (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe dict for XCom (wire spelling, so downstream code reads what the docs show)."""
        return self.model_dump(mode="json", by_alias=True)


def with_extra_fields(
    body: dict[str, Any], extra: Mapping[str, Any] | None, argument: str = "extra_body"
) -> dict[str, Any]:
    """``body`` plus the caller's ``extra`` top-level fields, for options of a service this provider
    does not model (a newer API field, a deployment's own extension).

    :param argument: The caller's argument name, for error messages.
    :raises ValueError: ``extra`` is not a mapping, would replace a field the provider sets, or is
        not JSON (the message names the key).
    """
    if extra is None:
        return body
    if not isinstance(extra, Mapping):
        raise ValueError(f"{argument} must be a mapping of extra body fields, got {type(extra).__name__}")
    clash = sorted(str(key) for key in extra if key in body)
    if clash:
        raise ValueError(f"{argument} may not replace field(s) the provider sets: {', '.join(clash)}")
    problem = json_problem(dict(extra))
    if problem is not None:
        where, why = problem
        raise ValueError(f"{argument} field {where!r} is not JSON: {why}")
    return {**body, **extra}


def invalid_fields(err: ValidationError) -> list[tuple[str, str]]:
    """Each invalid field's dotted path (``<root>`` for the value itself) and pydantic's sentence
    about it, in pydantic's order."""
    return [(".".join(str(part) for part in error["loc"]) or "<root>", error["msg"]) for error in err.errors()]


def first_error(err: ValidationError) -> tuple[str, str]:
    """The dotted path of the first invalid field and pydantic's sentence about it."""
    return invalid_fields(err)[0]


#: Deepest nesting of objects/arrays a request body may have (a serialiser recurses per level).
MAX_JSON_DEPTH = 256


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """Where ``value`` stops being strict JSON and why; ``None`` when it is JSON.

    Strict JSON: objects with string keys, arrays (lists or tuples), strings, booleans, integers,
    finite floats and ``None``, nested at most ``max_depth`` levels. Walked without recursion, so
    hostile nesting cannot exhaust the stack.

    :returns: ``(dotted path, reason)`` of an offending value (path ``<root>`` for the value itself).
    """
    stack: list[tuple[tuple[object, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if node is None or isinstance(node, str | bool | int):
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                return _dotted(path), f"{node!r} is not a JSON number"
            continue
        if not isinstance(node, dict | list | tuple):
            return _dotted(path), f"a {type(node).__name__} is not JSON-serialisable"
        if len(path) >= max_depth:
            return _dotted(path), f"nested more than {max_depth} levels deep"
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    return _dotted(path), f"key {key!r} is not a string"[:200]
                stack.append(((*path, key), child))
        else:
            stack.extend(((*path, index), child) for index, child in enumerate(node))
    return None


def _dotted(path: tuple[object, ...], most: int = 200) -> str:
    text = ".".join(str(part) for part in path) or "<root>"
    return text if len(text) <= most else f"{text[:most]}..."
