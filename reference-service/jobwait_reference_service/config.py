"""Settings of one reference-service process."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceConfig:
    """What a reference-service process is started with.

    :param db_path: SQLite file that holds every job and result; survives restarts.
    :param api_key: The one API key every family accepts (in its own header).
    :param test_controls: Honour our test extensions (job outcome/duration overrides,
        fault injection). Off unless the process is started with ``--test-controls``.
    :param max_body_bytes: Request bodies larger than this get 413.
    """

    db_path: str
    api_key: str
    test_controls: bool = False
    max_body_bytes: int = 1_048_576
