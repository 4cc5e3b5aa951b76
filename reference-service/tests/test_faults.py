"""Fault injection of the reference service, observed over real HTTP by real clients."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jobwait_reference_service.faults import FaultRuleError, FaultState, parse_rule_set
from jobwait_reference_service.faults_client import FaultControl, share_rules
from jobwait_reference_service.process import ServiceProcess

MODELS = "/api/models"


@pytest.fixture
def faults(service: ServiceProcess) -> Iterator[FaultControl]:
    """Fault control of the shared service; always left without rules."""
    control = FaultControl(service.base_url, service.api_key)
    control.clear()
    yield control
    control.clear()


def _auth(service: ServiceProcess) -> dict[str, str]:
    return {"Authorization": f"ApiKey {service.api_key}"}


def _get(service: ServiceProcess, path: str = MODELS, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    # requests.get opens a new connection each time: a dropped one never leaks into the next call.
    return requests.get(service.base_url + path, headers=_auth(service), **kwargs)


def _raw_exchange(service: ServiceProcess, path: str = MODELS, timeout: float = 5.0) -> tuple[bytes, str]:
    """Send one GET on a bare socket; return every byte received and how the connection ended."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {service.host}:{service.port}\r\nAuthorization: ApiKey {service.api_key}\r\n\r\n"
    ).encode()
    data = b""
    with socket.create_connection((service.host, service.port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            return data, "reset"
    return data, "eof"


def _submit(service: ServiceProcess, key: str, timeout: float = 5) -> requests.Response:
    """Submit one echo job with an ``Idempotency-Key``: 201 when it creates the job, 200 on a replay."""
    body = {
        "model": {"identifier": "echo", "version": "1.0"},
        "explain": False,
        "input": {"type": "text", "sources": {"s1": {"input.txt": f"fault test {key}"}}},
    }
    headers = {**_auth(service), "Idempotency-Key": key}
    return requests.post(service.base_url + "/api/jobs", json=body, headers=headers, timeout=timeout)


def _outcomes(service: ServiceProcess, n: int) -> list[bool]:
    """Send ``n`` requests; True for each one that got the injected (otherwise unused) status 597."""
    return [_get(service).status_code == 597 for _ in range(n)]


# --- each kind, as a real client sees it ---------------------------------------------------------


def test_status_fault_answers_with_retry_after(service: ServiceProcess, faults: FaultControl) -> None:
    normal = _get(service).status_code
    faults.set([{"kind": "status", "status": 503, "retry_after": 7, "count": 1}])

    resp = _get(service)

    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert resp.json() == {"detail": "injected fault"}
    assert _get(service).status_code == normal


@pytest.mark.parametrize("status", [429, 500, 502])
def test_status_fault_any_error_status(service: ServiceProcess, faults: FaultControl, status: int) -> None:
    faults.set([{"kind": "status", "status": status, "count": 1}])
    resp = _get(service)
    assert resp.status_code == status
    assert "Retry-After" not in resp.headers


def test_delay_exceeds_client_timeout(service: ServiceProcess, faults: FaultControl) -> None:
    normal = _get(service).status_code
    faults.set([{"kind": "delay", "delay_s": 60.0, "count": 1}])

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(service, timeout=0.3)
    # Liveness, not speed: the client gave up long before the 60 s delay would have answered.
    assert time.monotonic() - started < 30
    assert _get(service).status_code == normal


def test_delay_then_answers_normally(service: ServiceProcess, faults: FaultControl) -> None:
    normal = _get(service)
    faults.set([{"kind": "delay", "delay_s": 0.3, "count": 1}])

    started = time.monotonic()
    resp = _get(service)

    assert time.monotonic() - started >= 0.3
    assert (resp.status_code, resp.json()) == (normal.status_code, normal.json())


def test_drop_closes_connection_without_response(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "drop", "count": 1}])
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(service)

    faults.set([{"kind": "drop", "count": 1}])
    data, ending = _raw_exchange(service)
    assert data == b""  # not one byte of a response, not even a status line
    assert ending == "reset"


def test_drop_on_reused_keepalive_connection(service: ServiceProcess, faults: FaultControl) -> None:
    with requests.Session() as session:
        session.headers.update(_auth(service))
        normal = session.get(service.base_url + MODELS, timeout=5).status_code
        faults.set([{"kind": "drop", "count": 1}])
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(service.base_url + MODELS, timeout=5)
        # The pool discards the dead connection; the next call opens a new one.
        assert session.get(service.base_url + MODELS, timeout=5).status_code == normal


