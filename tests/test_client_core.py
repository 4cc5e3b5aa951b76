"""The sans-I/O core: URL and id rules, status mapping, payload validation, retry decisions."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import pytest
from pytest_mock import MockerFixture

from airflow_jobwait.client import http as http_module
from airflow_jobwait.client import inference as api
from airflow_jobwait.client.http import ClientConfig, HttpRequest, HttpResponse, error_for, path_segment
from airflow_jobwait.client.job_kinds import cancel_call, results_call, status_call
from airflow_jobwait.client.retry import RetryPolicy, RetryState
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.client.wait_loop import WaitLoop, check_timeout, is_transient
from airflow_jobwait.exceptions import (
    ApiError,
    Conflict,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    TokenError,
    TransportError,
    Unauthorized,
)
from airflow_jobwait.models import JobStatus, WaitOutcome
from airflow_jobwait.models.status import JobState
from airflow_jobwait.triggers.jobs import deadline_after
from tests._scripted_service import scripted_service


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {k.lower(): v for k, v in (headers or {}).items()}, raw)


def fixed_now(mocker: MockerFixture, now: datetime) -> None:
    """Make the HTTP core's clock read ``now`` (it reads ``datetime.now(UTC)`` for HTTP-dates)."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Fixed:  # type: ignore[override]
            return cls.fromtimestamp(now.timestamp(), tz=UTC)

    mocker.patch.object(http_module, "datetime", Fixed)


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
    # The first retry waits the full-jitter backoff of attempt 1: rng() * base_delay (0.5 s).
    assert delay == (0.5 if retried else None)


#: docs/jobs-api.md §3: "Transient HTTP statuses, retried by clients for idempotent calls".
CONTRACT_TRANSIENT = (408, 425, 429, 500, 502, 503, 504)


@pytest.mark.parametrize("status", [*CONTRACT_TRANSIENT, 400, 401, 403, 404, 409, 422, 501, 505])
def test_the_transient_statuses_are_the_contracts(status: int) -> None:
    transient = status in CONTRACT_TRANSIENT
    # Whatever class the status arrives in: the plain ApiError, the mapped subclass, a token fetch.
    for error in (ApiError(status, None), error_for(GET, response(status, {"detail": "x"}))):
        assert RetryPolicy().is_retryable(error, GET) is transient, error
        assert is_transient(error) is transient, error
        assert (WaitLoop("j", poll_interval=1).on_error(error) is None) is transient, error
    token_error = TokenError("token endpoint failed", "http://h/connect/token", status=status)
    assert RetryPolicy().is_retryable(token_error, GET) is transient
    assert is_transient(token_error) is transient


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, rng=lambda: 0.25) == 0.5


def test_backoff_values_without_retry_after() -> None:
    # Full jitter (AWS "Exponential Backoff And Jitter"): rng() * min(cap, base * 2**(attempt-1)).
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, max_attempts=10, budget=1000.0)
    error = ServerError(503, None)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (9, 30.0)]:
        assert policy.delay_before_retry(attempt, error, GET, 0.0, rng=lambda: 1.0) == ceiling
        assert policy.delay_before_retry(attempt, error, GET, 0.0, rng=lambda: 0.5) == ceiling / 2
        assert policy.delay_before_retry(attempt, error, GET, 0.0, rng=lambda: 0.0) == 0.0


def test_the_default_backoff_cap() -> None:
    # RetryPolicy's documented defaults: base_delay 0.5 s, max_delay (cap of one wait) 30 s.
    policy = RetryPolicy()
    assert [policy.backoff(n, rng=lambda: 1.0) for n in (1, 2, 7, 8, 20)] == [0.5, 1.0, 30.0, 30.0, 30.0]
    late = policy.delay_before_retry(4, ServerError(503, None), GET, 0.0, rng=lambda: 1.0)
    assert late == 4.0  # 0.5 * 2**3
    capped = RetryPolicy(max_attempts=20, budget=1e9).delay_before_retry(
        15, ServerError(503, None), GET, 0.0, rng=lambda: 1.0
    )
    assert capped == 30.0


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_delay=10.0)
    assert policy.delay_before_retry(1, RateLimited(429, None, retry_after=3.0), GET, 0.0, rng=lambda: 0.0) == 3.0
    assert policy.delay_before_retry(1, RateLimited(429, None, retry_after=99.0), GET, 0.0, rng=lambda: 0.0) == 10.0
    # Retry-After is a floor: a longer backoff is not cut short by it (503 with Retry-After too).
    assert policy.delay_before_retry(4, ServerError(503, None, retry_after=1.0), GET, 0.0, rng=lambda: 1.0) == 4.0
    # Retry-After: 0 asks for no wait beyond our own backoff.
    assert policy.delay_before_retry(1, RateLimited(429, None, retry_after=0.0), GET, 0.0, rng=lambda: 0.0) == 0.0


