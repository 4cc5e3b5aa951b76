"""Unit tests of the shared strict JSON body parser (the HTTP side is in test_hostile_bodies.py)."""

from __future__ import annotations

import pytest
from jobwait_reference_service.json_body import MAX_DEPTH, JsonBodyError, parse_json


def test_depth_limit_is_exact_and_names_the_path() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    too_deep = b'{"a": [1, {"b c": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}]}"
    with pytest.raises(JsonBodyError, match=r'deeper than 32 levels at \$\.a\[1\]\["b c"\]\[0\]'):
        parse_json(too_deep)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"s": "' + "[{" * 100 + '\\"]"}'
    assert parse_json(text) == {"s": "[{" * 100 + '"]'}


def test_valid_json_comes_back_unchanged() -> None:
    body = b'{"a": [1, -2.5e3, "\\ud83d\\ude00", null, true], "b": {"c": "\xc3\xa9"}}'
    assert parse_json(body) == {"a": [1, -2500.0, "\U0001f600", None, True], "b": {"c": "é"}}


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,]", b"\xef\xbb\xbf[1]"])
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(JsonBodyError, match="not valid JSON"):
        parse_json(raw)
