"""The four connection types (Modzy, TensorBay, Seequent Evo, CHIME results store) and how each
turns an Airflow connection into a ``ClientConfig``.

Each service takes its base URL and its credential the way its public SDK does; this module is
the one place that knows those rules. It imports nothing from Airflow, so ``get_provider_info``
can read the form definitions cheaply.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from airflow_jobwait.client.credentials import OAuth2ClientCredentials
from airflow_jobwait.client.http import ClientConfig

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MIN_TIMEOUT = 0.1  # a request timeout below this is a typo, not a setting
STATUS_MODES = ("auto", "batch", "history", "per_job")
DEFAULT_BATCH_SIZE = 500  # the batch status and watch endpoints take at most 500 ids (docs/jobs-api.md)
#: Seequent's identity service, where the Evo SDK asks for client-credentials tokens.
EVO_TOKEN_URL = "https://ims.bentley.com/connect/token"
#: The Evo SDK's default scopes (``EvoScopes.default``).
EVO_DEFAULT_SCOPES = "evo.discovery evo.workspace"

# The job references each kind's Job link can use (its ``job_ref`` keys, client/job_kinds.py).
TENSORBAY_LINK_REFS = ("dataset_id", "job_type")
EVO_LINK_REFS = ("org_id", "topic", "task")

StatusMode = Literal["auto", "batch", "history", "per_job"]


# Called only while this module is imported, to build the form definitions below: mutmut activates
# a mutant after import, so none here could ever be killed. tests/test_connection_types.py checks
# what it builds (labels, descriptions, schemas), from get_provider_info(). mutmut 3.8.1 reads
# `no mutate block` on a def line as the whole function (`no mutate function` only the def line).
def _field(label: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:  # pragma: no mutate block
    return {"label": label, "description": description, "schema": schema}


# Extra fields every connection type has.
_COMMON_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": _field(
        "Request timeout (s)",
        f"Seconds for one HTTP request to the service (default {DEFAULT_TIMEOUT:g}, at least {MIN_TIMEOUT:g}).",
        # "minimum", not "exclusiveMinimum": the connection form bounds number inputs by
        # minimum/maximum only, and clamps what is typed to them.
        {"type": ["number", "null"], "minimum": MIN_TIMEOUT},
    ),
    "verify": _field(
        "Verify TLS certificates",
        "Leave on. Turning it off logs a warning, once per connection and process.",
        {"type": ["boolean", "null"], "default": True},
    ),
    "max_response_bytes": _field(
        "Response size cap (bytes)",
        "Larger response bodies are refused (default 16 MiB).",
        {"type": ["integer", "null"], "minimum": 1},
    ),
}


# Import time only, as _field above (pragma: see there).
def _job_link_field(refs: tuple[str, ...], example: str) -> dict[str, dict[str, Any]]:  # pragma: no mutate block
    """The ``job_url_template`` field of a type whose tasks wait for jobs of one kind.

    :param refs: The kind's own placeholders (its ``job_ref`` keys), besides ``job_id`` and ``base_url``.
    :param example: A template for the form's help text.
    """
    names = ", ".join(f"{{{name}}}" for name in ("job_id", *refs, "base_url"))
    return {
        "job_url_template": _field(
            "Job page URL template",
            f"The tasks' Job link, e.g. {example}. Placeholders: {names}. Empty: no link.",
            {"type": ["string", "null"]},
        )
    }


_POLLING_FIELDS: dict[str, dict[str, Any]] = {
    "status_mode": _field(
        "Status polling mode",
        "How the triggerer reads job statuses: auto (default: long-poll watch where the service "
        "offers it, else batch status, else the service's own job listing, else one request per job), "
        "batch (one request per batch_size jobs per poll interval, no watch), history (one listing per "
        "poll interval: Modzy's job history for inference jobs, TensorBay's job list per dataset for "
        "dataset jobs), per_job (one request per job per poll).",
        # Only the real values, as Airflow's own SMTP auth_type: the form's dropdown shows every
        # enum entry (a None would be a "null" option), and clearing it saves null, read as auto.
        {"type": ["string", "null"], "enum": list(STATUS_MODES), "default": "auto"},
    ),
    "batch_size": _field(
        "Jobs per status request",
        "Jobs asked about in one batch status or watch request (1-500, default 500).",
        {"type": ["integer", "null"], "minimum": 1, "maximum": DEFAULT_BATCH_SIZE},
    ),
}

_EVO_FIELDS: dict[str, dict[str, Any]] = {
    "org_id": _field(
        "Organisation ID",
        "Your Evo organisation's UUID (from the Evo portal); compute tasks run in it unless a task names another.",
        {"type": ["string", "null"]},
    ),
    "token_url": _field(
        "OAuth2 token URL",
        f"With a client ID in Login: where to ask for access tokens (default {EVO_TOKEN_URL}).",
        {"type": ["string", "null"]},
    ),
    "scopes": _field(
        "OAuth2 scopes",
        f"With a client ID in Login: space-separated scopes to ask for (default {EVO_DEFAULT_SCOPES!r}).",
        {"type": ["string", "null"]},
    ),
    "api_preview": _field(
        "Opt in to preview APIs",
        "Send 'API-Preview: opt-in' with every request (needed by Evo tasks still in preview).",
        {"type": ["boolean", "null"], "default": False},
    ),
}


def _drop_suffix(url: str, *suffixes: str) -> str:
    """``url`` without a trailing slash and without the first of ``suffixes`` it ends with."""
    url = url.rstrip("/")
    for suffix in suffixes:
        if url.lower().endswith(suffix):
            return url[: -len(suffix)]
    return url


def _modzy_base(url: str, key: str) -> str:
    # The Modzy SDK takes https://host/api (its own example) and also https://host, adding /api
    # itself; our calls carry /api, so it is dropped here either way.
    return _drop_suffix(url, "/api")


def _tensorbay_base(url: str, key: str) -> str:
    # The SDK takes the site URL and appends gatewayv2/; a URL that already has it works too.
    return _drop_suffix(url, "/gatewayv2")


def _as_is(url: str, key: str) -> str:
    return url.rstrip("/")


def _tensorbay_default(key: str) -> str | None:
    # As the TensorBay SDK's Client: the key's prefix says which site it belongs to.
    if key.startswith("ACCESSKEY-"):
        return "https://gas.graviti.com"
    if key.startswith("Accesskey-"):
        return "https://gas.graviti.cn"
    return None


@dataclass(frozen=True)
class ConnectionType:
    """One service's Airflow connection type: its form, its defaults, its base URL rule.

    :param conn_type: The connection type id.
    :param hook_name: What the connection form's type list shows.
    :param default_conn_id: The connection operators and hooks use when none is named.
    :param hook_class_name: The hook whose ``test_connection`` backs the Test button.
    :param service: The service's name, for messages.
    :param example_url: A real base URL, for the form's placeholder and messages.
    :param base_url: Turns the Host (a URL) into the base URL our calls' paths go under.
    :param default_url: The base URL when Host is empty, from the key (``None``: Host needed).
    :param key_optional: The service accepts requests without a key.
    :param hidden_fields: Form fields the service does not use.
    :param relabeling: Form field labels.
    :param placeholders: Form field placeholders.
    :param extra_fields: The type's extra fields (``conn-fields``).
    :param job_link_refs: The placeholders its ``job_url_template`` has besides ``{job_id}`` and
        ``{base_url}``; ``None``: its tasks wait for no job, so it has no Job link. No type has a
        default template: none of the services publishes a job page URL to point at.
    """

    conn_type: str
    hook_name: str
    default_conn_id: str
    hook_class_name: str
    service: str
    example_url: str
    base_url: Callable[[str, str], str] = field(repr=False)
    default_url: Callable[[str], str | None] = field(default=lambda key: None, repr=False)
    key_optional: bool = False
    hidden_fields: tuple[str, ...] = ("schema", "login", "port")
    relabeling: Mapping[str, str] = field(default_factory=dict)
    placeholders: Mapping[str, str] = field(default_factory=dict)
    extra_fields: Mapping[str, dict[str, Any]] = field(default_factory=lambda: dict(_COMMON_FIELDS))
    job_link_refs: tuple[str, ...] | None = None

    def provider_info(self) -> dict[str, Any]:
        """This type's entry of ``connection-types`` in ``get_provider_info``."""
        return {
            "hook-class-name": self.hook_class_name,
            "hook-name": self.hook_name,
            "connection-type": self.conn_type,
            "ui-field-behaviour": self.ui_field_behaviour(),
            "conn-fields": dict(self.extra_fields),
        }

    def ui_field_behaviour(self) -> dict[str, Any]:
        return {
            "hidden-fields": list(self.hidden_fields),
            "relabeling": dict(self.relabeling),
            "placeholders": dict(self.placeholders),
        }