def test_truncate_sends_half_the_body_then_closes(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "truncate", "count": 1}])
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        _get(service)

    full = _get(service).content
    faults.set([{"kind": "truncate", "count": 1}])
    data, ending = _raw_exchange(service)
    head, _, body = data.partition(b"\r\n\r\n")
    declared = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    assert ending == "eof"
    assert declared == len(full)
    assert body == full[: len(full) // 2]


@pytest.mark.parametrize(
    ("rule", "raises"),
    [
        ({"kind": "truncate"}, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)),
        ({"kind": "delay", "delay_s": 0.5}, requests.exceptions.ReadTimeout),
        ({"kind": "invalid_json"}, None),
    ],
)
def test_passthrough_kinds_change_server_state(
    service: ServiceProcess, faults: FaultControl, rule: dict[str, Any], raises: Any
) -> None:
    key = str(uuid.uuid4())
    faults.set([{**rule, "path_prefix": "/api/jobs", "methods": ["POST"], "count": 1}])
    if raises is None:
        with pytest.raises(requests.exceptions.JSONDecodeError):
            _submit(service, key, timeout=0.2).json()
    else:
        with pytest.raises(raises):
            _submit(service, key, timeout=0.2)
        time.sleep(0.5)  # a delayed request still completes server-side after the client gave up

    replay = _submit(service, key)
    assert replay.status_code == 200  # a replay: the faulted submit did create the job


@pytest.mark.parametrize(
    ("rule", "raises"),
    [({"kind": "drop"}, requests.exceptions.ConnectionError), ({"kind": "status", "status": 502}, None)],
)
def test_rejecting_kinds_never_reach_the_app(
    service: ServiceProcess, faults: FaultControl, rule: dict[str, Any], raises: Any
) -> None:
    key = str(uuid.uuid4())
    faults.set([{**rule, "path_prefix": "/api/jobs", "methods": ["POST"], "count": 1}])
    if raises is None:
        assert _submit(service, key).status_code == 502
    else:
        with pytest.raises(raises):
            _submit(service, key)

    assert _submit(service, key).status_code == 201  # created only now


def test_invalid_json_replaces_body(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "invalid_json", "count": 1}])

    resp = _get(service)

    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    _get(service).json()  # the next answer is JSON again


# --- rule semantics ------------------------------------------------------------------------------


def test_count_applies_to_next_n_requests_only(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "status", "status": 597, "count": 2}])

    assert _outcomes(service, 4) == [True, True, False, False]
    (rule,) = faults.state()["rules"]
    assert (rule["count"], rule["remaining"], rule["fired"]) == (2, 0, 2)


def test_unlimited_count(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "status", "status": 597}])
    assert _outcomes(service, 5) == [True] * 5
    assert faults.state()["rules"][0]["remaining"] is None


def test_rate_with_seed_is_reproducible(service: ServiceProcess, faults: FaultControl) -> None:
    rule = {"kind": "status", "status": 597, "rate": 0.5}
    faults.set([rule], seed=1234)
    first = _outcomes(service, 30)
    faults.set([rule], seed=1234)
    second = _outcomes(service, 30)
    faults.set([rule], seed=99)
    other = _outcomes(service, 30)

    assert first == second
    assert 5 <= sum(first) <= 25  # some faulted, some not
    assert other != first


def test_rate_zero_never_fires(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "status", "status": 597, "rate": 0.0}], seed=1)
    assert not any(_outcomes(service, 5))


def test_rate_failure_falls_through_and_keeps_count(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "status", "status": 597, "rate": 0.0, "count": 1}, {"kind": "status", "status": 502}])
    assert _get(service).status_code == 502
    state = faults.state()
    assert [r["remaining"] for r in state["rules"]] == [1, None]


def test_path_and_method_filters(service: ServiceProcess, faults: FaultControl) -> None:
    normal = _get(service).status_code
    faults.set([{"kind": "status", "status": 597, "path_prefix": MODELS, "methods": ["post"]}])
    assert _get(service).status_code == normal
    resp = requests.post(service.base_url + MODELS, headers=_auth(service), json={}, timeout=5)
    assert resp.status_code == 597

    faults.set([{"kind": "status", "status": 597, "path_prefix": "/elsewhere"}])
    assert _get(service).status_code == normal
    assert _get(service, "/elsewhere/deeper").status_code == 597

    faults.set([{"kind": "status", "status": 597, "methods": ["GET", "DELETE"]}])
    assert _get(service).status_code == 597


