"""Built-in deterministic models of the inference family (Modzy API).

Every model takes text (the first input's value of a source) and returns a JSON object, stored
under ``OUTPUT_NAME`` in the per-input result. Outputs depend only on the input, so tests and
demos can assert on them.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VERSION = "1.0"
INPUT_NAME = "input.txt"
OUTPUT_NAME = "results.json"
# Time one input takes on the service when nothing else says otherwise; short because the demo waits on it.
DEFAULT_INPUT_SECONDS = 0.3
# The sleep model refuses longer naps so a typo cannot park a job for days.
MAX_SLEEP_SECONDS = 3600.0
# A fixed creation time keeps model bodies byte-identical across restarts.
CREATED_AT = "2024-01-01T00:00:00.000Z"

# Space-separated so the lexicon reads as prose; split once at import.
_POSITIVE_WORDS = (
    "good great excellent happy love loved lovely nice wonderful fantastic amazing best awesome like liked "
    "enjoy enjoyed pleasant superb brilliant delightful glad perfect fine positive success win"
)
_NEGATIVE_WORDS = (
    "bad terrible awful sad hate hated horrible poor worst ugly dislike disliked angry annoying boring "
    "broken fail failed failure negative disappointing disappointed wrong pain problem"
)
_NEGATOR_WORDS = "not no never isn't wasn't don't doesn't didn't cannot can't won't"
_POSITIVE = frozenset(_POSITIVE_WORDS.split())
_NEGATIVE = frozenset(_NEGATIVE_WORDS.split())
_NEGATORS = frozenset(_NEGATOR_WORDS.split())
_WORD = re.compile(r"[a-z']+")


class ModelError(Exception):
    """The model could not process an input; the input ends ``FAILED`` with this message."""


@dataclass(frozen=True)
class ModelSpec:
    """One built-in model.

    :param identifier: Model id used in submit bodies (``model.identifier``).
    :param name: Human name shown in ``Job.model.name``.
    :param description: One line for the model detail bodies.
    :param run: Text in, JSON object out; raises ``ModelError`` on bad input.
    :param seconds: How long one input runs; ``None`` falls back to ``DEFAULT_INPUT_SECONDS``.
    """

    identifier: str
    name: str
    description: str
    run: Callable[[str], Any]
    seconds: Callable[[str], float | None] = lambda _text: None

    def input_seconds(self, text: str) -> float:
        """Planned running time of one input with this model."""
        seconds = self.seconds(text)
        return DEFAULT_INPUT_SECONDS if seconds is None else seconds


def _sentiment(text: str) -> dict[str, Any]:
    """Lexicon score in [-1, 1]; a negator flips the next sentiment word."""
    positive = negative = 0
    flip = False
    for word in _WORD.findall(text.lower()):
        if word in _NEGATORS:
            flip = True
            continue
        polarity = 1 if word in _POSITIVE else -1 if word in _NEGATIVE else 0
        if polarity:
            polarity = -polarity if flip else polarity
            positive += polarity > 0
            negative += polarity < 0
        flip = False
    hits = positive + negative
    score = round((positive - negative) / hits, 4) if hits else 0.0
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"label": label, "score": score}


def _wordcount(text: str) -> dict[str, int]:
    return {"words": len(text.split())}


def _echo(text: str) -> dict[str, str]:
    return {"text": text}


def _parse_seconds(text: str) -> float:
    try:
        seconds = float(text.strip())
    except ValueError:
        raise ModelError(f"sleep: input {text[:40]!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SLEEP_SECONDS:
        raise ModelError(f"sleep: {text.strip()[:40]} seconds is outside 0..{MAX_SLEEP_SECONDS:g}")
    return seconds


def _sleep_seconds(text: str) -> float | None:
    try:
        return _parse_seconds(text)
    except ModelError:
        return None  # runs for the default time, then fails with the parse error


def _sleep(text: str) -> dict[str, float]:
    return {"slept": _parse_seconds(text)}


MODELS: dict[str, ModelSpec] = {
    spec.identifier: spec
    for spec in (
        ModelSpec("sentiment", "Sentiment Analysis", "Labels text positive, negative or neutral.", _sentiment),
        ModelSpec("echo", "Echo", "Returns its input text unchanged.", _echo),
        ModelSpec("wordcount", "Word Count", "Counts whitespace-separated words.", _wordcount),
        ModelSpec("sleep", "Sleep", "Takes its input as seconds and finishes after that long.", _sleep, _sleep_seconds),
    )
}

HARDWARE_REQUIREMENTS: list[dict[str, Any]] = [
    {"requirementId": 1, "status": "ACTIVE", "cpuAmount": "1000m", "memoryAmount": "2Gi"},
]


def decode_input(value: str, input_type: str) -> str:
    """Turn a submitted input value into the text a model reads.

    :param value: The value under ``input.sources[key][name]``.
    :param input_type: ``text`` (taken as is) or ``embedded`` (a ``data:`` URI, as the public
        client's ``submit_embedded`` sends).
    :raises ValueError: ``embedded`` value that is not a decodable data URI.
    """
    if input_type == "text":
        return value
    header, sep, payload = value.partition(",")
    if not sep or not header.startswith("data:"):
        raise ValueError("an embedded input must be a data URI ('data:<media type>;base64,<data>')")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True).decode("utf-8")
        return urllib.parse.unquote(payload)
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"an embedded input must be base64 of UTF-8 text ({exc})") from None


def model_summary(spec: ModelSpec) -> dict[str, Any]:
    """Entry of ``GET /api/models``."""
    return {"modelId": spec.identifier, "latestVersion": VERSION, "versions": [VERSION]}


def model_detail(spec: ModelSpec) -> dict[str, Any]:
    """Body of ``GET /api/models/{modelId}`` (Modzy's model shape, trimmed)."""
    return {
        "modelId": spec.identifier,
        "identifier": spec.identifier,
        "name": spec.name,
        "author": "airflow-jobwait",
        "description": spec.description,
        "latestVersion": VERSION,
        "latestActiveVersion": VERSION,
        "versions": [VERSION],
        "isActive": True,
        "isRecommended": False,
        "isCommercial": False,
        "permalink": spec.identifier,
        "features": [],
        "tags": [],
        "images": [],
        "visibility": {"scope": "ALL"},
        "lastActiveDateTime": CREATED_AT,
    }


def version_detail(spec: ModelSpec) -> dict[str, Any]:
    """Body of ``GET /api/models/{modelId}/versions/{version}`` (Modzy's version shape, trimmed)."""
    return {
        "version": VERSION,
        "createdAt": CREATED_AT,
        "updatedAt": CREATED_AT,
        "isActive": True,
        "isAvailable": True,
        "status": "active",
        "sourceType": "text",
        "inputs": [
            {"name": INPUT_NAME, "acceptedMediaTypes": "text/plain", "maximumSize": 1_000_000, "description": "Text"}
        ],
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "mediaType": "application/json",
                "maximumSize": 1_000_000,
                "description": "Model output",
            }
        ],
        "requirement": {"requirementId": HARDWARE_REQUIREMENTS[0]["requirementId"]},
        "timeout": {"status": 60_000, "run": 60_000},
        "processing": {"minimumParallelCapacity": 0, "maximumParallelCapacity": 1},
        "longDescription": spec.description,
        "technicalDetails": "Deterministic reference model of the airflow-jobwait service.",
        "model": {"modelId": spec.identifier, "name": spec.name, "author": "airflow-jobwait"},
    }
