"""What the provider does on an Airflow older than 3.3 (the floor run) and on 3.3+: the features
that arrived in 3.3 are missing below it, each said once in the log, and nothing else breaks."""

from __future__ import annotations

import logging

import pytest

from airflow_jobwait import version_compat
from airflow_jobwait.sensors import JobSensor
from tests._compat import AIRFLOW_V_3_3_PLUS

BEFORE_3_3 = not AIRFLOW_V_3_3_PLUS  # from the installed apache-airflow-core, not the provider


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_compat, "_logged", set())  # nothing was logged in this process yet


@pytest.mark.usefixtures("fresh_process")
@pytest.mark.parametrize("feature", ["on_kill", "task_state_store", "start_from_trigger"])
def test_a_missing_feature_is_logged_once_per_process(feature: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=version_compat.__name__):
        assert version_compat.warn_unavailable(feature) is BEFORE_3_3
        assert version_compat.warn_unavailable(feature) is BEFORE_3_3
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == (1 if BEFORE_3_3 else 0)
    if BEFORE_3_3:
        assert "Airflow 3." in lines[0] and "3.3" in lines[0]


@pytest.mark.usefixtures("fresh_process")
def test_start_from_trigger_starts_on_a_worker_before_3_3(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=version_compat.__name__):
        sensor = JobSensor(task_id="wait", job_id="{{ ti.xcom_pull('submit') }}", start_from_trigger=True)
    assert bool(sensor.start_from_trigger) is AIRFLOW_V_3_3_PLUS
    assert (sensor.start_trigger_args is not None) is AIRFLOW_V_3_3_PLUS
    assert ("start_from_trigger is ignored" in caplog.text) is BEFORE_3_3
