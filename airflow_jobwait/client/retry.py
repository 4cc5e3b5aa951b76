"""When to send a request again: one policy for the sync hook, the async client and the triggers."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_jobwait.client.http import HttpRequest
from airflow_jobwait.exceptions import ApiError, JobWaitError, RateLimited, TokenError, TransportError

log = logging.getLogger(__name__)

# Statuses that mean "not processed, or processed idempotently: ask again".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring ``Retry-After``.

    :param max_attempts: Attempts per call, the first included.
    :param base_delay: Backoff of the first retry (before jitter), seconds.
    :param max_delay: Cap of one wait, seconds (also caps ``Retry-After``).
    :param budget: Total seconds one call may spend waiting between attempts.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0

    def is_retryable(self, error: JobWaitError, request: HttpRequest) -> bool:
        """Transient errors are retried; a 429 always (nothing was done), others only if idempotent."""
        if isinstance(error, RateLimited):
            return True
        if isinstance(error, TokenError):
            # The token endpoint failed for now: the request itself was never sent.
            return error.status in TRANSIENT_STATUSES
        if isinstance(error, TransportError):
            return request.idempotent
        if isinstance(error, ApiError):
            return error.status in TRANSIENT_STATUSES and request.idempotent
        return False

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter backoff before retry number ``attempt`` (1-based)."""
        return rng() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))

    def delay_before_retry(
        self,
        attempt: int,
        error: JobWaitError,
        request: HttpRequest,
        waited: float,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up and raise ``error``.

        :param attempt: Attempts made so far (1 after the first failure).
        :param error: What the last attempt raised.
        :param request: The request, for its idempotency.
        :param waited: Seconds already spent waiting for this call.
        """
        if attempt >= self.max_attempts or not self.is_retryable(error, request):
            return None
        delay = self.backoff(attempt, rng)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.max_delay)
        if waited + delay > self.budget:
            return None
        return delay


#: The default policy, shared: it is immutable, and a hook or client made for each poll (a trigger
#: polling alone reads its hook's policy each time) need not allocate its own.
DEFAULT_RETRY = RetryPolicy()


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Retry:
    """One retry of a call: what failed, and when the request goes out again.

    :param request: The request.
    :param error: What its last attempt raised.
    :param attempt: Attempts made so far (1 after the first failure).
    :param delay: Seconds until the next attempt.
    """

    request: HttpRequest
    error: JobWaitError
    attempt: int
    delay: float

    def __str__(self) -> str:
        return (
            f"{self.request.method} {self.request.path} failed ({self.error}); "
            f"attempt {self.attempt}, retrying in {self.delay:.2f}s"
        )


#: Told of each retry of a call, instead of the log line (``RetryState``).
OnRetry = Callable[[Retry], None]


def log_retry(retry: Retry) -> None:
    """The default report of a retry: one warning, in the caller's logging context."""
    log.warning("%s", retry)


class RetryState:
    """The attempts of one call: ask it what to do after each failure.

    :param policy: The policy to follow.
    :param request: The request being sent (for idempotency and the log line).
    :param deadline: Epoch seconds by which the caller's wait ends (``None``: no such bound). No
        backoff reaches past it: an attempt that fails then is the call's last, so a wait is not
        stretched by the retries of its poll.
    :param on_retry: Told of each retry (default: ``log_retry``). A request shared by many waits
        (the triggerer's status poller) hands each retry to every wait, which logs it in its own
        task's log; logged here it would land in the log of whichever task started the poller.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        request: HttpRequest,
        deadline: float | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.policy = policy
        self.request = request
        self.deadline = deadline
        self.on_retry = on_retry or log_retry
        self.attempt = 0
        self.waited = 0.0

    def after_failure(self, error: JobWaitError) -> float:
        """Seconds to wait before the next attempt; re-raises ``error`` when the policy gives up."""
        self.attempt += 1
        delay = self.policy.delay_before_retry(self.attempt, error, self.request, self.waited)
        if delay is None or (self.deadline is not None and time.time() + delay >= self.deadline):
            raise error
        self.on_retry(Retry(self.request, error, self.attempt, delay))
        self.waited += delay
        return delay
