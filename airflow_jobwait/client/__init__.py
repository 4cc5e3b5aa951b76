"""HTTP client: a sans-I/O core (``http``), per-family call builders, and sync/async transports."""

from airflow_jobwait.client.async_transport import AsyncClient
from airflow_jobwait.client.http import AuthScheme, Call, ClientConfig, HttpRequest, HttpResponse
from airflow_jobwait.client.pool import leased_client
from airflow_jobwait.client.retry import RetryPolicy
from airflow_jobwait.client.sync_transport import SyncClient

__all__ = [
    "AsyncClient",
    "AuthScheme",
    "Call",
    "ClientConfig",
    "HttpRequest",
    "HttpResponse",
    "RetryPolicy",
    "SyncClient",
    "leased_client",
]
