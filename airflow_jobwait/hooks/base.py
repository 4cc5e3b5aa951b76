"""``JobWaitHook``: what every hook of a ``jobwait`` connection shares, whatever its API family."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import BaseHook

from airflow_jobwait.client import inference
from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import Call, ClientConfig
from airflow_jobwait.client.job_kinds import status_call
from airflow_jobwait.client.pool import leased_client
from airflow_jobwait.client.retry import RetryPolicy
from airflow_jobwait.client.sync_transport import SyncClient
from airflow_jobwait.client.wait_loop import WaitLoop, check_timeout
from airflow_jobwait.exceptions import JobWaitError
from airflow_jobwait.hooks.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
    StatusPolling,
    client_config,
    status_polling,
)
from airflow_jobwait.models import WaitOutcome

T = TypeVar("T")


class JobWaitHook(BaseHook):
    """The connection, the clients, prepared calls and the blocking wait, for every API family.

    The family hooks (``JobsHook``, ``DatasetJobsHook``, ``ComputeHook``, ``ResultsHook``)
    subclass it side by side and add their own API's methods. Blocking calls use a pooled
    ``requests`` session; ``acall`` and ``async_client`` run in the triggerer over one ``aiohttp``
    session shared by every trigger of the event loop that uses the same connection.

    :param jobwait_conn_id: Airflow connection of type ``jobwait`` (Host = base URL,
        Password = API key, extra: ``timeout``, ``verify``, ``max_response_bytes``, ``job_url_template``).
    :param retry: Retry policy for transient failures (default: 5 attempts, full-jitter backoff).
    """

    conn_name_attr = "jobwait_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Job Wait"

    def __init__(self, jobwait_conn_id: str = DEFAULT_CONN_ID, retry: RetryPolicy | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.jobwait_conn_id = jobwait_conn_id
        self.retry = retry or RetryPolicy()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the generic connection form: Host is the base URL, Password the API key."""
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
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
        return client_config(conn.conn_id, conn.host, conn.schema, conn.port, conn.password, conn.extra_dejson)

    async def aclient_config(self) -> ClientConfig:
        """Settings of the connection, read without blocking the event loop."""
        return (await self.asettings())[0]

    async def asettings(self) -> tuple[ClientConfig, StatusPolling]:
        """Client settings and status-polling extras of the connection, in one non-blocking read."""
        conn = await get_async_connection(self.jobwait_conn_id, self)
        extra = await get_async_extra_dejson(conn)
        return (
            client_config(conn.conn_id, conn.host, conn.schema, conn.port, conn.password, extra),
            status_polling(conn.conn_id, extra),
        )

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

    def wait_for_job(
        self,
        job_id: str,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        job_kind: str = "inference",
        job_ref: dict[str, str] | None = None,
    ) -> WaitOutcome:
        """Block until the job is terminal or ``timeout`` seconds pass (non-deferrable path).

        Transient failures (no answer, 429, 5xx, garbled body) do not end the wait; a permanent
        one (401, 404, ...) or too many in a row does.

        :param job_id: The job to wait for.
        :param poll_interval: Seconds between polls.
        :param timeout: Seconds to wait at most; ``None`` waits forever.
        :param job_kind: ``inference`` (default), ``dataset`` or ``compute``.
        :param job_ref: The kind's other path parameters (e.g. ``dataset_id``).
        """
        timeout = check_timeout(timeout)
        loop = WaitLoop(job_id, poll_interval, None if timeout is None else time.time() + timeout)
        call = status_call(job_kind, job_id, job_ref)
        while True:
            try:
                state = self.client.call(call)
                if note := loop.note_once(state):  # a status beyond our contract: say how it was read
                    self.log.info("%s", note)
                outcome = loop.on_state(state)
            except JobWaitError as err:
                outcome = loop.on_error(err)
            step = loop.then(outcome)
            if isinstance(step, WaitOutcome):
                return step
            time.sleep(step)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and the key with ``GET /api/models`` (the UI's Test button).

        The inference API's model list, for every family hook that does not check its own API
        (``ResultsHook`` does).
        """
        try:
            models = self.client.call(inference.list_models())
        except (JobWaitError, ValueError) as err:
            return False, str(err)
        return True, f"connected to {self.client_config.base_url}: {len(models)} model(s) available"

    # ---- async (triggerer) --------------------------------------------------------------

    async def acall(self, call: Call[T]) -> T:
        """Send any prepared call over the event loop's shared client."""
        async with self.async_client() as client:
            return await client.call(call)