def test_retry_after_as_http_date_is_honoured(mocker: MockerFixture) -> None:
    # RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds. The clock is injected.
    fixed_now(mocker, datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC))
    with pytest.raises(RateLimited) as info:
        api.get_job("j-1").parse(response(429, {"detail": "later"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert info.value.retry_after == 60.0
    delay = RetryPolicy(max_delay=100.0).delay_before_retry(1, info.value, GET, 0.0, rng=lambda: 0.0)
    assert delay == 60.0


def test_retry_state_gives_up_after_max_attempts_and_budget() -> None:
    # Retry-After of 1 s with a negligible backoff: every wait is exactly 1 s.
    state = RetryState(RetryPolicy(max_attempts=3, base_delay=0.001), GET)
    error = ServerError(503, None, retry_after=1.0)
    assert state.after_failure(error) == 1.0
    assert state.after_failure(error) == 1.0
    with pytest.raises(ServerError):  # the third failure is the third attempt: no more
        state.after_failure(error)
    assert state.waited == 2.0


def test_retry_budget_counts_every_wait_of_the_call() -> None:
    # Budget 2.5 s, 1 s per wait: two waits fit (1 s, then 2 s in all), a third (3 s) does not.
    state = RetryState(RetryPolicy(max_attempts=10, base_delay=0.001, budget=2.5), GET)
    error = ServerError(503, None, retry_after=1.0)
    assert state.after_failure(error) == 1.0
    assert state.waited == 1.0
    assert state.after_failure(error) == 1.0
    assert state.waited == 2.0
    with pytest.raises(ServerError):
        state.after_failure(error)
    # The same budget seen from the policy: what was waited already counts.
    policy = RetryPolicy(max_attempts=10, base_delay=0.001, budget=2.5)
    assert policy.delay_before_retry(3, error, GET, waited=1.6, rng=lambda: 1.0) is None
    assert policy.delay_before_retry(3, error, GET, waited=1.0, rng=lambda: 1.0) == 1.0


def test_wait_loop_ends_on_terminal_status_and_respects_deadline() -> None:
    loop = WaitLoop("j", poll_interval=5, deadline=100.0)
    assert loop.on_status(JobStatus.IN_PROGRESS) is None
    assert loop.next_delay(now=98.0) == 2.0
    assert loop.next_delay(now=100.0) is None
    outcome = loop.on_status(JobStatus.CANCELED)
    assert outcome is not None and outcome.kind == "terminal" and outcome.status is JobStatus.CANCELED
    assert loop.timed_out().kind == "timeout"


def test_wait_loop_on_status_keeps_the_reason_of_a_job_that_did_not_complete() -> None:
    # on_status(status, reason): the reason is what the service said about a failed job; the
    # outcome carries it and its message ends with it. A completed job has no reason.
    failed = WaitLoop("j", poll_interval=1).on_status(JobStatus.FAILED, "model crashed on input 'a'")
    assert failed is not None
    assert (failed.kind, failed.status, failed.native_status) == ("terminal", JobStatus.FAILED, "FAILED")
    assert failed.reason == "model crashed on input 'a'"
    assert failed.message == "job j ended FAILED: model crashed on input 'a'"
    timed_out = WaitLoop("j", poll_interval=1).on_status(JobStatus.TIMEDOUT, "ran over 600 s")
    assert timed_out is not None and timed_out.reason == "ran over 600 s"
    completed = WaitLoop("j", poll_interval=1).on_status(JobStatus.COMPLETED, "ignored")
    assert completed is not None and completed.reason is None and completed.message == "job j ended COMPLETED"
    no_reason = WaitLoop("j", poll_interval=1).on_status(JobStatus.CANCELED)
    assert no_reason is not None and no_reason.reason is None and no_reason.message == "job j ended CANCELED"


def test_wait_loop_polls_until_its_deadline_not_before() -> None:
    loop = WaitLoop("j", poll_interval=5, deadline=100.0)
    assert loop.next_delay(now=99.5) == 0.5
    assert loop.next_delay(now=99.99) == pytest.approx(0.01)
    assert loop.then(None, now=99.5) == 0.5
    timed_out = loop.then(None, now=100.0)
    assert isinstance(timed_out, WaitOutcome) and timed_out.kind == "timeout"


def test_timeout_when_no_poll_ever_succeeded() -> None:
    # The service is down until the deadline: every poll failed, transiently.
    loop = WaitLoop("j", poll_interval=1, deadline=100.0)
    assert loop.on_error(TransportError("refused")) is None
    assert loop.on_error(ServerError(503, None)) is None
    outcome = loop.then(None, now=100.0)
    assert isinstance(outcome, WaitOutcome)
    assert (outcome.kind, outcome.job_id, outcome.status, outcome.native_status) == ("timeout", "j", None, None)
    assert "timed out" in outcome.message and "j" in outcome.message
    assert loop.timed_out() == outcome


def test_error_outcomes_keep_the_last_status() -> None:
    loop = WaitLoop("j", poll_interval=1, max_consecutive_errors=2)
    assert loop.on_state(JobState(status=JobStatus.IN_PROGRESS, native_status="PROCESSING")) is None
    assert loop.on_error(TransportError("reset")) is None
    spent = loop.on_error(TransportError("reset"))
    assert spent is not None and spent.kind == "error"
    assert (spent.status, spent.native_status) == (JobStatus.IN_PROGRESS, "PROCESSING")
    permanent = WaitLoop("j", poll_interval=1)
    assert permanent.on_status(JobStatus.SUBMITTED) is None
    refused = permanent.on_error(NotFound(404, {"detail": "gone"}))
    assert refused is not None and refused.kind == "error"
    assert (refused.status, refused.native_status) == (JobStatus.SUBMITTED, "SUBMITTED")


def test_timeout_zero_is_a_valid_timeout() -> None:
    # timeout is seconds >= 0 (None: no bound): 0 means "look once, do not wait".
    assert check_timeout(0) == 0.0
    assert check_timeout(0.0) == 0.0
    assert check_timeout(None) is None
    assert deadline_after(0, now=100.0) == 100.0
    loop = WaitLoop("j", poll_interval=1, deadline=deadline_after(0, now=100.0))
    assert loop.on_status(JobStatus.IN_PROGRESS) is None
    timed_out = loop.then(None, now=100.0)
    assert isinstance(timed_out, WaitOutcome) and timed_out.kind == "timeout"
    assert timed_out.status is JobStatus.IN_PROGRESS


COMPUTE = {"org_id": str(uuid.UUID(int=7)), "topic": "demo", "task": "wordcount"}
COMPUTE_JOB = str(uuid.UUID(int=9))


@pytest.mark.parametrize("status", [200, 202])
def test_compute_status_is_read_from_200_and_202(status: int) -> None:
    # docs/jobs-api.md §3: status answers 200 (or 202) with the same body.
    call = status_call("compute", COMPUTE_JOB, COMPUTE)
    state = call.parse(response(status, {"status": "in progress", "progress": 40, "message": "m", "error": None}))
    assert (state.status, state.native_status, state.progress) == (JobStatus.IN_PROGRESS, "in progress", 40)
    done = call.parse(response(status, {"status": "succeeded", "progress": 100, "message": None, "error": None}))
    assert done.status is JobStatus.COMPLETED


def test_compute_wait_reads_202_while_running() -> None:
    # The reference service always answers 200: a scripted service answers 202 while running.
    with scripted_service() as server:
        path = f"/compute/orgs/{COMPUTE['org_id']}/demo/wordcount/{COMPUTE_JOB}/status"
        server.scripts[("GET", path)] = [
            (202, {"content-type": "application/json"}, json.dumps({"status": "requested"}).encode()),
            (202, {"content-type": "application/json"}, json.dumps({"status": "in progress"}).encode()),
            (200, {"content-type": "application/json"}, json.dumps({"status": "succeeded"}).encode()),
        ]
        config = ClientConfig(base_url=server.base_url, api_key="k", timeout=10)
        client = SyncClient(config, retry=RetryPolicy(max_attempts=1))
        try:
            call = status_call("compute", COMPUTE_JOB, COMPUTE)
            states = [client.call(call).status for _ in range(3)]
        finally:
            client.close()
    assert states == [JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED]


DATASET_REF = {"dataset_id": "demo-dataset", "job_type": "basicSearch"}


def test_dataset_job_ref_carries_the_job_type_to_every_call() -> None:
    # docs/jobs-api.md §5: jobType goes on every get, retry, abort and delete; no default.
    for call in (
        status_call("dataset", "j1", DATASET_REF),
        results_call("dataset", "j1", DATASET_REF),
        cancel_call("dataset", "j1", DATASET_REF),
    ):
        assert ("jobType", "basicSearch") in call.request.params, call.request
        assert "/datasets/demo-dataset/jobs/j1" in call.request.path
    # A reply without jobType is of the type asked for (the SDK fills it in).
    results = results_call("dataset", "j1", DATASET_REF).parse(response(200, {"jobId": "j1", "status": "SUCCESS"}))
    assert results["jobType"] == "basicSearch"
    for ref in ({"dataset_id": "demo-dataset"}, {"job_type": "basicSearch"}):
        with pytest.raises(ValueError, match=r"dataset_id|job_type"):
            status_call("dataset", "j1", ref)


@pytest.mark.parametrize(
    ("native", "expected"),
    # docs/jobs-api.md §2 and §5 (TensorBay): QUEUING, PROCESSING running; SUCCESS, FAILED/FAIL,
    # ABORTED/ABORT terminal; anything else a terminal failure.
    [
        ("QUEUING", JobStatus.SUBMITTED),
        ("PROCESSING", JobStatus.IN_PROGRESS),
        ("SUCCESS", JobStatus.COMPLETED),
        ("FAILED", JobStatus.FAILED),
        ("FAIL", JobStatus.FAILED),
        ("ABORTED", JobStatus.CANCELED),
        ("ABORT", JobStatus.CANCELED),
        ("PAUSED", JobStatus.FAILED),
    ],
)
def test_dataset_statuses_map_as_the_contract_says(native: str, expected: JobStatus) -> None:
    state = status_call("dataset", "j1", DATASET_REF).parse(response(200, {"jobId": "j1", "status": native}))
    assert (state.status, state.native_status) == (expected, native)
    loop = WaitLoop("j1", poll_interval=1)
    outcome = loop.on_state(state)
    assert (outcome is None) is (expected in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS))


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
