"""The sans-I/O core: URL and id rules, status mapping, payload validation, retry decisions."""

from __future__ import annotations

import json
import math

import pytest

from airflow_jobwait.client import inference as api
from airflow_jobwait.client.http import ClientConfig, HttpRequest, HttpResponse, path_segment
from airflow_jobwait.client.retry import RetryPolicy, RetryState
from airflow_jobwait.client.wait_loop import WaitLoop
from airflow_jobwait.exceptions import (
    ApiError,
    Conflict,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from airflow_jobwait.models import JobStatus


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {k.lower(): v for k, v in (headers or {}).items()}, raw)


JOB = {"jobIdentifier": "j-1", "status": "IN_PROGRESS", "model": {"identifier": "echo", "version": "1.0"}}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (400, ApiError),
    ],
)
def test_error_statuses_map_to_the_hierarchy(status: int, error: type[ApiError]) -> None:
    call = api.get_job("j-1")
    with pytest.raises(error) as info:
        call.parse(response(status, {"detail": "nope"}))
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.body == {"detail": "nope"}
    assert "GET /api/jobs/j-1 answered" in str(info.value) and "nope" in str(info.value)


def test_retry_after_is_read_from_seconds() -> None:
    with pytest.raises(RateLimited) as info:
        api.get_job("j-1").parse(response(429, {"detail": "slow down"}, {"Retry-After": "7"}))
    assert info.value.retry_after == 7.0


def test_non_json_body_is_invalid_response() -> None:
    with pytest.raises(InvalidResponse, match="not JSON"):
        api.get_job("j-1").parse(response(200, b"<html>oops"))


def test_schema_violation_names_the_field() -> None:
    # A status that is not a string at all is malformed. (A string the Modzy SDK does not know is
    # not: its wait ends on it, see tests/test_native_statuses.py.)
    with pytest.raises(InvalidResponse) as info:
        api.get_job("j-1").parse(response(200, {**JOB, "status": 7}))
    assert info.value.field == "status"
    assert "'status'" in str(info.value)


def test_job_parses_camel_and_snake_case() -> None:
    camel = api.get_job("j-1").parse(response(200, JOB))
    snake = api.get_job("j-1").parse(response(200, {"job_identifier": "j-1", "status": "IN_PROGRESS"}))
    assert camel.job_identifier == snake.job_identifier == "j-1"
    assert camel.status is JobStatus.IN_PROGRESS


@pytest.mark.parametrize("bad", ["", "   ", "a/b", "..", "x/../y", "x" * 257, None, 5])
def test_bad_job_ids_are_refused_before_any_request(bad: object) -> None:
    with pytest.raises(ValueError, match="job_id"):
        api.get_job(bad)  # type: ignore[arg-type]


def test_job_ids_are_quoted_into_the_path() -> None:
    assert path_segment("a b?c", "job_id") == "a%20b%3Fc"


@pytest.mark.parametrize("url", ["", "ftp://host", "host-without-scheme", "http://", "http://h/?q=1", "http://h:99999"])
def test_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        ClientConfig(base_url=url, api_key="k")


def test_client_config_never_shows_the_key() -> None:
    config = ClientConfig(base_url="http://127.0.0.1:1/", api_key="super-secret")
    assert "super-secret" not in repr(config)
    assert config.base_url == "http://127.0.0.1:1"


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf])
def test_client_config_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ClientConfig(base_url="http://h", api_key="k", timeout=timeout)


GET = HttpRequest("GET", "/api/jobs/x", api.AUTH)
POST = HttpRequest("POST", "/api/jobs", api.AUTH, idempotent=False)


@pytest.mark.parametrize(
    ("error", "request_", "retried"),
    [
        (TransportError("reset"), GET, True),
        (TransportError("reset"), POST, False),
        (ServerError(503, None), GET, True),
        (ServerError(503, None), POST, False),
        (RateLimited(429, None), POST, True),
        (NotFound(404, None), GET, False),
        (Unauthorized(401, None), GET, False),
        (ApiError(422, None), GET, False),
    ],
)
def test_retry_policy_retries_only_transient_errors(error: ApiError, request_: HttpRequest, retried: bool) -> None:
    delay = RetryPolicy().delay_before_retry(1, error, request_, waited=0.0, rng=lambda: 1.0)
    assert (delay is not None) is retried


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, rng=lambda: 0.25) == 0.5


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_delay=10.0)
    assert policy.delay_before_retry(1, RateLimited(429, None, retry_after=3.0), GET, 0.0, rng=lambda: 0.0) == 3.0
    assert policy.delay_before_retry(1, RateLimited(429, None, retry_after=99.0), GET, 0.0, rng=lambda: 0.0) == 10.0


def test_retry_state_gives_up_after_max_attempts_and_budget() -> None:
    state = RetryState(RetryPolicy(max_attempts=3, base_delay=1.0), GET)
    error = ServerError(503, None)
    assert state.after_failure(error) >= 0
    assert state.after_failure(error) >= 0
    with pytest.raises(ServerError):
        state.after_failure(error)
    budget = RetryState(RetryPolicy(max_attempts=10, budget=0.0, base_delay=1.0), GET)
    with pytest.raises(ServerError):
        budget.after_failure(ServerError(503, None, retry_after=1.0))


def test_wait_loop_ends_on_terminal_status_and_respects_deadline() -> None:
    loop = WaitLoop("j", poll_interval=5, deadline=100.0)
    assert loop.on_status(JobStatus.IN_PROGRESS) is None
    assert loop.next_delay(now=98.0) == 2.0
    assert loop.next_delay(now=100.0) is None
    outcome = loop.on_status(JobStatus.CANCELED)
    assert outcome is not None and outcome.kind == "terminal" and outcome.status is JobStatus.CANCELED
    assert loop.timed_out().kind == "timeout"


def test_wait_loop_tolerates_transient_errors_up_to_its_budget() -> None:
    loop = WaitLoop("j", poll_interval=1, max_consecutive_errors=3)
    assert loop.on_error(TransportError("reset")) is None
    assert loop.on_error(ServerError(502, None)) is None
    assert loop.on_status(JobStatus.IN_PROGRESS) is None  # a good poll resets the count
    assert loop.on_error(InvalidResponse("garbled")) is None
    assert loop.on_error(TransportError("reset")) is None
    outcome = loop.on_error(TransportError("reset"))
    assert outcome is not None and outcome.kind == "error" and "3 times in a row" in outcome.message


def test_wait_loop_fails_at_once_on_permanent_errors() -> None:
    outcome = WaitLoop("j", poll_interval=1).on_error(NotFound(404, {"detail": "no job j"}))
    assert outcome is not None and outcome.kind == "error" and "no job j" in outcome.message


@pytest.mark.parametrize("interval", [0, -1, math.nan, math.inf, True])
def test_wait_loop_refuses_bad_poll_intervals(interval: float) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        WaitLoop("j", poll_interval=interval)
