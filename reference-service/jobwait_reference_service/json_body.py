"""The one strict parser for JSON request bodies, shared by every family.

Python's ``json`` module accepts things a service should not take from strangers: nesting deep
enough to raise ``RecursionError``, integers so long that ``int()`` refuses them (``ValueError``
past 4,300 digits), ``NaN``/``Infinity``, numbers that overflow to infinity, duplicate keys (the
last silently wins) and ``\\ud800``-style escapes that decode to strings no UTF-8 encoder can
write back. ``parse_json`` refuses all of them with one exception, ``JsonBodyError``, whose
message names the problem and where it is (``$.input.sources[0]``); each family turns it into its
own 4xx error body. ``MAX_DEPTH`` is also the limit ``mongo_query`` puts on queries and
projections, so what can be deposited can always be queried and viewed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_DEPTH", "MAX_NUMBER_DIGITS", "JsonBodyError", "parse_json"]

MAX_DEPTH = 32
"""Deepest nesting of arrays/objects accepted (the top-level value is level 1). Works and queries sit
one level down in their bodies, so stored works are at most 31 deep: a depth any field path
(``mongo_query.MAX_PATH_PARTS`` components) can reach."""
MAX_NUMBER_DIGITS = 100
"""Most digits in one number: far past int64 and double precision, far below Python's int limit."""

_MAX_PATH_CHARS = 200  # a path in an error message is cut here so hostile keys cannot bloat it
_MAX_KEY_CHARS = 40

# Strings (skipped whole, so brackets inside them do not count) and the structural characters.
# Only run over text the C decoder has already read as JSON, so every string is terminated.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
# An escaped UTF-16 surrogate: only then can a decoded string hold an unpaired one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class JsonBodyError(ValueError):
    """A request body that is not acceptable JSON; the message names the problem and its place."""


class _Refused:
    """Stands in the decoded value for something refused, so its place can be named afterwards."""

    def __init__(self, problem: str, rule: str) -> None:
        self.problem = problem
        self.rule = rule


def _step(path: str, step: str | int) -> str:
    if isinstance(step, int):
        return f"{path}[{step}]"
    if _IDENTIFIER.fullmatch(step) and len(step) <= _MAX_KEY_CHARS:
        return f"{path}.{step}"
    shown = step if len(step) <= _MAX_KEY_CHARS else step[:_MAX_KEY_CHARS] + "…"
    return f"{path}[{json.dumps(shown, ensure_ascii=True)}]"


def _join(steps: list[str | int]) -> str:
    path = "$"
    for step in steps:
        path = _step(path, step)
        if len(path) > _MAX_PATH_CHARS:
            return path[:_MAX_PATH_CHARS] + "…"
    return path


def _too_deep_at(text: str) -> str | None:
    """The path of the first array/object opened deeper than ``MAX_DEPTH``, if any.

    A linear scan of the text, not of the decoded value: the decoder itself may have stopped on
    ``RecursionError`` at a depth it cannot go past.
    """
    frames: list[list[Any]] = []  # per open container: [index or key, is_object, expecting_key]
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            if len(frames) >= MAX_DEPTH:
                return _join([frame[0] for frame in frames])
            frames.append([0 if token == "[" else "", token == "{", token == "{"])
        elif token in "]}":
            if frames:
                frames.pop()
        elif token == ",":
            if frames:
                frame = frames[-1]
                if frame[1]:
                    frame[2] = True
                else:
                    frame[0] += 1
        elif frames and frames[-1][2]:  # a string where an object expects its next key
            frames[-1][0] = json.loads(token)
            frames[-1][2] = False
    return None


def _find(value: Any, problem_of: Callable[[Any], _T | None]) -> tuple[_T, str] | None:
    """``(problem, path)`` of the first node ``problem_of`` objects to, walking without recursion."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, steps = stack.pop()
        problem = problem_of(node)
        if problem is not None:
            return problem, _join(steps)
        if isinstance(node, dict):
            stack.extend((child, [*steps, key]) for key, child in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((child, [*steps, index]) for index, child in reversed(list(enumerate(node))))
    return None


def _unpaired_surrogate(node: Any) -> str | None:
    texts = [node] if isinstance(node, str) else list(node) if isinstance(node, dict) else []
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            where = "key" if isinstance(node, dict) else "string"
            return f"unpaired UTF-16 surrogate \\u{ord(text[error.start]):04x} in a {where}"
    return None


def parse_json(raw: bytes | str) -> Any:
    """Decode a request body strictly.

    :param raw: The body as received (UTF-8 bytes) or already decoded.
    :returns: The JSON value, with every number finite and at most ``MAX_NUMBER_DIGITS`` digits,
        nesting at most ``MAX_DEPTH`` levels, no duplicate keys and only encodable strings.
    :raises JsonBodyError: Naming the problem and, where it has one, its ``$``-path.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonBodyError(
                f"request body is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start})"
            ) from None
    else:
        text = raw
    refused: list[_Refused] = []

    def refuse(problem: str, rule: str) -> _Refused:
        marker = _Refused(problem, rule)
        refused.append(marker)
        return marker

    def parse_int(literal: str) -> int | _Refused:
        digits = len(literal) - literal.startswith("-")
        if digits > MAX_NUMBER_DIGITS:
            # Never int() it: past 4,300 digits Python refuses, and below that it is still slow.
            return refuse(f"integer with {digits} digits", f"at most {MAX_NUMBER_DIGITS} digits")
        return int(literal)

    def parse_float(literal: str) -> float | _Refused:
        if len(literal) > MAX_NUMBER_DIGITS and (digits := sum(c.isdigit() for c in literal)) > MAX_NUMBER_DIGITS:
            return refuse(f"number with {digits} digits", f"at most {MAX_NUMBER_DIGITS} digits")
        number = float(literal)
        if not math.isfinite(number):
            return refuse(f"number {literal}", "out of range of a double")
        return number

    def object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Refused:
        obj = dict(pairs)
        if len(obj) != len(pairs):  # rare: only then look for the key that came twice
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    return refuse(f"duplicate key {key[:_MAX_KEY_CHARS]!r}", "keys must be unique")
                seen.add(key)
        return obj

    deep = text.count("[") + text.count("{") > MAX_DEPTH  # cheap: most bodies cannot be too deep
    recursed = False
    try:
        value = json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=lambda name: refuse(name, "not valid JSON"),
            object_pairs_hook=object_pairs,
        )
    except RecursionError:
        value, deep, recursed = None, True, True
    except json.JSONDecodeError as error:
        raise JsonBodyError(f"request body is not valid JSON: {error}") from None
    if deep and ((path := _too_deep_at(text)) is not None or recursed):
        where = f" at {path}" if path is not None else ""
        raise JsonBodyError(f"request body is nested too deeply: deeper than {MAX_DEPTH} levels{where}")
    if refused:
        found = _find(value, lambda node: node if isinstance(node, _Refused) else None)
        marker, path = found if found is not None else (refused[0], "$")
        raise JsonBodyError(f"request body refused: {marker.problem} at {path} ({marker.rule})")
    if _SURROGATE_ESCAPE.search(text) and (unpaired := _find(value, _unpaired_surrogate)) is not None:
        raise JsonBodyError(f"request body refused: {unpaired[0]} at {unpaired[1]} (strings must be valid Unicode)")
    return value
