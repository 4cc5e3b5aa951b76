"""Shared fixtures: the reference service runs as a real process on 127.0.0.1; Airflow uses a
private AIRFLOW_HOME with a SQLite metadata DB migrated once per session."""

from __future__ import annotations

import json
import os
import shutil
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

from jobwait_reference_service.process import DEFAULT_CONN_IDS, ServiceProcess, family_paths  # noqa: E402

#: The reference service's profile for this session (docs/jobs-api.md §0): ``ext`` (default), or
#: ``real`` (``JOBWAIT_TEST_PROFILE=real``: only what the real services offer); ``make test`` runs
#: the provider's submit, wait, cancel, results, dataset and compute tests under both.
PROFILE = os.environ.get("JOBWAIT_TEST_PROFILE", "ext")

# Modzy-style key: the part before the dot is the public access key identifier.
API_KEY = "pubkey123.s3cr3t-test-key-never-logged"
#: The default connection of each family's type (what operators use when they name none).
MODZY_CONN, TENSORBAY_CONN, EVO_CONN, CHIME_CONN = DEFAULT_CONN_IDS.values()
CONN_ID = MODZY_CONN
#: Connection type -> (default connection id, the family's base path on the reference service).
FAMILIES = {family: (DEFAULT_CONN_IDS[family], path) for family, path in family_paths(PROFILE).items()}


@pytest.fixture(scope="session")
def service() -> Iterator[ServiceProcess]:
    """One reference service (test controls on) for the whole session."""
    with ServiceProcess(api_key=API_KEY, test_controls=True, profile=PROFILE) as proc:
        yield proc


#: A metadata DB already migrated by the same Airflow (``make mutation`` migrates one for the
#: thousands of short sessions it runs; ``airflow db migrate`` costs seconds of CPU each time).
_DB_TEMPLATE = os.environ.get("JOBWAIT_TEST_AIRFLOW_DB_TEMPLATE")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata DB once (or copy the migrated template)."""
    if _DB_TEMPLATE:
        shutil.copyfile(_DB_TEMPLATE, _AIRFLOW_HOME / "airflow.db")
        return _AIRFLOW_HOME
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return _AIRFLOW_HOME


def connection_json(service: ServiceProcess, conn_type: str = "modzy", **extra: object) -> str:
    """A connection of ``conn_type`` to the reference service, as an ``AIRFLOW_CONN_*`` value."""
    host = service.base_url + FAMILIES[conn_type][1]
    return json.dumps({"conn_type": conn_type, "host": host, "password": service.api_key, "extra": extra})


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    service: ServiceProcess,
    conn_type: str,
    conn_id: str | None = None,
    **extra: object,
) -> str:
    """Point ``conn_id`` (default: the type's ``*_default``) at the service; answers the id."""
    conn_id = conn_id or FAMILIES[conn_type][0]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(service, conn_type, **extra))
    return conn_id


@pytest.fixture
def jobwait_conn(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """The four families' default connections pointing at the session's service (environment
    variables); answers the Modzy one's id."""
    for name, value in service.connection_env().items():
        monkeypatch.setenv(name, value)
    return CONN_ID


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the real profile, tests of our extensions (marker ``ext``) are skipped, saying so."""
    if PROFILE == "ext":
        return
    skip = pytest.mark.skip(reason="needs the reference service's [ext] endpoints or headers (profile ext)")
    for item in items:
        if item.get_closest_marker("ext") is not None:
            item.add_marker(skip)
