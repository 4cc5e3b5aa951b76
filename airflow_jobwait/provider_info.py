"""``get_provider_info``: what Airflow's providers manager learns about this package."""

from __future__ import annotations

from typing import Any

from airflow_jobwait import __version__
from airflow_jobwait.hooks.connection import CONNECTION_TYPES

INTEGRATION = "Job Wait"


def get_provider_info() -> dict[str, Any]:
    """Describe hooks, operators, sensors, triggers and the four connection types."""
    return {
        "package-name": "airflow-jobwait",
        "name": "Job Wait",
        "description": (
            "Submit asynchronous remote jobs, wait for them in the triggerer, wire typed results downstream."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://pypi.org/project/airflow-jobwait/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_jobwait.hooks.base",
                    "airflow_jobwait.hooks.jobs",
                    "airflow_jobwait.hooks.results",
                    "airflow_jobwait.hooks.datasets",
                    "airflow_jobwait.hooks.compute",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_jobwait.operators.jobs",
                    "airflow_jobwait.operators.results",
                    "airflow_jobwait.operators.datasets",
                    "airflow_jobwait.operators.compute",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_jobwait.sensors.jobs"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_jobwait.triggers.jobs", "airflow_jobwait.triggers.events"],
            }
        ],
        "extra-links": ["airflow_jobwait.links.JobLink"],
        "connection-types": [kind.provider_info() for kind in CONNECTION_TYPES],
    }