def test_first_matching_rule_wins(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set(
        [
            {"kind": "status", "status": 502, "path_prefix": MODELS, "count": 1},
            {"kind": "status", "status": 500},
        ]
    )
    assert [_get(service).status_code for _ in range(3)] == [502, 500, 500]


def test_faults_before_routing(service: ServiceProcess, faults: FaultControl) -> None:
    """Unknown routes are faulted too: the middleware runs before the app routes anything."""
    faults.set([{"kind": "status", "status": 597, "count": 1}, {"kind": "drop", "count": 1}])
    assert _get(service, "/no/such/route").status_code == 597
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(service, "/no/such/route")
    assert _get(service, "/no/such/route").status_code == 404


def test_healthz_and_controls_never_faulted(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set([{"kind": "drop"}])
    assert requests.get(service.base_url + "/healthz", timeout=5).status_code == 200
    assert faults.state()["stats"]["requests"] == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(service)


def test_stats_count_requests_and_faults(service: ServiceProcess, faults: FaultControl) -> None:
    faults.set(
        [
            {"kind": "status", "status": 597, "count": 2},
            {"kind": "invalid_json", "count": 1},
            {"kind": "drop", "count": 1},
        ]
    )
    for _ in range(3):
        _get(service)
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(service)
    _get(service)

    stats = faults.stats()
    assert stats["requests"] == 5
    assert stats["injected"] == {"status": 2, "delay": 0, "drop": 1, "truncate": 0, "invalid_json": 1}
    assert stats["total_injected"] == 4
    assert faults.clear()["stats"]["requests"] == 0


def test_injected_context_manager_clears(service: ServiceProcess, faults: FaultControl) -> None:
    with faults.injected([{"kind": "status", "status": 597}]):
        assert _get(service).status_code == 597
    assert faults.state()["rules"] == []
    assert _get(service).status_code != 597


# --- validation and access to the control API ----------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ([{"kind": "explode"}], "kind"),
        ([{"kind": "status", "status": 200}], "status"),
        ([{"kind": "status", "status": "503"}], "status"),
        ([{"kind": "status", "retry_after": -1}], "retry_after"),
        ([{"kind": "status", "retry_after": 1.5}], "retry_after"),
        ([{"kind": "drop", "retry_after": 1}], "retry_after"),
        ([{"kind": "delay"}], "delay_s"),
        ([{"kind": "delay", "delay_s": 0}], "delay_s"),
        ([{"kind": "drop", "count": 0}], "count"),
        ([{"kind": "drop", "count": True}], "count"),
        ([{"kind": "drop", "rate": 1.5}], "rate"),
        ([{"kind": "drop", "methods": ["FETCH"]}], "methods"),
        ([{"kind": "drop", "methods": []}], "methods"),
        ([{"kind": "drop", "path_prefix": "api"}], "path_prefix"),
        ([{"kind": "drop", "colour": "red"}], "colour"),
        (["drop"], "rules[0]"),
    ],
)
def test_invalid_rules_rejected(service: ServiceProcess, faults: FaultControl, rules: list[Any], named: str) -> None:
    faults.set([{"kind": "status", "status": 597}])
    url = service.base_url + "/_test/faults"
    resp = requests.post(url, json={"rules": rules}, headers={"X-Test-Key": service.api_key}, timeout=5)

    assert resp.status_code == 400
    assert named in resp.json()["detail"]
    assert [r["status"] for r in faults.state()["rules"]] == [597]  # the old rule set stays


@pytest.mark.parametrize(
    ("body", "named"),
    [(b"{not json", "JSON"), (b'{"rules": {}}', "rules"), (b'{"rules": [], "seed": "x"}', "seed"), (b"{}", "rules")],
)
def test_invalid_rule_set_rejected(service: ServiceProcess, faults: FaultControl, body: bytes, named: str) -> None:
    headers = {"X-Test-Key": service.api_key, "Content-Type": "application/json"}
    resp = requests.post(service.base_url + "/_test/faults", data=body, headers=headers, timeout=5)
    assert resp.status_code == 400
    assert named in resp.json()["detail"]


def test_parse_rule_set_defaults() -> None:
    rules, seed = parse_rule_set([{"kind": "drop"}])
    assert seed is None
    assert rules[0].to_json() == {
        "kind": "drop",
        "path_prefix": "",
        "methods": None,
        "count": None,
        "rate": 1.0,
        "remaining": None,
        "fired": 0,
    }
    with pytest.raises(FaultRuleError, match=r"rules\[1\]\.kind"):
        parse_rule_set({"rules": [{"kind": "drop"}, {}]})


@pytest.mark.parametrize("headers", [{}, {"X-Test-Key": "wrong"}, {"Authorization": "ApiKey {key}"}])
def test_control_api_requires_test_key(service: ServiceProcess, faults: FaultControl, headers: dict[str, str]) -> None:
    headers = {name: value.format(key=service.api_key) for name, value in headers.items()}
    url = service.base_url + "/_test/faults"
    for method in ("GET", "POST", "DELETE"):
        resp = requests.request(method, url, json={"rules": [{"kind": "drop"}]}, headers=headers, timeout=5)
        assert resp.status_code == 401, method
    assert faults.state()["rules"] == []


