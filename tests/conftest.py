"""Shared fixtures: the reference service runs as a real process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_jobwait.server.process import ServiceProcess

# Modzy-style key: the part before the dot is the public access key identifier.
API_KEY = "pubkey123.s3cr3t-test-key-never-logged"


@pytest.fixture(scope="session")
def service() -> Iterator[ServiceProcess]:
    """One reference service (test controls on) for the whole session."""
    with ServiceProcess(api_key=API_KEY, test_controls=True) as proc:
        yield proc