MODZY = ConnectionType(
    conn_type="modzy",
    hook_name="Modzy",
    default_conn_id="modzy_default",
    hook_class_name="airflow_jobwait.hooks.jobs.JobsHook",
    service="Modzy",
    example_url="https://app.modzy.com/api",
    base_url=_modzy_base,
    relabeling={"host": "API URL", "password": "API key"},
    placeholders={"host": "https://app.modzy.com/api", "password": "<public key id>.<secret>"},
    job_link_refs=(),
    extra_fields={
        **_COMMON_FIELDS,
        **_job_link_field((), "https://modzy.example.com/jobs/{job_id}"),
        **_POLLING_FIELDS,
    },
)

TENSORBAY = ConnectionType(
    conn_type="tensorbay",
    hook_name="TensorBay",
    default_conn_id="tensorbay_default",
    hook_class_name="airflow_jobwait.hooks.datasets.DatasetJobsHook",
    service="TensorBay",
    example_url="https://gas.graviti.com",
    base_url=_tensorbay_base,
    default_url=_tensorbay_default,
    relabeling={"host": "Site URL", "password": "AccessKey"},
    placeholders={"host": "empty: https://gas.graviti.com (or .cn, from the key)", "password": "ACCESSKEY-..."},
    job_link_refs=TENSORBAY_LINK_REFS,
    extra_fields={
        **_COMMON_FIELDS,
        **_job_link_field(TENSORBAY_LINK_REFS, "https://gas.example.com/datasets/{dataset_id}/jobs/{job_id}"),
    },
)

