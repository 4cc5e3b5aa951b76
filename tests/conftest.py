"""Shared fixtures: the reference service runs as a real process on 127.0.0.1; Airflow uses a
private AIRFLOW_HOME with a SQLite metadata DB migrated once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration when first imported: point it at a private home first.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="jobwait-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
_REPO = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_REPO / "dags_examples")
# dag.test() runs only DAGs that a bundle holds: the examples, and the DAGs written for the tests.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path)},
        }
        for name, path in (("examples", _REPO / "dags_examples"), ("test-dags", _REPO / "tests" / "dags"))
    ]
)

from jobwait_reference_service.process import ServiceProcess  # noqa: E402

# Modzy-style key: the part before the dot is the public access key identifier.
API_KEY = "pubkey123.s3cr3t-test-key-never-logged"
CONN_ID = "jobwait_default"


@pytest.fixture(scope="session")
def service() -> Iterator[ServiceProcess]:
    """One reference service (test controls on) for the whole session."""
    with ServiceProcess(api_key=API_KEY, test_controls=True) as proc:
        yield proc


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata DB once."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return _AIRFLOW_HOME


def connection_json(service: ServiceProcess, **extra: object) -> str:
    return json.dumps({"conn_type": "jobwait", "host": service.base_url, "password": service.api_key, "extra": extra})


@pytest.fixture
def jobwait_conn(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """``jobwait_default`` pointing at the session's service (an environment-variable connection)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(service))
    return CONN_ID
