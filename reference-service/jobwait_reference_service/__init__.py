"""Reference job service: every API family of ``docs/jobs-api.md`` over HTTP, persisted in SQLite."""

from jobwait_reference_service.app import create_app
from jobwait_reference_service.config import ServiceConfig
from jobwait_reference_service.process import ServiceProcess

__all__ = ["ServiceConfig", "ServiceProcess", "create_app"]