EVO = ConnectionType(
    conn_type="evo",
    hook_name="Seequent Evo",
    default_conn_id="evo_default",
    hook_class_name="airflow_jobwait.hooks.compute.ComputeHook",
    service="Seequent Evo",
    example_url="https://350mt.api.seequent.com",
    base_url=_as_is,
    hidden_fields=("schema", "port"),
    relabeling={"host": "Hub URL", "login": "OAuth2 client ID", "password": "Client secret or access token"},
    placeholders={
        "host": "https://350mt.api.seequent.com",
        "login": "empty: Password is an access token",
        "password": "client secret (with a client ID) or access token",
    },
    job_link_refs=EVO_LINK_REFS,
    extra_fields={
        **_COMMON_FIELDS,
        **_job_link_field(EVO_LINK_REFS, "https://evo.example.com/{org_id}/compute/{topic}/{task}/{job_id}"),
        **_EVO_FIELDS,
    },
)

CHIME_RESULTS = ConnectionType(
    conn_type="chime_results",
    hook_name="CHIME Results",
    default_conn_id="chime_results_default",
    hook_class_name="airflow_jobwait.hooks.results.ResultsHook",
    service="CHIME results store",
    example_url="https://frb.chimenet.ca/workflow/results",
    base_url=_as_is,
    # workflow-core's Results client sends its token when it has one and warns without.
    key_optional=True,
    relabeling={"host": "Results base URL", "password": "Token"},
    placeholders={"host": "https://frb.chimenet.ca/workflow/results", "password": "x-access-token value"},
)

CONNECTION_TYPES: tuple[ConnectionType, ...] = (MODZY, TENSORBAY, EVO, CHIME_RESULTS)

_warned_insecure: set[str] = set()


def connection_type_named(conn_type: str | None) -> ConnectionType | None:
    """The connection type with this id, ``None`` if it is not one of ours."""
    return next((kind for kind in CONNECTION_TYPES if kind.conn_type == conn_type), None)


@dataclass(frozen=True)
class ConnectionFields:
    """The parts of an Airflow connection a ``ClientConfig`` is built from (no Airflow types)."""

    conn_id: str
    host: str | None = None
    schema: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)


def base_url_of(kind: ConnectionType, conn: ConnectionFields) -> str:
    """The service's base URL from the connection's Host (a full URL, or a bare host name).

    :raises ValueError: The connection has no Host and the service has no default for its key.
    """
    host = (conn.host or "").strip()
    if not host:
        default = kind.default_url((conn.password or "").strip())
        if default is None:
            raise ValueError(
                f"connection {conn.conn_id!r} has no host: set Host to the {kind.service} base URL, "
                f"e.g. {kind.example_url}"
            )
        host = default
    elif "://" not in host:
        netloc = f"{host}:{conn.port}" if conn.port else host
        host = f"{conn.schema or 'https'}://{netloc}"
    return kind.base_url(host, conn.password or "")


def _extras(extra: Mapping[str, Any]) -> dict[str, Any]:
    # The form saves an emptied field as null: null means "the default", as if absent.
    return {key: value for key, value in extra.items() if value is not None}


