"""One connection type per service: base URLs taken as each SDK takes them, credentials as each
service expects them, and a Test button per type that says what was reached or what to fix.

Expectations come from the public SDKs: modzy-sdk 0.11.6 ``modzy/client.py`` (base URL with or
without ``/api``; ``GET /models`` checks a client), tensorbay 1.24.2 ``client/requests.py`` (site
URL + ``gatewayv2/``; the AccessKey's prefix picks gas.graviti.com or .cn) and ``client/gas.py``
(``GET users``), workflow-core 1.12.3 ``http/client.py`` and ``http/results.py`` (the full results
base URL, ``x-access-token`` only when a token is set), evo-sdk-common 0.5.29 (hub URL, org id in
every path, Bearer tokens, ``API-Preview: opt-in``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from airflow.models.connection import Connection
from jobwait_reference_service.faults_client import FaultControl
from jobwait_reference_service.process import ServiceProcess

from airflow_jobwait.client import inference
from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.faults import SCHEME_ASSUMED_HINT
from airflow_jobwait.client.retry import NO_RETRY
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.exceptions import TransportError
from airflow_jobwait.hooks import ComputeHook, DatasetJobsHook, JobsHook, ResultsHook
from airflow_jobwait.hooks.base import JobWaitHook
from airflow_jobwait.hooks.connection import (
    CHIME_RESULTS,
    EVO,
    MODZY,
    TENSORBAY,
    ConnectionFields,
    base_url_of,
    client_config,
    connection_type_named,
    status_polling,
)
from airflow_jobwait.provider_info import get_provider_info
from tests.conftest import API_KEY, CHIME_CONN, EVO_CONN, FAMILIES, MODZY_CONN, TENSORBAY_CONN, set_connection

ORG = str(uuid.UUID(int=0xE70))
HOOKS: dict[str, type[JobWaitHook]] = {
    "modzy": JobsHook,
    "tensorbay": DatasetJobsHook,
    "evo": ComputeHook,
    "chime_results": ResultsHook,
}


def _conn(conn_type: str, conn_id: str, host: str | None, password: str | None, **extra: Any) -> str:
    return json.dumps({"conn_type": conn_type, "host": host, "password": password, "extra": extra})


# ---- the types, as Airflow's providers manager sees them --------------------------------------


def test_provider_declares_one_connection_type_per_service() -> None:
    declared = {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}
    assert set(declared) == {"modzy", "tensorbay", "evo", "chime_results"}
    for conn_type, hook in HOOKS.items():
        entry = declared[conn_type]
        assert entry["hook-class-name"] == f"{hook.__module__}.{hook.__qualname__}"
        assert hook.conn_type == conn_type and hook.hook_name == entry["hook-name"]
        assert hook.default_conn_name == FAMILIES[conn_type][0]
        assert hook().jobwait_conn_id == FAMILIES[conn_type][0]
        # Every type has the common extras; only Modzy has the status-polling ones; only Evo its own.
        fields = set(entry["conn-fields"])
        assert {"timeout", "verify", "max_response_bytes"} <= fields
        assert ("status_mode" in fields) is (conn_type == "modzy")
        assert ({"org_id", "token_url", "scopes", "api_preview"} <= fields) is (conn_type == "evo")
    # Evo's form shows Login (the OAuth2 client ID); the others hide it.
    assert "login" not in declared["evo"]["ui-field-behaviour"]["hidden-fields"]
    assert "login" in declared["modzy"]["ui-field-behaviour"]["hidden-fields"]


# What each type's form shows in Host, Login and Password: the words each SDK uses for them.
FORMS: dict[str, dict[str, Any]] = {
    "modzy": {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"host": "API URL", "password": "API key"},
        "placeholders": {"host": "https://app.modzy.com/api", "password": "<public key id>.<secret>"},
    },
    "tensorbay": {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"host": "Site URL", "password": "AccessKey"},
        "placeholders": {"host": "empty: https://gas.graviti.com (or .cn, from the key)", "password": "ACCESSKEY-..."},
    },
    "evo": {
        "hidden_fields": ["schema", "port"],
        "relabeling": {"host": "Hub URL", "login": "OAuth2 client ID", "password": "Client secret or access token"},
        "placeholders": {
            "host": "https://350mt.api.seequent.com",
            "login": "empty: Password is an access token",
            "password": "client secret (with a client ID) or access token",
        },
    },
    "chime_results": {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"host": "Results base URL", "password": "Token"},
        "placeholders": {"host": "https://frb.chimenet.ca/workflow/results", "password": "x-access-token value"},
    },
}


@pytest.mark.parametrize("conn_type", list(FORMS))
def test_each_form_relabels_and_placeholds_host_login_password(conn_type: str) -> None:
    expected = FORMS[conn_type]
    # Airflow 3 reads the provider info's ui-field-behaviour; older UIs ask the hook class.
    (entry,) = [e for e in get_provider_info()["connection-types"] if e["connection-type"] == conn_type]
    assert entry["ui-field-behaviour"] == {
        "hidden-fields": expected["hidden_fields"],
        "relabeling": expected["relabeling"],
        "placeholders": expected["placeholders"],
    }
    assert HOOKS[conn_type].get_ui_field_behaviour() == expected
    assert HOOKS[conn_type].get_connection_form_widgets() == {}  # extra fields come from conn-fields


def test_a_hook_subclass_takes_its_connection_types_attributes() -> None:
    """Airflow finds a hook's form, default connection and Test button by its class attributes
    ``conn_type``, ``hook_name`` and ``default_conn_name``: a subclass naming a connection type
    gets them from it, and a user's subclass of a family hook keeps its family's."""

    class ResultsProbe(JobWaitHook):
        connection_type = CHIME_RESULTS

    assert (ResultsProbe.conn_type, ResultsProbe.hook_name, ResultsProbe.default_conn_name) == (
        "chime_results",
        "CHIME Results",
        "chime_results_default",
    )
    assert ResultsProbe().jobwait_conn_id == "chime_results_default"

    class MyDatasetHook(DatasetJobsHook):
        def greeting(self) -> str:
            return "hello"

    assert (MyDatasetHook.conn_type, MyDatasetHook.hook_name, MyDatasetHook.default_conn_name) == (
        "tensorbay",
        "TensorBay",
        "tensorbay_default",
    )
    assert MyDatasetHook().jobwait_conn_id == "tensorbay_default"


# ---- base URLs as each SDK takes them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://app.modzy.com/api", "https://app.modzy.com"),  # the SDK's own example
        ("https://app.modzy.com/api/", "https://app.modzy.com"),
        ("https://app.modzy.com", "https://app.modzy.com"),  # the SDK adds /api itself
        ("https://modzy.example.com/tenant/api", "https://modzy.example.com/tenant"),
    ],
)
def test_modzy_host_with_or_without_api(host: str, expected: str) -> None:
    assert base_url_of(MODZY, ConnectionFields("m", host=host, password="k")) == expected


@pytest.mark.parametrize(
    ("host", "key", "expected"),
    [
        (None, "ACCESSKEY-0123abcd", "https://gas.graviti.com"),
        ("", "Accesskey-0123abcd", "https://gas.graviti.cn"),
        ("https://gas.graviti.com/", "ACCESSKEY-x", "https://gas.graviti.com"),
        ("https://gas.example.com/gatewayv2/", "whatever", "https://gas.example.com"),
    ],
)
def test_tensorbay_site_url_defaults_from_the_key(host: str | None, key: str, expected: str) -> None:
    assert base_url_of(TENSORBAY, ConnectionFields("t", host=host, password=key)) == expected


def test_tensorbay_without_host_or_a_known_key_prefix_names_the_host() -> None:
    with pytest.raises(ValueError, match=r"connection 't' has no host: set Host to the TensorBay"):
        base_url_of(TENSORBAY, ConnectionFields("t", password="plain-key"))


def test_chime_base_url_is_taken_whole() -> None:
    url = "https://frb.chimenet.ca/workflow/results"
    assert client_config(CHIME_RESULTS, ConnectionFields("c", host=url, password="t")).url("/view") == f"{url}/view"
    assert client_config(CHIME_RESULTS, ConnectionFields("c", host="http://localhost:8005")).base_url == (
        "http://localhost:8005"
    )


def test_a_key_is_required_except_by_the_results_store() -> None:
    for kind in (MODZY, TENSORBAY):
        with pytest.raises(ValueError, match="has no API key: set it in the connection's Password field"):
            client_config(kind, ConnectionFields("x", host="https://h"))
    with pytest.raises(ValueError, match="has no client secret or access token: set it in the connection's Password"):
        client_config(EVO, ConnectionFields("x", host="https://h"))
    assert client_config(CHIME_RESULTS, ConnectionFields("x", host="https://h")).api_key == ""


# ---- over HTTP, against the reference service --------------------------------------------------


def test_modzy_connection_with_api_suffix_reaches_the_service(
    service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MODZY_API", _conn("modzy", "modzy_api", service.base_url + "/api/", API_KEY))
    ok, message = JobsHook("modzy_api").test_connection()
    assert ok, message
    assert "model(s) available" in message


@pytest.mark.usefixtures("jobwait_conn")
@pytest.mark.parametrize("conn_type", ["modzy", "tensorbay", "chime_results", "evo"])
def test_test_button_succeeds_on_each_type(
    conn_type: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = (
        set_connection(monkeypatch, service, conn_type, org_id=ORG) if conn_type == "evo" else FAMILIES[conn_type][0]
    )
    ok, message = HOOKS[conn_type](conn_id).test_connection()
    assert ok, message
    assert service.base_url in message


#: Where each type's credential is, as its 401 advice names it.
CREDENTIAL_FIELD = {
    "modzy": "check the connection's Password.",
    "tensorbay": "check the connection's Password.",
    "chime_results": "check the connection's Password.",
    # Evo's Password holds a client secret (with Login as the client ID) or an access token.
    "evo": "check the connection's Password (client secret or access token).",
}


@pytest.mark.usefixtures("jobwait_conn")
@pytest.mark.parametrize("conn_type", ["modzy", "tensorbay", "chime_results", "evo"])
def test_test_button_on_a_wrong_key_says_to_check_the_password(
    conn_type: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id, path = FAMILIES[conn_type]
    extra = {"org_id": ORG} if conn_type == "evo" else {}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", _conn(conn_type, conn_id, service.base_url + path, "wrong", **extra)
    )
    ok, message = HOOKS[conn_type](conn_id).test_connection()
    assert not ok
    assert "refused the credential (401" in message and message.endswith(CREDENTIAL_FIELD[conn_type]), message
    assert "wrong" not in message.replace("wrong key", "")  # the secret itself is never echoed


@pytest.mark.parametrize("conn_type", ["modzy", "tensorbay", "chime_results"])
def test_test_button_on_a_wrong_base_path_points_at_host(
    conn_type: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ASTRAY", _conn(conn_type, "astray", service.base_url + "/nowhere", API_KEY))
    ok, message = HOOKS[conn_type]("astray").test_connection()
    assert not ok
    assert "404" in message and "is Host the service's base URL" in message


def test_test_button_on_an_unreachable_host_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GONE", _conn("modzy", "gone", "http://127.0.0.1:9", "k", timeout=2))
    ok, message = JobsHook("gone", retry=None).test_connection()
    assert not ok and message.startswith("could not reach Modzy")


def test_evo_test_button_without_org_id_names_it(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, service, "evo")
    ok, message = ComputeHook(EVO_CONN).test_connection()
    assert not ok and "extra 'org_id'" in message


@pytest.mark.parametrize(
    ("conn_type", "path", "said"),
    [
        ("tensorbay", "", "connected to TensorBay"),
        ("chime_results", FAMILIES["chime_results"][1], "CHIME results store"),
    ],
)
def test_airflow_connection_test_uses_the_types_hook(
    conn_type: str, path: str, said: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the API server's test endpoint does: the connection exported as a URI under a
    transient id, then ``Connection.test_connection``, which finds our hook by type."""
    conn = Connection(conn_id="ui_test", conn_type=conn_type, host=service.base_url + path, password=API_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_UI_TEST", conn.get_uri())
    ok, message = conn.test_connection()
    assert ok and said in message, message


# ---- Evo: the organisation from the connection, preview opt-in ---------------------------------


def test_evo_org_id_comes_from_the_connection(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, service, "evo", org_id=ORG.upper())
    hook = ComputeHook()
    ref = hook.submit(None, "demo", "wordcount", {"text": "a b"})
    assert ref.org_id == ORG  # canonical form, as the Location names it
    set_connection(monkeypatch, service, "evo", org_id="not-a-uuid")
    with pytest.raises(ValueError, match="extra 'org_id' must be a UUID, got 'not-a-uuid'"):
        ComputeHook().submit(None, "demo", "wordcount", {"text": "a b"})
    set_connection(monkeypatch, service, "evo")
    with pytest.raises(ValueError, match="org_id is not set: pass org_id, or set the extra 'org_id'"):
        ComputeHook().submit(None, "demo", "wordcount", {"text": "a b"})


def test_evo_api_preview_header_and_oauth_extras_are_checked() -> None:
    fields = ConnectionFields("e", host="https://hub", password="token", extra={"api_preview": True})
    config = client_config(EVO, fields)
    assert ("API-Preview", "opt-in") in config.default_headers and config.oauth is None
    with pytest.raises(ValueError, match="extra 'api_preview' must be true or false"):
        client_config(EVO, ConnectionFields("e", host="https://hub", password="t", extra={"api_preview": "yes"}))
    with pytest.raises(ValueError, match="extra 'token_url' needs an OAuth2 client ID in Login"):
        client_config(EVO, ConnectionFields("e", host="https://hub", password="t", extra={"token_url": "https://x"}))
    oauth = client_config(EVO, ConnectionFields("e", host="https://hub", login="client-1", password="s3cret")).oauth
    assert oauth is not None
    # The Evo SDK's defaults: Seequent's identity service, EvoScopes.default.
    assert (oauth.token_url, oauth.client_id, oauth.scope) == (
        "https://ims.bentley.com/connect/token",
        "client-1",
        "evo.discovery evo.workspace",
    )
    assert "s3cret" not in repr(oauth)


def test_a_wrong_family_connection_is_refused_by_the_service(
    service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results-store connection without its base path reaches no results route (404 names it)."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CHIME_CONN.upper()}", _conn("chime_results", CHIME_CONN, service.base_url, API_KEY)
    )
    ok, message = ResultsHook().test_connection()
    assert not ok and "/status" in message


def test_default_connection_ids(jobwait_conn: str) -> None:
    assert (JobsHook().jobwait_conn_id, DatasetJobsHook().jobwait_conn_id) == (MODZY_CONN, TENSORBAY_CONN)
    assert (ComputeHook().jobwait_conn_id, ResultsHook().jobwait_conn_id) == (EVO_CONN, CHIME_CONN)


# ---- the form offers only what works ----------------------------------------------------------


def _conn_fields() -> dict[str, dict[str, Any]]:
    return {entry["connection-type"]: entry["conn-fields"] for entry in get_provider_info()["connection-types"]}


def test_status_mode_offers_the_three_modes_with_auto_preselected() -> None:
    # Airflow's form shows one dropdown option per enum entry (a None would be a "null" option)
    # and prefills the schema's default; clearing the field saves null. As Airflow's SMTP auth_type.
    schema = _conn_fields()["modzy"]["status_mode"]["schema"]
    assert schema["enum"] == ["auto", "batch", "history", "per_job"]
    assert schema["default"] == "auto"
    for emptied in (None, ""):
        assert status_polling("m", {"status_mode": emptied}).mode == "auto"


def test_every_number_field_is_bounded_the_way_the_form_bounds_it() -> None:
    # The form's number input takes "minimum"/"maximum" (and clamps to them); it knows no
    # "exclusiveMinimum". Each bound is one the connection itself enforces.
    for conn_type, fields in _conn_fields().items():
        for name, spec in fields.items():
            schema = spec["schema"]
            if {"number", "integer"} & set(schema["type"]):
                assert schema.get("minimum", 0) > 0, (conn_type, name)
                assert "exclusiveMinimum" not in schema, (conn_type, name)
            if "boolean" in schema["type"]:
                assert isinstance(schema.get("default"), bool), (conn_type, name)
    minimum = _conn_fields()["modzy"]["timeout"]["schema"]["minimum"]
    assert client_config(MODZY, ConnectionFields("m", host="https://h", password="k", extra={"timeout": minimum}))
    for bad in (-5, 0, minimum / 2, True, "30", float("inf")):
        with pytest.raises(ValueError, match=r"connection 'm': extra 'timeout' must be a number of seconds"):
            client_config(MODZY, ConnectionFields("m", host="https://h", password="k", extra={"timeout": bad}))


def test_each_job_kind_has_its_own_link_template_with_its_placeholders() -> None:
    fields = _conn_fields()
    expected = {
        "modzy": ["{job_id}", "{base_url}"],
        "tensorbay": ["{job_id}", "{dataset_id}", "{job_type}", "{base_url}"],
        "evo": ["{job_id}", "{org_id}", "{topic}", "{task}", "{base_url}"],
    }
    for conn_type, placeholders in expected.items():
        help_text = fields[conn_type]["job_url_template"]["description"]
        assert all(p in help_text for p in placeholders), (conn_type, help_text)
    # The results store runs no jobs: its tasks have no Job link, its form no template.
    assert "job_url_template" not in fields["chime_results"]
    assert CHIME_RESULTS.job_link_refs is None


# The labels of each type's extra fields, as the connection form shows them.
COMMON_LABELS = {
    "timeout": "Request timeout (s)",
    "verify": "Verify TLS certificates",
    "max_response_bytes": "Response size cap (bytes)",
}
LINK_LABEL = {"job_url_template": "Job page URL template"}
FIELD_LABELS: dict[str, dict[str, str]] = {
    "modzy": {
        **COMMON_LABELS,
        **LINK_LABEL,
        "status_mode": "Status polling mode",
        "batch_size": "Jobs per status request",
    },
    "tensorbay": {**COMMON_LABELS, **LINK_LABEL},
    "evo": {
        **COMMON_LABELS,
        **LINK_LABEL,
        "org_id": "Organisation ID",
        "token_url": "OAuth2 token URL",
        "scopes": "OAuth2 scopes",
        "api_preview": "Opt in to preview APIs",
    },
    "chime_results": dict(COMMON_LABELS),
}


def test_every_extra_field_has_a_label_a_description_and_a_schema() -> None:
    # Airflow 3's conn-fields entries: {"label", "description", "schema"} (a JSON schema with "type").
    # (hooks/connection.py builds them at import: mutation testing cannot reach those helpers.)
    fields = _conn_fields()
    assert {conn_type: {name: spec["label"] for name, spec in f.items()} for conn_type, f in fields.items()} == (
        FIELD_LABELS
    )
    for conn_type, type_fields in fields.items():
        for name, spec in type_fields.items():
            assert set(spec) == {"label", "description", "schema"}, (conn_type, name)
            assert isinstance(spec["description"], str) and spec["description"], (conn_type, name)
            assert "type" in spec["schema"] and "null" in spec["schema"]["type"], (conn_type, name)


def test_the_job_link_template_field_says_what_it_takes() -> None:
    examples = {
        "modzy": ("https://modzy.example.com/jobs/{job_id}", "{job_id}, {base_url}"),
        "tensorbay": (
            "https://gas.example.com/datasets/{dataset_id}/jobs/{job_id}",
            "{job_id}, {dataset_id}, {job_type}, {base_url}",
        ),
        "evo": (
            "https://evo.example.com/{org_id}/compute/{topic}/{task}/{job_id}",
            "{job_id}, {org_id}, {topic}, {task}, {base_url}",
        ),
    }
    fields = _conn_fields()
    for conn_type, (example, placeholders) in examples.items():
        assert fields[conn_type]["job_url_template"] == {
            "label": "Job page URL template",
            "description": f"The tasks' Job link, e.g. {example}. Placeholders: {placeholders}. Empty: no link.",
            "schema": {"type": ["string", "null"]},
        }, conn_type


@pytest.mark.parametrize("transport", ["sync", "async"])
async def test_a_host_without_scheme_says_https_was_assumed(service: ServiceProcess, transport: str) -> None:
    # The reference service speaks plain HTTP, as a local or in-cluster service often does.
    bare = service.base_url.split("://", 1)[1].rstrip("/")
    config = client_config(MODZY, ConnectionFields("m", host=bare, password=API_KEY))
    assert config.base_url.startswith("https://") and config.scheme_assumed
    with pytest.raises(TransportError) as caught:
        if transport == "sync":
            SyncClient(config, retry=NO_RETRY).call(inference.get_job("job-1"))
        else:
            client = AsyncClient(config, retry=NO_RETRY)
            try:
                await client.call(inference.get_job("job-1"))
            finally:
                await client.close()
    assert SCHEME_ASSUMED_HINT in str(caught.value)
    assert "TLS" in str(caught.value)
    # A Host with its scheme gets no such hint.
    assert not client_config(MODZY, ConnectionFields("m", host=f"https://{bare}", password="k")).scheme_assumed


# ---- the Test button: what each kind of answer means -------------------------------------------


@pytest.mark.usefixtures("jobwait_conn")
@pytest.mark.parametrize(
    ("fault", "said"),
    [
        # The status comes from the service (its fault layer); the advice is per status class.
        ({"kind": "status", "status": 403}, "Modzy answered 403 on /api/models: the credential works but may not"),
        ({"kind": "status", "status": 503}, "Modzy is reachable but failed the check for now"),
        ({"kind": "status", "status": 429}, "Modzy is reachable but failed the check for now"),
        ({"kind": "status", "status": 400}, "Modzy refused the check: "),
        ({"kind": "status", "status": 404}, "Modzy answered 404 on /api/models: is Host the service's base URL?"),
        ({"kind": "invalid_json"}, "the answer is not Modzy's API ("),
    ],
    ids=["403", "503", "429", "400", "404", "not-json"],
)
def test_test_button_says_what_the_answer_means(
    fault: dict[str, Any], said: str, service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = FaultControl(service.base_url, service.api_key)
    with faults.injected([{**fault, "path_prefix": "/api/models"}]):
        ok, message = JobsHook(MODZY_CONN, retry=None).test_connection()
    assert not ok
    assert said in message, message
    if fault.get("status") == 404:
        assert message.endswith("It looks like https://app.modzy.com/api")


def test_connection_types_are_found_by_their_id() -> None:
    """What the extra links look a task's connection up by (``Connection.conn_type``)."""
    assert [connection_type_named(c) for c in ("modzy", "tensorbay", "evo", "chime_results")] == [
        MODZY,
        TENSORBAY,
        EVO,
        CHIME_RESULTS,
    ]
    assert connection_type_named("http") is None and connection_type_named(None) is None
