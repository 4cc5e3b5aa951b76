"""Test-only imports that moved between Airflow 3.0 and 3.3."""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version

AIRFLOW_VERSION = Version(version("apache-airflow-core"))
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= AIRFLOW_VERSION

try:  # 3.2+
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # 3.0, 3.1
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

try:  # 3.1+
    from airflow.sdk._shared import secrets_masker as _masker_module
except ImportError:  # 3.0
    from airflow.sdk.execution_time import secrets_masker as _masker_module  # type: ignore[no-redef]
secrets_masker = _masker_module

try:  # 3.2+
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # 3.0, 3.1
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore[no-redef]

__all__ = ["AIRFLOW_V_3_3_PLUS", "DagBag", "DagSerialization", "secrets_masker"]
