"""What the running Airflow offers: version flags, as official providers keep them, and one log
line per process for each feature that this Airflow lacks.

The provider supports Airflow 3.1 and later (README, "Airflow versions"). Imports that moved
between 3.x releases go through ``airflow.providers.common.compat.sdk``; the flags below decide
only where a feature itself is missing.
"""

from __future__ import annotations

import logging
import threading

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

log = logging.getLogger(__name__)


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """``(major, minor, micro)`` of the running Airflow, without pre-release or local parts."""
    version = Version(AIRFLOW_VERSION)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_3_PLUS: bool = get_base_airflow_version_tuple() >= (3, 3, 0)

#: Features this provider uses that arrived in Airflow 3.3, and what happens without them.
UNAVAILABLE_BEFORE_3_3 = {
    "on_kill": (
        "a user marking or clearing a deferred wait does not cancel its remote job "
        "(BaseTrigger.on_kill arrived in Airflow 3.3); cancel it with the hook or an abort operator"
    ),
    "task_state_store": (
        "a retried submit is not resumed from task_state_store (Airflow 3.3): the retry submits "
        "again, with the same request key (Idempotency-Key/X-Request-Id) as the first try"
    ),
    "asset_state_store": (
        "event triggers keep their watermark in memory (the asset state store arrived in Airflow 3.3): "
        "after a triggerer restart a watcher starts afresh, so items that arrived while it was down are "
        "not reported (docs/event-triggers.md)"
    ),
    "shared_streams": (
        "each event trigger polls its source alone (shared streams arrived in Airflow 3.3), and its "
        "watermark moves once the triggerer has queued its events, not once Airflow has stored them"
    ),
    "start_from_trigger": (
        "start_from_trigger is ignored (Airflow renders its trigger kwargs only from 3.3): the "
        "sensor starts on a worker and defers from there"
    ),
}

_logged: set[str] = set()
_lock = threading.Lock()


def warn_unavailable(feature: str) -> bool:
    """Log once per process that ``feature`` is unavailable on this Airflow; True if it is.

    :param feature: A key of ``UNAVAILABLE_BEFORE_3_3``.
    """
    if AIRFLOW_V_3_3_PLUS:
        return False
    with _lock:
        first = feature not in _logged
        _logged.add(feature)
    if first:
        log.warning("Airflow %s: %s.", AIRFLOW_VERSION, UNAVAILABLE_BEFORE_3_3[feature])
    return True