def test_controls_absent_without_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a rule set in the environment is ignored: fault injection does not exist at all.
    monkeypatch.setenv("JOBWAIT_FAULTS", '[{"kind": "drop"}]')
    with ServiceProcess(api_key="plain-key", test_controls=False) as plain:
        url = plain.base_url + "/_test/faults"
        for method in ("GET", "POST", "DELETE"):
            resp = requests.request(method, url, json={"rules": []}, headers={"X-Test-Key": "plain-key"}, timeout=5)
            assert resp.status_code == 404, method
        resp = requests.get(plain.base_url + MODELS, headers={"Authorization": "ApiKey plain-key"}, timeout=5)
        assert resp.status_code in (200, 404)  # answered, not dropped


def test_rules_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    rule_file = tmp_path / "faults.json"
    rule_file.write_text('{"rules": [{"kind": "status", "status": 503, "retry_after": 1, "count": 1}], "seed": 5}')
    monkeypatch.setenv("JOBWAIT_FAULTS", f"@{rule_file}")
    with ServiceProcess(api_key="env-key", test_controls=True) as proc:
        state = FaultControl(proc.base_url, "env-key").state()
        assert state["seed"] == 5
        assert [(r["kind"], r["remaining"]) for r in state["rules"]] == [("status", 1)]
        headers = {"Authorization": "ApiKey env-key"}
        resp = requests.get(proc.base_url + MODELS, headers=headers, timeout=5)
        assert (resp.status_code, resp.headers["Retry-After"]) == (503, "1")
        assert requests.get(proc.base_url + MODELS, headers=headers, timeout=5).status_code != 503


def test_invalid_environment_rules_stop_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWAIT_FAULTS", '[{"kind": "status", "status": 200}]')
    proc = ServiceProcess(api_key="env-key", test_controls=True, startup_timeout=15)
    try:
        with pytest.raises(RuntimeError, match="status"):
            proc.start()
    finally:
        proc.close()


# --- soak support: shares across kinds, rules that survive a restart ------------------------------


def test_share_rules_give_each_kind_its_share_of_all_requests() -> None:
    mix = [(0.05, {"kind": "status", "status": 503}), (0.10, {"kind": "drop"}), (0.05, {"kind": "invalid_json"})]
    rules = share_rules(mix)
    assert [rule["kind"] for rule in rules] == ["status", "drop", "invalid_json"]
    assert rules[0]["rate"] == pytest.approx(0.05)
    assert rules[1]["rate"] == pytest.approx(0.10 / 0.95)
    assert rules[2]["rate"] == pytest.approx(0.05 / 0.85)
    parse_rule_set(rules)  # valid as they are
    # Rules are tried in order, each drawing its rate: the shares come out as asked.
    state_rules, seed = parse_rule_set({"rules": rules, "seed": 3})
    state = FaultState()
    state.replace(state_rules, seed)
    picks = [state.pick("GET", "/api/models") for _ in range(40_000)]
    shares = {
        kind: sum(1 for p in picks if p is not None and p.kind == kind) / len(picks) for kind in ("status", "drop")
    }
    assert shares["status"] == pytest.approx(0.05, abs=0.006)
    assert shares["drop"] == pytest.approx(0.10, abs=0.008)
    assert sum(p is not None for p in picks) / len(picks) == pytest.approx(0.20, abs=0.01)


@pytest.mark.parametrize("mix", [[(1.2, {"kind": "drop"})], [(0.7, {"kind": "drop"}), (0.4, {"kind": "invalid_json"})]])
def test_share_rules_refuse_impossible_shares(mix: list[Any]) -> None:
    with pytest.raises(ValueError, match="share"):
        share_rules(mix)


def test_rules_from_process_env_apply_to_each_start() -> None:
    # ServiceProcess(env=...) passes JOBWAIT_FAULTS to the child; changing it before a restart
    # starts the next life with other rules (the SQLite file and the port stay the same).
    first = json.dumps({"rules": [{"kind": "status", "status": 503, "count": 1}], "seed": 1})
    with ServiceProcess(api_key="env-key", test_controls=True, env={"JOBWAIT_FAULTS": first}) as proc:
        control = FaultControl(proc.base_url, "env-key")
        state = control.state()
        assert state["seed"] == 1 and [r["kind"] for r in state["rules"]] == ["status"]
        port, db = proc.port, proc.db_path
        proc.env["JOBWAIT_FAULTS"] = json.dumps({"rules": [{"kind": "drop", "count": 2}], "seed": 2})
        down = proc.restart(kill=True)
        assert down > 0 and (proc.port, proc.db_path) == (port, db)
        state = control.state()
        assert state["seed"] == 2 and [r["kind"] for r in state["rules"]] == ["drop"]
