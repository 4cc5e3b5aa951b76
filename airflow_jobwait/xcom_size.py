"""Results too large for XCom: what is pushed instead (one rule for workers and triggers)."""

from __future__ import annotations

import json
from typing import Any

from airflow_jobwait.models import ResultsReference

DEFAULT_MAX_XCOM_BYTES = 1024 * 1024


def fit_for_xcom(
    results: dict[str, Any],
    *,
    job_id: str,
    job_kind: str,
    job_ref: dict[str, str] | None,
    conn_id: str,
    max_bytes: int,
) -> tuple[dict[str, Any], int | None]:
    """``results`` if their JSON fits in ``max_bytes``, else a ``ResultsReference`` to fetch them.

    :return: What to push, and the results' size when a reference replaced them (else ``None``).
    """
    size = len(json.dumps(results, separators=(",", ":")))
    if size <= max_bytes:
        return results, None
    reference = ResultsReference(
        job_id=job_id,
        job_kind=job_kind,
        job_ref=job_ref or {},
        conn_id=conn_id,
        size_bytes=size,
        result_keys=sorted(results.get("results") or results),
    )
    return reference.model_dump(mode="json"), size


def log_reference(log: Any, job_id: str, size: int, max_bytes: int, conn_id: str) -> None:
    """Say why a reference, not the results, went to XCom, and how to fetch them."""
    log.warning(
        "results of job %s are %d bytes, over max_xcom_bytes=%d: pushing a reference instead "
        "(fetch them with JobsHook(%r).get_results(%r))",
        job_id,
        size,
        max_bytes,
        conn_id,
        job_id,
    )
