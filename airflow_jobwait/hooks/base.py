"""``JobWaitHook``: what every family hook shares, whatever its service and connection type."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import BaseHook

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import Call, ClientConfig, server_date
from airflow_jobwait.client.job_kinds import status_call, with_retry_after
from airflow_jobwait.client.pool import leased_client
from airflow_jobwait.client.retry import DEFAULT_RETRY, TRANSIENT_STATUSES, RetryPolicy, RetryState
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.client.wait_loop import WaitLoop, check_timeout
from airflow_jobwait.exceptions import (
    ApiError,
    InvalidResponse,
    JobWaitError,
    RateLimited,
    TokenError,
    TransportError,
)
from airflow_jobwait.hooks.connection import (
    ConnectionFields,
    ConnectionType,
    StatusPolling,
    client_config,
    status_polling,
)
from airflow_jobwait.models import WaitOutcome

T = TypeVar("T")

#: A create whose answer was lost is adopted only if no other one like it was made this long before
#: it (or since): under concurrent creates of the same kind, a lookup cannot tell them apart.
LOOKUP_QUIET = timedelta(seconds=120)


_S = TypeVar("_S")
# Equal settings read by many waits of one connection, shared: a wait keeps its connection's
# settings for its whole life (for a fallback to polling alone), and 10,000 copies of the same
# frozen values would cost ~0.3 KiB a wait. Weak: nothing outlives its last wait.
_SHARED: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()


def _shared(value: _S) -> _S:
    """The one object equal to ``value`` that is in use (``value`` itself if none): frozen
    dataclasses only. Keyed by the field values, not the object: a key is held strongly, so the
    object as its own key would never be let go."""
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    key = (type(value), *(getattr(value, f.name) for f in dataclasses.fields(value)))
    shared: _S = _SHARED.setdefault(key, value)
    return shared


_R = TypeVar("_R")
# The connection reads in flight, per event loop and (hook class, connection id). In the triggerer
# a read is a request to its supervisor for each secret it masks (the password, the extra), and
# Airflow 3.3's supervisor serves one request per round of its DB work, a round that grows with the
# triggers it holds (docs/deployment-scale.md). The waits of a mapped task start and end together:
# thousands reading alone queue for minutes. Weak: a closed loop takes its reads with it.
_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def _joined(key: Any, read: Callable[[], Coroutine[Any, Any, _R]]) -> _R:
    """The result of ``read()``, shared with the callers that ask for ``key`` while it runs.

    Nothing is kept once it is done: a caller after that reads again (a changed connection is
    seen by the next wait), and a failed read is not handed to later callers. A caller that is
    cancelled leaves the read to the others.
    """
    reads = _READS.setdefault(asyncio.get_running_loop(), {})
    running = reads.get(key)
    if running is None:
        running = reads[key] = asyncio.ensure_future(read())

        def forget(done: asyncio.Future[Any]) -> None:
            del reads[key]
            if not done.cancelled():
                done.exception()  # every caller may have left: not "never retrieved"

        running.add_done_callback(forget)
    result: _R = await asyncio.shield(running)
    return result


class JobWaitHook(BaseHook):
    """The connection, the clients, prepared calls and the blocking wait, for every API family.

    The family hooks (``JobsHook`` for Modzy, ``DatasetJobsHook`` for TensorBay, ``ComputeHook``
    for Seequent Evo, ``ResultsHook`` for the CHIME results store) subclass it side by side: each
    names its connection type and adds its own API's methods and connection test. Blocking calls
    use a pooled ``requests`` session; ``acall`` and ``async_client`` run in the triggerer over one
    ``aiohttp`` session shared by every trigger of the event loop that uses the same connection.

    :param jobwait_conn_id: The Airflow connection (default: the family's ``<type>_default``).
    :param retry: Retry policy for transient failures (default: 5 attempts, full-jitter backoff).
    """

    #: The family's connection type: form, defaults, base URL and credential rules.
    connection_type: ClassVar[ConnectionType]
    conn_name_attr = "jobwait_conn_id"
    # Set from connection_type for each family hook (Airflow reads them for its forms and Test).
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    default_conn_name: ClassVar[str]

    def __init__(self, jobwait_conn_id: str | None = None, retry: RetryPolicy | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.jobwait_conn_id = jobwait_conn_id or self.default_conn_name
        self.retry = retry or DEFAULT_RETRY

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("connection_type")
        if kind is not None:  # Airflow reads these class attributes for the connection form
            cls.conn_type = kind.conn_type
            cls.hook_name = kind.hook_name
            cls.default_conn_name = kind.default_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the generic connection form for the service (Host, Login, Password)."""
        behaviour = cls.connection_type.ui_field_behaviour()
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields come from ``conn-fields`` in the provider info (Airflow 3 forms)."""
        return {}

    # ---- configuration ------------------------------------------------------------------

    @cached_property
    def client_config(self) -> ClientConfig:
        """Settings of the connection, read once per hook (blocking: workers only)."""
        conn = self.get_connection(self.jobwait_conn_id)
        return client_config(self.connection_type, self._fields(conn, conn.extra_dejson))

    @cached_property
    def extra(self) -> dict[str, Any]:
        """The connection's extra (blocking: workers only)."""
        return dict(self.get_connection(self.jobwait_conn_id).extra_dejson)

    @staticmethod
    def _fields(conn: Any, extra: dict[str, Any]) -> ConnectionFields:
        return ConnectionFields(conn.conn_id, conn.host, conn.schema, conn.port, conn.login, conn.password, extra)

    async def aclient_config(self) -> ClientConfig:
        """Settings of the connection, read without blocking the event loop."""
        return (await self.asettings())[0]

    async def asettings(self) -> tuple[ClientConfig, StatusPolling]:
        """Client settings and status-polling extras of the connection, in one non-blocking read.

        Concurrent callers of the event loop (the waits of a mapped task start and end together)
        share the read in flight; nothing is kept after it.
        """
        return await _joined((type(self), self.jobwait_conn_id), self._read_settings)

    async def _read_settings(self) -> tuple[ClientConfig, StatusPolling]:
        conn = await get_async_connection(self.jobwait_conn_id, self)
        extra = await get_async_extra_dejson(conn)
        config = client_config(self.connection_type, self._fields(conn, extra))
        return _shared(config), _shared(status_polling(conn.conn_id, extra))

    @cached_property
    def client(self) -> SyncClient:
        return SyncClient(self.client_config, self.retry)

    def get_conn(self) -> SyncClient:
        """The blocking client of this hook."""
        return self.client

    @asynccontextmanager
    async def async_client(self) -> AsyncIterator[AsyncClient]:
        """Lease the event loop's shared async client for this connection."""
        config = await self.aclient_config()
        async with leased_client(self.jobwait_conn_id, config) as client:
            yield client

    # ---- blocking calls (workers) -------------------------------------------------------

    def call(self, call: Call[T]) -> T:
        """Send any prepared call (see ``airflow_jobwait.client``) with retries."""
        return self.client.call(call)

    def create_once(self, call: Call[T], find: Callable[[], T | None], what: str) -> T:
        """Send a create that the service may not deduplicate, never blindly twice.

        The real services ignore ``Idempotency-Key``/``X-Request-Id`` (they are the reference
        service's extensions), so a create is not simply sent again. When its answer is lost (no
        answer, a 5xx, a garbled body: the service may have created it), ``find`` looks for what
        it created, after the backoff and at least one request timeout (a slow service may still
        be carrying the create out): found, that is the answer; not found, the call is sent
        again under the retry policy, or, once the policy gives up, the failure is raised. A
        refusal (4xx) was not carried out and is raised at once; a 429 is retried by the client.

        :param call: The create.
        :param find: Looks the created thing up (``None``: the service does not have it). If the
            lookup itself fails, the create's failure is raised: sending again could duplicate.
        :param what: What is created, for the log.
        """
        # The retry state of the whole create: once a lookup shows nothing was created, sending
        # again is as safe as for an idempotent call.
        state = RetryState(self.retry, dataclasses.replace(call.request, idempotent=True))
        while True:
            try:
                return self.client.call(call)
            except (TransportError, ApiError, InvalidResponse) as err:
                if not answer_lost(err):
                    raise
                try:
                    delay: float | None = state.after_failure(err)
                except JobWaitError:
                    delay = None  # the policy gives up: still look, so nothing is left unclaimed
                time.sleep(max(delay or 0.0, self.client_config.timeout))
                try:
                    found = find()
                except JobWaitError as lookup_err:
                    raise err from lookup_err
                if found is not None:
                    self.log.warning("%s: the answer was lost (%s) but the service has it: not sent again", what, err)
                    return found
                if delay is None:
                    raise
                self.log.warning("%s: the answer was lost (%s) and the service has nothing: sending again", what, err)

    def only_candidate(self, found: Sequence[tuple[T, str, bool]], what: str) -> T | None:
        """What a lookup found, if it can only be what the lost create made.

        ``found`` holds every job like the create made in the quiet window (``LOOKUP_QUIET``
        before the create, up to now): one made since the create, and no other like it, is the
        create's. Anything else may be someone else's (the same key sends the same create around
        the same time): adopting it could hand this task another's results, so ``None`` (logged),
        and the create is sent again; at most one duplicate follows, and only then.

        :param found: ``(candidate, its id, made since the create)`` for each.
        :param what: What the candidates are, for the log.
        """
        if len(found) == 1 and found[0][2]:
            return found[0][0]
        if found:
            self.log.warning(
                "%d %s within %ds of the lost create (%s): cannot tell which one, if any, the lost create made",
                len(found),
                what,
                int(LOOKUP_QUIET.total_seconds()),
                ", ".join(ident for _, ident, _ in found[:10]),
            )
        return None

    def service_time_of(self, age: float) -> datetime | None:
        """When something sent ``age`` seconds ago was sent, on the service's clock: its last
        ``Date``, less ``age`` and a second for the header's resolution (``None`` without one)."""
        last = self.client.last_server_time
        return None if last is None else last - timedelta(seconds=age + 1.0)

    def wait_for_job(
        self,
        job_id: str,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        job_kind: str = "inference",
        job_ref: dict[str, str] | None = None,
        max_poll_interval: float | None = None,
    ) -> WaitOutcome:
        """Block until the job is terminal or ``timeout`` seconds pass (non-deferrable path).

        Transient failures (no answer, 429, 5xx, garbled body) do not end the wait; a permanent
        one (401, 404, ...) or too many in a row does. It returns by ``timeout`` plus one request
        ``timeout`` of the connection: each request has that total deadline, and no retry waits
        past the wait's end.

        :param job_id: The job to wait for.
        :param poll_interval: Seconds between polls.
        :param timeout: Seconds to wait at most; ``None`` waits forever.
        :param job_kind: ``inference`` (default), ``dataset`` or ``compute``.
        :param job_ref: The kind's other path parameters (e.g. ``dataset_id``).
        :param max_poll_interval: Let the delay between polls stretch with the time the job has
            been quiet, up to this (``client/poll_schedule.py``); ``None``: every delay is
            ``poll_interval``.
        """
        timeout = check_timeout(timeout)
        now = time.time()
        loop = WaitLoop(
            job_id,
            poll_interval,
            None if timeout is None else now + timeout,
            max_poll_interval=max_poll_interval,
            started=now,
            clock=time.time,
        )
        call = with_retry_after(status_call(job_kind, job_id, job_ref))
        while True:
            try:
                state, hint = self.client.call(call, deadline=loop.deadline)
                if note := loop.note_once(state):  # a status beyond our contract: say how it was read
                    self.log.info("%s", note)
                outcome = loop.on_state(state, retry_after=hint)
            except JobWaitError as err:
                outcome = loop.on_error(err)
            step = loop.then(outcome)
            if isinstance(step, WaitOutcome):
                return step
            time.sleep(step)

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: the service's cheapest authenticated read.

        :return: Success, and a message that says what was reached, or what to fix.
        """
        try:
            return True, self.check_connection()
        except (JobWaitError, ValueError) as err:
            return False, self.explain_failure(err)

    def check_connection(self) -> str:
        """Make the family's cheapest authenticated read; say what it found.

        :raises JobWaitError: The service refused or could not be reached.
        """
        raise NotImplementedError(f"{type(self).__name__} has no connection check")

    def explain_failure(self, err: Exception) -> str:
        """What a failed connection test means, and what to change in the connection.

        The connection is not named: the API server tests it under a transient id of its own.
        """
        kind = self.connection_type
        if isinstance(err, TokenError):
            return f"{err}. Check the client ID (Login), the secret (Password) and the extras token_url and scopes."
        if isinstance(err, ApiError) and err.status == 401:
            field = "Password (client secret or access token)" if kind.conn_type == "evo" else "Password"
            return f"{kind.service} refused the credential (401 on {err.path}): check the connection's {field}."
        if isinstance(err, ApiError) and err.status == 403:
            return f"{kind.service} answered 403 on {err.path}: the credential works but may not use this: {err}"
        if isinstance(err, ApiError) and err.status == 404:
            return (
                f"{kind.service} answered 404 on {err.path}: is Host the service's base URL? "
                f"It looks like {kind.example_url}"
            )
        if isinstance(err, TransportError):
            return f"could not reach {kind.service}: {err}. Check Host ({kind.example_url}) and the network."
        if isinstance(err, ApiError) and err.status in TRANSIENT_STATUSES:
            return f"{kind.service} is reachable but failed the check for now ({err}): try again later."
        if isinstance(err, ApiError):
            return f"{kind.service} refused the check: {err}"
        if isinstance(err, InvalidResponse):
            return (
                f"the answer is not {kind.service}'s API ({err}): is Host the service's base URL? "
                f"It looks like {kind.example_url}"
            )
        if isinstance(err, ValueError):  # the connection's own fields (Host, extras) cannot be used
            return f"the connection cannot be used: {err}"
        return f"{kind.service}: {err}"

    # ---- async (triggerer) --------------------------------------------------------------

    async def acall(self, call: Call[T], deadline: float | None = None) -> T:
        """Send any prepared call over the event loop's shared client, under this hook's retry
        policy (the client is shared; the policy is the hook's).

        :param deadline: Epoch seconds when the caller's wait ends: no retry waits past it.
        """
        async with self.async_client() as client:
            return await client.call(call, retry=self.retry, deadline=deadline)

    async def acall_dated(self, call: Call[T], deadline: float | None = None) -> tuple[T, datetime | None]:
        """``acall``, with the service's clock when it answered (its ``Date``; ``None`` without one).

        The event triggers window their scans on the service's clock, not ours
        (``docs/event-triggers.md``): the answer and its ``Date`` come from the same response.

        :param deadline: Epoch seconds when the caller's wait ends: no retry waits past it.
        """
        dated = Call(call.request, lambda response: (call.parse(response), server_date(response)))
        return await self.acall(dated, deadline)


def answer_lost(err: JobWaitError) -> bool:
    """The request may have been carried out although its answer did not arrive whole.

    No answer, a transient 5xx/408/425 (a gateway may have passed it on), or a body that did not
    parse. Not a 429 (nothing was done) nor another 4xx (refused).
    """
    if isinstance(err, RateLimited):
        return False
    if isinstance(err, ApiError):
        return err.status in TRANSIENT_STATUSES
    return isinstance(err, TransportError | InvalidResponse)
