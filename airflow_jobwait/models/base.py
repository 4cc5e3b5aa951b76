"""Base class for every payload on the wire."""

from __future__ import annotations

import math
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


def first_error(err: ValidationError) -> tuple[str, str]:
    """The dotted path of the first invalid field and pydantic's sentence about it."""
    first = err.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "<root>", first["msg"]


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
