"""Test-side helper for the reference service's fault injection (``faults.py``): one line per fault."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from airflow_jobwait.server.faults import CONTROL_PATH, KEY_HEADER


class FaultControl:
    """Set, clear and read the fault rules of a service started with ``--test-controls``.

    Example: ``FaultControl(service.base_url, service.api_key).set([{"kind": "drop", "count": 1}])``.

    :param base_url: The service root, e.g. ``http://127.0.0.1:8787``.
    :param api_key: The service API key (sent as ``X-Test-Key``).
    :param timeout: Seconds per control request.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + CONTROL_PATH
        self.headers = {KEY_HEADER: api_key}
        self.timeout = timeout

    def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # A fresh connection per call: never share a pooled socket with the faulted traffic.
        resp = requests.request(method, self.url, json=body, headers=self.headers, timeout=self.timeout)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def set(self, rules: list[dict[str, Any]], seed: int | None = None) -> dict[str, Any]:
        """Replace the rule set (and reset the stats); returns the state the service now holds.

        :param rules: Rules as documented in ``faults.py``.
        :param seed: Seed for the rules' ``rate`` draws.
        :raises requests.HTTPError: 400 when a rule is invalid (the detail names the field).
        """
        return self._call("POST", {"rules": rules, "seed": seed})

    def clear(self) -> dict[str, Any]:
        """Remove every rule (and reset the stats)."""
        return self._call("DELETE")

    def state(self) -> dict[str, Any]:
        """The current rules (with ``remaining`` and ``fired``), ``seed`` and ``stats``."""
        return self._call("GET")

    def stats(self) -> dict[str, Any]:
        """``{"requests": seen, "injected": {kind: n}, "total_injected": n}`` since the last set/clear."""
        stats: dict[str, Any] = self.state()["stats"]
        return stats

    @contextmanager
    def injected(self, rules: list[dict[str, Any]], seed: int | None = None) -> Iterator[FaultControl]:
        """Apply ``rules`` for the duration of a ``with`` block, then clear them."""
        self.set(rules, seed)
        try:
            yield self
        finally:
            self.clear()
