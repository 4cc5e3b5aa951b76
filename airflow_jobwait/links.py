"""The "Job" extra link: from a task to the job's page on the service."""

from __future__ import annotations

import logging
from string import Formatter
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseHook, BaseOperatorLink, XCom

from airflow_jobwait.hooks.connection import ConnectionFields, base_url_of, connection_type_named

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

URL_TEMPLATE_EXTRA = "job_url_template"


#: Set on the task by ``JobWaitMixin``: the URL it pushed in this process, and whether this
#: process resumed it from a deferral (its link, if any, was pushed by an earlier process).
PUSHED_ATTR = "_jobwait_pushed_link"
RESUMED_ATTR = "_jobwait_resumed"


class JobLink(BaseOperatorLink):
    """Link "Job" to the job's page, from the connection extra ``job_url_template``.

    The URL is pushed to XCom as soon as the job id is known, so the link works while the task
    is deferred, not only after it finished. The web UI reads that XCom itself; ``get_link`` is
    only called by the task runner as a try ends, to push the link once more.
    """

    name = "Job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The link this try pushed; ``""`` when it never knew a job id (e.g. its submit failed).

        Read from XCom only when the try resumed from a deferral: a new try starts with its XComs
        cleared, and reading an absent one makes the task supervisor log "XCom not found" as an
        error for a link that simply does not exist.
        """
        pushed = getattr(operator, PUSHED_ATTR, None)
        if pushed is not None:
            return str(pushed)
        if getattr(operator, RESUMED_ATTR, False):
            return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""
        return ""


def job_url(conn_id: str, job_id: str, job_ref: dict[str, str] | None = None) -> str | None:
    """The job's page from the connection's ``job_url_template`` (``None`` when it has none).

    Each connection type waits for one kind of job, so its template is that kind's. Placeholders
    (values URL-quoted): ``{job_id}`` and ``{base_url}`` everywhere, and the kind's references:
    ``{dataset_id}`` and ``{job_type}`` (TensorBay), ``{org_id}``, ``{topic}`` and ``{task}``
    (Evo). No type has a default: none of the services publishes a job page URL. A template that
    cannot be filled logs a warning and gives no link: a link is never worth failing a task that
    already submitted a job.
    """
    conn = BaseHook.get_connection(conn_id)
    template = conn.extra_dejson.get(URL_TEMPLATE_EXTRA)
    if not template:
        return None
    values = {key: quote(str(value), safe="") for key, value in (job_ref or {}).items()}
    values["job_id"] = quote(job_id, safe="")
    kind = connection_type_named(conn.conn_type)
    fields = ConnectionFields(conn_id, conn.host, conn.schema, conn.port, conn.login, conn.password)
    try:
        values["base_url"] = base_url_of(kind, fields) if kind else (conn.host or "").rstrip("/")
    except ValueError:  # no Host: the link may still not need {base_url}
        values["base_url"] = ""
    try:
        unknown = [name for _, name, _, _ in Formatter().parse(template) if name and name not in values]
        if unknown:
            raise KeyError(", ".join(unknown))
        return str(template).format(**values)
    except (KeyError, IndexError, ValueError) as err:
        log.warning(
            "connection %r: %s %r cannot be filled (%s; known placeholders: %s); no job link",
            conn_id,
            URL_TEMPLATE_EXTRA,
            template,
            err,
            ", ".join(sorted(values)),
        )
        return None
