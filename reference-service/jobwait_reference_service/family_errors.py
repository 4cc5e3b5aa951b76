"""Error bodies of the answers that go out before any family's route runs.

The body-size limit (``app.BodySizeLimit``, 413) and the rate limit (``rate_limit.py``, 429) are
middleware: they answer before routing, for every family alike. Their bodies still take the
shape of the family the path belongs to (``docs/jobs-api.md`` §1-§4), because each family's
clients read errors in their own shape: TensorBay's ``{"code", "message"}``, Evo's problem
details, ``{"detail"}`` for Modzy and the CHIME results store.
"""

from __future__ import annotations

from typing import Any

from jobwait_reference_service.compute import ERROR_TYPE
from jobwait_reference_service.compute import ROOT as COMPUTE_ROOT
from jobwait_reference_service.datasets import API_ROOT as TENSORBAY_ROOT

#: Evo's paths on this service: the Compute API and the Workspaces API next to it.
EVO_ROOTS = (COMPUTE_ROOT + "/", "/workspace/")
#: TensorBay's code for each status answered here; its clients pick exceptions by code only.
TENSORBAY_CODES = {413: "InvalidParamsValue", 429: "AccessDenied"}
TITLES = {413: "Content Too Large", 429: "Too Many Requests"}
SLUGS = {413: "content-too-large", 429: "too-many-requests"}


def error_body(path: str, status: int, message: str) -> tuple[str, dict[str, Any]]:
    """``(content type, body)`` of an error with ``status`` for a request to ``path``.

    :param path: The request's path: it names the family.
    :param status: 413 or 429.
    :param message: What was wrong.
    """
    if path.startswith(TENSORBAY_ROOT + "/"):
        return "application/json", {"code": TENSORBAY_CODES[status], "message": message}
    if path.startswith(EVO_ROOTS):
        body = {"status": status, "type": ERROR_TYPE + SLUGS[status], "title": TITLES[status], "detail": message}
        return "application/problem+json", body
    return "application/json", {"detail": message}
