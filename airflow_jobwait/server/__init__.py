"""Reference job service: every API family of ``jobs-api.md`` over HTTP, persisted in SQLite."""

from airflow_jobwait.server.app import create_app
from airflow_jobwait.server.config import ServiceConfig
from airflow_jobwait.server.process import ServiceProcess

__all__ = ["ServiceConfig", "ServiceProcess", "create_app"]
