"""Waits of one connection share one settings object, and nothing holds it after the last one."""

from __future__ import annotations

import gc
import weakref

from airflow_jobwait.client.http import ClientConfig
from airflow_jobwait.hooks import base


def _config(key: str) -> ClientConfig:
    return ClientConfig(base_url="https://jobs.example.com", api_key=key)


def test_equal_settings_are_one_object_while_in_use_and_released_after() -> None:
    first = base._shared(_config("pub.one"))
    second = base._shared(_config("pub.one"))
    other = base._shared(_config("pub.two"))
    assert second is first and other is not first and other == _config("pub.two")
    released = weakref.ref(first)
    del first, second, other
    gc.collect()
    # Nothing holds the settings (and so their key) once their waits are gone.
    assert released() is None