def client_config(kind: ConnectionType, conn: ConnectionFields) -> ClientConfig:
    """Build the client settings of a connection of ``kind``.

    :raises ValueError: A field is missing or malformed; the message names it and the connection.
    """
    conn_id = conn.conn_id
    key = (conn.password or "").strip()
    if not key and not kind.key_optional:
        what = "client secret or access token" if kind is EVO else "API key"
        raise ValueError(f"connection {conn_id!r} has no {what}: set it in the connection's Password field")
    extra = _extras(conn.extra)
    verify = extra.get("verify", True)
    if not isinstance(verify, bool):
        raise ValueError(f"connection {conn_id!r}: extra 'verify' must be true or false, got {verify!r}")
    if not verify and conn_id not in _warned_insecure:
        _warned_insecure.add(conn_id)
        log.warning("TLS certificate verification is OFF for connection %r (extra verify=false)", conn_id)
    timeout = extra.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not MIN_TIMEOUT <= timeout < math.inf:
        raise ValueError(
            f"connection {conn_id!r}: extra 'timeout' must be a number of seconds, at least {MIN_TIMEOUT:g}, "
            f"got {timeout!r}"
        )
    max_bytes = extra.get("max_response_bytes", 16 * 1024 * 1024)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"connection {conn_id!r}: extra 'max_response_bytes' must be a positive integer")
    base_url = base_url_of(kind, conn)  # names the connection itself
    oauth, headers = (evo_auth(conn_id, conn.login, key, extra)) if kind is EVO else (None, ())
    try:
        return ClientConfig(
            base_url=base_url,
            api_key=key,
            timeout=float(timeout),
            verify=verify,
            max_response_bytes=max_bytes,
            oauth=oauth,
            default_headers=headers,
            # base_url_of put https:// before a bare host name: a TLS failure then says so.
            scheme_assumed="://" not in (conn.host or "://") and not conn.schema,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"connection {conn_id!r}: {err}") from None


def evo_auth(
    conn_id: str, login: str | None, secret: str, extra: Mapping[str, Any]
) -> tuple[OAuth2ClientCredentials | None, tuple[tuple[str, str], ...]]:
    """Evo's OAuth2 client credentials (with a client ID in Login) and default headers.

    :raises ValueError: An extra is malformed (named).
    """
    preview = extra.get("api_preview", False)
    if not isinstance(preview, bool):
        raise ValueError(f"connection {conn_id!r}: extra 'api_preview' must be true or false, got {preview!r}")
    headers = (("API-Preview", "opt-in"),) if preview else ()
    client_id = (login or "").strip()
    if not client_id:
        for name in ("token_url", "scopes"):
            if name in extra:
                raise ValueError(
                    f"connection {conn_id!r}: extra {name!r} needs an OAuth2 client ID in Login "
                    "(without one, Password is used as an access token)"
                )
        return None, headers
    token_url = extra.get("token_url", EVO_TOKEN_URL)
    parts = urlsplit(token_url) if isinstance(token_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"connection {conn_id!r}: extra 'token_url' must be an http(s) URL, got {token_url!r}")
    scopes = extra.get("scopes", EVO_DEFAULT_SCOPES)
    if not isinstance(scopes, str):
        raise ValueError(f"connection {conn_id!r}: extra 'scopes' must be a space-separated string, got {scopes!r}")
    oauth = OAuth2ClientCredentials(
        token_url=token_url, client_id=client_id, client_secret=secret, scope=" ".join(scopes.split()) or None
    )
    return oauth, headers


def evo_org_id(conn_id: str, extra: Mapping[str, Any]) -> str | None:
    """The connection's Evo organisation (extra ``org_id``), as a canonical UUID, or ``None``.

    :raises ValueError: ``org_id`` is not a UUID (named).
    """
    org_id = _extras(extra).get("org_id")
    if org_id is None or (isinstance(org_id, str) and not org_id.strip()):
        return None
    try:
        return str(uuid.UUID(str(org_id).strip()))
    except ValueError:
        raise ValueError(f"connection {conn_id!r}: extra 'org_id' must be a UUID, got {org_id!r}") from None


@dataclass(frozen=True)
class StatusPolling:
    """How the triggerer reads job statuses on one connection (extras ``status_mode``, ``batch_size``).

    :param mode: ``auto``, ``batch``, ``history`` or ``per_job``.
    :param batch_size: Jobs per batch status or watch request.
    """

    mode: StatusMode = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE


def status_polling(conn_id: str, extra: Mapping[str, Any]) -> StatusPolling:
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
