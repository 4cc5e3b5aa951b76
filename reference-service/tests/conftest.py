"""The reference service under test runs as a real process on 127.0.0.1; nothing here imports Airflow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobwait_reference_service.process import ServiceProcess

API_KEY = "pubkey123.s3cr3t-test-key-never-logged"


@pytest.fixture(scope="session")
def service() -> Iterator[ServiceProcess]:
    """One reference service (test controls on) for the whole session."""
    with ServiceProcess(api_key=API_KEY, test_controls=True) as proc:
        yield proc
