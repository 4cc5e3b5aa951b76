"""The compute tasks the reference service offers (topic ``demo``): validation, duration, outcome.

A task is pure: ``validate`` normalises the submitted parameters (or raises
:class:`ParameterError` naming the field), ``duration_s`` says how long a run takes, ``execute``
produces the results (or raises :class:`TaskFailure`) and ``progress_message`` describes a run
that is ``fraction`` done. Scheduling and persistence live in ``compute.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_SLEEP_S = 3600.0


class ParameterError(Exception):
    """A submitted parameter is missing or invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"parameters.{field}: {message}")
        self.field = field


@dataclass
class TaskFailure(Exception):
    """A run that ends ``failed``; becomes the job's Error."""

    title: str
    detail: str
    status: int = 500
    slug: str = "task-failed"


class Task(Protocol):
    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]: ...

    def duration_s(self, parameters: Mapping[str, Any]) -> float: ...

    def execute(self, parameters: Mapping[str, Any]) -> dict[str, Any]: ...

    def progress_message(self, parameters: Mapping[str, Any], fraction: float) -> str: ...


class WordCount:
    """``{"text": str}`` → ``{"words": int}`` (whitespace-separated words)."""

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        text = parameters.get("text")
        if text is None:
            raise ParameterError("text", "is required")
        if not isinstance(text, str):
            raise ParameterError("text", "must be a string")
        return {"text": text}

    def duration_s(self, parameters: Mapping[str, Any]) -> float:
        return 0.5

    def execute(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        return {"words": len(parameters["text"].split())}

    def progress_message(self, parameters: Mapping[str, Any], fraction: float) -> str:
        return f"counting words in {len(parameters['text'])} characters"


class Sleep:
    """``{"seconds": str}`` (a number as text, as the public client sends strings) → ``{"slept": float}``."""

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        raw = parameters.get("seconds")
        if raw is None:
            raise ParameterError("seconds", "is required")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ParameterError("seconds", "must be a number of seconds (as text or a number)")
        try:
            seconds = float(raw)
        except ValueError:
            raise ParameterError("seconds", f"{raw!r} is not a number") from None
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP_S:
            raise ParameterError("seconds", f"must be between 0 and {MAX_SLEEP_S:g}")
        return {"seconds": seconds}

    def duration_s(self, parameters: Mapping[str, Any]) -> float:
        return float(parameters["seconds"])

    def execute(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        return {"slept": float(parameters["seconds"])}

    def progress_message(self, parameters: Mapping[str, Any], fraction: float) -> str:
        total = float(parameters["seconds"])
        return f"slept {fraction * total:.1f} of {total:g} seconds"


class Fail:
    """Always fails (optional ``{"message": str}`` becomes the Error's detail)."""

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        message = parameters.get("message")
        if message is not None and not isinstance(message, str):
            raise ParameterError("message", "must be a string")
        return {} if message is None else {"message": message}

    def duration_s(self, parameters: Mapping[str, Any]) -> float:
        return 0.3

    def execute(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        raise TaskFailure("Task failed", parameters.get("message") or "the demo 'fail' task always fails")

    def progress_message(self, parameters: Mapping[str, Any], fraction: float) -> str:
        return "working towards a failure"


TOPICS: dict[str, dict[str, Task]] = {"demo": {"wordcount": WordCount(), "sleep": Sleep(), "fail": Fail()}}


def find_task(topic: str, task: str) -> Task | None:
    return TOPICS.get(topic, {}).get(task)
