"""Waits of one connection share one settings object, and nothing holds it after the last one;
waits that read their connection at the same time share one read, and nothing is kept after it."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref

import pytest
from airflow.exceptions import AirflowNotFoundException
from pytest_mock import MockerFixture

from airflow_jobwait.client.http import ClientConfig
from airflow_jobwait.hooks import ComputeHook, JobsHook, base


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


def _set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str, key: str, **extra: object) -> None:
    value = {"conn_type": conn_type, "host": "https://jobs.example.com/api", "password": key, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


async def test_waits_reading_one_connection_at_once_share_one_read(
    monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    _set_connection(monkeypatch, "jw_one_read", "modzy", "key.one", status_mode="per_job")
    reads = mocker.spy(base, "get_async_connection")
    settings = await asyncio.gather(*(JobsHook("jw_one_read").asettings() for _ in range(50)))
    # In the triggerer each read is requests to its supervisor: 50 waits starting together make one.
    assert reads.call_count == 1
    assert all(config.api_key == "key.one" and polling.mode == "per_job" for config, polling in settings)


async def test_nothing_is_kept_after_a_read_so_a_changed_connection_is_read(
    monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    _set_connection(monkeypatch, "jw_reread", "modzy", "key.old")
    reads = mocker.spy(base, "get_async_connection")
    old, _ = await JobsHook("jw_reread").asettings()
    _set_connection(monkeypatch, "jw_reread", "modzy", "key.rotated")
    new, _ = await JobsHook("jw_reread").asettings()
    assert (old.api_key, new.api_key, reads.call_count) == ("key.old", "key.rotated", 2)


async def test_a_failed_read_fails_every_wait_sharing_it_and_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_JW_LATE", raising=False)
    failed = await asyncio.gather(*(JobsHook("jw_late").asettings() for _ in range(3)), return_exceptions=True)
    assert [type(err) for err in failed] == [AirflowNotFoundException] * 3
    assert all("jw_late" in str(err) for err in failed)
    # Defined afterwards: the next wait reads it, not the failure.
    _set_connection(monkeypatch, "jw_late", "modzy", "key.late")
    config, _ = await JobsHook("jw_late").asettings()
    assert config.api_key == "key.late"


async def test_a_cancelled_wait_leaves_the_read_to_the_others(
    monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    _set_connection(monkeypatch, "jw_cancel", "modzy", "key.cancel")
    reads = mocker.spy(base, "get_async_connection")
    leaving = asyncio.create_task(JobsHook("jw_cancel").asettings())
    staying = asyncio.create_task(JobsHook("jw_cancel").asettings())
    await asyncio.sleep(0)  # both have joined the read, which has not run yet
    leaving.cancel()
    config, _ = await staying
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert config.api_key == "key.cancel" and reads.call_count == 1


async def test_each_hook_class_and_connection_reads_its_own(
    monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> None:
    _set_connection(monkeypatch, "jw_family", "modzy", "key.modzy")
    _set_connection(monkeypatch, "jw_other", "modzy", "key.other")
    reads = mocker.spy(base, "get_async_connection")
    # The same id through another family's hook is that family's settings (its own connection rules).
    (jobs, _), (compute, _), (other, _) = await asyncio.gather(
        JobsHook("jw_family").asettings(), ComputeHook("jw_family").asettings(), JobsHook("jw_other").asettings()
    )
    assert sorted(call.args[0] for call in reads.call_args_list) == ["jw_family", "jw_family", "jw_other"]
    assert (jobs.api_key, other.api_key) == ("key.modzy", "key.other")
    # Modzy's and Evo's rules read the host differently: one read shared by both would be wrong for one.
    assert compute.base_url != jobs.base_url
