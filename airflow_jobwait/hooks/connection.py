"""Turn an Airflow connection of type ``jobwait`` into a ``ClientConfig``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, cast

from airflow_jobwait.client.http import ClientConfig

log = logging.getLogger(__name__)

CONN_TYPE = "jobwait"
DEFAULT_CONN_ID = "jobwait_default"
DEFAULT_TIMEOUT = 30.0
STATUS_MODES = ("auto", "batch", "per_job")
DEFAULT_BATCH_SIZE = 500  # the batch status and watch endpoints take at most 500 ids (docs/jobs-api.md)

StatusMode = Literal["auto", "batch", "per_job"]

# Fields of the connection form (Airflow 3 renders them from the provider info) and of ``extra``.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Request timeout (s)",
        "description": "Seconds for one HTTP request to the service (default 30).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Leave on. Turning it off logs a warning, once per connection and process.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "max_response_bytes": {
        "label": "Response size cap (bytes)",
        "description": "Larger response bodies are refused (default 16 MiB).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "status_mode": {
        "label": "Status polling mode",
        "description": (
            "How the triggerer reads inference job statuses: auto (default: long-poll watch where the "
            "service offers it, else batch status, else one request per job), batch (one request per "
            "batch_size jobs per poll interval, no watch), per_job (one request per job per poll)."
        ),
        "schema": {"type": ["string", "null"], "enum": [*STATUS_MODES, None]},
    },
    "batch_size": {
        "label": "Jobs per status request",
        "description": "Jobs asked about in one batch status or watch request (1-500, default 500).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": DEFAULT_BATCH_SIZE},
    },
    "job_url_template": {
        "label": "Job page URL template",
        "description": "Link shown on tasks, e.g. https://jobs.example.com/jobs/{job_id}.",
        "schema": {"type": ["string", "null"]},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {"host": "https://jobs.example.com", "password": "the service's API key"},
}

_warned_insecure: set[str] = set()


def base_url_of(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """The service's base URL from the connection's host (a full URL, or a bare host name).

    :raises ValueError: The connection has no host.
    """
    host = (host or "").strip()
    if not host:
        raise ValueError(
            f"connection {conn_id!r} has no host: set Host to the service's base URL, e.g. https://jobs.example.com"
        )
    if "://" in host:
        return host
    netloc = f"{host}:{port}" if port else host
    return f"{schema or 'https'}://{netloc}"


def client_config(
    conn_id: str,
    host: str | None,
    schema: str | None,
    port: int | None,
    password: str | None,
    extra: dict[str, Any],
) -> ClientConfig:
    """Build the client settings of a connection.

    :raises ValueError: A field is missing or malformed; the message names it and the connection.
    """
    if not password:
        raise ValueError(f"connection {conn_id!r} has no API key: set it in the connection's Password field")
    # The form saves an emptied field as null: null means "the default", as if absent.
    extra = {key: value for key, value in extra.items() if value is not None}
    verify = extra.get("verify", True)
    if not isinstance(verify, bool):
        raise ValueError(f"connection {conn_id!r}: extra 'verify' must be true or false, got {verify!r}")
    if not verify and conn_id not in _warned_insecure:
        _warned_insecure.add(conn_id)
        log.warning("TLS certificate verification is OFF for connection %r (extra verify=false)", conn_id)
    timeout = extra.get("timeout", DEFAULT_TIMEOUT)
    max_bytes = extra.get("max_response_bytes", 16 * 1024 * 1024)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"connection {conn_id!r}: extra 'max_response_bytes' must be a positive integer")
    base_url = base_url_of(conn_id, host, schema, port)  # names the connection itself
    try:
        return ClientConfig(
            base_url=base_url,
            api_key=password,
            timeout=float(timeout) if not isinstance(timeout, bool) else -1.0,
            verify=verify,
            max_response_bytes=max_bytes,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"connection {conn_id!r}: {err}") from None


@dataclass(frozen=True)
class StatusPolling:
    """How the triggerer reads job statuses on one connection (extras ``status_mode``, ``batch_size``).

    :param mode: ``auto``, ``batch`` or ``per_job``.
    :param batch_size: Jobs per batch status or watch request.
    """

    mode: StatusMode = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE


def status_polling(conn_id: str, extra: dict[str, Any]) -> StatusPolling:
    """Read the status polling extras of a connection.

    :raises ValueError: An extra is malformed; the message names it and the connection.
    """
    mode = extra.get("status_mode") or "auto"
    if mode not in STATUS_MODES:
        raise ValueError(f"connection {conn_id!r}: extra 'status_mode' must be one of {STATUS_MODES}, got {mode!r}")
    size = extra.get("batch_size", DEFAULT_BATCH_SIZE)
    if size is None:
        size = DEFAULT_BATCH_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= DEFAULT_BATCH_SIZE:
        raise ValueError(
            f"connection {conn_id!r}: extra 'batch_size' must be an integer in 1..{DEFAULT_BATCH_SIZE}, got {size!r}"
        )
    return StatusPolling(mode=cast(StatusMode, mode), batch_size=size)
