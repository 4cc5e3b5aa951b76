"""Schemathesis hooks of ``test_openapi.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

One hook, for time only: a watch waits up to its ``timeout`` (30 s when absent, at most 60) for
jobs that a generated request names at random and that therefore never change. A valid timeout is
shortened to at most ``WATCH_TIMEOUT_S`` (still valid, still a wait that ends empty), so the run
stays within minutes; an invalid one is left alone, and still refused.
"""

from __future__ import annotations

from typing import Any

import schemathesis

WATCH_TIMEOUT_S = 0.2


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if not case.path.endswith("/jobs:watch") or not isinstance(case.body, dict):
        return
    timeout = case.body.get("timeout", 30.0)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 < timeout <= 60:
        case.body["timeout"] = min(timeout, WATCH_TIMEOUT_S)
