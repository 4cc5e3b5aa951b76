"""Turn an Airflow connection of type ``jobwait`` into a ``ClientConfig``."""

from __future__ import annotations

import logging
from typing import Any

from airflow_jobwait.client.http import ClientConfig

log = logging.getLogger(__name__)

CONN_TYPE = "jobwait"
DEFAULT_CONN_ID = "jobwait_default"
DEFAULT_TIMEOUT = 30.0

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
    try:
        return ClientConfig(
            base_url=base_url_of(conn_id, host, schema, port),
            api_key=password,
            timeout=float(timeout) if not isinstance(timeout, bool) else -1.0,
            verify=verify,
            max_response_bytes=max_bytes,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"connection {conn_id!r}: {err}") from None
