"""Test-side helper for the reference service's fault injection (``faults.py``): one line per fault."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests

from jobwait_reference_service.faults import CONTROL_PATH, KEY_HEADER


def share_rules(mix: Sequence[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rules that each fault the given share of *all* requests, e.g. 20 % in total across kinds.

    Rules are tried in order and each draws its own ``rate``, so a rule further down only sees the
    requests the earlier ones let through; this sets each ``rate`` to its share of what is left
    (``share / (1 - shares before it)``). Exact only when every rule matches every request (no
    ``path_prefix``/``methods``/``count`` filters).

    Example: ``share_rules([(0.05, {"kind": "status", "status": 503}), (0.02, {"kind": "drop"})])``.

    :param mix: ``(share of all requests, rule without rate)`` pairs; shares are in [0, 1], sum <= 1.
    :raises ValueError: A share outside [0, 1], or shares summing to more than 1.
    """
    rules: list[dict[str, Any]] = []
    used = 0.0
    for share, rule in mix:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share {share!r} of rule {rule!r} must be in [0, 1]")
        if used + share > 1.0 + 1e-9:
            raise ValueError(f"shares add up to more than 1 at rule {rule!r}")
        left = 1.0 - used
        rate = 1.0 if left <= 1e-12 else min(1.0, share / left)
        rules.append({**rule, "rate": rate})
        used += share
    return rules


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
